"""How an optimizer turns the param table into per-group lr / eps / weight decay, and the
LR schedules."""

from optim.build import build_optimizer, param_groups
from optim.schedule import Schedule, lr_factor, make_schedule, set_lr

__all__ = ["build_optimizer", "param_groups", "lr_factor", "set_lr", "Schedule", "make_schedule"]
