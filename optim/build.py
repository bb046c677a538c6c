"""Turn the param table into torch optimizer param groups: one group per distinct
(lr, weight_decay, eps), never ad-hoc name checks."""

from __future__ import annotations

from collections import defaultdict

import torch

from cli import UserError
from model import HIDDEN_ROLES, clean_name


def param_groups(model: torch.nn.Module, table, split_hidden: bool = False) -> list[dict]:
    """One group per distinct (lr, weight_decay, eps); with split_hidden, hidden matrices get
    groups of their own, flagged `extra_warmup` (the schedule's extra warmup applies to them)."""
    rows = table.by_name()
    groups: dict[tuple, list] = defaultdict(list)
    names: dict[tuple, list] = defaultdict(list)
    seen = set()
    for name, p in model.named_parameters():
        name = clean_name(name)
        if name not in rows:
            raise KeyError(f"parameter {name} is missing from the param table")
        seen.add(name)
        row = rows[name]
        key = (row.lr, row.weight_decay, row.eps, split_hidden and row.role in HIDDEN_ROLES)
        groups[key].append(p)
        names[key].append(name)
    missing = set(rows) - seen
    if missing:
        raise KeyError(f"param table rows with no parameter: {sorted(missing)[:3]}")
    return [
        {"params": ps, "lr": lr, "peak_lr": lr, "weight_decay": wd, "eps": eps, "extra_warmup": hidden, "names": names[key]}
        for key, ps in groups.items()
        for lr, wd, eps, hidden in [key]
    ]


def build_optimizer(cfg, model: torch.nn.Module, table, device_type: str) -> torch.optim.Optimizer:
    o = cfg.optim
    groups = param_groups(model, table, split_hidden=(cfg.schedule.get("extra_warmup") or "none") != "none")
    # fused kernels on CUDA; foreach (one kernel per group, not per tensor) elsewhere
    fast = {"fused": True} if device_type == "cuda" else {"foreach": True}
    if o.name in ("adamw", "adam"):
        cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        return cls(groups, lr=float(o.lr), betas=tuple(o.betas), eps=float(o.eps), **fast)
    if o.name == "sgd":
        for g in groups:
            del g["eps"]
        if o.nesterov and not o.momentum > 0:
            raise UserError("optim.nesterov=true needs optim.momentum > 0")
        return torch.optim.SGD(groups, lr=float(o.lr), momentum=float(o.momentum), nesterov=bool(o.nesterov), **fast)
    raise UserError(f"optim={o.name!r} has no builder in optim/build.py")
