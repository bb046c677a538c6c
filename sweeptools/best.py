"""Tune small, train large: print the winning trial's overrides, ready for `train.py`.

    python -m sweeptools.run sweeps/cpu_proxy_search.yaml --count 24 --jobs 2
    python -m sweeptools.best outputs/sweeps/cpu_proxy_search/results.csv
    python -m sweeptools.best multirun/2026-11-25/07-28-14            # the jobs of `python train.py -m ...`
    python train.py $(python -m sweeptools.best outputs/sweeps/cpu_proxy_search/results.csv) model.width=256

stdout is one line of overrides: the sweep's fixed ones (its experiment preset and base shape
included) and the winner's swept values. The model's width and depth are printed too (Hydra
takes the last value of a key, so the ones you append win). With a μP-family `param`, the
proxy's base shape stays the base of the table, so the large model gets the tuned values
scaled by the parameterization's rules (TP5 §1, "μTransfer").

With seeds (a sweep run with `--seeds N`, or a `seed` parameter), the trials that differ only in
their seed are one point: the winner is the point with the lowest mean over its seeds, among the
points where every seed finished without diverging; its seed is not printed.
"""

from __future__ import annotations

import argparse
import math
import sys

import cli
from errors import UserError
from sweeptools import results
from sweeptools.results import OUTCOME, fmt

DROP = ("logger",)  # the proxy's logging choice is not a hyperparameter


def means(rows: list[dict], metric: str) -> list[dict]:
    """One row per point (the trials that differ only in `seed`): its first trial's columns, the
    metric's mean over the seeds, `metric_std` (None with one seed) and `seeds`. A point with a
    seed that did not finish, or diverged, is `done` only if none did (its mean is then None)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = tuple((k, str(v)) for k, v in r.items() if k not in OUTCOME and k not in ("trial", "seed"))
        groups.setdefault(key, []).append(r)
    out = []
    for trials in groups.values():
        ok = [r for r in trials if r.get("status") == "done" and isinstance(r.get(metric), (int, float)) and math.isfinite(r[metric])]
        mean, std = results.mean_std([r[metric] for r in ok]) if len(ok) == len(trials) else (None, None)
        first = {k: v for k, v in trials[0].items() if k != "seed"}
        out.append({**first, "status": "done" if mean is not None else "diverged", metric: mean, f"{metric}_std": std,
                    "seeds": len(trials), "run_dir": ok[0]["run_dir"] if ok else first.get("run_dir")})
    return out


def winner(rows: list[dict], metric: str) -> dict:
    """The point with the lowest mean `metric` over its seeds (one seed: the best trial)."""
    done = [r for r in means(rows, metric) if r.get("status") == "done" and r.get(metric) is not None]
    if not done:
        raise UserError("no trial finished without diverging: nothing to pick (see the status column of results.csv)")
    return min(done, key=lambda r: r[metric])


def overrides(row: dict) -> list[str]:
    keys = [k for k in row if k not in OUTCOME and k not in ("trial", "seed", "seeds") and not k.endswith("_loss_std")
            and k not in DROP and row[k] is not None]
    return [f"{k}={fmt(row[k])}" for k in keys]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sweeptools.best", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", help="results.csv files (or their dirs), Hydra multirun dirs, or one W&B sweep path")
    ap.add_argument("--metric", default="final_val_loss", choices=["final_val_loss", "best_val_loss"])
    args = ap.parse_args(argv)
    rows = results.read_any(args.results)
    best = winner(rows, args.metric)
    n_ok = sum(r.get("status") == "done" for r in rows)
    spread = f" ± {best[args.metric + '_std']:.4f} (mean ± std over {best['seeds']} seeds)" if best["seeds"] > 1 else ""
    print(f"# best of {n_ok} finished trials ({len(rows)} in all): {args.metric} {best[args.metric]:.4f}{spread} in {best['run_dir']}",
          file=sys.stderr)
    print(" ".join(overrides(best)))


if __name__ == "__main__":
    cli.guard(main)()
