"""Tune small, train large: print the winning trial's overrides, ready for `train.py`.

    python -m sweeps.run sweeps/cpu_proxy_search.yaml --count 24 --jobs 2
    python -m sweeps.best outputs/sweeps/cpu_proxy_search/results.csv
    python -m sweeps.best multirun/2026-11-25/07-28-14            # the jobs of `python train.py -m ...`
    python train.py $(python -m sweeps.best outputs/sweeps/cpu_proxy_search/results.csv) model.width=256

stdout is one line of overrides: the sweep's fixed ones (its experiment preset and base shape
included) and the winner's swept values. The model's width and depth are printed too (Hydra
takes the last value of a key, so the ones you append win). With a μP-family `param`, the
proxy's base shape stays the base of the table, so the large model gets the tuned values
scaled by the parameterization's rules (TP5 §1, "μTransfer").
"""

from __future__ import annotations

import argparse
import math
import sys

import cli
from cli import UserError
from sweeps import results
from sweeps.results import OUTCOME

DROP = ("logger",)  # the proxy's logging choice is not a hyperparameter


def winner(rows: list[dict], metric: str) -> dict:
    done = [r for r in rows if r.get("status") == "done" and isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
    if not done:
        raise UserError("no trial finished without diverging: nothing to pick (see the status column of results.csv)")
    return min(done, key=lambda r: r[metric])


def overrides(row: dict) -> list[str]:
    from sweeps.spec import fmt

    keys = [k for k in row if k not in OUTCOME and k != "trial" and k not in DROP and row[k] is not None]
    return [f"{k}={fmt(row[k])}" for k in keys]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sweeps.best", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", help="results.csv files (or their dirs), Hydra multirun dirs, or one W&B sweep path")
    ap.add_argument("--metric", default="final_val_loss", choices=["final_val_loss", "best_val_loss"])
    args = ap.parse_args(argv)
    rows = results.read_any(args.results)
    best = winner(rows, args.metric)
    n_ok = sum(r.get("status") == "done" for r in rows)
    print(f"# best of {n_ok} finished trials ({len(rows)} in all): {args.metric} {best[args.metric]:.4f} in {best['run_dir']}",
          file=sys.stderr)
    print(" ".join(overrides(best)))


if __name__ == "__main__":
    cli.guard(main)()
