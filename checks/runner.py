"""Files, figures and the command line of the parameterization checks (checks/core.py does the
measuring and judging): values.csv, check.json, log-log PNGs, the printed verdict, `--json`."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

import cli
from checks import Check
from checks.core import Sweep, clipped, compose, expectation, judge, run_sweep, selected, slope
from param import registry


def _bounds(r: dict) -> str:
    lo, hi = r["lo"], r["hi"]
    if hi == math.inf:
        return f">= {lo:+.2f}"
    if lo == -math.inf:
        return f"<= {hi:+.2f}"
    return f"{(lo + hi) / 2:+.2f} ± {(hi - lo) / 2:.2f}"


def _band(r: dict) -> str:
    """The bounds with the seed band, e.g. '+0.00 ± 0.20+0.07'."""
    return _bounds(r) + (f"+{r['band']:.2f}" if r.get("band") else "")


SHOWN = {"PASS": "PASS", "FAIL": "FAIL", "GROWS": "grows as SP should", "UNDECIDED": "UNDECIDED"}


BUSY_CLIP = 0.2  # warn when the clip acts on this share of some size's ordinary steps (clip 1.0: 5 of 10 at width 64, 2 at 512)


def spike_note(verdict: dict, axis: str) -> str:
    """'width 256 seed 1 step 8, ...': the spiked cells the judged means leave out."""
    return ", ".join(f"{axis} {size} seed {seed} step {step}" for size, seed, step in verdict.get("spiked", []))


def format_verdict(sweep: Sweep, verdict: dict, quantities) -> str:
    lines = [sweep.title, f"  slopes (log2-log2 against {sweep.axis}, at the last step with values):"]
    lines += [f"    {q:<22} {slope(sweep, q, -1):+.3f}" for q in quantities]
    if verdict["claims"]:
        lines.append(f"  {'quantity':<14} {'steps':>6} {'slope':>7} {'at':>3}  {'expected + seed band':<19} {'verdict':<18} claim")
    for r in verdict["claims"]:
        lines.append(f"  {r['quantity']:<14} {r['steps']:>6} {r['slope']:+7.3f} {r['step']:>3}  {_band(r):<19} "
                     f"{SHOWN[r['status']]:<18} {r['text']}")
    if verdict.get("spiked"):
        lines.append(f"  spiked, left out of the means (probe loss > check.spike nats above its best so far): {spike_note(verdict, sweep.axis)}")
    if verdict.get("skipped_steps"):
        lines.append(f"  steps not judged (fewer than half the seeds left at some size): {','.join(map(str, verdict['skipped_steps']))}")
    busy = {size: n for size, n in clipped(sweep).items() if n[1] and n[0] >= BUSY_CLIP * n[1]}
    if busy:
        lines.append(f"  warning: train.grad_clip={sweep.clip:g} clipped ordinary steps (not spikes) at {sweep.axis} "
                     + ", ".join(f"{size}: {n[0]} of {n[1]}" for size, n in clipped(sweep).items())
                     + "; clipping that acts at some sizes more than others is a size-dependent LR: raise train.grad_clip")
    overall = verdict["status"]
    if overall == "NO CLAIM":
        lines.append("  overall: NO CLAIM (this parameterization makes no claim on this axis; set check.expect=mup|sp to judge one)")
    elif overall == "UNDECIDED":
        lines.append("  overall: UNDECIDED (spikes left a claim no step to judge: more check.seeds, or a lower optim.lr)")
    else:
        lines.append(f"  overall: {'grows as SP should' if overall == 'GROWS' else overall}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- outputs

def write_data(out: Path, sweep: Sweep, verdict: dict, quantities) -> None:
    """<out>/values.csv (one row per size, step, quantity) and <out>/check.json."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "values.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["axis", "size", "step", "quantity", "mean", "std", "seeds"])
        for q in sorted(sweep.mean):
            for i, step in enumerate(sweep.steps):
                for j, size in enumerate(sweep.sizes):
                    if np.isfinite(sweep.mean[q][i, j]):
                        w.writerow([sweep.axis, size, step, q, f"{sweep.mean[q][i, j]:.6g}", f"{sweep.std[q][i, j]:.6g}", len(sweep.seeds)])
    doc = summary(sweep, verdict, quantities)
    doc["values"] = {q: {"mean": _listed(sweep.mean[q]), "std": _listed(sweep.std[q])} for q in sorted(sweep.mean)}
    # each seed's values, [seed][step][size]: what the spike rule and the seed band read
    doc["runs"] = {q: [_listed(a) for a in sweep.runs[q]] for q in sorted(sweep.runs or {})}
    (out / "check.json").write_text(json.dumps(doc, indent=1) + "\n")


def _listed(a: np.ndarray) -> list:
    return [[None if not np.isfinite(x) else float(x) for x in row] for row in a]


def _num(x: float):
    return float(x) if math.isfinite(x) else None  # JSON has no NaN / Infinity


def summary(sweep: Sweep, verdict: dict, quantities) -> dict:
    """What --json prints: {"slopes": {quantity: slope}, "verdict": {...}} plus the sweep."""
    claims = [{**r, "lo": _num(r["lo"]), "hi": _num(r["hi"]), "slope": _num(r["slope"])} for r in verdict["claims"]]
    return {
        "title": sweep.title, "axis": sweep.axis, "sizes": sweep.sizes, "steps": sweep.steps, "seeds": sweep.seeds,
        "slopes": {q: _num(slope(sweep, q, -1)) for q in quantities},
        "verdict": {"status": verdict["status"], "claims": claims, "spiked": verdict.get("spiked", []),
                    "skipped_steps": verdict.get("skipped_steps", [])},
        "clipped": {str(size): list(n) for size, n in clipped(sweep).items()},
    }


STEP_COLORS = "plasma"  # sequential, dark to orange: every step reads on white (viridis ends in pale yellow)


def loglog_panel(ax, sizes, lines: dict, title: str, xlabel: str, ylabel: str = "", palette: str = STEP_COLORS) -> None:
    """One log-log panel, one line per entry of `lines` (label -> values over sizes); the axes
    are in octaves (log2), labelled with the quantity. palette: a sequential colormap (steps) or
    a qualitative one such as "tab10" (roles)."""
    import matplotlib as mpl  # figures only: slow to import

    cmap = mpl.colormaps[palette]
    n = max(len(lines), 1)
    colors = cmap(np.arange(n) % cmap.N) if cmap.N <= 20 else cmap(np.linspace(0, 0.8, n))
    for color, (label, values) in zip(colors, lines.items()):
        v = np.asarray(values, dtype=float)
        if np.isfinite(v).any() and (v[np.isfinite(v)] > 0).all():
            ax.plot(sizes, v, marker="o", ms=3, lw=1.4, color=color, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, which="major", alpha=0.3)


def octave_ticks(ax, most: int = 8) -> None:
    """y ticks at whole octaves (2^k, labelled k), every 1, 2, 3... octaves so at most `most` show."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # figures only: slow to import

    lo, hi = ax.get_ylim()
    if not (lo > 0 and hi > lo):
        return
    k0, k1 = math.floor(math.log2(lo)), math.ceil(math.log2(hi))
    step = max(1, math.ceil((k1 - k0 + 1) / most))
    ticks = [2.0 ** k for k in range(k0 - k0 % step, k1 + 1, step) if lo <= 2.0 ** k <= hi]
    if len(ticks) < 2:  # a flat line inside one octave: show its two neighbours
        ticks = [2.0 ** k0, 2.0 ** k1] if k1 > k0 else [2.0 ** (k0 - 1), 2.0 ** (k0 + 1)]
        ax.set_ylim(min(lo, ticks[0]), max(hi, ticks[-1]))
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{math.log2(v):g}"))


def save_figure(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=80)


def save_panel(fig, ax, sweep, path: Path) -> None:
    """A one-panel check figure finished and written: octave ticks, the legend outside on the
    right, the sweep's title (its protocol, without the size list) above, then closed."""
    octave_ticks(ax)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", fontsize=6)
    fig.suptitle(sweep.title.split(": ", 1)[-1].rsplit(" sizes=", 1)[0], fontsize=7)
    save_figure(fig, path)
    pyplot().close(fig)


def pyplot():
    import matplotlib  # figures only: slow to import

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


# ----------------------------------------------------------------------------- command line

def parser(tool: Check, name: str) -> argparse.ArgumentParser:
    """The checks' shared command line: config overrides (check.*, conf/check/coord.yaml, and any
    other key) and the flags below, in any order."""
    ap = argparse.ArgumentParser(prog=f"python -m checks.{name}", description=(tool.__doc__ or "").strip(),
                                 epilog="overrides: any config key, e.g. check.sizes=[64,128,256] check.seeds=[1,2,3]",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    ap.add_argument("-h", "--help", action="store_true", help="show this help message and exit")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. param=mup check.axis=depth")
    ap.add_argument("--json", action="store_true", help='print {"slopes": {...}, "verdict": {...}} instead of the verdict')
    ap.add_argument("--out", metavar="DIR", help="where values.csv, check.json and the figures go "
                                                 f"(default outputs/checks/{name}-<param>-<optim>-<axis>)")
    ap.add_argument("--no-plot", action="store_true", help="write no figures")
    ap.add_argument("--compare", metavar="P,P", help="check each of these parameterizations, drawn side by side, e.g. sp,mup")
    ap.add_argument("--figure", metavar="PATH", help="with --compare: the figure's file")
    ap.add_argument("--matrix", action="store_true", help="every parameterization x tied/untied x axis: the README's verdict table")
    ap.add_argument("--markdown", action="store_true", help="with --matrix: the table as markdown")
    ap.add_argument("--rows", metavar="WORDS,...", help="with --matrix: only the rows whose 'param embeddings axis' has all "
                                                        "the words of one pattern, e.g. 'completep untied depth,untied width'")
    return ap


def check_one(tool: Check, overrides: list[str], name: str) -> tuple:
    """Compose, sweep, judge: (cfg, sweep, verdict, quantities)."""
    cfg = compose(overrides)
    quantities = selected(cfg, tool.QUANTITIES)
    if cfg.train.threads:
        torch.set_num_threads(int(cfg.train.threads))
    family, alpha = expectation(cfg)
    k = f" k={cfg.param.block_depth}" if cfg.param.get("block_depth") else ""
    fixed = f"depth={cfg.model.depth}" if cfg.check.axis == "width" else f"width={cfg.model.width}"
    title = (f"{name}: param={cfg.param.name}{k} optim={cfg.optim.name} lr={cfg.optim.lr:g} {fixed} axis={cfg.check.axis} "
             f"sizes={list(cfg.check.sizes)} steps={tool.steps(cfg)[-1]} seeds={len(cfg.check.seeds)} claim={family}")
    sweep = run_sweep(cfg, tool, title)
    claims = [c for c in tool.claims(cfg, family, alpha) if c.quantity in quantities]
    return cfg, sweep, judge(sweep, claims, float(cfg.check.seed_band)), quantities


def main(tool: Check, name: str, argv: list[str]) -> int:
    """The shared command line of the checks; exit code 0 unless a claim fails (1)."""
    ap = parser(tool, name)
    args = ap.parse_intermixed_args(argv)
    if args.help:  # printed here rather than by argparse's exit, so that main returns 0
        print(ap.format_help(), end="")
        return 0
    if args.rows is not None and not args.matrix:
        raise cli.UserError("--rows picks rows of the --matrix table: add --matrix")
    if args.matrix:
        rows = run_matrix(tool, name, args.overrides, matrix_rows(args.rows))
        print(matrix_table(rows, markdown=args.markdown))
        return 1 if any(r["status"] == "FAIL" for r in rows) else 0
    if args.markdown:
        raise cli.UserError("--markdown formats the --matrix table: add --matrix")
    if args.compare is not None:
        return compare(tool, name, args.overrides, args.compare, args.figure)
    cfg, sweep, verdict, quantities = check_one(tool, args.overrides, name)
    default = Path("outputs") / "checks" / f"{name}-{cfg.param.name}-{cfg.optim.name}-{cfg.check.axis}"
    out = Path(args.out or default)
    write_data(out, sweep, verdict, quantities)
    if not args.no_plot:
        tool.plot(sweep, quantities, out)
    if args.json:
        print(json.dumps(summary(sweep, verdict, quantities)))
    else:
        print(format_verdict(sweep, verdict, quantities))
        print(f"  wrote {out}/values.csv, check.json" + ("" if args.no_plot else ", *.png"))
    return 1 if verdict["status"] == "FAIL" else 0


def compare(tool, name: str, overrides: list[str], which: str, figure: str | None = None) -> int:
    """Sweep each parameterization of `which` (--compare, e.g. sp,mup) and draw them side by side
    (in `figure`, --figure; default outputs/checks/<check>-sp-vs-mup.png)."""
    params = [p for p in which.split(",") if p]
    if len(params) < 2:
        raise cli.UserError(f"--compare {which}: give two or more parameterizations, e.g. --compare sp,mup")
    results = [check_one(tool, [*overrides, f"param={p}"], name) for p in params]
    quantities = results[0][3]
    figure = Path(figure or Path("outputs") / "checks" / f"{name}-{'-vs-'.join(params)}.png")
    tool.plot_compare([(p, r[1]) for p, r in zip(params, results)], quantities, figure)
    for _, sweep, verdict, q in results:
        print(format_verdict(sweep, verdict, q))
    print(f"  wrote {figure}")
    return 1 if any(r[2]["status"] == "FAIL" for r in results) else 0


# ----------------------------------------------------------------------------- the verdict matrix

# Every parameterization the project supports x {tied, untied}: the width check for all of them
# (the μP family claims flatness in width, SP growth), the depth check for those with a depth rule
# (and SP). (label, axis, overrides); the axis's sizes are set here, everything else is the protocol.
# PARAMS are the README's rows; a parameterization of conf/param/ that none of them selects gets
# rows of its own (shipped_rows).
WIDTH_SIZES, DEPTH_SIZES = "check.sizes=[64,128,256,512]", "check.sizes=[2,4,8,16,32]"
PARAMS = (  # (label, overrides, also checked in depth, embeddings)
    ("sp", ["param=sp"], True, (True, False)), ("mup", ["param=mup"], False, (True, False)),
    ("depth_mup", ["param=depth_mup"], True, (True, False)), ("completep", ["param=completep"], True, (True, False)),
    ("spectral k=1", ["param=spectral", "param.block_depth=1"], True, (True, False)),
    ("spectral k>=2", ["param=spectral", "param.block_depth=2"], True, (True, False)),
    ("abc (μP preset)", ["param=abc", "param.preset=mup"], False, (True, False)),  # tied: refused, and the table says why
    # TP5's zero readout, an untied-only option: the untied rows above without the random readout
    ("mup, zero readout", ["param=mup", "param.zero_readout=true"], False, (False,)),
    ("completep, zero readout", ["param=completep", "param.zero_readout=true"], True, (False,)),
)


def claims_depth(overrides) -> bool:
    """Whether the parameterization of `overrides` makes a claim in depth (coord_check.claims):
    SP's growth, or the μP family's with a residual-branch exponent alpha."""
    family, alpha = expectation(cli.compose(["+check=coord", *overrides]))
    return family == "sp" or (family == "mup" and alpha is not None)


def shipped_rows(rows=PARAMS) -> tuple:
    """`rows`, then one for each variant (registry.variants) of a parameterization no row selects:
    labelled by its overrides, tied and untied, in depth where it claims something there."""
    covered = {o for _, overrides, _, _ in rows for o in overrides if o.startswith("param=")}
    new = [(" ".join(o.removeprefix("param=") for o in v), list(v), claims_depth(v), (True, False))
           for v in registry.variants() if v[0] not in covered]
    return (*rows, *new)


MATRIX = [
    (label, axis, [*params, f"model.tie_embeddings={str(tied).lower()}", "check.axis=" + axis,
                   WIDTH_SIZES if axis == "width" else DEPTH_SIZES])
    for axis in ("width", "depth") for label, params, in_depth, ties in shipped_rows() if axis == "width" or in_depth
    for tied in ties
]


def matrix_rows(pick: str | None) -> list:
    """The rows of MATRIX that --rows names: comma-separated patterns, each a set of words that
    must all occur in a row's "param embeddings axis" (e.g. 'completep untied depth', 'untied width')."""
    if not pick:
        return MATRIX
    patterns = [p.split() for p in pick.split(",") if p.strip()]

    def name(label, axis, extra):
        return f"{label} {'tied' if 'model.tie_embeddings=true' in extra else 'untied'} {axis}"

    rows = [r for r in MATRIX if any(all(w in name(*r).split() or w == r[0] for w in p) for p in patterns)]
    if not rows:
        raise cli.UserError(f"--rows {pick!r} matches no row: use words of 'param embeddings axis', e.g. --rows 'completep untied depth'")
    return rows


def run_matrix(tool, name: str, overrides: list[str], matrix) -> list[dict]:
    """One check per (label, axis, overrides) of `matrix`, the user's overrides last. A
    configuration the project refuses (abc with tied embeddings) is reported, not run."""
    rows = []
    for label, axis, extra in matrix:
        tied = "model.tie_embeddings=true" in extra
        row = {"param": label, "embeddings": "tied" if tied else "untied", "axis": axis}
        try:
            cfg, sweep, verdict, _ = check_one(tool, [*extra, *overrides], name)
        except cli.UserError as e:
            rows.append({**row, "status": "not run", "sizes": "", "seeds": "", "worst": str(e), "spiked": ""})
            continue
        worst = _worst_claim(verdict)
        if worst is None:
            text = ""
        elif worst["status"] == "UNDECIDED":
            text = f"{worst['quantity']}: every judged step spiked"
        else:
            text = f"{worst['quantity']} {worst['slope']:+.2f} at step {worst['step']} ({_band(worst)})"
        cells = verdict.get("spiked", [])
        rows.append({**row, "status": verdict["status"], "sizes": ",".join(map(str, sweep.sizes)), "seeds": len(sweep.seeds),
                     "worst": text, "spiked": f"{len(cells)} of {len(sweep.sizes) * len(sweep.seeds) * (len(sweep.steps) - 1)}"})
    return rows


def _worst_claim(verdict: dict) -> dict | None:
    """The claim furthest outside its band if one fails, else the one closest to its band's edge."""
    rows = verdict["claims"]
    if not rows:
        return None
    failed = [r for r in rows if r["status"] == "FAIL"]
    undecided = [r for r in rows if r["status"] == "UNDECIDED"]
    if undecided and not failed:
        return undecided[0]
    rows = [r for r in rows if r["status"] != "UNDECIDED"]

    def margin(r):  # < 0: outside by that much; NaN slopes are the furthest out
        lo, hi, s, b = r["lo"], r["hi"], r["slope"], r.get("band", 0.0)
        if not math.isfinite(s):
            return -math.inf
        return min(s - lo + b if lo != -math.inf else math.inf, hi + b - s if hi != math.inf else math.inf)

    return min(rows, key=margin)


def matrix_table(rows: list[dict], markdown: bool) -> str:
    """The verdicts as a table: markdown for the README, or aligned text."""
    head = ["param", "embeddings", "axis", "sizes", "seeds", "verdict", "closest claim (slope, expected)", "spiked cells left out"]
    body = [[r["param"], r["embeddings"], r["axis"], r["sizes"], str(r["seeds"]), SHOWN.get(r["status"], r["status"]), r["worst"],
             r.get("spiked", "")] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(c.replace("|", "/") for c in b) + " |" for b in body])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *body])


def entry(tool, name: str) -> None:
    sys.exit(cli.guard(main)(tool, name, sys.argv[1:]))
