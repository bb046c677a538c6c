"""Faults a run must survive: nothing it wrote is lost, nothing in a file it reads is executed,
and every refusal is one line. Crafted checkpoints, used and locked run dirs, damaged
checkpoints and metrics, resumes that keep their config, signals, divergence, a full disk."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cli
import records.checkpoint as ckpt
from conftest import REPO, TINY, resume_midway, run_cli
from records import MetricsLog, latest_checkpoint, read_jsonl, save_checkpoint, write_json_atomic
from records import resume as resume_rules
from records.files import read_records
from records.rundir import RunLock
from train import run

STABLE = ("step", "tokens", "train_loss", "val_loss", "lr", "lr_factor", "grad_norm")  # not timings


def curve(run_dir: Path) -> list[dict]:
    return [{k: r[k] for k in STABLE if k in r} for r in read_jsonl(run_dir / "metrics.jsonl")]


def refused(fn, capsys) -> str:
    """Run fn under cli.guard; assert it exits 2 with one `error:` line; return that line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        cli.guard(fn)()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert e.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


# ----------------------------------------------------------------------------- crafted checkpoints

class CreatesAFile:
    """A pickle payload: unpickling it calls open(path, "w"), which creates the file."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def crafted_checkpoint(run_dir: Path, marker: Path) -> Path:
    step = run_dir / "checkpoints" / "step_000010"
    step.mkdir(parents=True)
    torch.save({"step": 10, "model": CreatesAFile(marker)}, step / "state.pt")
    return step


def test_the_crafted_payload_would_create_its_file_if_unpickled(tmp_path):
    marker = tmp_path / "marker"
    step = crafted_checkpoint(tmp_path / "run", marker)
    torch.load(step / "state.pt", weights_only=False)  # what the loader did before
    assert marker.exists()


@pytest.mark.parametrize("how", ["path", "auto", "export"])
def test_a_crafted_checkpoint_is_refused_in_one_line_and_nothing_in_it_runs(how, tiny_cfg, tmp_path, capsys):
    from records.export import load_full

    run_dir, marker = tmp_path / "run", tmp_path / "marker"
    step = crafted_checkpoint(run_dir, marker)
    if how == "export":
        line = refused(lambda: load_full(run_dir), capsys)
    else:
        cfg = tiny_cfg(f"train.resume={step if how == 'path' else 'auto'}")
        line = refused(lambda: run(cfg, run_dir), capsys)
    assert "is not a checkpoint this program wrote" in line and "refuses to unpickle" in line
    assert ("export another checkpoint" if how == "export" else "point train.resume elsewhere") in line
    assert not marker.exists()
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoints"]  # nothing written


def test_checkpoints_hold_only_tensors_and_plain_containers(tiny_cfg, tmp_path):
    run(tiny_cfg("train.steps=2", "optim=muon", "param=mup"), tmp_path)  # the optimizer with the most state kinds
    state = torch.load(latest_checkpoint(tmp_path / "checkpoints") / "state.pt", weights_only=True)
    assert state["config"]["optim"]["name"] == "muon" and state["step"] == 2


def test_an_export_loads_with_weights_only_and_its_docstring_recipe_gives_the_runs_val_loss(tiny_cfg, tmp_path):
    from omegaconf import OmegaConf

    import data
    from model import GPT
    from param.table import Table, model_config

    cfg = tiny_cfg("train.steps=2", "param=mup", "model.width=64")
    summary = run(cfg, tmp_path)
    out = run_cli("-m", "records.export", str(tmp_path), "--out", str(tmp_path / "m.pt"))
    assert out.returncode == 0, out.stderr
    full = torch.load(tmp_path / "m.pt", weights_only=True)  # the recipe in records/export.py
    t = full["param_table"]
    table = Table.from_dict(t)
    gpt = GPT(model_config(OmegaConf.create(full["config"]["model"]), t["globals"]["vocab_size"]), table.scales())
    gpt.load_state_dict(full["model"])
    gpt.eval()
    windows = data.TokenWindows(data.ensure_prepared(cfg.data), "val", cfg.model.context)
    with torch.no_grad():
        losses = [gpt(*windows.batch(8, seed=cfg.seed, step=i, rank=0, world=1))[1].item() for i in range(cfg.train.eval_iters)]
    assert sum(losses) / len(losses) == pytest.approx(summary["final_val_loss"], rel=1e-5)


# ----------------------------------------------------------------------------- used and locked run dirs

def test_a_fresh_run_in_a_dir_holding_checkpoints_is_refused_and_writes_nothing(tiny_cfg, tmp_path, capsys):
    run(tiny_cfg("train.steps=10"), tmp_path)
    before = snapshot(tmp_path)
    line = refused(lambda: run(tiny_cfg("train.steps=30"), tmp_path), capsys)
    assert "already holds checkpoints" in line and "train.resume=auto" in line and "new hydra.run.dir" in line
    assert snapshot(tmp_path) == before


HOLD_LOCK = """
import fcntl, os, socket, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()} {socket.gethostname()}\\n".encode())
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_process_in_a_locked_run_dir_is_refused_and_a_stale_lock_taken_over(tiny_cfg, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(tmp_path)
        line = refused(lambda: run(tiny_cfg("train.steps=2"), tmp_path), capsys)
        assert f"is in use by pid {holder.pid}" in line and "another hydra.run.dir" in line
        assert snapshot(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / ".lock").exists()  # left behind by a killed process: stale
    assert run(tiny_cfg("train.steps=2"), tmp_path)["steps"] == 2
    assert f"took over the stale lock {tmp_path / '.lock'} of pid {holder.pid}" in capsys.readouterr().out
    assert not (tmp_path / ".lock").exists()  # released on exit


def test_the_lock_is_released_when_a_run_fails(tiny_cfg, tmp_path, capsys):
    run(tiny_cfg("train.steps=2"), tmp_path)
    refused(lambda: run(tiny_cfg("train.steps=4"), tmp_path), capsys)  # a used dir: refused after the lock
    assert not (tmp_path / ".lock").exists()
    with RunLock(tmp_path) as lock:
        assert lock.note is None and (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
        with pytest.raises(cli.UserError, match=f"in use by pid {os.getpid()}"):
            RunLock(tmp_path).acquire()


def test_a_run_dir_under_a_file_is_one_line(tiny_cfg, tmp_path, capsys):
    import train

    (tmp_path / "f").write_text("")
    line = refused(lambda: run(tiny_cfg("train.steps=2"), tmp_path / "f" / "run"), capsys)
    assert line == f"error: hydra.run.dir={tmp_path}/f/run: {tmp_path}/f is a file, not a directory: choose another hydra.run.dir"
    line = refused(lambda: train._check_dirs([f"hydra.run.dir={tmp_path}/f/${{now:%H}}"]), capsys)
    assert f"{tmp_path}/f is a file" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a chmod 0o500: permissions are not enforced")
def test_an_unwritable_run_dir_is_one_line(tiny_cfg, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        line = refused(lambda: run(tiny_cfg("train.steps=2"), ro / "run"), capsys)
        assert "permission denied" in line and "choose another hydra.run.dir" in line
    finally:
        ro.chmod(0o755)


# ----------------------------------------------------------------------------- damaged checkpoints and metrics

@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_that_loads(damage, tiny_cfg, tmp_path, capsys):
    whole, part = tmp_path / "whole", tmp_path / "part"
    run(tiny_cfg(), whole)
    run(tiny_cfg(), part)
    latest = part / "checkpoints" / "step_000020" / "state.pt"
    raw = latest.read_bytes()
    latest.write_bytes(raw[: len(raw) // 2] if damage == "truncated" else b"")
    capsys.readouterr()
    run(tiny_cfg("train.resume=auto"), part)
    out = capsys.readouterr().out
    assert "checkpoint step_000020 is damaged" in out and "resuming from step_000010" in out
    kept = part / "checkpoints" / "damaged" / "step_000020" / "state.pt"  # set aside, not deleted
    assert kept.stat().st_size == (len(raw) // 2 if damage == "truncated" else 0)
    assert curve(part) == curve(whole)


def test_when_no_checkpoint_loads_resume_is_one_line_and_moves_nothing(tmp_path, capsys):
    root = tmp_path / "checkpoints"
    for step in (10, 20):
        save_checkpoint(root, step, {"step": step}, keep=2)
        (root / f"step_{step:06d}" / "state.pt").write_bytes(b"")
    line = refused(lambda: ckpt.find_resumable(root), capsys)
    assert line.startswith(f"error: no checkpoint in {root} loads (step_000020: state.pt: empty file; step_000010")
    assert sorted(p.name for p in root.iterdir()) == ["step_000010", "step_000020"]


def test_a_cut_off_last_metrics_line_is_set_aside_on_resume(tiny_cfg, tmp_path, capsys):
    whole, part = tmp_path / "whole", tmp_path / "part"
    cfg = tiny_cfg()
    run(cfg, whole)
    import shutil

    shutil.copytree(whole / "checkpoints" / "step_000010", part / "checkpoints" / "step_000010")
    lines = (whole / "metrics.jsonl").read_text().splitlines()
    cut = lines[13][:25]  # a kill in the middle of writing the record of step 12
    (part / "metrics.jsonl").write_text("\n".join(lines[:13]) + "\n" + cut)
    assert len(read_jsonl(part / "metrics.jsonl")) == 13  # readers skip it
    cfg.train.resume = "auto"
    capsys.readouterr()
    run(cfg, part)
    assert "a cut-off last line of metrics.jsonl moved to metrics.jsonl.partial" in capsys.readouterr().out
    assert (part / "metrics.jsonl.partial").read_text() == cut + "\n"
    assert curve(part) == curve(whole)


def test_a_bad_line_inside_metrics_is_not_taken_for_a_cut_off_one(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"step": 1}\n{"step": 2, "tr\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        read_records(tmp_path / "m.jsonl")


# ----------------------------------------------------------------------------- a resume keeps its config

def test_a_resume_takes_the_checkpoints_config_not_the_defaults(tiny_cfg, data_root, tmp_path, capsys):
    run(tiny_cfg("train.steps=10", "optim.lr=3e-3", "seed=7"), tmp_path)
    bare = cli.compose([f"data.root={data_root}", "train.resume=auto", "train.steps=14"])  # no other override
    capsys.readouterr()
    summary = run(bare, tmp_path)
    assert "with its config (changed: train.steps 10 -> 14)" in capsys.readouterr().out
    c = summary["config"]
    assert (c["width"], c["lr"], c["seed"], c["batch_size"], c["steps"], summary["steps"]) == (32, 3e-3, 7, 8, 14, 14)


def test_a_resume_that_changes_the_run_is_refused_naming_key_old_and_new(tiny_cfg, tmp_path, capsys):
    run(tiny_cfg("train.steps=10"), tmp_path)
    before = snapshot(tmp_path)
    line = refused(lambda: run(tiny_cfg("train.resume=auto", "seed=3", "train.batch_size=4"), tmp_path), capsys)
    assert line.startswith("error: train.resume: the checkpoint") and "seed 1337 -> 3, train.batch_size 8 -> 4" in line
    line = refused(lambda: run(tiny_cfg("train.resume=auto", "train.steps=5"), tmp_path), capsys)
    assert "train.steps=5 is below the checkpoint's step 10" in line
    assert snapshot(tmp_path) == before


def test_the_merge_rules():
    saved = {"seed": 1, "train": {"steps": 10, "progress": True, "resume": None}, "optim": {"name": "sgd", "momentum": 0.9},
             "dist": {"strategy": "fsdp2"}}
    new = {"seed": 2, "train": {"steps": 20, "progress": False, "resume": "auto", "new_key": 5},
           "optim": {"name": "adamw", "betas": [0.9, 0.95]}, "dist": {"strategy": "none"}}
    # not given: the checkpoint's value (seed, optim); a key the checkpoint predates: today's
    out, changes = resume_rules.merge(saved, new, {"train.steps", "train.progress"}, 10, "X")
    assert out == {"seed": 1, "train": {"steps": 20, "progress": False, "resume": "auto", "new_key": 5},
                   "optim": {"name": "sgd", "momentum": 0.9}, "dist": {"strategy": "none"}}
    assert changes == ["train.progress True -> False", "train.steps 10 -> 20"]
    with pytest.raises(cli.UserError, match=r"optim.betas \(unset\) -> \[0.9, 0.95\], optim.momentum 0.9 -> \(unset\), "
                                            r"optim.name 'sgd' -> 'adamw', seed 1 -> 2"):
        resume_rules.merge(saved, new, {"seed", "optim"}, 10, "X")
    assert resume_rules.override_keys(["+a.b=1", "~c", "optim=sgd", "hydra.run.dir=x", "x.y='1,2'"]) == {"a.b", "c", "optim", "x.y"}


@pytest.mark.slow
def test_the_readme_resume_command_keeps_the_runs_config_and_overrides_file(data_root, tmp_path):
    run_dir = tmp_path / "run"
    first = run_cli("train.py", *TINY, f"data.root={data_root}", "train.steps=10", "optim.lr=3e-3", f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr
    original = (run_dir / ".hydra" / "overrides.yaml").read_text()
    again = run_cli("train.py", f"hydra.run.dir={run_dir}", "train.resume=auto", "train.steps=14")
    assert again.returncode == 0, again.stderr
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == original and "optim.lr=3e-3" in original
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["config"]["width"], summary["config"]["lr"], summary["steps"]) == (32, 3e-3, 14)
    assert "train.steps 10 -> 14" in (run_dir / ".hydra" / "resumes.yaml").read_text()
    no = run_cli("train.py", f"hydra.run.dir={run_dir}", "train.resume=auto", "schedule=constant")
    assert no.returncode == 2 and "schedule.name 'cosine' -> 'constant'" in no.stderr
    fresh = run_cli("train.py", f"hydra.run.dir={run_dir}", "train.steps=3")
    assert fresh.returncode == 2 and "train.resume=auto" in fresh.stderr
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == original  # a refused run changes nothing


# ----------------------------------------------------------------------------- signals

def test_a_signal_ends_the_run_at_a_step_boundary_with_a_checkpoint(tiny_cfg, tmp_path, monkeypatch, capsys):
    whole, part = tmp_path / "whole", tmp_path / "part"
    cfg = tiny_cfg("train.log_interval=3")
    run(cfg, whole)
    real = MetricsLog.write

    def write(self, record):
        real(self, record)
        if record.get("step") == 6 and "train_loss" in record:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while step 6 is logged; 7 is not a log step

    monkeypatch.setattr(MetricsLog, "write", write)
    handler = signal.getsignal(signal.SIGINT)
    capsys.readouterr()
    summary = run(cfg, part)
    monkeypatch.undo()
    out = capsys.readouterr().out
    assert summary["interrupted"] and summary["steps"] == 6 and summary["exit_code"] == 130
    assert "stopped by SIGINT at step 6" in out and f"resume with: python train.py hydra.run.dir={part} train.resume=auto" in out
    on_disk = json.loads((part / "summary.json").read_text())
    assert on_disk["interrupted"] is True and on_disk["final_val_loss"] is None and "SIGINT" in on_disk["final_val_loss_note"]
    assert latest_checkpoint(part / "checkpoints").name == "step_000006" and not (part / ".lock").exists()
    assert signal.getsignal(signal.SIGINT) is handler  # restored
    cfg.train.resume = "auto"
    assert run(cfg, part)["steps"] == 20
    assert curve(part) == curve(whole)


def test_the_train_loss_window_survives_a_resume_between_log_steps(tiny_cfg, tmp_path):
    cfg = tiny_cfg("train.ckpt_interval=7", "train.log_interval=5", "train.ckpt_keep=5")
    whole, part = resume_midway(cfg, tmp_path, step=7)  # the record of step 10 averages steps 6-10 in both
    assert curve(part) == curve(whole)
    assert [r["step"] for r in curve(whole) if "train_loss" in r] == [1, 5, 10, 15, 20]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_exits_143_and_resume_finishes_the_run(tiny_cfg, data_root, tmp_path):
    steps, run_dir, whole = 400, tmp_path / "run", tmp_path / "whole"
    args = [*TINY, f"data.root={data_root}", f"train.steps={steps}", "train.ckpt_interval=0", "train.log_interval=7"]
    proc = subprocess.Popen([sys.executable, "train.py", *args, f"hydra.run.dir={run_dir}"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and any(r.get("step", 0) >= 14 for r in read_jsonl(metrics))):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["signal"] == "SIGTERM" and 14 <= summary["steps"] < steps
    assert latest_checkpoint(run_dir / "checkpoints").name == f"step_{summary['steps']:06d}"
    assert f"resume with: python train.py hydra.run.dir={run_dir} train.resume=auto" in out
    again = run_cli("train.py", f"hydra.run.dir={run_dir}", "train.resume=auto")
    assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == steps
    run(tiny_cfg(*args[len(TINY):]), whole)
    assert curve(run_dir) == curve(whole)


# ----------------------------------------------------------------------------- divergence, NaN, a full disk

def test_a_diverged_run_reports_the_loss_that_stopped_it_and_keeps_the_last_good_checkpoint(tiny_cfg, tmp_path, capsys):
    summary = run(tiny_cfg("optim.lr=30", "train.grad_clip=0", "schedule.warmup=0", "train.ckpt_interval=1",
                           "train.log_interval=4", "train.steps=50"), tmp_path)
    assert summary["diverged"] and summary["final_val_loss"] is None
    assert summary["final_val_loss_note"] == f"not measured: the run diverged at step {summary['diverged_at_step']}"
    d = summary["diverged_at_step"]
    assert summary["diverged_on"].startswith("train_loss")
    loss = summary["diverged_loss"]
    assert not math.isfinite(loss) or loss > 2 * summary["first_train_loss"]
    assert latest_checkpoint(tmp_path / "checkpoints").name == f"step_{d - 1:06d}"  # not the diverged state
    text = (tmp_path / "summary.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in summary.json"))


def test_json_records_never_hold_bare_nan_or_infinity(tmp_path):
    write_json_atomic(tmp_path / "s.json", {"final_val_loss": float("nan"), "best": 1.0, "config": {"lr": float("inf")}})
    s = json.loads((tmp_path / "s.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert s == {"final_val_loss": None, "best": 1.0, "config": {"lr": None},
                 "nonfinite": {"final_val_loss": "nan", "config.lr": "inf"}}
    log = MetricsLog(tmp_path)
    log.write({"step": 3, "train_loss": float("-inf"), "lr": 0.1})
    log.close()
    assert read_jsonl(tmp_path / "metrics.jsonl") == [{"step": 3, "train_loss": None, "lr": 0.1, "nonfinite": {"train_loss": "-inf"}}]


def test_a_full_disk_while_checkpointing_is_one_line_naming_what_was_kept(tiny_cfg, tmp_path, monkeypatch, capsys):
    real = ckpt.torch.save

    def save(obj, f):
        if obj.get("step") == 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f)

    monkeypatch.setattr(ckpt.torch, "save", save)
    line = refused(lambda: run(tiny_cfg(), tmp_path), capsys)
    assert line == (f"error: no space left on device while writing {tmp_path}/checkpoints/step_000020: kept "
                    f"checkpoints/step_000010, metrics.jsonl up to step 20; free space and resume with "
                    f"`python train.py hydra.run.dir={tmp_path} train.resume=auto`")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000010"]  # temp dir gone
    assert not (tmp_path / ".lock").exists()


def test_a_full_disk_while_logging_is_one_line_and_resume_goes_on(tiny_cfg, tmp_path, monkeypatch, capsys):
    real = MetricsLog.write

    def write(self, record):
        if record["step"] == 15:
            self._f.write('{"step": 15, "tra')  # what made it to disk
            self._f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, record)

    monkeypatch.setattr(MetricsLog, "write", write)
    line = refused(lambda: run(tiny_cfg(), tmp_path), capsys)
    assert line.startswith(f"error: no space left on device while writing {tmp_path}/metrics.jsonl: kept "
                           "checkpoints/step_000010, metrics.jsonl up to step 14;")
    monkeypatch.undo()
    assert run(tiny_cfg("train.resume=auto"), tmp_path)["steps"] == 20
    assert (tmp_path / "metrics.jsonl.partial").read_text() == '{"step": 15, "tra\n'
