"""The W&B mirror carries the run: config, metrics, the parameterization table (file and
wandb.Table), summary.json, a name from the run dir, the sweep as group, and (asked for) the
checkpoint as an artifact. Offline only: W&B writes its run into the run dir, no network."""

from __future__ import annotations

import json

from records.wandb_logger import TABLE_COLUMNS, run_group, run_name


def test_a_sweep_trial_is_named_after_its_dir_and_grouped_by_its_sweep(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_RUN_GROUP", raising=False)
    trial = tmp_path / "sweeps" / "cpu_width_lr_adamw" / "param=mup,model.width=64,optim.lr=0.03125"
    assert run_name(trial) == "param=mup,model.width=64,optim.lr=0.03125" and run_group(trial) is None
    monkeypatch.setenv("WANDB_RUN_GROUP", "cpu_width_lr_adamw")  # what `sweeptools.run --wandb` sets
    assert run_group(trial) == "cpu_width_lr_adamw"
    monkeypatch.delenv("WANDB_RUN_GROUP")
    job = tmp_path / "multirun" / "2026-11-25" / "07-28-14" / "3"  # a `train.py -m` job
    job.mkdir(parents=True)
    (job.parent / "multirun.yaml").write_text("hydra: {}\n")
    assert (run_name(job), run_group(job)) == ("07-28-14/3", "2026-11-25/07-28-14")


def test_an_offline_run_carries_the_table_the_summary_and_the_checkpoint(tiny_cfg, tmp_path, monkeypatch):
    from train import run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_RUN_GROUP", "tiny_sweep")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.delenv("WANDB_DATA_DIR", raising=False)
    run_dir = tmp_path / "lr=0.01"
    run(tiny_cfg("train.steps=3", "logger=wandb", "logger.mode=offline", "logger.log_checkpoints=true"), run_dir)
    (offline,) = (run_dir / "wandb").glob("offline-run-*")
    files = offline / "files"
    assert json.loads((files / "param_table.json").read_text()) == json.loads((run_dir / "param_table.json").read_text())
    assert json.loads((files / "summary.json").read_text()) == json.loads((run_dir / "summary.json").read_text())
    (media,) = (files / "media" / "table").glob("param_table_*.table.json")
    table = json.loads(media.read_text())
    names = [t["name"] for t in json.loads((run_dir / "param_table.json").read_text())["tensors"]]
    assert table["columns"] == list(TABLE_COLUMNS) and [row[0] for row in table["data"]] == names
    log = next(offline.glob("run-*.wandb")).read_bytes()  # W&B's record of the run: strings stored as UTF-8
    for text in ("lr=0.01", "tiny_sweep", "final_val_loss", "param/m", "lr-0.01-model", "step_000003", "state.pt"):
        assert text.encode() in log, text


def test_checkpoints_are_not_uploaded_unless_asked(tiny_cfg, tmp_path, monkeypatch):
    from train import run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DATA_DIR", raising=False)
    run(tiny_cfg("train.steps=2", "logger=wandb", "logger.mode=offline"), tmp_path / "r")
    (offline,) = (tmp_path / "r" / "wandb").glob("offline-run-*")
    assert b"r-model" not in next(offline.glob("run-*.wandb")).read_bytes()
    assert list((tmp_path / "r" / "wandb" / "data").rglob("*"))  # W&B's staging stays in the run dir, not $HOME
    assert (offline / "files" / "param_table.json").is_file()
