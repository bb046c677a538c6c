"""How an optimizer turns the param table into per-group lr / eps / weight decay, and the
LR schedules."""

from optim.build import build_optimizer, param_groups
from optim.schedule import lr_factor, set_lr

__all__ = ["build_optimizer", "param_groups", "lr_factor", "set_lr"]
