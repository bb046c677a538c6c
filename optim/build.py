"""Turn the param table into torch optimizer param groups: one group per distinct
(lr, weight_decay, eps), never ad-hoc name checks."""

from __future__ import annotations

from collections import defaultdict

import torch

from cli import UserError
from model import clean_name


def param_groups(model: torch.nn.Module, table) -> list[dict]:
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
        key = (row.lr, row.weight_decay, row.eps)
        groups[key].append(p)
        names[key].append(name)
    missing = set(rows) - seen
    if missing:
        raise KeyError(f"param table rows with no parameter: {sorted(missing)[:3]}")
    return [
        {"params": ps, "lr": lr, "peak_lr": lr, "weight_decay": wd, "eps": eps, "names": names[(lr, wd, eps)]}
        for (lr, wd, eps), ps in groups.items()
    ]


def build_optimizer(cfg, model: torch.nn.Module, table, device_type: str) -> torch.optim.Optimizer:
    o = cfg.optim
    groups = param_groups(model, table)
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
