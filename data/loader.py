"""Random training windows from a prepared split, reproducible from (seed, step, micro) and
sliced by rank."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from errors import UserError


class TokenWindows:
    """`context`-token windows of `<data_dir>/<split>.bin`, drawn nanoGPT-style: start offsets
    uniform in [0, tokens - context - 1], y = x shifted by one token."""

    def __init__(self, data_dir, split: str, context: int):
        if split not in ("train", "val"):
            raise UserError(f"split={split!r}: choose train or val")
        self.path = Path(data_dir) / f"{split}.bin"
        if not self.path.is_file():
            raise UserError(f"{self.path} does not exist: prepare the data with `python -m data.prepare data=...`")
        self.split, self.context = split, int(context)
        self.tokens = os.path.getsize(self.path) // 2  # uint16
        if self.tokens < self.context + 1:
            raise UserError(f"{self.path} has {self.tokens:,} tokens, fewer than model.context+1="
                            f"{self.context + 1}: lower model.context (or use more data)")

    def __len__(self) -> int:
        return self.tokens

    def batch(self, batch_size: int, seed: int, step: int, rank: int = 0, micro: int = 0, world: int = 1):
        """(x, y) int64 CPU tensors (batch_size, context): rank `rank`'s rows of the global
        micro-batch of batch_size x world windows drawn from rng(seed, step, micro). A pure
        function of its arguments, so a resumed run draws exactly the batches it would have
        drawn, and the global batch is the same for every world size (a run can resume on
        another number of ranks, and N ranks train on what one process would)."""
        import torch  # here only: `import data` and `python -m data.prepare` load no torch

        if seed < 0:
            raise UserError(f"seed={seed} must be non-negative")
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world}")
        rng = np.random.default_rng([seed, step, micro])
        starts = rng.integers(0, self.tokens - self.context, size=batch_size * world)  # high is exclusive
        starts = starts[rank * batch_size : (rank + 1) * batch_size]
        # Re-opened per call, as nanoGPT does: a long-lived np.memmap keeps every page it touched
        # mapped, which shows up as growing memory on big corpora. Opening costs microseconds.
        data = np.memmap(self.path, dtype=np.uint16, mode="r")
        rows = data[starts[:, None] + np.arange(self.context + 1)].astype(np.int64)  # one gather
        del data
        return torch.from_numpy(rows[:, :-1].copy()), torch.from_numpy(rows[:, 1:].copy())
