"""LR schedules as a factor that multiplies every param group's own peak LR, so no schedule can
erase the per-tensor scaling of the param table.

Base schedules (`schedule.name`): constant, cosine, linear, wsd (warmup-stable-decay). Warmup is
linear, given in steps or as a fraction of training. On top, `schedule.extra_warmup` adds the
weight-decay paper's explicit replacements for muP's implicit warmup (Kosson et al. 2025,
docs/parameterizations.md §6.3), applied to hidden matrices only and meant for SP learning rates:
- exponential: s_t = m^min(0, t/T_W - 1)  (their Eq. 12), 1/m at t = 0, 1 from t = T_W on;
- decay_away:  s_t = (1 + (m^2 - 1)·prod_{tau<=t}(1 - eta_tau·lambda)^2)^(-1/2), our
  reconstruction of their Eq. 13 [I] (the paper's exact form was not available): the ratio of
  early relative updates of (eta/m, m·lambda) to (eta, lambda), their Eq. 11 with rho_0 = rho_inf.
"""

from __future__ import annotations

import math

import numpy as np

from errors import UserError
from model import HIDDEN_ROLES

BASES = ("constant", "cosine", "linear", "wsd")
EXTRA = ("none", "exponential", "decay_away")
DECAY_SHAPES = ("linear", "cosine", "sqrt")


def steps_of(value, total: int, name: str) -> int:
    """Steps given as an integer, or as a fraction of training (a float in [0, 1))."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise UserError(f"schedule.{name}={value!r}: give steps (an integer >= 0) or a fraction of train.steps in [0, 1)")
    if isinstance(value, float) and value < 1:
        return int(round(value * total))
    if int(value) != value:
        raise UserError(f"schedule.{name}={value!r}: give steps (an integer >= 0) or a fraction of train.steps in [0, 1)")
    return int(value)


def warmup_steps(warmup, total: int) -> int:
    return steps_of(warmup, total, "warmup")


def _decay(progress: float, shape: str, floor: float) -> float:
    """From 1 at progress 0 to `floor` at progress 1."""
    progress = min(max(progress, 0.0), 1.0)
    if shape == "cosine":
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if shape == "linear":
        return floor + (1 - floor) * (1 - progress)
    if shape == "sqrt":  # "1 - sqrt" cooldown (Hägele et al. 2024)
        return floor + (1 - floor) * (1 - math.sqrt(progress))
    raise UserError(f"schedule.decay_shape={shape!r}: choose {', '.join(DECAY_SHAPES)}")


def lr_factor(step: int, total: int, sched) -> float:
    """Base schedule factor for optimizer step `step` (0-based) of `total`."""
    warm = warmup_steps(sched.warmup, total)
    if step < warm:
        return (step + 1) / warm  # linear warmup, never exactly 0
    name, floor = sched.name, float(sched.get("min_lr_ratio", 0.0))
    if name == "constant":
        return 1.0
    if name == "cosine":
        return _decay((step - warm) / max(1, total - warm), "cosine", floor)
    if name == "linear":
        return _decay((step - warm) / max(1, total - warm), "linear", floor)
    if name == "wsd":
        decay = steps_of(sched.decay, total, "decay")
        start = total - decay
        return 1.0 if step < start else _decay((step - start) / max(1, decay), sched.decay_shape, floor)
    raise UserError(f"schedule.name={name!r}: choose one of {', '.join(BASES)}")


class Schedule:
    """The base factor for every group, and the extra warmup for hidden-matrix groups."""

    def __init__(self, sched, total: int, m: float = 1.0, hidden_lr: float = 0.0, hidden_wd: float = 0.0):
        self.sched, self.total = sched, total
        self.extra = sched.get("extra_warmup", "none") or "none"
        if self.extra not in EXTRA:
            raise UserError(f"schedule.extra_warmup={self.extra!r}: choose {', '.join(EXTRA)}")
        lr_factor(0, total, sched)  # validate now, not at step 0 of the loop
        self.base = [lr_factor(t, total, sched) for t in range(total)] if total <= 10_000_000 else None
        self._extra = None
        if self.extra == "exponential":
            tw = max(1, steps_of(sched.extra_warmup_steps, total, "extra_warmup_steps"))
            self._extra = [m ** min(0.0, t / tw - 1.0) for t in range(total)]  # Kosson et al. Eq. 12
        elif self.extra == "decay_away":
            if hidden_wd <= 0:
                raise UserError("schedule.extra_warmup=decay_away decays with eta·lambda: set optim.weight_decay > 0")
            lrs = hidden_lr * np.array(self.base)
            prod = np.cumprod((1.0 - lrs * hidden_wd) ** 2)  # prod_{tau<=t}(1 - eta_tau·lambda)^2
            self._extra = list((1.0 + (m * m - 1.0) * prod) ** -0.5)

    def factors(self, step: int) -> tuple[float, float]:
        """(base factor, extra factor for hidden matrices) at optimizer step `step`."""
        base = self.base[step] if self.base is not None else lr_factor(step, self.total, self.sched)
        return base, (self._extra[step] if self._extra is not None else 1.0)

    def apply(self, optimizer, step: int) -> float:
        base, extra = self.factors(step)
        set_lr(optimizer, base, extra)
        return base


def set_lr(optimizer, factor: float, extra: float = 1.0) -> None:
    """group lr = group peak lr x factor (x extra for hidden-matrix groups); the loop's only
    per-step work over param groups."""
    for group in optimizer.param_groups:
        group["lr"] = group["peak_lr"] * factor * (extra if group.get("extra_warmup") else 1.0)


def make_schedule(cfg, table) -> Schedule:
    """The run's schedule; the extra warmups read m and the hidden matrices' lr and wd from the table."""
    hidden = next(r for r in table.rows if r.role in HIDDEN_ROLES)
    return Schedule(cfg.schedule, int(cfg.train.steps), table.globals["m"], hidden.lr, hidden.weight_decay)
