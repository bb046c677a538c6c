"""Atomic checkpoints: each is written to a temp dir and renamed into place, so a crash or a
kill mid-save never leaves a half-written checkpoint that looks complete.

Layout: <run dir>/checkpoints/step_000500/ holding either
- state.pt: one file (a single-process run): model, optimizer, step, RNG, ...; or
- a torch.distributed.checkpoint (DCP) of {"model", "optim"} written by every rank (FSDP2 / DDP
  runs), plus meta.pt (step, losses, config, table; rank 0) and rng_rank<r>.pt. DCP reshards on
  load, so such a checkpoint resumes on any number of ranks, one process included.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch

_COMPLETE = re.compile(r"step_(\d+)")


def _is_complete(p: Path) -> bool:
    return (p / "state.pt").exists() or (p / "meta.pt").exists()


def _complete(ckpt_root: Path) -> list[tuple[int, Path]]:
    if not ckpt_root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_root.iterdir() if (m := _COMPLETE.fullmatch(p.name)) and _is_complete(p)]
    return sorted(found)


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    done = _complete(Path(ckpt_root))
    return done[-1][1] if done else None


def _publish(ckpt_root: Path, tmp: Path, final: Path, keep: int) -> Path:
    if final.exists():  # re-saving the same step (e.g. after a resume): replace it
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _, old in _complete(ckpt_root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _clean_stale(ckpt_root: Path) -> None:
    for stale in ckpt_root.glob(".tmp-*"):  # left by a save that was killed
        shutil.rmtree(stale, ignore_errors=True)


def save_checkpoint(ckpt_root: Path, step: int, state: dict, keep: int) -> Path:
    """Single process: write state to ckpt_root/step_<step>/state.pt atomically, keep the newest `keep`."""
    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    _clean_stale(ckpt_root)
    tmp = ckpt_root / f".tmp-step_{step:06d}-{os.getpid()}"
    tmp.mkdir()
    torch.save(state, tmp / "state.pt")
    return _publish(ckpt_root, tmp, ckpt_root / f"step_{step:06d}", keep)


def save_distributed(ckpt_root: Path, step: int, model, optimizers, meta: dict, rng: dict, keep: int, rank: int) -> Path:
    """Every rank: DCP-save model and optimizer shards into a temp dir; rank 0 renames it into
    place after a barrier (so the rename sees every rank's files)."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    ckpt_root = Path(ckpt_root)
    tmp = ckpt_root / f".tmp-step_{step:06d}"
    if rank == 0:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        _clean_stale(ckpt_root)
        tmp.mkdir()
    dist.barrier()
    msd, osd = get_state_dict(model, optimizers)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(tmp))
    torch.save(rng, tmp / f"rng_rank{rank}.pt")
    if rank == 0:
        torch.save(meta, tmp / "meta.pt")  # written last: its presence marks the save complete
    dist.barrier()
    final = ckpt_root / f"step_{step:06d}"
    if rank == 0:
        _publish(ckpt_root, tmp, final, keep)
    dist.barrier()
    return final


def is_distributed_checkpoint(path: Path) -> bool:
    return (Path(path) / "meta.pt").exists()


def load_distributed(path: Path, model, optimizers, rank: int) -> dict | None:
    """Load a DCP checkpoint into (possibly sharded) model and optimizers, on any world size.
    Returns this rank's RNG state, or None when the rank did not exist at save time (the loop
    state is in meta.pt: `load_checkpoint`)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    import warnings

    path = Path(path)
    msd, osd = get_state_dict(model, optimizers)
    state = {"model": msd, "optim": osd}
    with warnings.catch_warnings():  # one process loading a sharded checkpoint is intended here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizers, model_state_dict=state["model"], optim_state_dict=state["optim"])
    rng_file = path / f"rng_rank{rank}.pt"
    return torch.load(rng_file, weights_only=False) if rng_file.exists() else None


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """A single-file checkpoint (state.pt); for a DCP one, its meta.pt."""
    path = Path(path)
    if path.is_dir():
        path = path / ("state.pt" if (path / "state.pt").exists() else "meta.pt")
    return torch.load(path, map_location=map_location, weights_only=False)
