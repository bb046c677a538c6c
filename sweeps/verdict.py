"""The verdict of a transfer sweep: where each size's optimum lies and how far it moved.

For every panel (a parameterization, say) and every size (a width or a depth), the optimum is
the x (learning rate or weight decay) with the lowest loss among the trials that finished
without diverging. The headline number (shared/DESIGN.md) is the drift: log2 of the optimum
at the largest size over the optimum at the smallest, in octaves; 0 means the hyperparameter
transferred. An optimum on the edge of the x values tried for its size is flagged: the true
optimum may lie outside the grid, so the drift cannot be judged there. The best loss should
also fall as the model grows ("wider is better", TP5 §1).
"""

from __future__ import annotations

import math
from collections import defaultdict

from cli import UserError
from sweeps.results import OUTCOME

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


def points(rows: list[dict], x: str, by: str | None, panel: list[str], metric: str) -> dict:
    """{panel label: {size: {x: loss or None (diverged)}}}; repeated points (seeds) averaged,
    a point diverged only when every repeat diverged. Failed and unfinished trials are left out."""
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
        out[label][size][xv] = sum(good) / len(good) if good else None
    return out


def judge_size(curve: dict) -> dict:
    xs = sorted(curve)
    good = {k: v for k, v in curve.items() if v is not None}
    if not good:
        return {"optimum": None, "log2": None, "loss": None, "edge": True, "tried": len(xs), "diverged": len(xs)}
    best = min(good, key=good.get)
    return {"optimum": best, "log2": math.log2(best) if best > 0 else None, "loss": good[best],
            "edge": best in (xs[0], xs[-1]), "tried": len(xs), "diverged": len(xs) - len(good)}


def judge_panel(sizes: dict) -> dict:
    order = sorted(sizes, key=lambda s: (s is None, s))
    per = {s: judge_size(sizes[s]) for s in order}
    with_opt = [s for s in order if per[s]["log2"] is not None]
    drift = per[with_opt[-1]]["log2"] - per[with_opt[0]]["log2"] if len(with_opt) > 1 else None
    losses = [(s, per[s]["loss"]) for s in with_opt]
    worse = [(a, b) for (a, la), (b, lb) in zip(losses, losses[1:]) if lb >= la]
    return {"sizes": per, "drift_octaves": drift, "edge": [s for s in order if per[s]["edge"]],
            "best_loss_improves": not worse if len(losses) > 1 else None,
            "not_better": [f"{b} ({per[b]['loss']:.4f}) vs {a} ({per[a]['loss']:.4f})" for a, b in worse]}


def verdict(rows: list[dict], x: str | None = None, by: str | None = None, panel: list[str] | None = None,
            metric: str = "final_val_loss") -> dict:
    """The verdict as plain data (also what `--json` prints)."""
    x, by, panel = pick_axes(rows, x, by, panel)
    pts = points(rows, x, by, panel, metric)
    if not pts:
        raise UserError("no finished trial in the results yet: wait for the sweep (or check <trial>/sweep.log of failed ones)")
    failed = sum(r.get("status") == "failed" for r in rows)
    return {"x": x, "by": by, "panel": panel, "metric": metric, "failed_trials": failed,
            "panels": {label: judge_panel(sizes) for label, sizes in pts.items()}, "points": pts}


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
        lines.append(f"  {v['by'] or 'size':<14} {'optimum':<9} {'loss':<8} {'tried':<6} {'diverged':<9} edge")
        for size, s in p["sizes"].items():
            loss = f"{s['loss']:.4f}" if s["loss"] is not None else "-"
            lines.append(f"  {str(size):<14} {octave(s['optimum']):<9} {loss:<8} {s['tried']:<6} {s['diverged']:<9} {'EDGE' if s['edge'] else ''}")
        d = p["drift_octaves"]
        sizes = list(p["sizes"])
        lines.append(f"  drift {sizes[0]} -> {sizes[-1]}: " + (f"{d:+.3g} octaves" if d is not None else "n/a"))
        if p["edge"]:
            lines.append(f"  optimum on the grid edge at {', '.join(map(str, p['edge']))}: the drift there cannot be judged (widen the grid)")
        imp = p["best_loss_improves"]
        lines.append("  best loss improves with size: " + ("n/a" if imp is None else "yes" if imp else "no: " + "; ".join(p["not_better"])))
    return "\n".join(lines)
