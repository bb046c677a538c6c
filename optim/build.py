"""Turn the param table into torch optimizer param groups: one group per distinct
(lr, weight_decay, eps), never ad-hoc name checks."""

from __future__ import annotations

from collections import defaultdict

import torch

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
    if o.name == "adamw":
        # fused kernels on CUDA; foreach (one kernel per group, not per tensor) elsewhere
        fast = {"fused": True} if device_type == "cuda" else {"foreach": True}
        return torch.optim.AdamW(groups, lr=float(o.lr), betas=tuple(o.betas), eps=float(o.eps), **fast)
    raise ValueError(f"optimizer {o.name!r} not implemented")
