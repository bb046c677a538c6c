"""The training loop: it learns, it resumes exactly, it never loses what it wrote, and a
diverging run ends cleanly so a sweep goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import records.checkpoint as ckpt
from conftest import TINY, resume_midway, run_cli
from records import latest_checkpoint, load_checkpoint, read_jsonl, save_checkpoint
from train import run

STABLE = ("step", "tokens", "train_loss", "val_loss", "lr", "lr_factor", "grad_norm")  # not timings


def curve(run_dir: Path) -> list[dict]:
    return [{k: r[k] for k in STABLE if k in r} for r in read_jsonl(run_dir / "metrics.jsonl")]


def test_twenty_steps_lower_the_loss_on_shakespeare_char(tiny_cfg, tmp_path):
    summary = run(tiny_cfg("optim.lr=1e-2"), tmp_path)
    records = read_jsonl(tmp_path / "metrics.jsonl")
    train = [r["train_loss"] for r in records if "train_loss" in r]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    assert len(train) == 20 and len(val) == 3  # steps 0, 10, 20
    assert sum(train[-5:]) / 5 < train[0] - 0.5
    assert val[-1] < val[0] - 0.5
    assert summary["final_val_loss"] == val[-1] and not summary["diverged"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000010", "step_000020"]


def test_records_hold_what_the_readme_promises(tiny_cfg, tmp_path):
    summary = run(tiny_cfg("train.steps=3"), tmp_path)
    rec = read_jsonl(tmp_path / "metrics.jsonl")[1]
    assert {"step", "tokens", "train_loss", "lr", "grad_norm", "tok_per_s", "elapsed"} <= set(rec)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    for key in ("final_val_loss", "best_val_loss", "diverged", "tokens", "tok_per_s", "peak_memory_mb", "wall_time_s", "config"):
        assert key in on_disk
    assert on_disk["tokens"] == 3 * 8 * 32 == summary["tokens"]
    assert 0 < on_disk["cpu_time_s"]  # the process's own CPU seconds (a trial's cost on a shared machine)


def test_param_table_json_lists_every_parameter_exactly_once(tiny_cfg, tmp_path):
    run(tiny_cfg("train.steps=1", "model.tie_embeddings=false"), tmp_path)
    table = json.loads((tmp_path / "param_table.json").read_text())
    names = [r["name"] for r in table["tensors"]]
    state = load_checkpoint(latest_checkpoint(tmp_path / "checkpoints"))
    assert len(names) == len(set(names))
    assert set(names) == set(state["model"])
    assert (tmp_path / "param_table.txt").read_text().startswith("param=sp")


def test_a_resumed_run_repeats_the_uninterrupted_loss_curve_exactly(tiny_cfg, tmp_path):
    cfg = tiny_cfg("model.dropout=0.1", "train.grad_accum=2")  # dropout: the RNG state must resume too
    whole, part = resume_midway(cfg, tmp_path)
    assert curve(part) == curve(whole)  # bit-for-bit on CPU
    superseded = read_jsonl(part / "metrics.superseded.jsonl")
    assert superseded and min(r["step"] for r in superseded) == 11  # nothing written is thrown away


def test_resume_auto_with_no_checkpoint_starts_fresh(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.steps=2", "train.resume=auto")
    assert run(cfg, tmp_path)["steps"] == 2


def test_a_kill_mid_save_leaves_the_previous_checkpoint_usable(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    save_checkpoint(root, 10, {"step": 10, "w": torch.ones(3)}, keep=2)

    def dies_halfway(obj, f):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # the process is killed mid-write

    monkeypatch.setattr(ckpt.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(root, 20, {"step": 20}, keep=2)
    monkeypatch.undo()
    assert latest_checkpoint(root).name == "step_000010"
    assert load_checkpoint(latest_checkpoint(root))["step"] == 10
    save_checkpoint(root, 30, {"step": 30}, keep=2)  # the next save cleans the debris
    assert sorted(p.name for p in root.iterdir()) == ["step_000010", "step_000030"]


def test_only_the_newest_checkpoints_are_kept(tmp_path):
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, {"step": step}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000003", "step_000004"]


def test_a_diverged_run_writes_its_summary_keeps_checkpoints_and_exits_0(data_root, tmp_path):
    out = run_cli("train.py", *TINY, f"data.root={data_root}", f"hydra.run.dir={tmp_path}", "optim.lr=30",
                  "train.grad_clip=0", "schedule.warmup=0", "train.ckpt_interval=1", "train.steps=50")
    assert out.returncode == 0, out.stderr
    assert "DIVERGED" in out.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["diverged"] is True and summary["steps"] < 50
    assert latest_checkpoint(tmp_path / "checkpoints") is not None
    last = read_jsonl(tmp_path / "metrics.jsonl")[-1]  # a non-finite loss is null, named under "nonfinite"
    assert "train_loss" in last.get("nonfinite", {}) or last["train_loss"] > 2 * read_jsonl(tmp_path / "metrics.jsonl")[1]["train_loss"]
    assert summary["final_val_loss"] is None and summary["diverged_at_step"] == last["step"]


def test_wandb_offline_logs_into_the_run_dir(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    run(tiny_cfg("train.steps=2", "logger=wandb", "logger.mode=offline"), tmp_path)
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))


def test_hydra_multirun_trains_one_run_per_value(data_root, tmp_path):
    out = run_cli("train.py", "-m", *TINY, f"data.root={data_root}", "train.steps=2", "optim.lr=1e-3,2e-3",
                  f"hydra.sweep.dir={tmp_path}")
    assert out.returncode == 0, out.stderr
    summaries = sorted(tmp_path.glob("*/summary.json"))
    assert [json.loads(p.read_text())["config"]["lr"] for p in summaries] == [1e-3, 2e-3]


def test_resuming_with_a_different_parameterization_is_refused(tiny_cfg, tmp_path, capsys):
    import cli

    run(tiny_cfg("train.steps=10"), tmp_path)
    cfg = tiny_cfg("train.steps=20", "train.resume=auto", "param=mup")
    with pytest.raises(SystemExit):
        cli.guard(run)(cfg, tmp_path)
    err = capsys.readouterr().err
    assert err.startswith("error: train.resume:") and "start a new run" in err
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step_000010"  # nothing lost


def test_without_a_terminal_every_log_step_is_a_line_and_train_log_holds_the_run(data_root, tmp_path):
    """SLURM, nohup, `make train > log`: tqdm turns its bar off, and the log lines replace it."""
    out = run_cli("train.py", *TINY, f"data.root={data_root}", f"hydra.run.dir={tmp_path}", "train.progress=true",
                  "train.steps=10", "train.log_interval=5", "train.eval_interval=10")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"run dir {tmp_path} | cpu fp32 | world size 1 |")
    assert lines[1].startswith("param=sp m=0.25 r=0.5 (base 128x4) optim=adamw")  # the banner: m and r
    assert [ln.split()[1] for ln in lines if ln.startswith("step ") and "loss" in ln and "val" not in ln] == ["1/10", "5/10", "10/10"]
    assert any(ln.startswith("step 10: val loss ") for ln in lines)
    assert any(ln.startswith("step 10: checkpoint ") for ln in lines)
    assert lines[-1].startswith(f"done: run dir {tmp_path}  final val loss ")
    logged = (tmp_path / "train.log").read_text().splitlines()  # Hydra's job log: the same lines, timestamped
    assert [ln.split("] ", 1)[1] for ln in logged] == lines


def test_on_a_terminal_the_bar_replaces_the_step_lines_but_not_the_others():
    import io
    import logging

    from records import console

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    handlers = [console.ConsoleHandler(tty), console.ConsoleHandler(pipe)]
    log = logging.getLogger("hptransfer.test_console")
    log.propagate, log.level = False, logging.INFO
    for h in handlers:
        log.addHandler(h)
    console._bars.append(object())  # a bar on screen
    try:
        log.info("step 5/10  loss 3.0", extra={"progress": True})
        log.info("step 10: val loss 2.9")
    finally:
        console._bars.pop()
        for h in handlers:
            log.removeHandler(h)
    assert tty.getvalue() == "step 10: val loss 2.9\n"  # the bar shows the step; the eval is a line
    assert pipe.getvalue() == "step 5/10  loss 3.0\nstep 10: val loss 2.9\n"  # a file gets both


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [["hydra/launcher=submitit_local"], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]])
def test_hydra_launchers_run_a_two_job_multirun_end_to_end(data_root, tmp_path, launcher):
    """The job function pickles (submitit, joblib run it in other processes) and each job gets
    its own run dir with .hydra/, metrics, summary and train.log."""
    out = run_cli("train.py", "-m", *launcher, *TINY, f"data.root={data_root}", "train.steps=4", "optim.lr=1e-3,2e-3",
                  f"hydra.sweep.dir={tmp_path}", timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = sorted(p.parent for p in tmp_path.glob("*/summary.json"))
    assert [p.name for p in jobs] == ["0", "1"]
    for job, lr in zip(jobs, ["0.001", "0.002"]):
        assert f"optim.lr={lr}" in (job / ".hydra" / "overrides.yaml").read_text()
        assert json.loads((job / "summary.json").read_text())["steps"] == 4
        assert "done: run dir" in (job / "train.log").read_text()
