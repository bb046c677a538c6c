"""The verdict of a transfer sweep: where each size's optimum lies and how far it moved.

For every panel (a parameterization, say) and every size (a width or a depth), the optimum is
the x (learning rate or weight decay) with the lowest loss among the trials that finished
without diverging. The headline number (README, "Plot and verdict") is the drift: log2 of the optimum
at the largest size over the optimum at the smallest, in octaves; 0 means the hyperparameter
transferred. An optimum on the edge of the x values tried for its size is flagged: the true
optimum may lie outside the grid, so the drift cannot be judged there. The best loss should
also fall as the model grows ("wider is better", TP5 §1).

With seeds (a `seed` column with more than one value per cell), every cell is the mean over its
seeds, with their standard deviation beside it; the optimum is the lowest mean among cells where
no seed diverged, and it is *undecided* when its margin over an adjacent x on the grid is within
the seed spread (the larger standard deviation of the two cells): the data cannot tell which of
the two is better, so the drift is only known to within that octave. With one seed per cell no
optimum is called decided (`decided: null`): one seed cannot show a margin is real.
"""

from __future__ import annotations

import math
from collections import defaultdict

from errors import UserError
from sweeptools.results import OUTCOME, mean_std

X_KEYS = ("optim.lr", "optim.weight_decay")
SIZE_KEYS = ("model.width", "model.depth")
NOT_PANELS = {"trial", "seed", *OUTCOME}


def varying(rows: list[dict], key: str) -> bool:
    return len({str(r.get(key)) for r in rows}) > 1


def pick_axes(rows: list[dict], x: str | None, by: str | None, panel: list[str] | None) -> tuple[str, str | None, list[str]]:
    """The x column, the size column and the panel columns: given, or guessed from the rows."""
    columns = list(rows[0])
    for given in [x, by, *(panel or [])]:
        if given and given not in columns:
            raise UserError(f"no column {given!r} in the results: choose from {', '.join(c for c in columns if c not in NOT_PANELS)}")
    x = x or next((k for k in X_KEYS if k in columns and varying(rows, k)), None)
    if x is None:
        raise UserError("neither optim.lr nor optim.weight_decay varies in these results: name the x column with --x")
    by = by or next((k for k in SIZE_KEYS if k in columns and varying(rows, k)), None)
    if panel is None:
        panel = [k for k in columns if k not in NOT_PANELS and k not in (x, by) and varying(rows, k)]
    return x, by, panel


def cells(rows: list[dict], x: str, by: str | None, panel: list[str], metric: str) -> dict:
    """{panel label: {size: {x: cell}}}, a cell being the seeds' losses at one point: `losses`
    (finished seeds), `n` (every seed that finished or diverged), `diverged`, `mean`, `std` (sample
    standard deviation, 0 with one seed; None without two finished seeds). Failed and unfinished
    trials are left out."""
    groups = defaultdict(list)
    for r in rows:
        if r.get("status") not in ("done", "diverged") or not isinstance(r.get(x), (int, float)):
            continue
        label = ", ".join(f"{k}={r.get(k)}" for k in panel) or "all"
        loss = r.get(metric)
        ok = r["status"] == "done" and isinstance(loss, (int, float)) and math.isfinite(loss)
        groups[(label, r.get(by) if by else None, float(r[x]))].append(loss if ok else None)
    out: dict = defaultdict(lambda: defaultdict(dict))
    for (label, size, xv), losses in groups.items():
        good = [v for v in losses if v is not None]
        mean, std = mean_std(good)
        out[label][size][xv] = {"losses": good, "n": len(losses), "diverged": len(losses) - len(good), "mean": mean, "std": std}
    return out


def points(rows: list[dict], x: str, by: str | None, panel: list[str], metric: str) -> dict:
    """{panel label: {size: {x: mean loss over the seeds, or None (every seed diverged)}}}."""
    return {label: {size: {xv: c["mean"] for xv, c in curve.items()} for size, curve in sizes.items()}
            for label, sizes in cells(rows, x, by, panel, metric).items()}


def judge_size(curve: dict) -> dict:
    """The optimum of one size's curve {x: cell}: the lowest mean where no seed diverged, its
    margin over the adjacent x's and whether the seeds decide it (see the module's docstring)."""
    xs = sorted(curve)
    good = {k: c["mean"] for k, c in curve.items() if c["mean"] is not None and not c["diverged"]}
    seeds = max((c["n"] for c in curve.values()), default=0)
    if not good:
        return {"optimum": None, "log2": None, "loss": None, "std": None, "edge": True, "tried": len(xs),
                "diverged": sum(c["mean"] is None for c in curve.values()), "seeds": seeds, "margin": None,
                "decided": None, "runner_up": None}
    best = min(good, key=good.get)
    i = xs.index(best)
    neighbours = [xs[j] for j in (i - 1, i + 1) if 0 <= j < len(xs)]
    margin, runner_up, decided = None, None, None
    for nb in neighbours:
        c = curve[nb]
        gap = (c["mean"] - good[best]) if c["mean"] is not None and not c["diverged"] else math.inf
        if margin is None or gap < margin:
            margin, runner_up = gap, nb
    if margin is not None:
        here, there = curve[best]["std"], curve[runner_up]["std"]
        if math.isinf(margin):  # every neighbour diverged (in a seed): the optimum stands
            decided = True if here is not None else None
        elif here is not None and there is not None:
            decided = margin > max(here, there)
    return {"optimum": best, "log2": math.log2(best) if best > 0 else None, "loss": good[best],
            "std": curve[best]["std"], "edge": best in (xs[0], xs[-1]), "tried": len(xs),
            "diverged": sum(c["mean"] is None for c in curve.values()), "seeds": seeds,
            "margin": margin if margin is None or math.isfinite(margin) else None,
            "decided": decided, "runner_up": runner_up if decided is False else None}


def judge_panel(sizes: dict) -> dict:
    order = sorted(sizes, key=lambda s: (s is None, s))
    per = {s: judge_size(sizes[s]) for s in order}
    with_opt = [s for s in order if per[s]["log2"] is not None]
    # to 0.01 octave: learning rates written to 4 significant digits (2 x 0.005722 = 0.01144) are not exact octaves
    drift = round(per[with_opt[-1]]["log2"] - per[with_opt[0]]["log2"], 2) if len(with_opt) > 1 else None
    drift_range = None
    if drift is not None:  # an undecided end may be its runner-up: the drift is known to within that
        ends = [[per[s]["log2"]] + ([math.log2(per[s]["runner_up"])] if per[s]["runner_up"] else [])
                for s in (with_opt[0], with_opt[-1])]
        drift_range = [round(min(b - a for a in ends[0] for b in ends[1]), 2), round(max(b - a for a in ends[0] for b in ends[1]), 2)]
    losses = [(s, per[s]["loss"]) for s in with_opt]
    worse = [(a, b) for (a, la), (b, lb) in zip(losses, losses[1:]) if lb >= la]
    return {"sizes": per, "drift_octaves": drift, "drift_range": drift_range,
            "undecided": [s for s in order if per[s]["decided"] is False],
            "edge": [s for s in order if per[s]["edge"]],
            "best_loss_improves": not worse if len(losses) > 1 else None,
            "not_better": [f"{b} ({per[b]['loss']:.4f}) vs {a} ({per[a]['loss']:.4f})" for a, b in worse]}


def verdict(rows: list[dict], x: str | None = None, by: str | None = None, panel: list[str] | None = None,
            metric: str = "final_val_loss") -> dict:
    """The verdict as plain data (also what `--json` prints)."""
    x, by, panel = pick_axes(rows, x, by, panel)
    cs = cells(rows, x, by, panel, metric)
    if not cs:
        raise UserError("no finished trial in the results yet: wait for the sweep (or check <trial>/sweep.log of failed ones)")
    failed = sum(r.get("status") == "failed" for r in rows)
    return {"x": x, "by": by, "panel": panel, "metric": metric, "failed_trials": failed,
            "panels": {label: judge_panel(sizes) for label, sizes in cs.items()},
            "points": {label: {size: {xv: c["mean"] for xv, c in curve.items()} for size, curve in sizes.items()}
                       for label, sizes in cs.items()},
            "spread": {label: {size: {xv: c["std"] for xv, c in curve.items()} for size, curve in sizes.items()}
                       for label, sizes in cs.items()}}


def octave(x: float | None) -> str:
    if x is None:
        return "-"
    k = math.log2(x) if x > 0 else float("nan")
    return f"2^{k:.3g}" if abs(k - round(k)) > 1e-9 else f"2^{round(k)}"


def format_verdict(v: dict) -> str:
    lines = [f"x = {v['x']}, curves by {v['by'] or '-'}, metric {v['metric']}"
             + (f"; {v['failed_trials']} failed trials left out" if v["failed_trials"] else "")]
    for label, p in v["panels"].items():
        lines.append(f"\n[{label}]")
        lines.append(f"  {v['by'] or 'size':<14} {'optimum':<9} {'loss':<8} {'± std':<7} {'seeds':<6} {'margin':<7} "
                     f"{'tried':<6} {'diverged':<9} verdict")
        for size, s in p["sizes"].items():
            loss = f"{s['loss']:.4f}" if s["loss"] is not None else "-"
            std = f"{s['std']:.4f}" if s.get("std") is not None else "-"
            margin = f"{s['margin']:.4f}" if s.get("margin") is not None else "-"
            call = ("EDGE " if s["edge"] else "") + {True: "decided", False: f"undecided vs {octave(s.get('runner_up'))}",
                                                     None: "1 seed" if s.get("seeds", 1) < 2 else "-"}[s.get("decided")]
            lines.append(f"  {str(size):<14} {octave(s['optimum']):<9} {loss:<8} {std:<7} {s.get('seeds', 1):<6} {margin:<7} "
                         f"{s['tried']:<6} {s['diverged']:<9} {call}")
        d, rng = p["drift_octaves"], p.get("drift_range")
        sizes = list(p["sizes"])
        span = f" (within the seed spread: {rng[0]:+.3g} .. {rng[1]:+.3g})" if rng and rng[0] != rng[1] else ""
        lines.append(f"  drift {sizes[0]} -> {sizes[-1]}: " + (f"{d:+.3g} octaves{span}" if d is not None else "n/a"))
        if p.get("undecided"):
            lines.append(f"  optimum undecided at {', '.join(map(str, p['undecided']))}: the margin over the next octave "
                         "is within the seed spread (add seeds to decide)")
        if p["edge"]:
            lines.append(f"  optimum on the grid edge at {', '.join(map(str, p['edge']))}: the drift there cannot be judged (widen the grid)")
        imp = p["best_loss_improves"]
        lines.append("  best loss improves with size: " + ("n/a" if imp is None else "yes" if imp else "no: " + "; ".join(p["not_better"])))
    return "\n".join(lines)
