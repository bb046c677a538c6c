"""LR schedules as a factor in [0, 1] that multiplies every param group's own peak LR, so
no schedule can erase the per-tensor scaling of the param table."""

from __future__ import annotations

import math

from cli import UserError


def warmup_steps(warmup, total: int) -> int:
    """Warmup given in steps (int) or as a fraction of training (float < 1)."""
    if isinstance(warmup, float) and 0 <= warmup < 1:
        return int(round(warmup * total))
    if warmup < 0 or int(warmup) != warmup:
        raise UserError(f"schedule.warmup={warmup}: give steps (an integer >= 0) or a fraction of train.steps in [0, 1)")
    return int(warmup)


def lr_factor(step: int, total: int, sched) -> float:
    """Factor for optimizer step `step` (0-based) of `total`."""
    warm = warmup_steps(sched.warmup, total)
    if step < warm:
        return (step + 1) / warm  # linear warmup, never exactly 0
    if sched.name == "constant":
        return 1.0
    if sched.name == "cosine":
        progress = min(1.0, (step - warm) / max(1, total - warm))
        floor = float(sched.min_lr_ratio)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    raise UserError(f"schedule.name={sched.name!r}: choose cosine or constant")


def set_lr(optimizer, factor: float) -> None:
    """group lr = group peak lr x factor; the loop's only per-step work over param groups."""
    for group in optimizer.param_groups:
        group["lr"] = group["peak_lr"] * factor
