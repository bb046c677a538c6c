"""Atomic checkpoints: each is written to a temp dir and renamed into place, so a crash or a
kill mid-save never leaves a half-written checkpoint that looks complete.

Layout: <run dir>/checkpoints/step_000500/state.pt
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch

_COMPLETE = re.compile(r"step_(\d+)")


def _complete(ckpt_root: Path) -> list[tuple[int, Path]]:
    if not ckpt_root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_root.iterdir() if (m := _COMPLETE.fullmatch(p.name)) and (p / "state.pt").exists()]
    return sorted(found)


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    done = _complete(Path(ckpt_root))
    return done[-1][1] if done else None


def save_checkpoint(ckpt_root: Path, step: int, state: dict, keep: int) -> Path:
    """Write state to ckpt_root/step_<step>/state.pt atomically, then keep the `keep` newest."""
    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    for stale in ckpt_root.glob(".tmp-*"):  # left by a save that was killed
        shutil.rmtree(stale, ignore_errors=True)
    final = ckpt_root / f"step_{step:06d}"
    tmp = ckpt_root / f".tmp-step_{step:06d}-{os.getpid()}"
    tmp.mkdir()
    torch.save(state, tmp / "state.pt")
    if final.exists():  # re-saving the same step (e.g. after a resume): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _, old in _complete(ckpt_root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "state.pt"
    return torch.load(path, map_location=map_location, weights_only=False)
