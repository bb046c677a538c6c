"""Sweeps: every sweep file is a W&B config whose keys are real config keys; the local runner
runs a grid, records divergence, resumes without rerunning what finished; the verdict finds
the optima, their drift in octaves and optima on the grid's edge."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, TINY, run_cli

import assemble
import cli
from errors import UserError
from sweeptools import best, engine, plot, results, spec
from sweeptools import run as runner
from sweeptools.verdict import verdict

FILES = sorted((REPO / "sweeps").glob("*.yaml"))


def test_there_is_a_gpu_and_a_cpu_version_of_every_sweep():
    names = {f.stem for f in FILES}
    gpu = {n[4:] for n in names if n.startswith("gpu_")}
    cpu = {n[4:] for n in names if n.startswith("cpu_")}
    assert gpu - {"width_lr_adamw"} <= cpu | {"width_lr_adamw"} and len(gpu) >= 10
    assert {"width_lr_adamw", "width_lr_muon_kimi", "depth_lr", "depth_lr_k1", "depth_lr_noln", "wd_width", "wd_depth",
            "kosson_mup_standard", "kosson_mup_independent", "kosson_mup_nowd", "kosson_sp_warmup", "everett",
            "proxy_search"} <= gpu & cpu


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_sweep_file_is_a_valid_wandb_config_whose_keys_compose(path):
    sweep = spec.load(path)  # W&B's JSON schema, program, metric, block-style command
    raw = sweep.raw
    assert raw["command"][-1] == "${args_no_hyphens}" and "logger=wandb" in raw["command"]
    assert raw["metric"] == {"name": "final_val_loss", "goal": "minimize"}
    points = spec.covering(sweep) if sweep.method == "grid" else engine.propose(raw, [], 2, seed=0)
    spec.check_trials(sweep, points)  # every trial key through cli.compose + assemble.check_run
    cfg = cli.compose(sweep.fixed + spec.overrides(sweep, points[0]))
    assert cfg.data.name == ("openwebtext" if path.stem.startswith("gpu_") else "shakespeare_char")


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in FILES if spec.load(p).method == "grid"], ids=lambda p: p.stem)
def test_every_trial_of_every_grid_composes(path):
    sweep = spec.load(path)
    spec.check_trials(sweep, spec.grid(sweep))


def test_an_experiment_preset_overrides_the_training_loop_defaults():
    cfg = cli.compose(["experiment=cpu_transfer"])
    assert (cfg.train.batch_size, cfg.train.steps, cfg.model.depth, cfg.param.base_width) == (8, 1000, 2, 64)
    assert (cfg.model.head_dim, cfg.param.base_head_dim) == (16, 16)
    assert cli.compose(["experiment=cpu_transfer", "train.steps=7"]).train.steps == 7


# ----------------------------------------------------------------------------- bad input

def write_sweep(path: Path, params: dict, fixed: list[str], method: str = "grid") -> Path:
    lines = ["program: train.py", f"method: {method}", "metric:", "  name: final_val_loss", "  goal: minimize", "parameters:"]
    for key, values in params.items():
        lines += [f"  {key}:", f"    values: {json.dumps(values)}"]
    lines += ["command:", "  - ${env}", "  - ${interpreter}", "  - ${program}", *[f"  - {o}" for o in fixed],
              "  - logger=wandb", "  - ${args_no_hyphens}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_an_unknown_sweep_key_is_one_line_naming_the_fix(tmp_path):
    sweep = spec.load(write_sweep(tmp_path / "s.yaml", {"model.widht": [32, 64]}, []))
    with pytest.raises(UserError, match="unknown config key 'model.widht': did you mean model.width"):
        spec.check_trials(sweep, spec.grid(sweep))


def test_an_empty_grid_and_a_missing_file_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such sweep file"):
        spec.load(tmp_path / "nope.yaml")
    empty = write_sweep(tmp_path / "e.yaml", {"optim.lr": []}, [])
    with pytest.raises(UserError, match="empty|valid W&B"):
        spec.load(empty)
    s = spec.load(write_sweep(tmp_path / "s.yaml", {"optim.lr": [0.01]}, []))
    with pytest.raises(UserError, match="grid is empty"):
        runner.sweep_trials(s, tmp_path, ["optim.lr>=0"], None, 0)
    with pytest.raises(UserError, match="needs --count"):
        runner.sweep_trials(spec.load(REPO / "sweeps" / "cpu_proxy_search.yaml"), tmp_path, [], None, 0)
    (tmp_path / "flow.yaml").write_text("program: train.py\nmethod: grid\ncommand: [${env}, ${program}]\n")
    with pytest.raises(UserError, match="YAML|valid"):
        spec.load(tmp_path / "flow.yaml")


def test_a_missing_results_csv_is_one_line(tmp_path):
    r = run_cli("-m", "sweeptools.plot", str(tmp_path / "results.csv"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "sweeptools.run" in r.stderr


def test_skip_conditions_read_octaves():
    v = {"param": "sp", "model.width": 256, "optim.lr": 2.0 ** -5}
    assert spec.matches(v, "param=sp,model.width>=128,optim.lr>=2^-5")
    assert not spec.matches(v, "param=mup,optim.lr>=2^-5")
    assert spec.matches(v, "optim.lr=2^-5") and not spec.matches(v, "optim.lr<2^-5")


def test_random_proposals_replay_from_the_seed():
    raw = spec.load(REPO / "sweeps" / "cpu_proxy_search.yaml").raw
    a, b = engine.propose(raw, [], 5, seed=3), engine.propose(raw, [], 5, seed=3)
    assert a == b and len(a) == 5
    assert all(2.0 ** -9 <= p["optim.lr"] <= 2.0 ** -4 and 0.01 <= p["param.hidden_init_std"] <= 0.16 for p in a)
    bayes = {**raw, "method": "bayes"}
    history = [(p, 2.0 + p["optim.lr"]) for p in a]
    assert len(engine.propose(bayes, history, 2, seed=0)) == 2


# ----------------------------------------------------------------------------- the local runner

def tiny_sweep(tmp_path: Path, data_root: Path, widths=(32, 64), lrs=(0.01, 1000.0)) -> Path:
    fixed = [o for o in TINY if not o.startswith(("train.steps", "model.width", "train.threads", "train.progress"))]
    fixed += ["train.steps=5", "train.eval_interval=5", "train.ckpt_interval=5", f"data.root={data_root}"]
    return write_sweep(tmp_path / "tiny.yaml", {"model.width": list(widths), "optim.lr": list(lrs)}, fixed)


def test_the_local_runner_runs_a_grid_in_parallel_and_records_divergence(tmp_path, data_root):
    out = tmp_path / "out"
    r = run_cli("-m", "sweeptools.run", str(tiny_sweep(tmp_path, data_root)), "--jobs", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    rows = results.read([str(out / "results.csv")])
    assert len(rows) == 4 and {(x["model.width"], x["optim.lr"]) for x in rows} == {(32, 0.01), (32, 1000.0), (64, 0.01), (64, 1000.0)}
    for row in rows:
        assert row["status"] == ("diverged" if row["optim.lr"] == 1000.0 else "done"), row
        assert row["diverged"] == (row["optim.lr"] == 1000.0) and Path(row["run_dir"], "summary.json").exists()
        assert row["data.root"] and row["tokens"] > 0 and row["wall_time_s"] > 0
    assert all(math.isfinite(x["final_val_loss"]) for x in rows if x["status"] == "done")
    assert "train.threads=1" in (Path(rows[0]["run_dir"]) / "sweep.log").read_text()  # --jobs 2: one thread each
    v = verdict(rows)
    assert v["panels"]["all"]["sizes"][32]["diverged"] == 1 and v["panels"]["all"]["sizes"][32]["optimum"] == 0.01


def test_an_interrupted_sweep_resumes_without_rerunning_finished_trials(tmp_path, data_root):
    out = tmp_path / "out"
    file = tiny_sweep(tmp_path, data_root, widths=(32,), lrs=(0.01, 0.02, 0.04))
    cmd = [sys.executable, "-m", "sweeptools.run", str(file), "--jobs", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.time() + 120
    while not list(out.glob("*/summary.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    first = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/summary.json")
             if not json.loads(p.read_text()).get("interrupted")}  # a trial stopped mid-run resumes
    assert first and proc.returncode in (0, 130)
    r = run_cli(*cmd[1:], "--jobs", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = results.read([str(out)])
    assert [x["status"] for x in rows] == ["done"] * 3
    for name, mtime in first.items():  # finished before the interrupt: not run again
        assert (out / name / "summary.json").stat().st_mtime_ns == mtime
        assert (out / name / "sweep.log").read_text().count("$ ") == 1


def test_a_reused_out_dir_with_other_overrides_is_refused(tmp_path):
    s = spec.load(write_sweep(tmp_path / "s.yaml", {"optim.lr": [0.01]}, []))
    t = runner.Trial(s, {"optim.lr": 0.01}, tmp_path)
    t.claim()
    t.overrides = ["optim.lr=0.02"]
    with pytest.raises(UserError, match="use another --out"):
        t.claim()


def finished(trial, steps: int) -> None:
    """A trial dir as train.py leaves it after `steps` steps (summary.json), claimed by the runner."""
    trial.claim()
    (trial.dir / "summary.json").write_text(json.dumps({"diverged": False, "final_val_loss": 2.5, "best_val_loss": 2.5,
                                                         "tokens": steps * 256, "wall_time_s": 1.0}))


def test_a_rerun_with_other_extra_overrides_is_refused_and_results_keep_what_ran(tmp_path):
    """The runner's own overrides are part of a trial: train.steps=31 never reports trials that ran 30."""
    file = write_sweep(tmp_path / "s.yaml", {"optim.lr": [0.01, 0.02]}, ["train.eval_iters=2"])
    out = tmp_path / "out"
    ran = spec.load(file, extra=["train.steps=30"])
    for lr in (0.01, 0.02):
        finished(runner.Trial(ran, {"optim.lr": lr}, out), 30)
    rows = runner.run(ran, out, progress=False)  # every trial done: nothing is launched
    assert {r["train.steps"] for r in rows} == {"30"} and [r["status"] for r in rows] == ["done", "done"]
    csv = (out / "results.csv").read_text()
    with pytest.raises(UserError, match=r"ran with train.steps=30; this sweep asks train.steps=31: use another --out"):
        runner.run(spec.load(file, extra=["train.steps=31"]), out, progress=False)
    with pytest.raises(UserError, match=r"ran with \(no train.grad_clip\); this sweep asks train.grad_clip=0"):
        runner.run(spec.load(file, extra=["train.steps=30", "train.grad_clip=0"]), out, progress=False)
    assert (out / "results.csv").read_text() == csv  # refused before anything was rewritten
    # launch settings are not part of a trial: another --jobs (train.threads) or logger continues it
    assert len(runner.run(spec.load(file, extra=["train.steps=30", "train.threads=2"]), out, progress=False)) == 2


def test_a_trial_an_older_runner_claimed_is_judged_by_what_train_py_was_given(tmp_path):
    file = write_sweep(tmp_path / "s.yaml", {"optim.lr": [0.01]}, [])
    t = runner.Trial(spec.load(file, extra=["train.steps=30"]), {"optim.lr": 0.01}, tmp_path)
    (t.dir / ".hydra").mkdir(parents=True)
    (t.dir / results.TRIAL_FILE).write_text(json.dumps({"overrides": t.overrides}) + "\n")  # the old record
    (t.dir / ".hydra" / "overrides.yaml").write_text(
        f"- optim.lr=0.01\n- train.steps=30\n- hydra.run.dir='{t.dir}'\n- train.resume=auto\n- train.progress=false\n")
    t.claim()  # same overrides: continued, and the record now holds the whole identity
    assert json.loads((t.dir / results.TRIAL_FILE).read_text())["identity"] == {"optim.lr": "0.01", "train.steps": "30"}
    (t.dir / results.TRIAL_FILE).write_text(json.dumps({"overrides": t.overrides}) + "\n")
    with pytest.raises(UserError, match="ran with train.steps=30; this sweep asks train.steps=31"):
        runner.Trial(spec.load(file, extra=["train.steps=31"]), {"optim.lr": 0.01}, tmp_path).claim()


def test_parallel_trials_never_share_a_run_dir(tmp_path):
    s = spec.load(write_sweep(tmp_path / "s.yaml", {"data.name": ["a/b", "a_b"], "optim.lr": [0.01]}, []))
    a, b = (runner.Trial(s, {"data.name": n, "optim.lr": 0.01}, tmp_path) for n in ("a/b", "a_b"))
    assert a.dir == b.dir  # names sanitised alike
    with pytest.raises(UserError, match="would share the run dir"):
        runner.distinct([a, b])
    again = runner.Trial(s, {"data.name": "a_b", "optim.lr": 0.01}, tmp_path)
    assert runner.distinct([b, again]) == [b]  # a point proposed twice runs once
    with pytest.raises(AssertionError, match="share a run dir"):
        runner.Local(2).run([(b, ["true"]), (again, ["true"])], {}, lambda t, code: None)


# ----------------------------------------------------------------------------- plot and verdict

def synthetic(path: Path) -> Path:
    """SP: optimum 2^-6, 2^-7, 2^-8 at widths 32, 64, 128 (drift -2 octaves), best loss falls.
    μP: optimum 2^-6 at 32 and 64 (drift 0), but at 128 it sits on the grid's top edge, and 128's
    best loss is worse than 64's. One diverged point per panel."""
    rows = []
    for param, optima in {"sp": {32: -6, 64: -7, 128: -8}, "mup": {32: -6, 64: -6, 128: -4}}.items():
        for width, k_opt in optima.items():
            floor = {32: 2.0, 64: 1.9, 128: 1.8 if param == "sp" else 1.95}[width]
            for k in range(-10, -3):
                diverged = param == "sp" and width == 128 and k == -4
                loss = floor + 0.05 * (k - k_opt) ** 2
                rows.append({"trial": f"{param}-{width}-{k}", "experiment": "cpu_transfer", "param": param,
                             "model.width": width, "optim.lr": 2.0 ** k, "status": "diverged" if diverged else "done",
                             "final_val_loss": 9.9 if diverged else loss, "best_val_loss": loss, "diverged": diverged,
                             "tokens": 1024, "wall_time_s": 1.0, "run_dir": f"/x/{param}-{width}-{k}"})
    rows.append({**rows[0], "trial": "failed", "optim.lr": 2.0 ** -3, "status": "failed", "final_val_loss": None})
    results.write(path, rows)
    return path


def test_the_verdict_finds_the_optima_their_drift_and_the_edge(tmp_path):
    v = verdict(results.read([str(synthetic(tmp_path / "results.csv"))]))
    assert (v["x"], v["by"], v["panel"]) == ("optim.lr", "model.width", ["param"])
    sp, mup = v["panels"]["param=sp"], v["panels"]["param=mup"]
    assert [s["log2"] for s in sp["sizes"].values()] == [-6, -7, -8] and sp["drift_octaves"] == -2
    assert sp["edge"] == [] and sp["best_loss_improves"] is True and sp["sizes"][128]["diverged"] == 1
    assert [s["log2"] for s in mup["sizes"].values()] == [-6, -6, -4] and mup["drift_octaves"] == 2
    assert mup["edge"] == [128] and mup["best_loss_improves"] is False and v["failed_trials"] == 1


def test_the_plot_draws_panels_and_prints_the_verdict_as_text_and_json(tmp_path, capsys):
    csv = synthetic(tmp_path / "results.csv")
    plot.main([str(csv)])
    text = capsys.readouterr().out
    assert "[param=sp]" in text and "drift 32 -> 128: -2 octaves" in text and "EDGE" in text
    assert "optimum on the grid edge at 128" in text and "best loss improves with size: no" in text
    png = tmp_path / "transfer.png"
    assert png.stat().st_size < 200_000 and png.read_bytes()[:4] == b"\x89PNG"
    plot.main([str(csv), "--json", "--png", str(tmp_path / "w.png"), "--where", "param=sp"])
    data = json.loads(capsys.readouterr().out)
    assert data["panels"]["all"]["drift_octaves"] == -2 and (tmp_path / "w.png").exists()
    with pytest.raises(UserError, match="no column"):
        plot.main([str(csv), "--by", "model.depth"])


def test_best_prints_overrides_that_train_the_large_model(tmp_path, capsys):
    best.main([str(synthetic(tmp_path / "results.csv"))])
    line = capsys.readouterr().out.strip()
    assert line == "experiment=cpu_transfer param=sp model.width=128 optim.lr=0.00390625"
    cfg = cli.compose(line.split() + ["model.width=1024", "model.depth=24"])
    assert (cfg.model.width, cfg.model.depth, cfg.optim.lr, cfg.train.steps) == (1024, 24, 2.0 ** -8, 1000)


# ----------------------------------------------------------------------------- seeds

def seeded_rows(cells: dict) -> list[dict]:
    """{(param, width, log2 lr): [loss per seed, None = diverged]} as results rows with a seed column."""
    rows = []
    for (param, width, k), losses in cells.items():
        for seed, loss in enumerate(losses, 1):
            rows.append({"trial": f"{param}-{width}-{k}-{seed}", "param": param, "model.width": width, "optim.lr": 2.0 ** k,
                         "seed": seed, "status": "done" if loss is not None else "diverged",
                         "final_val_loss": loss if loss is not None else 9.9, "run_dir": f"/x/{param}-{width}-{k}-{seed}"})
    return rows


def test_the_verdict_averages_seeds_draws_their_spread_and_calls_a_close_optimum_undecided():
    # width 32: 2^-6 beats 2^-7 by 0.10 with seed std ~0.014: decided. Width 64: 2^-7 beats 2^-6 by 0.01
    # with std ~0.07: undecided, and the drift is -1 octave within the spread -1 .. 0. At 128 the
    # lowest mean (2^-8) has a diverged seed: the optimum is the best cell where every seed finished.
    rows = seeded_rows({
        ("sp", 32, -7): [2.10, 2.12], ("sp", 32, -6): [2.00, 2.02], ("sp", 32, -5): [2.20, 2.18],
        ("sp", 64, -7): [1.85, 1.95], ("sp", 64, -6): [1.96, 1.86], ("sp", 64, -5): [2.10, 2.12],
        ("sp", 128, -9): [1.90, 1.91], ("sp", 128, -8): [1.50, None], ("sp", 128, -7): [1.99, 2.00],
    })
    v = verdict(rows)
    assert v["panel"] == [] and v["by"] == "model.width"  # seed is not a panel
    p = v["panels"]["all"]
    s32, s64, s128 = (p["sizes"][w] for w in (32, 64, 128))
    assert s32["optimum"] == 2.0 ** -6 and s32["loss"] == pytest.approx(2.01) and s32["std"] == pytest.approx(0.0141, abs=1e-4)
    assert s32["seeds"] == 2 and s32["decided"] is True and s32["margin"] == pytest.approx(0.10)
    assert s64["optimum"] == 2.0 ** -7 and s64["decided"] is False and s64["runner_up"] == 2.0 ** -6
    assert p["undecided"] == [64]
    assert s128["optimum"] == 2.0 ** -9 and v["points"]["all"][128][2.0 ** -8] == 1.50  # the survivor, drawn
    assert v["spread"]["all"][64][2.0 ** -7] == pytest.approx(0.0707, abs=1e-4)
    assert p["drift_octaves"] == -3 and p["drift_range"] == [-3, -3]
    one = verdict([r for r in rows if r["seed"] == 1])
    assert all(s["decided"] is None for s in one["panels"]["all"]["sizes"].values())  # one seed decides nothing


def test_the_plot_marks_the_seeds_spread_and_the_undecided_optima(tmp_path, capsys):
    rows = seeded_rows({("sp", 64, -7): [1.85, 1.95], ("sp", 64, -6): [1.96, 1.86], ("sp", 64, -5): [2.10, 2.12]})
    results.write(tmp_path / "results.csv", rows)
    plot.main([str(tmp_path / "results.csv")])
    text = capsys.readouterr().out
    assert "undecided vs 2^-6" in text and "add seeds to decide" in text and "± std" in text
    assert (tmp_path / "transfer.png").read_bytes()[:4] == b"\x89PNG"


def test_best_picks_the_lowest_mean_over_seeds_not_the_luckiest_seed(tmp_path, capsys):
    # point A has the single best trial (1.80) but a mean of 2.00; point B's mean is 1.90
    rows = [{"trial": f"{k}-{s}", "optim.lr": lr, "param.hidden_init_std": std, "seed": s, "status": "done",
             "final_val_loss": loss, "run_dir": f"/x/{k}-{s}"}
            for k, lr, std, losses in (("A", 0.01, 0.05, (1.80, 2.20)), ("B", 0.02, 0.03, (1.89, 1.91)))
            for s, loss in enumerate(losses, 1)]
    rows.append({**rows[0], "trial": "C-1", "optim.lr": 0.04, "seed": 1, "final_val_loss": 1.0})  # C: one seed diverged
    rows.append({**rows[0], "trial": "C-2", "optim.lr": 0.04, "seed": 2, "status": "diverged", "final_val_loss": 9.9})
    results.write(tmp_path / "results.csv", rows)
    w = best.winner(results.read([str(tmp_path / "results.csv")]), "final_val_loss")
    assert (w["optim.lr"], w["seeds"]) == (0.02, 2) and w["final_val_loss"] == pytest.approx(1.90)
    best.main([str(tmp_path / "results.csv")])
    out = capsys.readouterr()
    assert out.out.strip() == "optim.lr=0.02 param.hidden_init_std=0.03"  # no seed: the winner, carried to any width
    assert "± 0.0141 (mean ± std over 2 seeds)" in out.err
    cfg = cli.compose(out.out.split() + ["experiment=cpu_transfer", "param=mup", "model.width=256"])
    from param import build_table
    t = build_table(cfg, 64)
    qkv = next(r for r in t.rows if r.role == "attn_qkv")
    assert qkv.init_std == pytest.approx(0.03 / 2)  # sigma_hidden x m^-1/2 at m = 256/64 = 4
    assert next(r for r in t.rows if r.role == "embedding").init_std == 0.02  # the embeddings keep param.init_std


def test_seeds_expand_every_grid_point_and_every_proposal(tmp_path):
    sweep = spec.load(str(REPO / "sweeps" / "cpu_transfer_sp.yaml"))
    assert runner.parse_seeds("3") == [1, 2, 3] and runner.parse_seeds("1,5") == [1, 5] and runner.parse_seeds(None) == []
    for bad in ("0", "x", "1,1", "-1,2"):
        with pytest.raises(UserError, match="--seeds"):
            runner.parse_seeds(bad)
    trials = runner.sweep_trials(runner.with_seeds(sweep, [1, 2]), tmp_path, [], None, 0)
    assert len(trials) == 2 * 4 * 6 and [t.values["seed"] for t in trials[:2]] == [1, 2]
    assert trials[0].name.endswith("seed=1") and "seed=2" in trials[1].overrides
    assert runner.seeded([{"optim.lr": 0.1}], [1, 2]) == [{"optim.lr": 0.1, "seed": 1}, {"optim.lr": 0.1, "seed": 2}]
    with pytest.raises(UserError, match="seed is already set"):
        runner.with_seeds(spec.load(str(REPO / "sweeps" / "cpu_transfer_sp.yaml"), extra=["seed=3"]), [1])


def test_the_transfer_target_is_a_tie_within_the_seed_spread_and_reads_mup_in_width():
    from sweeptools.transfer import judge_target, lr_values

    eta = 2.0 ** -5
    assert lr_values(eta, [-1, 0, 1]) == [0.01562, eta, 0.0625]  # 4 significant digits, as the search's proposals
    cells = {("mup", w, k): [base + 0.02 * abs(k + 5), base + 0.02 * abs(k + 5) + 0.04]
             for w, base in ((64, 2.2), (128, 2.1), (256, 1.95)) for k in (-6, -5, -4)}
    cells.update({("sp", w, k): [base + 0.03 * abs(k - opt), base + 0.03 * abs(k - opt) + 0.02]
                  for w, base, opt in ((64, 2.2, -6), (128, 2.05, -7), (256, 1.94, -8)) for k in (opt - 1, opt, opt + 1)})
    v = verdict(seeded_rows(cells), "optim.lr", "model.width", ["param"])
    t = judge_target(v, eta, "param=mup", "param=sp")
    # at 256: muP 1.97 +- 0.028 vs SP 1.95 +- 0.014: gap +0.02 within the spread 0.028 -> a match
    assert t["largest_width"] == 256 and t["call"] == "matches" and t["gap"] == pytest.approx(0.02)
    assert t["improves_with_width"] is True and [s["delta"] for s in t["steps"]] == pytest.approx([-0.1, -0.15])
    assert t["sp_best"][256]["lr"] == 2.0 ** -8
    worse = {**cells, ("mup", 256, -5): [2.10, 2.11]}
    t = judge_target(verdict(seeded_rows(worse), "optim.lr", "model.width", ["param"]), eta, "param=mup", "param=sp")
    assert t["call"] == "loses" and t["improves_with_width"] is True  # 2.105 < 2.12 at 128, still better with width


@pytest.mark.slow
def test_tune_small_train_large_end_to_end_carries_the_winner_and_judges_it(tmp_path, data_root):
    fixed = [o for o in TINY if not o.startswith(("model.width", "train.threads", "train.progress"))]
    fixed = [o for o in fixed if not o.startswith(("train.steps", "train.eval_interval", "train.ckpt_interval"))]
    fixed += ["train.steps=4", "train.eval_interval=4", "train.ckpt_interval=4", f"data.root={data_root}", "param.base_width=32",
              "param.base_head_dim=16"]
    proxy = write_sweep(tmp_path / "proxy.yaml", {"optim.lr": [0.01, 0.02], "param.hidden_init_std": [0.02, 0.04]},
                        ["param=mup", "model.width=32", *fixed], method="random")
    large = write_sweep(tmp_path / "large.yaml", {"model.width": [32, 64]}, ["param=mup", *fixed])
    base = write_sweep(tmp_path / "base.yaml", {"model.width": [32, 64], "optim.lr": [0.005, 0.01, 0.02]}, ["param=sp", *fixed])
    out = tmp_path / "demo"
    argv = ["-m", "sweeptools.transfer", "--proxy", str(proxy), "--large", str(large), "--baseline", str(base), "--baseline-skip",
            "model.width=64,optim.lr=0.005", "--count", "2", "--seeds", "2", "--jobs", "2", "--out", str(out)]
    r = run_cli(*argv)
    assert r.returncode == 0, r.stderr[-3000:]
    record = json.loads((out / "verdict.json").read_text())
    win = record["proxy"]["winner"]
    assert set(win) == {"optim.lr", "param.hidden_init_std"} and record["proxy"]["trials"] == 4
    mup = results.read([str(out / "mup" / "results.csv")])
    assert len(mup) == 2 * 4 * 2  # widths x (eta/2, eta, 2 eta, 4 eta) x seeds
    assert {r["param.hidden_init_std"] for r in mup} == {win["param.hidden_init_std"]}  # carried unchanged
    assert {r["optim.lr"] for r in mup} == set(lr_values := [float(f"{win['optim.lr'] * 2.0 ** k:.4g}") if k else win["optim.lr"]
                                                              for k in (-1, 0, 1, 2)]) and len(lr_values) == 4
    assert len(results.read([str(out / "sp" / "results.csv")])) == (3 + 2) * 2  # one point skipped at 64
    t = record["target"]
    assert t["largest_width"] == 64 and t["call"] in ("beats", "matches", "loses") and set(t["mup"]) == {"32", "64"}
    assert (out / "transfer.png").read_bytes()[:4] == b"\x89PNG" and "target at width 64" in (out / "verdict.txt").read_text()
    again = run_cli(*argv)  # resumable: every trial is found done, nothing runs again
    assert again.returncode == 0 and all(p.read_text().count("$ ") == 1 for p in out.glob("*/*/sweep.log"))


def test_a_wandb_sweep_id_offline_fails_in_one_line(monkeypatch):
    import socket

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    with pytest.raises(UserError, match="needs the network"):
        plot.main(["someone/hptransfer/abcd1234"])


@pytest.mark.slow
def test_the_submitit_launcher_runs_trials_as_jobs(tmp_path, data_root):
    """The SLURM path with submitit's local executor (same code, no cluster needed)."""
    out = tmp_path / "out"
    r = run_cli("-m", "sweeptools.run", str(tiny_sweep(tmp_path, data_root, widths=(32,), lrs=(0.01,))),
                "--launcher", "submitit-local", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert [x["status"] for x in results.read([str(out)])] == ["done"] and list((out / ".submitit").glob("*_log.out"))


def test_a_torchrun_command_launches_each_trial_on_several_processes(tmp_path):
    path = write_sweep(tmp_path / "t.yaml", {"optim.lr": [0.01]}, ["dist=ddp"])
    path.write_text(path.read_text().replace("  - ${interpreter}\n", "  - torchrun\n  - --standalone\n  - --nproc_per_node=2\n"))
    sweep = spec.load(path)
    cmd = runner.command(sweep, runner.Trial(sweep, {"optim.lr": 0.01}, tmp_path), None, use_wandb=False)
    at = cmd.index(str(REPO / "train.py"))
    assert cmd[at - 2:at] == ["--standalone", "--nproc_per_node=2"] and "torch" in " ".join(cmd[:at - 2])
    assert cmd[at + 1:at + 4] == ["dist=ddp", "logger=local", "optim.lr=0.01"] and cmd[at + 4].startswith("hydra.run.dir=")
