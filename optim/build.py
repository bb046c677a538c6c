"""Turn the param table into torch optimizer param groups: one group per distinct
(lr, weight_decay, eps) and kind of tensor, never ad-hoc name checks."""

from __future__ import annotations

import importlib
from collections import defaultdict

import torch

from errors import UserError
from model import HIDDEN_ROLES
from param.scaling import spec_config, spec_of


def param_groups(model: torch.nn.Module, table, kind=lambda row: "", unwrap=lambda name: name) -> list[dict]:
    """One group per distinct (lr, weight_decay, eps, kind(row)). `kind` separates tensors that
    need different treatment at equal hyperparameters (hidden matrices for an extra warmup or
    for Muon, W_qkv for per-Q/K/V orthogonalisation). `unwrap` turns a wrapped model's parameter
    names into the table's (parallel.unwrap_name, from the caller that wrapped it)."""
    rows = table.by_name()
    groups: dict[tuple, list] = defaultdict(list)
    names: dict[tuple, list] = defaultdict(list)
    seen = set()
    for name, p in model.named_parameters():
        name = unwrap(name)
        if name not in rows:
            raise KeyError(f"parameter {name} is missing from the param table")
        seen.add(name)
        row = rows[name]
        key = (row.lr, row.weight_decay, row.eps, kind(row))
        groups[key].append(p)
        names[key].append(name)
    missing = set(rows) - seen
    if missing:
        raise KeyError(f"param table rows with no parameter: {sorted(missing)[:3]}")
    return [
        {"params": ps, "lr": lr, "peak_lr": lr, "weight_decay": wd, "eps": eps, "kind": k, "names": names[key],
         "extra_warmup": k.startswith("hidden")}
        for key, ps in groups.items()
        for lr, wd, eps, k in [key]
    ]


def _kind(cfg):
    extra = (cfg.schedule.get("extra_warmup") or "none") != "none"
    hybrid = spec_of(cfg.optim).hidden is not None
    per_qkv = hybrid and cfg.optim.get("qkv_split", True)

    def kind(row) -> str:
        if row.role not in HIDDEN_ROLES or not (extra or hybrid):
            return ""
        return "hidden_qkv" if per_qkv and row.role == "attn_qkv" else "hidden"

    return kind


def _no_eps(groups):
    for g in groups:
        del g["eps"]
    return groups


# optim.args: the types of the optim.* keys the YAML hands to its _target_
TYPES = {"float": float, "int": int, "bool": bool, "str": str, "tuple": tuple}


def kwargs(o) -> dict:
    """The keyword arguments optim.args names, from optim.*, converted to the types it gives."""
    out = {}
    for key, kind in o.args.items():
        if kind not in TYPES:
            raise UserError(f"optim.args.{key}={kind!r}: choose a type from {', '.join(TYPES)}")
        if key not in o:
            raise UserError(f"optim={o.name}: optim.args names {key!r}, which optim has no value for: add optim.{key}=...")
        out[key] = TYPES[kind](o[key])
    return out


def speed(o, device_type: str) -> dict:
    """optim.speed: torch's fast paths. `adam`: fused on CUDA, and on CPU unless `optim.fused=false`
    (one pass over each tensor per step where foreach makes ~10: 12 ms against 83 ms per step for
    12.6M parameters, 512 x 4, one thread, ~4% of a training step), else foreach (one kernel per
    group, not per tensor). The two round differently in the last bit; the CPU science sweeps
    (experiment=cpu_transfer) keep foreach so that their published numbers reproduce bit for bit.
    `fused`: fused on CUDA, else foreach. `foreach`: foreach except on MPS. `none`: the optimizer's own loop."""
    kind = o.get("speed", "none")
    if kind == "adam":
        fused = device_type == "cuda" or (device_type == "cpu" and bool(o.get("fused", True)))
        return {"fused": True} if fused else {"foreach": True}
    if kind == "fused":
        return {"fused": True} if device_type == "cuda" else {"foreach": True}
    if kind == "foreach":
        return {"foreach": device_type != "mps"}
    if kind == "none":
        return {}
    raise UserError(f"optim.speed={kind!r}: choose adam, fused, foreach or none")


def target(o):
    """The class (or factory) optim._target_ names, imported: `torch.optim.AdamW`, `optim.lion.Lion`."""
    path = str(o.get("_target_") or "")
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise UserError(f"optim._target_={path!r} (optim={o.name}) is not an importable class or function: "
                        "name one as module.Name, e.g. torch.optim.AdamW") from None


def build_optimizer(cfg, model: torch.nn.Module, table, device_type: str, unwrap=lambda name: name):
    """The optimizer conf/optim/<name>.yaml describes: its _target_ called with the param groups,
    the optim.* values its `args` name, and its `speed` (conf/optim/adamw.yaml shows the fields).
    A new optimizer is its class (none to write if torch has it) and one YAML file. `unwrap`:
    as param_groups'."""
    o = spec_config(cfg.optim)
    groups = param_groups(model, table, _kind(cfg), unwrap)
    if o.get("nesterov") and not float(o.get("momentum") or 0) > 0:
        raise UserError("optim.nesterov=true needs optim.momentum > 0")
    if not spec_of(o).eps:
        groups = _no_eps(groups)
    return target(o)(groups, **kwargs(o), **speed(o, device_type))
