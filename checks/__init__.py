"""Checks that a parameterization is right, by measurement: coordinate checks over width and depth
(checks/coord_check.py), spectral-norm checks of weights and updates (checks/spectral_check.py),
the sweep and verdict machinery they share (checks/core.py) and their command line
(checks/runner.py). Above the training loop in the import layers: a check builds its runs with
the same pieces train.py uses.

    python -m checks.coord_check param=mup                    # README, "Checking a parameterization"
    python -m checks.spectral_check param=spectral optim=muon_kimi

A check is a module with the interface `Check` below; `checks.runner.check_one(tool, ...)` runs
any of them over sizes and seeds and judges its claims.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence


class Check(Protocol):
    """What checks.runner needs of a check (a module with these names)."""

    QUANTITIES: Sequence[str]  # what it measures at every step, e.g. "h_L", "W.attn_qkv"

    def steps(self, cfg) -> list[int]: ...  # the steps at which it measures

    def measure(self, cfg, seed: int) -> dict[str, list[float]]: ...  # quantity -> its value at each step

    def claims(self, cfg, family: str, alpha: float | None) -> list[Any]: ...  # core.Claim's it judges

    def plot(self, sweep, quantities, out) -> None: ...  # one sweep's figure

    def plot_compare(self, sweeps, quantities, path) -> None: ...  # several parameterizations side by side
