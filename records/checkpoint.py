"""Atomic checkpoints: each is written to a temp dir and renamed into place, so a crash or a
kill mid-save never leaves a half-written checkpoint that looks complete.

Layout: <run dir>/checkpoints/step_000500/ holding either
- state.pt: one file (a single-process run): model, optimizer, step, RNG, ...; or
- a torch.distributed.checkpoint (DCP) of {"model", "optim"} written by every rank (FSDP2 / DDP
  runs), plus meta.pt (step, losses, config, table; rank 0) and rng_rank<r>.pt. DCP reshards on
  load, so such a checkpoint resumes on any number of ranks, one process included.

Everything in them is tensors and plain containers (dict, list, str, int, float, bool, None), so
they load with `torch.load(weights_only=True)`: a file whose pickle asks for anything else (a
crafted `__reduce__`, say) is refused before any of it runs (`NotACheckpoint`). A file that does
not load at all (truncated, empty) raises `DamagedCheckpoint`; `find_resumable` then falls back
to the newest checkpoint that loads and moves the damaged one to checkpoints/damaged/.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import warnings
from pathlib import Path

import torch
import torch.distributed as dist

from errors import UserError

_COMPLETE = re.compile(r"step_(\d+)")
DAMAGED = "damaged"  # checkpoints/damaged/: set aside, never read, never deleted
RESUME_HINT = "delete it or point train.resume elsewhere"


class NotACheckpoint(UserError):
    """A file this program did not write: its pickle asks for more than tensors and containers."""


class DamagedCheckpoint(Exception):
    """A checkpoint file that does not load (truncated, empty, garbled)."""


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


def _save(obj, path: Path) -> None:
    """torch.save through a Python file, flushed to disk: a full disk raises OSError(ENOSPC)
    here (torch's own file writer reports it as an opaque RuntimeError)."""
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(ckpt_root: Path, step: int, state: dict, keep: int) -> Path:
    """Single process: write state to ckpt_root/step_<step>/state.pt atomically, keep the newest `keep`."""
    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    _clean_stale(ckpt_root)
    tmp = ckpt_root / f".tmp-step_{step:06d}-{os.getpid()}"
    tmp.mkdir()
    try:
        _save(state, tmp / "state.pt")
    except BaseException:  # a full disk, a signal: the temp dir goes, the earlier checkpoints stay
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(ckpt_root, tmp, ckpt_root / f"step_{step:06d}", keep)


def save_distributed(ckpt_root: Path, step: int, model, optimizers, meta: dict, rng: dict, keep: int, rank: int) -> Path:
    """Every rank: DCP-save model and optimizer shards into a temp dir; rank 0 renames it into
    place after a barrier (so the rename sees every rank's files)."""
    import torch.distributed.checkpoint as dcp  # torchrun runs only: slow to import, even with torch loaded
    from torch.distributed.checkpoint.state_dict import get_state_dict

    ckpt_root = Path(ckpt_root)
    tmp = ckpt_root / f".tmp-step_{step:06d}"
    if rank == 0:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        _clean_stale(ckpt_root)
        tmp.mkdir()
    dist.barrier()
    try:
        msd, osd = get_state_dict(model, optimizers)
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(tmp))
        _save(rng, tmp / f"rng_rank{rank}.pt")
        if rank == 0:
            _save(meta, tmp / "meta.pt")  # written last: its presence marks the save complete
    except BaseException:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    dist.barrier()
    final = ckpt_root / f"step_{step:06d}"
    if rank == 0:
        _publish(ckpt_root, tmp, final, keep)
    dist.barrier()
    return final


def is_distributed_checkpoint(path: Path) -> bool:
    return (Path(path) / "meta.pt").exists()


def _load(file: Path, hint: str, map_location="cpu"):
    """torch.load(weights_only=True), its failures sorted into refused and damaged."""
    try:
        return torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        wants = re.search(r"GLOBAL (\S+)", str(e))
        what = f"its pickle asks for {wants.group(1)}" if wants else "its pickle holds more than tensors and containers"
        raise NotACheckpoint(f"{file} is not a checkpoint this program wrote ({what}; this program refuses to unpickle "
                             f"it, so none of it ran): {hint}") from None
    except FileNotFoundError:
        raise
    except Exception as e:  # EOFError (empty), RuntimeError (truncated zip), KeyError/ValueError (garbage)
        reason = "empty file" if file.stat().st_size == 0 else (str(e).splitlines() or [type(e).__name__])[0][:80]
        raise DamagedCheckpoint(f"{file.name}: {reason}") from None


def load_distributed(path: Path, model, optimizers, rank: int) -> dict | None:
    """Load a DCP checkpoint into (possibly sharded) model and optimizers, on any world size.
    Returns this rank's RNG state, or None when the rank did not exist at save time (the loop
    state is in meta.pt: `load_checkpoint`)."""
    import torch.distributed.checkpoint as dcp  # torchrun runs only: slow to import, even with torch loaded
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    path = Path(path)
    msd, osd = get_state_dict(model, optimizers)
    state = {"model": msd, "optim": osd}
    with warnings.catch_warnings():  # one process loading a sharded checkpoint is intended here
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizers, model_state_dict=state["model"], optim_state_dict=state["optim"])
    rng_file = path / f"rng_rank{rank}.pt"
    return _load(rng_file, RESUME_HINT) if rng_file.exists() else None


def load_checkpoint(path: Path, map_location="cpu", hint: str = RESUME_HINT) -> dict:
    """A single-file checkpoint (state.pt); for a DCP one, its meta.pt. Raises NotACheckpoint
    (a one-line UserError ending in `hint`) or DamagedCheckpoint."""
    path = Path(path)
    if path.is_dir():
        path = path / ("state.pt" if (path / "state.pt").exists() else "meta.pt")
    return _load(path, hint, map_location)


def set_aside(path: Path) -> Path:
    """Move a damaged checkpoint dir to <checkpoints>/damaged/<name> (nothing is deleted)."""
    path = Path(path)
    dest_root = path.parent / DAMAGED
    dest_root.mkdir(exist_ok=True)
    dest, n = dest_root / path.name, 1
    while dest.exists():
        dest, n = dest_root / f"{path.name}.{n}", n + 1
    os.replace(path, dest)
    return dest


def find_resumable(ckpt_root: Path) -> tuple[Path | None, dict | None, list[str]]:
    """The newest checkpoint under ckpt_root that loads, with its state (a DCP checkpoint: its
    meta), and one note per damaged newer checkpoint, each moved to checkpoints/damaged/.
    (None, None, []) when there is none yet; UserError (nothing moved) when none loads."""
    ckpt_root = Path(ckpt_root)
    damaged = []
    for _, path in reversed(_complete(ckpt_root)):
        try:
            state = load_checkpoint(path)
        except DamagedCheckpoint as e:
            damaged.append((path, e))
            continue
        notes = []
        for bad, why in damaged:
            dest = set_aside(bad)
            notes.append(f"checkpoint {bad.name} is damaged ({why}): moved to {dest.relative_to(ckpt_root.parent)}; "
                         f"resuming from {path.name}, the newest that loads")
        return path, state, notes
    if damaged:
        raise UserError(f"no checkpoint in {ckpt_root} loads ({'; '.join(f'{p.name}: {e}' for p, e in damaged)}): "
                        "start a new run with a new hydra.run.dir (the damaged ones stay where they are)")
    return None, None, []
