"""The papers' claims (sweeptools.claims): every shipped claim file loads and its sweeps compose;
a panel's optimum holds, drifts or is undecided by the rule of the module's docstring; seeds
are added where the optima are; docs/results.md is rendered from the verdict JSON alone; one
claim runs end to end at a tiny size (slow)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TINY, run_cli

from errors import UserError
from sweeptools import claims, spec
from sweeptools.verdict import verdict

SHIPPED = sorted((REPO / "sweeps" / "claims").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_claim_loads_and_its_sweeps_compose(path):
    c = claims.load(path)
    assert c.letter and c.paper["source"] and c.paper["result"] and c.setting
    for entry in c.sweeps:
        if "file" not in entry:
            continue
        sweep = spec.load(REPO / entry["file"])
        points = [p for p in spec.grid(sweep) if not any(spec.matches(p, s) for s in entry.get("skip", []))]
        assert points and claims.out_name(entry)
        spec.check_trials(sweep, spec.covering(sweep)[:2])
        cols = {*sweep.params, *sweep.fixed_dict()}
        assert {c.x, c.by, *c.panel} <= cols | {"param"}, f"{path.stem}: its axes are not columns of {entry['file']}"


def test_the_claims_are_in_the_issue_order_and_the_ids_are_unique():
    cs = claims.load_all()
    assert [c.letter for c in cs] == sorted(c.letter for c in cs)
    assert len({c.id for c in cs}) == len(cs)


@pytest.mark.parametrize("bad, match", [
    ({"titel": "x"}, "unknown key 'titel'"),
    ({"panels": {"param=sp": {"expect": "moves", "paper": "p"}}}, "expect: holds | drifts | report"),
    ({"sweeps": [{"file": "sweeps/nope.yaml"}]}, "no such sweep file"),
    ({"sweeps": [{"demo": "spectral"}]}, "the demo's sweeps are mup and sp"),
    ({"seeds": 0}, "the number of seeds"),
])
def test_a_wrong_claim_file_is_one_line_naming_the_fix(tmp_path, bad, match):
    raw = {"title": "t", "letter": "a", "paper": {"source": "s", "result": "r"}, "x": "optim.lr", "by": "model.width",
           "panels": {"param=sp": {"expect": "drifts", "paper": "p"}}, "sweeps": [{"file": "sweeps/cpu_width_lr_adamw.yaml"}]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**raw, **bad}))
    with pytest.raises(UserError, match=match):
        claims.load(path)


def rows_of(table: dict, seeds=(1, 2), noise=0.01) -> list[dict]:
    """Results rows from {(param, width): {lr: loss}}, each seed the loss +/- noise."""
    rows = []
    for (param, width), curve in table.items():
        for lr, loss in curve.items():
            for i, s in enumerate(seeds):
                rows.append({"trial": f"{param}{width}{lr}{s}", "param": param, "model.width": width, "optim.lr": lr, "seed": s,
                             "status": "done", "final_val_loss": loss + (noise if i % 2 else -noise)})
    return rows


def judged(table, **kw) -> dict:
    v = verdict(rows_of(table, **kw), "optim.lr", "model.width", ["param"])
    return {label: claims.judge_panel(p, v["points"][label], 2) for label, p in v["panels"].items()}


LRS = [2.0 ** k for k in range(-9, -3)]


def bowl(opt_k: int, depth=0.2) -> dict:
    return {lr: 2.0 + depth * (math.log2(lr) - opt_k) ** 2 for lr in LRS}


def test_an_optimum_that_stays_holds_one_that_moves_two_octaves_drifts():
    j = judged({("mup", 32): bowl(-6), ("mup", 64): bowl(-6), ("mup", 128): bowl(-5),
                ("sp", 32): bowl(-5), ("sp", 64): bowl(-6), ("sp", 128): bowl(-7)})
    assert j["param=mup"]["measured"] == "holds" and j["param=mup"]["window"] == 1
    assert j["param=sp"]["measured"] == "drifts" and j["param=sp"]["drift_range"] == [-2, -2]


def test_seeds_that_cannot_tell_the_optimum_from_its_neighbour_leave_the_drift_a_range():
    flat = {lr: 2.0 for lr in LRS}
    flat[2.0 ** -7] = 1.999  # better by less than the seeds' spread (0.014)
    j = judged({("sp", 32): bowl(-5), ("sp", 128): flat})
    assert j["param=sp"]["measured"] in ("undecided", "drifts")
    lo, hi = j["param=sp"]["drift_range"]
    assert lo < hi  # the runner-up widens it


def test_an_optimum_on_the_grids_edge_is_unbounded_on_that_side():
    j = judged({("sp", 32): bowl(-6), ("sp", 128): bowl(-12)})  # the large width's optimum is below the grid
    assert j["param=sp"]["optima"]["128"]["range"][0] == -math.inf
    assert j["param=sp"]["measured"] == "drifts"  # at least 3 octaves whatever lies beyond
    j = judged({("sp", 32): bowl(-5), ("sp", 128): bowl(-4)})  # one octave up to the edge: maybe more
    assert j["param=sp"]["measured"] == "undecided" and "edge" in j["param=sp"]["why"]


def test_a_drift_below_what_the_range_can_show_is_undecided_not_a_disagreement(tmp_path):
    c = claims.Claim("c", tmp_path / "c.yaml", {
        "x": "optim.lr", "by": "model.width", "panel": ["param"], "seeds": 2,
        "panels": {"param=sp": {"expect": "drifts", "rate": -0.6, "paper": "p"},
                   "param=mup": {"expect": "drifts", "rate": -1.0, "paper": "p"}}})
    table = {("sp", 32): bowl(-6), ("sp", 128): bowl(-6), ("mup", 32): bowl(-6), ("mup", 128): bowl(-6)}
    r = claims.judge(c, rows_of(table))
    sp, mup = r["panels"]
    assert sp["call"] == "undecided" and not sp["decidable"] and "cannot decide" in sp["why"]
    assert mup["call"] == "disagrees" and mup["decidable"] and r["call"] == "disagrees"


def test_the_other_seeds_go_where_the_optima_are():
    rows = rows_of({("sp", 32): bowl(-6), ("sp", 64): bowl(-7)}, seeds=(1,))
    want = claims.needed(rows, "optim.lr", "model.width", ["param"], 2, "final_val_loss")
    assert set(want) == {("param=sp", 32, 2.0 ** k) for k in (-7, -6, -5)} | {("param=sp", 64, 2.0 ** k) for k in (-8, -7, -6)}
    rows += rows_of({("sp", 32): {2.0 ** k: bowl(-6)[2.0 ** k] for k in (-7, -6, -5)},
                     ("sp", 64): {2.0 ** k: bowl(-7)[2.0 ** k] for k in (-8, -7, -6)}}, seeds=(2,))
    assert claims.needed(rows, "optim.lr", "model.width", ["param"], 2, "final_val_loss") == {}


def record(call="agrees", letter="a", id="c1") -> dict:
    return {"id": id, "title": f"claim {id}", "letter": letter, "order": 1, "paper": {"source": "Fig. 1", "result": "it holds"},
            "setting": "theirs big, ours small", "discussion": "why it came out so", "command": f"python -m sweeptools.claims run {id}",
            "overrides": [], "trials": 12, "cpu_time_s": 600.0, "figure": f"{id}.png", "call": call,
            "panels": [{"label": "param=mup", "name": "μP", "expect": "holds", "paper": "2^-7 everywhere", "measured": "holds",
                        "why": "every optimum lies within 0 octaves of the others", "call": call,
                        "optima": {"32": {"lr": 2.0 ** -6, "loss": 2.1, "std": 0.01, "seeds": 2, "decided": True, "edge": False},
                                   "64": {"lr": 2.0 ** -6, "loss": 1.9, "std": 0.02, "seeds": 2, "decided": False, "edge": False}}}],
            "verdict": {"x": "optim.lr", "by": "model.width", "metric": "final_val_loss"}}


def test_the_report_is_rendered_from_the_json_alone_with_the_summary_in_the_readme(tmp_path):
    docs = tmp_path / "results"
    docs.mkdir()
    for r in (record(id="c1"), record("undecided", "b", "c2")):
        (docs / f"{r['id']}.json").write_text(json.dumps(r))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{claims.README_MARKS[0]}\nold\n{claims.README_MARKS[1]}\n\nmore\n")
    text = claims.report(docs, tmp_path / "results.md", readme)
    assert text.startswith("# The papers' claims at CPU scale") and "| claim: verdict | panel: the paper | ours" in text
    assert "## (a) claim c1" in text and "## (b) claim c2" in text and "![claim c1](results/c1.png)" in text
    assert "2^-6: 1.900 ± 0.020 (undecided)" in text and "**Verdict: agrees.**" in text and "theirs big, ours small" in text
    assert "24 trials, 20 CPU-min" in text and "Not yet run" not in claims.report(docs, tmp_path / "r.md", None, None)
    assert "Not yet run: " in text and "`depth_lr`" in text  # the repository's claims that have no JSON here
    md = readme.read_text()
    assert "\nold\n" not in md and "[(a) claim c1](docs/results.md#a-claim-c1)" in md and md.endswith("\n\nmore\n")
    (docs / "c2.json").write_text("{not json")
    with pytest.raises(UserError, match=r"c2.json: not valid JSON .*rerun its claim"):
        claims.report(docs, tmp_path / "results.md", None)


def test_the_readme_has_the_block_the_report_fills():
    text = (REPO / "README.md").read_text()
    assert all(m in text for m in claims.README_MARKS) and "docs/results.md" in text


@pytest.mark.slow
def test_one_claim_runs_end_to_end_at_a_tiny_size_and_the_report_regenerates_from_its_json(tmp_path, data_root):
    fixed = [o for o in TINY if not o.startswith(("train.steps", "model.width", "train.threads", "train.progress"))]
    fixed += ["train.steps=6", "train.eval_interval=6", "train.ckpt_interval=6", f"data.root={data_root}", "param.base_width=32"]
    sweep = tmp_path / "cpu_tiny.yaml"
    sweep.write_text(yaml.safe_dump({
        "program": "train.py", "method": "grid", "metric": {"name": "final_val_loss", "goal": "minimize"},
        "parameters": {"param": {"values": ["sp", "mup"]}, "model.width": {"values": [32, 64]},
                       "optim.lr": {"values": [0.001, 0.004, 0.016]}},
        "command": ["${env}", "${interpreter}", "${program}", *fixed, "logger=wandb", "${args_no_hyphens}"]}, sort_keys=False))
    folder = tmp_path / "claims"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(yaml.safe_dump({
        "title": "tiny", "letter": "a", "paper": {"source": "Fig. 0", "result": "it holds"}, "setting": "tiny",
        "x": "optim.lr", "by": "model.width", "panel": ["param"], "seeds": 2, "sweeps": [{"file": str(sweep), "skip": ["param=sp,optim.lr=0.001"]}],
        "panels": {"param=sp": {"expect": "drifts", "paper": "moves"}, "param=mup": {"expect": "holds", "paper": "stays"}}},
        sort_keys=False))
    docs, out = tmp_path / "results", tmp_path / "out"
    r = run_cli("-m", "sweeptools.claims", "run", "--claims-dir", str(folder), "--docs", str(docs), "--out", str(out),
                "--report", str(tmp_path / "results.md"), "--no-readme", "--jobs", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads((docs / "tiny.json").read_text())
    assert rec["call"] in ("agrees", "disagrees", "undecided") and (docs / "tiny.png").stat().st_size > 10_000
    assert [q["label"] for q in rec["panels"]] == ["param=sp", "param=mup"]
    for q in rec["panels"]:
        assert q["measured"] in ("holds", "drifts", "undecided") and q["why"]
        for size, o in q["optima"].items():
            assert o["seeds"] == 2 and o["loss"] > 0  # the optimum got its second seed
    assert rec["trials"] == len(list((out / "tiny").glob("*/summary.json"))) and rec["cpu_time_s"] > 0
    assert not list((out / "tiny").glob("param=sp,*,optim.lr=0.001,*"))  # skipped for every seed
    assert len(list((out / "tiny").glob("*seed=2"))) < len(list((out / "tiny").glob("*seed=1")))  # only near the optima
    first = (tmp_path / "results.md").read_text()
    (tmp_path / "results.md").unlink()
    r = run_cli("-m", "sweeptools.claims", "report", "--claims-dir", str(folder), "--docs", str(docs),
                "--report", str(tmp_path / "results.md"), "--no-readme")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "results.md").read_text() == first and "## (a) tiny" in first
