"""Loss against log2 of the learning rate (or weight decay), one curve per width or depth, one
panel per parameterization side by side, each optimum marked; then the verdict.

    python -m sweeps.plot outputs/demo/results.csv
    python -m sweeps.plot a/results.csv b/results.csv --where param=spectral --panel param.block_depth
    python -m sweeps.plot results.csv --x optim.weight_decay --by model.depth --json
    python -m sweeps.plot entity/project/abcd1234          # a W&B sweep (needs the network)

This is the spectral paper's Fig. 1c/d, 2, 3 and 4 layout (spec §5): validation loss against
log2 eta_base (or lambda_base), μP and SP panels. Diverged trials are drawn as crosses along
the top of their panel, so a missing point is never a silent one.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cli
from cli import UserError
from sweeps import results
from sweeps.verdict import format_verdict, octave, verdict


def where(rows: list[dict], conditions: list[str]) -> list[dict]:
    for cond in conditions:
        key, sep, want = cond.partition("=")
        if not sep:
            raise UserError(f"--where {cond!r}: write key=value")
        if rows and key not in rows[0]:
            raise UserError(f"--where {cond!r}: no column {key!r} in the results")
        rows = [r for r in rows if str(r.get(key)) == want or (isinstance(r.get(key), (int, float)) and _num(want) == r.get(key))]
    if not rows:
        raise UserError(f"--where {' '.join(conditions)} leaves no trials: check the values in results.csv")
    return rows


def _num(text: str):
    try:
        return float(text)
    except ValueError:
        return None


def draw(v: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = v["panels"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 0.6, 3.6), sharey=True, squeeze=False)
    finite = [l for sizes in v["points"].values() for c in sizes.values() for l in c.values() if l is not None]
    lo, hi = min(finite), max(finite)
    best = min(finite)
    top = min(hi, best + max(1.0, 0.25 * (hi - best))) + 0.04 * (hi - lo + 1e-9)
    bottom = lo - 0.04 * (hi - lo + 1e-9)
    cmap = plt.get_cmap("viridis")
    for ax, (label, p) in zip(axes[0], panels.items()):
        sizes = list(p["sizes"])
        for i, size in enumerate(sizes):
            curve = v["points"][label][size]
            color = cmap(i / max(1, len(sizes) - 1) * 0.9)
            xs = sorted(curve)
            ok = [(math.log2(x), curve[x]) for x in xs if curve[x] is not None]
            bad = [math.log2(x) for x in xs if curve[x] is None]
            over = [(a, b) for a, b in ok if b > top]
            s = p["sizes"][size]
            ax.plot([a for a, _ in ok], [min(b, top) for _, b in ok], "-o", ms=3, color=color,
                    label=f"{size if v['by'] else 'all'}: {octave(s['optimum'])}" + (" (edge)" if s["edge"] else ""))
            ax.plot([a for a, _ in over], [top] * len(over), "^", color=color, ms=6)
            ax.plot(bad, [top] * len(bad), "x", color=color, ms=8, mew=2)
            if s["optimum"] is not None:
                ax.plot([math.log2(s["optimum"])], [s["loss"]], "*", color=color, ms=13, mec="black", mew=0.6, zorder=5)
        d = p["drift_octaves"]
        ax.set_title(f"{label}\ndrift {d:+.3g} oct" if d is not None else label, fontsize=9)
        ax.set_xlabel(f"log2 {v['x']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title=f"{v['by'] or ''}: optimum (star)", title_fontsize=7)
    axes[0][0].set_ylabel(f"{v['metric']} (x: diverged, ^: off the top)")
    axes[0][0].set_ylim(bottom, top + 0.02 * (top - bottom))
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sweeps.plot", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", help="results.csv files (or their dirs), or one W&B sweep path entity/project/id")
    ap.add_argument("--x", help="the swept hyperparameter (default: optim.lr, else optim.weight_decay)")
    ap.add_argument("--by", help="one curve per value (default: model.width, else model.depth)")
    ap.add_argument("--panel", help="comma-separated panel columns (default: every other column that varies)")
    ap.add_argument("--where", action="append", default=[], metavar="KEY=VALUE", help="keep only matching trials (repeatable)")
    ap.add_argument("--metric", default="final_val_loss", choices=["final_val_loss", "best_val_loss"])
    ap.add_argument("--png", help="the figure (default: transfer.png next to the first results.csv)")
    ap.add_argument("--json", action="store_true", help="print the verdict as JSON instead of text")
    args = ap.parse_args(argv)
    rows = results.read_any(args.results)
    rows = where(rows, args.where)
    panel = [p for p in args.panel.split(",") if p] if args.panel is not None else None
    v = verdict(rows, args.x, args.by, panel, args.metric)
    first = Path(args.results[0])
    png = Path(args.png) if args.png else (first if first.is_dir() else first.parent if first.exists() else Path(".")) / "transfer.png"
    draw(v, png)
    if args.json:
        print(json.dumps({**v, "png": str(png)}, indent=1, default=str))
    else:
        print(format_verdict(v))
        print(f"\nplot: {png}")


if __name__ == "__main__":
    cli.guard(main)()
