"""The papers' claims, run at CPU scale with seeds, judged, and published in docs/results.md.

    python -m sweeptools.claims list                          # the claims, in order, with their sweeps
    python -m sweeptools.claims run                           # every claim (`make results`), then the report
    python -m sweeptools.claims run depth_lr --jobs 2         # one claim (its sweeps resume like sweeptools.run)
    python -m sweeptools.claims report                        # docs/results.md again, from docs/results/*.json alone

A claim is a file `sweeps/claims/<id>.yaml`: the sweeps that test it (sweep files, each with a
`--skip`, or the sweeps of `make demo`), the axes (x: the learning rate or the weight decay, by:
width or depth, the panel columns), and for each panel what the paper found and what it
expects: the optimum `holds` (stays within one octave at every size), `drifts` (moves two
octaves or more between the smallest and the largest size) or `report` (shown, not judged).

Seeds: every grid point runs with seed 1; then, for every panel and size, the optimum and its
neighbours on the grid run with the other seeds (`seeds: 2` in the claim), again until the
optimum of the means has all its seeds beside it. That is where the verdict's margin is measured
(sweeptools/verdict.py), and it costs about half of running every point with every seed.

The verdict of a panel comes from the range its optimum may take at each size: the optimum,
or its runner-up when the seeds cannot tell the two apart, and anything beyond the grid when
the optimum is on the grid's edge. `holds` when every size's range fits in one octave of every
other's, `drifts` when the ends are two octaves apart or more whatever the range, else
undecided. A claim agrees when all its judged panels agree, disagrees when one disagrees, and
is undecided otherwise. Each claim writes <docs>/<id>.json (everything the report needs) and
<docs>/<id>.png; the report renders docs/results.md and the README's summary table from the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import time
from pathlib import Path

import cli
from errors import UserError
from sweeptools import plot, results, spec, transfer
from sweeptools import run as runner
from sweeptools.verdict import cells, octave, verdict

CLAIMS_DIR = cli.REPO / "sweeps" / "claims"
DOCS_DIR = cli.REPO / "docs" / "results"
REPORT = cli.REPO / "docs" / "results.md"
README = cli.REPO / "README.md"
README_MARKS = ("<!-- results:start -->", "<!-- results:end -->")
EXPECT = ("holds", "drifts", "report")
HOLD_OCTAVES, DRIFT_OCTAVES = 1.0, 2.0
TOL = 0.05  # learning rates written to 4 significant digits are not exact octaves (make demo's μP)
KEYS = ("title", "letter", "order", "paper", "setting", "x", "by", "panel", "panels", "sweeps", "seeds", "discussion")


# ----------------------------------------------------------------------------- the claim files

@dataclasses.dataclass
class Claim:
    id: str
    path: Path
    raw: dict

    def __getattr__(self, key):
        try:
            return self.__dict__["raw"][key]
        except KeyError:
            raise AttributeError(key) from None


def load(path: Path) -> Claim:
    """Read and check a claim file; every mistake is one UserError naming the fix."""
    raw = spec.read_mapping(path, f"a claim file is a mapping with {', '.join(KEYS)}")
    unknown = sorted(set(raw) - set(KEYS))
    missing = [k for k in ("title", "paper", "x", "by", "panels", "sweeps") if k not in raw]
    if unknown or missing:
        raise UserError(f"{path}: " + (f"unknown key {unknown[0]!r} (keys: {', '.join(KEYS)})" if unknown
                                       else f"no {missing[0]!r}: every claim names {', '.join(KEYS[:6])} and its panels and sweeps"))
    raw.setdefault("panel", ["param"])
    raw.setdefault("seeds", 2)
    raw.setdefault("order", 99)
    if not isinstance(raw["seeds"], int) or raw["seeds"] < 1:
        raise UserError(f"{path}: seeds: {raw['seeds']!r}: give the number of seeds at the optima (1, 2, 3, ...)")
    for label, p in raw["panels"].items():
        if not isinstance(p, dict) or p.get("expect") not in EXPECT or "paper" not in p:
            raise UserError(f"{path}: panel {label!r}: give expect: {' | '.join(EXPECT)} and paper: what the paper found")
    for s in raw["sweeps"]:
        if not isinstance(s, dict) or ("file" in s) == ("demo" in s):
            raise UserError(f"{path}: each sweep is {{file: sweeps/X.yaml, skip: [...]}} or {{demo: mup | sp}}")
        if "file" in s and not (cli.REPO / s["file"]).is_file():
            raise UserError(f"{path}: {s['file']}: no such sweep file")
        if "demo" in s and s["demo"] not in ("mup", "sp"):
            raise UserError(f"{path}: demo: {s['demo']!r}: the demo's sweeps are mup and sp")
    return Claim(path.stem, path, raw)


def load_all(folder: Path = CLAIMS_DIR, ids: list[str] | None = None) -> list[Claim]:
    claims = sorted((load(p) for p in folder.glob("*.yaml")), key=lambda c: (c.order, c.id))
    if not claims:
        raise UserError(f"{folder}: no claim files (<id>.yaml)")
    if ids:
        known = {c.id: c for c in claims}
        bad = [i for i in ids if i not in known]
        if bad:
            raise UserError(f"no claim {bad[0]!r}: choose from {', '.join(known)}")
        return [known[i] for i in ids]
    return claims


def out_name(entry: dict) -> str:
    return entry.get("out") or Path(entry["file"]).stem.removeprefix("cpu_")


# ----------------------------------------------------------------------------- running, seeds where they decide

def condition(point: dict) -> str:
    """A --skip condition that matches exactly this grid point."""
    return ",".join(f"{k}={spec.fmt(v)}" for k, v in point.items())


def label_of(values: dict, panel: list[str]) -> str:
    """A point's panel label, as sweeptools.verdict.cells writes it."""
    return ", ".join(f"{k}={values.get(k)}" for k in panel) or "all"


def needed(rows: list[dict], x: str, by: str, panel: list[str], seeds: int, metric: str) -> dict[tuple, int]:
    """{(panel label, size, x): seeds present} for every optimum and its grid neighbours whose
    cell has fewer than `seeds` seeds (the points the verdict's margin is measured at)."""
    want = {}
    for label, sizes in cells(rows, x, by, panel, metric).items():
        for size, curve in sizes.items():
            good = {xv: c["mean"] for xv, c in curve.items() if c["mean"] is not None and not c["diverged"]}
            if not good:
                continue
            xs = sorted(curve)
            i = xs.index(min(good, key=good.get))
            for j in (i - 1, i, i + 1):
                if 0 <= j < len(xs) and curve[xs[j]]["n"] < seeds:
                    want[(label, size, xs[j])] = curve[xs[j]]["n"]
    return want


def run_sweep(entry: dict, claim: Claim, root: Path, jobs: int, extra: list[str], progress: bool) -> list[dict]:
    """Every grid point with seed 1, then the other seeds where the optima are, until they stand."""
    sweep = spec.load(cli.REPO / entry["file"], extra=extra)
    if sweep.method != "grid":
        raise UserError(f"{entry['file']}: a claim's sweep is a grid (method: {sweep.method})")
    out = root / out_name(entry)
    skip = list(entry.get("skip", []))
    points = [p for p in spec.grid(sweep) if not any(spec.matches(p, c) for c in skip)]
    rows = {r["trial"]: r for r in runner.run(sweep, out, jobs, skip=skip, seeds=[1], progress=progress)}
    panel = [k for k in sweep.swept if k not in (claim.x, claim.by)]
    for _ in range(2 * claim.seeds + 2):  # each round adds the seeds of the optima it finds; they settle in a few
        want = needed(list(rows.values()), claim.x, claim.by, panel, claim.seeds, sweep.metric)
        if not want:
            break
        for seed in range(2, claim.seeds + 1):
            todo = [p for p in points if want.get(key_of(p, panel, claim), claim.seeds) < seed]
            if not todo:
                continue
            keep = {condition(p) for p in todo}
            rows.update({r["trial"]: r for r in runner.run(sweep, out, jobs, skip=[*skip, *(condition(p) for p in points if condition(p) not in keep)],
                                                            seeds=[seed], progress=progress)})
    rows = list(rows.values())
    results.write(out / "results.csv", rows)
    return rows


def key_of(point: dict, panel: list[str], claim: Claim) -> tuple:
    return (label_of(point, panel), point.get(claim.by), float(point[claim.x]))


def demo_rows(name: str, demo_out: Path, jobs: int, extra: list[str], ran: set) -> list[dict]:
    """The rows of one of `make demo`'s sweeps (it runs, or resumes, once per call)."""
    if demo_out not in ran:
        transfer.main(["--out", str(demo_out), "--jobs", str(jobs), *extra])
        ran.add(demo_out)
    return results.read([str(demo_out / name / "results.csv")])


# ----------------------------------------------------------------------------- the verdict of a claim

def optimum_range(s: dict, xs: list[float]) -> tuple[float, float]:
    """log2 bounds of where a size's optimum may lie: the optimum, its runner-up when the seeds
    cannot tell them apart, and beyond the grid when it is on the grid's edge."""
    vals = [s["log2"]] + ([math.log2(s["runner_up"])] if s.get("runner_up") else [])
    lo, hi = min(vals), max(vals)
    if s["optimum"] == min(xs):
        lo = -math.inf
    if s["optimum"] == max(xs):
        hi = math.inf
    return lo, hi


def judge_panel(p: dict, points: dict, seeds: int, by: str | None = None) -> dict:
    """holds / drifts / undecided for one panel of the verdict (see the module's docstring)."""
    at = size_name(by)
    sizes = [s for s in p["sizes"] if p["sizes"][s]["log2"] is not None]
    if len(sizes) < 2:
        return {"measured": "undecided", "why": "fewer than two sizes have an optimum (every trial diverged?)"}
    ranges = {s: optimum_range(p["sizes"][s], sorted(points[s])) for s in sizes}
    few = [s for s in sizes if seeds > 1 and p["sizes"][s]["decided"] is None]
    (a_lo, a_hi), (b_lo, b_hi) = ranges[sizes[0]], ranges[sizes[-1]]
    lo, hi = b_lo - a_hi, b_hi - a_lo
    width = max(h for _, h in ranges.values()) - min(l for l, _ in ranges.values())
    out = {"drift": p["drift_octaves"], "drift_range": [lo, hi], "window": width,
           "optima": {str(s): {"lr": p["sizes"][s]["optimum"], "loss": p["sizes"][s]["loss"], "std": p["sizes"][s]["std"],
                               "seeds": p["sizes"][s]["seeds"], "decided": p["sizes"][s]["decided"], "edge": p["sizes"][s]["edge"],
                               "range": list(ranges[s])} for s in sizes}}
    if lo >= DRIFT_OCTAVES - TOL or hi <= -(DRIFT_OCTAVES - TOL):
        return {**out, "measured": "drifts", "why": f"the optimum moves {fmt_range(lo, hi)} octaves from {at} {sizes[0]} to {sizes[-1]}"}
    if few:
        return {**out, "measured": "undecided", "why": f"too few seeds at the optimum of {at} {few[0]}"}
    if width <= HOLD_OCTAVES + TOL:
        return {**out, "measured": "holds", "why": f"every optimum lies within {width:.2g} octave{'' if width == 1 else 's'} of the others"}
    if math.isinf(width):
        edge = next(s for s in sizes if math.isinf(ranges[s][0]) or math.isinf(ranges[s][1]))
        return {**out, "measured": "undecided", "why": f"the optimum at {at} {edge} is on the grid's edge"}
    return {**out, "measured": "undecided",
            "why": f"the optima span {width:.2g} octaves (drift {fmt_range(lo, hi)} from {at} {sizes[0]} to {sizes[-1]}): "
                   "neither within one octave nor two apart"}


def fmt_range(lo: float, hi: float) -> str:
    def f(v):
        return "-inf" if v == -math.inf else "+inf" if v == math.inf else f"{v:+.2g}"

    return f(lo) if lo == hi else f"{f(lo)}..{f(hi)}"


def call_of(expect: str, measured: str) -> str | None:
    if expect == "report":
        return None
    if measured == "undecided":
        return "undecided"
    return "agrees" if measured == expect else "disagrees"


def judge(claim: Claim, rows: list[dict], metric: str = "final_val_loss") -> dict:
    """The claim's verdict as plain data (what <id>.json holds besides the claim's text)."""
    keep = [claim.x, claim.by, *claim.panel, "seed", *results.OUTCOME]
    rows = [{k: r.get(k) for k in keep} for r in rows]
    v = verdict(rows, claim.x, claim.by, list(claim.panel), metric)
    panels = []
    for label, p in claim.panels.items():
        if label not in v["panels"]:
            raise UserError(f"{claim.path}: panel {label!r} has no trials: the panels of its results are {', '.join(v['panels'])}")
        j = judge_panel(v["panels"][label], v["points"][label], claim.seeds, claim.by)
        call = call_of(p["expect"], j["measured"])
        sizes = [float(s) for s in v["panels"][label]["sizes"] if s is not None]
        doublings = math.log2(max(sizes) / min(sizes)) if sizes else 0.0
        predicted = p["rate"] * doublings if p.get("rate") is not None else None
        decidable = p["expect"] != "drifts" or predicted is None or abs(predicted) >= DRIFT_OCTAVES - TOL
        if not decidable and j["measured"] != "drifts":  # the paper's own drift over this range is below what the grid resolves
            call = "undecided"
            j["why"] += (f"; at the paper's {p['rate']:+.2g} octave per doubling the drift over these {doublings:.2g} doublings "
                         f"would be {predicted:+.2g} octave, under the {DRIFT_OCTAVES:g} that call a drift: this scale cannot decide it")
        panels.append({"label": label, "name": p.get("name", label), "expect": p["expect"], "paper": p["paper"],
                       "rate": p.get("rate"), "predicted_drift": predicted, "decidable": decidable, "call": call, **j})
    calls = [q["call"] for q in panels if q["call"] is not None]
    call = "disagrees" if "disagrees" in calls else "undecided" if "undecided" in calls or not calls else "agrees"
    return {"call": call, "panels": panels,
            "verdict": {k: v[k] for k in ("x", "by", "panel", "metric", "failed_trials", "panels", "points", "spread")}}


def run_claim(claim: Claim, root: Path, docs: Path, jobs: int, extra: list[str], demo_out: Path, progress: bool = True,
              ran: set | None = None) -> dict:
    t0 = time.time()
    rows = []
    for entry in claim.sweeps:
        rows += (run_sweep(entry, claim, root, jobs, extra, progress) if "file" in entry
                 else demo_rows(entry["demo"], demo_out, jobs, extra, ran if ran is not None else set()))
    record = judge(claim, rows)
    cpu = results.cpu_seconds(rows)
    record = {"id": claim.id, **{k: claim.raw.get(k) for k in KEYS if k not in ("panels",)},
              "command": f"python -m sweeptools.claims run {claim.id}", "overrides": list(extra),
              "trials": len(rows), "cpu_time_s": round(cpu, 1), "wall_time_s": round(time.time() - t0, 1),
              "figure": f"{claim.id}.png", **record}
    docs.mkdir(parents=True, exist_ok=True)
    named = {q["label"]: q["name"] for q in record["panels"]}
    shown = {**record["verdict"], **{k: {named.get(l, l): val for l, val in record["verdict"][k].items()}
                                     for k in ("panels", "points", "spread")}}
    plot.draw(shown, docs / record["figure"])
    (docs / f"{claim.id}.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    return record


# ----------------------------------------------------------------------------- the report

def load_records(docs: Path) -> list[dict]:
    records = []
    for path in sorted(docs.glob("*.json")):
        try:
            r = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: not valid JSON ({e}): rerun its claim (python -m sweeptools.claims run {path.stem})") from None
        missing = [k for k in ("id", "title", "paper", "call", "panels", "verdict") if k not in r]
        if missing:
            raise UserError(f"{path}: no {missing[0]!r}: not a claim's verdict (rerun python -m sweeptools.claims run {path.stem})")
        records.append(r)
    return sorted(records, key=lambda r: (r.get("order", 99), r["id"]))


def ours(q: dict, by: str | None) -> str:
    """A panel's measured optima in a few words: the optimum at the smallest and largest size."""
    opt = q.get("optima") or {}
    if len(opt) < 2:
        return q["why"]
    (s0, a), (s1, b) = list(opt.items())[0], list(opt.items())[-1]
    return f"{octave(a['lr'])} at {size_name(by)} {s0} → {octave(b['lr'])} at {s1}: {q['measured']}"


def size_name(by: str | None) -> str:
    return {"model.width": "width", "model.depth": "depth"}.get(by, by or "size")


def summary_table(records: list[dict], link: str = "") -> list[str]:
    lines = ["| claim: verdict | panel: the paper | ours (optimum, smallest → largest size) | panel |", "|---|---|---|---|"]
    for r in records:
        for i, q in enumerate(r["panels"]):
            head = f"[({r.get('letter', '')}) {r['title']}]({link}#{anchor(r)}): **{r['call']}**" if i == 0 else ""
            lines.append(f"| {head} | {q['name']}: {q['paper']} | {ours(q, r['verdict'].get('by'))} | {q['call'] or '(shown)'} |")
    return lines


def anchor(r: dict) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped (letters of any script kept), spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", f"({r.get('letter', '')}) {r['title']}".lower()).replace(" ", "-")


def cell_text(c: dict | None) -> str:
    if not c or c.get("loss") is None:
        return "-"
    std = f" ± {c['std']:.3f}" if c.get("std") is not None else ""
    mark = "" if c.get("decided") else " (undecided)" if c.get("decided") is False else " (1 seed)"
    return f"{octave(c['lr'])}: {c['loss']:.3f}{std}{' edge' if c.get('edge') else ''}{mark}"


def section(r: dict) -> list[str]:
    v = r["verdict"]
    sizes = list(dict.fromkeys(s for q in r["panels"] for s in (q.get("optima") or {})))
    out = [f"## ({r.get('letter', '')}) {r['title']}", "",
           f"**Paper** ({r['paper'].get('source', '')}): {r['paper'].get('result', '')}", "",
           f"**Command**: `{r['command']}`" + (f" with `{' '.join(r['overrides'])}`" if r.get("overrides") else "")
           + f" — {r['trials']} trials, {r['cpu_time_s'] / 60:.0f} CPU-min.", "",
           f"![{r['title']}](results/{r['figure']})", "",
           f"Optimum of {v['x']} per {size_name(v['by'])} (mean {v['metric']} ± std over the seeds there):", "",
           f"| {size_name(v['by'])} | " + " | ".join(q["name"] for q in r["panels"]) + " |",
           "|---|" + "---|" * len(r["panels"])]
    for s in sizes:
        out.append(f"| {s} | " + " | ".join(cell_text((q.get("optima") or {}).get(s)) for q in r["panels"]) + " |")
    out += ["", "| panel | paper | expected | ours | verdict |", "|---|---|---|---|---|"]
    for q in r["panels"]:
        out.append(f"| {q['name']} | {q['paper']} | {q['expect']} | {q['measured']}: {q['why']} | {q['call'] or '(shown)'} |")
    out += ["", f"**Verdict: {r['call']}.** " + verdict_sentence(r), ""]
    if r.get("setting"):
        out += [f"**Their setting and ours**: {r['setting'].strip()}", ""]
    skipped = [f"`{', '.join(e['skip'])}` of `{e['file']}`" for e in r.get("sweeps") or [] if e.get("skip")]
    if skipped:
        out += [f"Left out to fit the CPU budget: {'; '.join(skipped)}.", ""]
    if r.get("discussion"):
        out += [r["discussion"].strip(), ""]
    return out


def verdict_sentence(r: dict) -> str:
    judged = [q for q in r["panels"] if q["call"]]
    by = {c: [q["name"] for q in judged if q["call"] == c] for c in ("agrees", "disagrees", "undecided")}
    parts = [f"{', '.join(n)} {'agree' if len(n) > 1 else 'agrees'} with the paper" for c, n in by.items() if n and c == "agrees"]
    parts += [f"{n} disagrees ({q['measured']} where the paper has it {q['expect']})" for q in judged if q["call"] == "disagrees" for n in [q["name"]]]
    parts += [f"{q['name']} is undecided ({q['why']})" for q in judged if q["call"] == "undecided"]
    return "; ".join(parts) + "." if parts else "No panel is judged."


def report(docs: Path = DOCS_DIR, md: Path = REPORT, readme: Path | None = README, claims_dir: Path | None = CLAIMS_DIR) -> str:
    """docs/results.md from the verdict JSON files alone; the claims of `claims_dir` that have none
    yet are named, with the command that runs them."""
    records = load_records(docs)
    if not records:
        raise UserError(f"{docs}: no verdicts yet: run python -m sweeptools.claims run (make results)")
    judged = {r["id"] for r in records}
    pending = [c for c in load_all(claims_dir) if c.id not in judged] if claims_dir is not None else []
    todo = ", ".join(f"({c.raw.get('letter', '')}) `{c.id}`" for c in pending)
    cpu = sum(r.get("cpu_time_s", 0) for r in records)
    rel = Path(docs.name)
    lines = ["# The papers' claims at CPU scale", "",
             "Every claim that a CPU sweep file in `sweeps/` encodes, run on a 2-core CPU with 2 seeds at every optimum "
             "and judged against the paper's own result.", "",
             *summary_table(records), "",
             f"In all: {sum(r['trials'] for r in records)} trials, {cpu / 60:.0f} CPU-min, about {cpu / 120:.0f} min of wall "
             "time with `--jobs 2` on a quiet 2-core machine. `make results` regenerates all of it (it resumes: a finished "
             f"trial is not run again); this page is rendered from `docs/{rel}/*.json` alone by "
             "`python -m sweeptools.claims report`.", "",
             *([f"Not yet run: {todo}; `python -m sweeptools.claims run <id>` runs one.", ""] if pending else []),
             "**How a verdict is reached** (`sweeptools/claims.py`). A panel's optimum *holds* when the optima of every "
             "size lie within one octave of each other, and *drifts* when the smallest and the largest size are two octaves "
             "apart or more. An optimum the seeds cannot tell from its neighbour on the grid may be either, and one on the "
             "grid's edge may lie beyond it: the verdict must hold over that whole range, else it is *undecided*. Where the "
             "paper's own rate of drift, over our smaller range of sizes, comes to less than two octaves, this scale cannot "
             "show a drift and a held optimum is *undecided*, not a disagreement. In the figures each point is the mean over "
             "its seeds, the bars their standard deviation, a star the optimum (hollow: undecided), a cross a diverged run.", ""]
    for r in records:
        lines += section(r)
    text = "\n".join(lines).rstrip() + "\n"
    md.write_text(text)
    if readme is not None and readme.exists():
        update_readme(readme, records, f"docs/{md.name}")
    return text


def update_readme(readme: Path, records: list[dict], link: str) -> None:
    text = readme.read_text()
    start, end = README_MARKS
    if start not in text or end not in text:
        raise UserError(f"{readme}: no {start} ... {end} block for the results' summary table: add the two lines")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(head + start + "\n" + "\n".join(summary_table(records, link)) + "\n" + end + tail)


# ----------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sweeptools.claims", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["list", "run", "report"])
    ap.add_argument("claims", nargs="*", help="claim ids (default: every claim); after them, Hydra overrides for every trial")
    ap.add_argument("--jobs", type=int, default=2, help="trials at once, one thread each")
    ap.add_argument("--out", default="outputs/results", help="where the trials run (one dir per sweep)")
    ap.add_argument("--demo-out", default="outputs/demo", help="make demo's output dir (the claims that use its sweeps)")
    ap.add_argument("--claims-dir", default=str(CLAIMS_DIR), help="the claim files")
    ap.add_argument("--docs", default=str(DOCS_DIR), help="where each claim's JSON and figure go")
    ap.add_argument("--report", default=str(REPORT), help="the rendered page")
    ap.add_argument("--no-readme", action="store_true", help="leave the README's summary table alone")
    args = ap.parse_intermixed_args(argv)
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: give a positive number of parallel trials")
    ids = [c for c in args.claims if "=" not in c]
    extra = [c for c in args.claims if "=" in c]
    docs, readme = Path(args.docs), None if args.no_readme else README
    if args.action == "report":
        report(docs, Path(args.report), readme, Path(args.claims_dir))
        print(f"{args.report}: {len(load_records(docs))} claims")
        return
    claims = load_all(Path(args.claims_dir), ids or None)
    if args.action == "list":
        for c in claims:
            srcs = ", ".join(s.get("file", f"make demo's {s.get('demo')}") + (f" (--skip {' '.join(s['skip'])})" if s.get("skip") else "")
                             for s in c.sweeps)
            print(f"{c.id:<22} ({c.raw.get('letter', '')}) {c.title}\n{'':<22} {srcs}")
        return
    t0, ran = time.time(), set()
    for i, c in enumerate(claims, 1):
        print(f"claim {i}/{len(claims)}: {c.id}: {c.title}", file=sys.stderr)
        r = run_claim(c, Path(args.out), docs, args.jobs, extra, Path(args.demo_out), ran=ran)
        print(f"  {r['call']}: " + "; ".join(f"{q['name']} {q['measured']}" for q in r["panels"]), file=sys.stderr)
    report(docs, Path(args.report), readme, Path(args.claims_dir))
    print(f"{args.report}: {len(claims)} claims run in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    cli.guard(main)()
