"""Tests compose the real configs (conf/) with Hydra's compose API and shrink them for CPU.

Nothing here touches the network: W&B is disabled, the HF hub is offline, and data comes
from the embedded Shakespeare corpus prepared once per session into a temp dir.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.update(WANDB_MODE="disabled", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_SILENT="true")

# a GPT small enough that a training step takes milliseconds on 2 cores
TINY = [
    "model.width=32", "model.depth=2", "model.head_dim=16", "model.context=32",
    "train.steps=20", "train.batch_size=8", "train.log_interval=1", "train.eval_interval=10",
    "train.eval_iters=2", "train.ckpt_interval=10", "train.progress=false", "train.threads=1",
    "schedule.warmup=2",
]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """Char-level Shakespeare prepared once for the whole session."""
    import cli
    import data

    root = tmp_path_factory.mktemp("data")
    data.ensure_prepared(cli.compose(["data=shakespeare_char", f"data.root={root}"]).data)
    return root


@pytest.fixture
def tiny_cfg(data_root):
    """compose(*overrides) -> the real config, shrunk for CPU, on the session's data."""
    import cli

    def make(*overrides):
        return cli.compose([*TINY, f"data.root={data_root}", *overrides])

    return make


class _PrintLines(logging.Handler):
    """The run's log lines on sys.stdout as it is at each line (capsys swaps it per test), as a
    user sees them with no logging configured (records/console.py adds such a handler then)."""

    def emit(self, record):
        sys.stdout.write(self.format(record) + "\n")


@pytest.fixture(autouse=True)
def run_lines_on_stdout():
    log = logging.getLogger("hptransfer")
    handler = _PrintLines()
    log.addHandler(handler)
    yield
    log.removeHandler(handler)


def run_cli(*args, cwd=REPO, env=None, timeout=300) -> subprocess.CompletedProcess:
    """Run `python <args>` in the repo as a user would; returns the completed process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def resume_midway(cfg, tmp_path: Path, step: int = 10) -> tuple[Path, Path]:
    """Train `cfg` whole, then replay an interruption: a run dir holding only the checkpoint at
    `step` and the metrics the dying run had written past it, resumed with train.resume=auto.
    Returns (whole run dir, resumed run dir)."""
    import shutil

    from train import run

    whole, part = tmp_path / "whole", tmp_path / "part"
    run(cfg, whole)
    shutil.copytree(whole / "checkpoints" / f"step_{step:06d}", part / "checkpoints" / f"step_{step:06d}")
    shutil.copy(whole / "metrics.jsonl", part / "metrics.jsonl")
    cfg.train.resume = "auto"
    run(cfg, part)
    return whole, part
