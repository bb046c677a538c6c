"""Loss against log2 of the learning rate (or weight decay), one curve per width or depth, one
panel per parameterization side by side, each optimum marked; then the verdict.

    python -m sweeptools.plot outputs/demo/results.csv
    python -m sweeptools.plot a/results.csv b/results.csv --where param=spectral --panel param.block_depth
    python -m sweeptools.plot results.csv --x optim.weight_decay --by model.depth --json
    python -m sweeptools.plot multirun/2026-11-25/07-28-14      # the jobs of `python train.py -m ...`
    python -m sweeptools.plot entity/project/abcd1234          # a W&B sweep (needs the network)

This is the spectral paper's Fig. 1c/d, 2, 3 and 4 layout (docs/parameterizations.md §5): validation loss against
log2 eta_base (or lambda_base), μP and SP panels. Diverged trials are drawn as crosses along
the top of their panel, so a missing point is never a silent one. With seeds, each point is the
mean over its seeds with their standard deviation as an error bar, and an optimum the seeds
cannot tell from the next octave is a hollow star (sweeptools/verdict.py).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cli
from errors import UserError
from sweeptools import results
from sweeptools.verdict import format_verdict, octave, verdict


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


# The curves' colours: a sequential palette (small size dark, large size light) cut before its
# light end, so the largest size stays readable on white; each size also gets its own marker.
PALETTE, PALETTE_END = "viridis", 0.72
MARKERS = "osD^vPX<>h"
AXIS_NAMES = {"optim.lr": "learning rate", "optim.weight_decay": "weight decay"}


def octave_ticks(ax, lo: float, hi: float) -> None:
    """x ticks at whole octaves only (2^k, k an integer), every 2nd or 3rd one on a wide axis."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # figures only: slow to import

    first, last = math.floor(lo), math.ceil(hi)
    step = max(1, math.ceil((last - first + 1) / 9))
    ticks = [k for k in range(first, last + 1) if k % step == 0] or [first]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(FixedLocator(list(range(first, last + 1))) if step > 1 else NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda k, _: f"$2^{{{int(round(k))}}}$"))


def draw_optima(ax, stars: list[tuple[float, float, tuple, bool]], y_span: float) -> None:
    """A star per optimum in its curve's colour, hollow when the seeds leave it undecided. Optima
    that share a point (same x, losses within 1% of the y range) are spread side by side around it,
    0.2 octave apart, so none hides another."""
    groups: list[list] = []
    for star in stars:
        x, y = star[0], star[1]
        same = next((g for g in groups if g[0][0] == x and abs(g[0][1] - y) < 0.01 * y_span), None)
        (same.append(star) if same else groups.append([star]))
    for g in groups:
        for j, (x, y, color, undecided) in enumerate(g):
            ax.plot([x + 0.2 * (j - (len(g) - 1) / 2)], [y], "*", color=color, ms=14, mec="black", mew=0.7, zorder=5,
                    mfc="white" if undecided else color)


def draw(v: dict, png: Path) -> None:
    import matplotlib  # figures only: slow to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = v["panels"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels) + 0.8, 3.9), sharey=True, squeeze=False,
                             layout="constrained")
    finite = [l for sizes in v["points"].values() for c in sizes.values() for l in c.values() if l is not None]
    lo, hi = min(finite), max(finite)
    best = min(finite)
    top = min(hi, best + max(1.0, 0.25 * (hi - best))) + 0.04 * (hi - lo + 1e-9)
    bottom = lo - 0.04 * (hi - lo + 1e-9)
    cmap = plt.get_cmap(PALETTE)
    xs_all = [math.log2(x) for sizes in v["points"].values() for c in sizes.values() for x in c if x > 0]
    x_name = AXIS_NAMES.get(v["x"], v["x"])
    for ax, (label, p) in zip(axes[0], panels.items()):
        sizes, stars = list(p["sizes"]), []
        for i, size in enumerate(sizes):
            curve = v["points"][label][size]
            color = cmap(PALETTE_END * i / max(1, len(sizes) - 1))
            marker = MARKERS[i % len(MARKERS)]
            xs = sorted(curve)
            ok = [(math.log2(x), curve[x]) for x in xs if curve[x] is not None]
            bad = [math.log2(x) for x in xs if curve[x] is None]
            over = [(a, b) for a, b in ok if b > top]
            s = p["sizes"][size]
            ax.plot([a for a, _ in ok], [min(b, top) for _, b in ok], "-", marker=marker, ms=4, lw=1.6, color=color,
                    label=f"{size if v['by'] else 'all'}: {octave(s['optimum'])}" + (" (edge)" if s["edge"] else "")
                    + (" (undecided)" if s.get("decided") is False else ""))
            spread = v.get("spread", {}).get(label, {}).get(size, {})
            bars = [(math.log2(x), curve[x], spread.get(x)) for x in xs if curve[x] is not None and spread.get(x) and curve[x] <= top]
            if bars:  # the seeds' standard deviation at each point
                ax.errorbar([a for a, _, _ in bars], [b for _, b, _ in bars], yerr=[e for _, _, e in bars], fmt="none",
                            ecolor=color, elinewidth=1.0, capsize=2.5, alpha=0.8)
            if over:
                ax.plot([a for a, _ in over], [top] * len(over), "^", color=color, ms=6, clip_on=False)
            if bad:
                ax.plot(bad, [top] * len(bad), "x", color=color, ms=8, mew=2, clip_on=False)
            if s["optimum"] is not None:
                stars.append((math.log2(s["optimum"]), s["loss"], color, s.get("decided") is False))
        draw_optima(ax, stars, top - bottom)
        d = p["drift_octaves"]
        ax.set_title(f"{label}\noptimum drift {d:+.3g} octaves" if d is not None else label, fontsize=9)
        ax.set_xlabel(f"{x_name} ({v['x']}), log2 scale")
        if xs_all:
            octave_ticks(ax, min(xs_all), max(xs_all))
        ax.grid(alpha=0.3)
        ax.grid(alpha=0.12, which="minor")
        ax.legend(fontsize=7, title=f"{v['by'] or 'size'}: optimum (★; ☆ undecided)", title_fontsize=7, framealpha=0.85)
    axes[0][0].set_ylabel(v["metric"].replace("_", " ") + "\n(×: diverged, ▲: off the top)", fontsize=9)
    axes[0][0].set_ylim(bottom, top + 0.02 * (top - bottom))
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sweeptools.plot", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", help="results.csv files (or their dirs), Hydra multirun dirs, or one W&B sweep path entity/project/id")
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
