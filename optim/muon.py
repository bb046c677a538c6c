"""Muon (Jordan et al. 2024) for hidden matrices, and the Muon + AdamW hybrids of the spectral
paper (docs/parameterizations.md §2.4, §5): Muon or Muon-Kimi on the hidden matrices, AdamW on everything else.

Update of one matrix (docs/parameterizations.md §2.4; spectral paper Eqs. 9 and 17):
    B <- mu·B + G;  U = G + mu·B (Nesterov) or B;  O = NS(U) ~ U_s V_s^T (orthogonalised)
    W <- W·(1 - lr·wd) - lr·scale·O
with scale = 0.2·sqrt(max(n_in, n_out)) for Muon-Kimi (Liu et al. 2025, "Muon is Scalable":
matches AdamW's update RMS), sqrt(max(1, n_out/n_in)) for Keller Jordan's Muon ("original"), or 1.
NS is the quintic Newton-Schulz iteration X <- a·X + (b·A + c·A²)·X with A = X·X^T, X_0 = U/||U||_F
and (a, b, c) = (3.4445, -4.7750, 2.0315): it maps every singular value into roughly [0.7, 1.2]
in 5 steps. Same-shaped matrices are orthogonalised as one batch (one bmm chain per shape, not per
tensor). `split=3` orthogonalises the Q, K and V blocks of W_qkv separately.

Sharded parameters (FSDP2 DTensors) are gathered to the full matrix for NS and the local shard of
the result is kept: every rank does the same NS on the full matrix (see _full / _local).
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch

from optim.base import GroupwiseOptimizer

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)  # Jordan et al. 2024 (the Muon blog post)


def orthogonalize(g: torch.Tensor, steps: int = 5, coefficients=NS_COEFFICIENTS, eps: float = 1e-7) -> torch.Tensor:
    """Approximate U V^T of each matrix in g (shape (..., n, k)) by Newton-Schulz."""
    a, b, c = coefficients
    x = g.to(torch.bfloat16 if g.is_cuda else torch.float32)
    wide = x.size(-2) <= x.size(-1)
    if not wide:
        x = x.mT  # iterate on the wide orientation: X X^T is the small Gram matrix
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + eps)  # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if wide else x.mT).to(g.dtype)


def update_scale(kind: str, n_out: int, n_in: int) -> float:
    if kind == "kimi":
        return 0.2 * math.sqrt(max(n_in, n_out))  # Liu et al. 2025: RMS matched to AdamW's
    if kind == "original":
        return math.sqrt(max(1.0, n_out / n_in))  # Jordan et al. 2024
    if kind == "none":
        return 1.0
    raise ValueError(f"unknown Muon scale {kind!r}")


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _local(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`full` laid out as parameter `like` (itself when not sharded). Every rank computed the
    same full matrix, so each keeps its own shard: no communication (src_data_rank=None)."""
    if not hasattr(like, "device_mesh"):
        return full
    from torch.distributed.tensor import distribute_tensor  # sharded (FSDP2) parameters only: slow to import

    return distribute_tensor(full, like.device_mesh, like.placements, src_data_rank=None)


class Muon(GroupwiseOptimizer):
    def __init__(self, params, lr: float = 0.02, weight_decay: float = 0.0, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5, scale: str = "kimi", split: int = 1):
        update_scale(scale, 1, 1)
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay, "momentum": momentum, "nesterov": nesterov,
                                  "ns_steps": ns_steps, "scale": scale, "split": split})

    def group_step(self, group, params, grads):
        for p in params:
            if p.ndim != 2:
                raise ValueError(f"Muon takes matrices only; got a tensor of shape {tuple(p.shape)}")
        (bufs,) = self.state_tensors(params, "momentum_buffer")
        mu, lr, wd, split = group["momentum"], group["lr"], group["weight_decay"], group["split"]
        torch._foreach_mul_(bufs, mu)
        torch._foreach_add_(bufs, grads)
        updates = torch._foreach_add(grads, bufs, alpha=mu) if group["nesterov"] else bufs
        if wd:
            torch._foreach_mul_(params, 1.0 - lr * wd)
        by_shape = defaultdict(list)  # (rows per block, cols) -> [(param, full update as blocks)]
        for p, u in zip(params, updates):
            u = _full(u)
            rows, cols = u.shape
            if rows % split:
                raise ValueError(f"cannot split a {rows}x{cols} matrix into {split} row blocks")
            by_shape[(rows // split, cols)].append((p, u.reshape(split, rows // split, cols)))
        for (n_out, n_in), items in by_shape.items():
            ortho = orthogonalize(torch.cat([u for _, u in items]), group["ns_steps"])
            step = lr * update_scale(group["scale"], n_out, n_in)
            for (p, _), o in zip(items, ortho.split(split)):
                p.add_(_local(o.reshape(-1, n_in), p), alpha=-step)


class Hybrid:
    """Several torch optimizers stepped as one (Muon on hidden matrices, AdamW on the rest).
    `param_groups` is the concatenation of the parts' current groups (the same dicts), so the LR
    schedule reaches every group, after a checkpoint load too; state dicts nest by part."""

    def __init__(self, parts: dict[str, torch.optim.Optimizer]):
        self.parts = parts
        self.defaults = {}

    @property
    def param_groups(self) -> list[dict]:
        # read through every time: load_state_dict gives the parts new group dicts
        return [g for opt in self.parts.values() for g in opt.param_groups]

    @property
    def state(self):
        merged = {}
        for opt in self.parts.values():
            merged.update(opt.state)
        return merged

    def step(self, closure=None):
        for opt in self.parts.values():
            opt.step()

    def zero_grad(self, set_to_none: bool = True):
        for opt in self.parts.values():
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return {name: opt.state_dict() for name, opt in self.parts.items()}

    def load_state_dict(self, state):
        for name, opt in self.parts.items():
            opt.load_state_dict(state[name])


def hybrid(groups: list[dict], *, lr: float, momentum: float, nesterov: bool, ns_steps: int, scale: str,
           betas: tuple, eps: float, **fast) -> Hybrid:
    """conf/optim/muon.yaml and muon_kimi.yaml's _target_: Muon on the hidden matrices (the groups
    optim.build.param_groups marks `hidden`, W_qkv orthogonalised per Q, K, V when marked
    `hidden_qkv`), AdamW (with torch's fast path `fast`) on every other tensor."""
    hidden = [g for g in groups if g["kind"].startswith("hidden")]
    rest = [g for g in groups if not g["kind"].startswith("hidden")]
    for g in hidden:
        g["split"] = 3 if g["kind"] == "hidden_qkv" else 1
        del g["eps"]
    muon = Muon(hidden, lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps, scale=scale)
    return Hybrid({"muon": muon, "adamw": torch.optim.AdamW(rest, lr=lr, betas=betas, eps=eps, **fast)})

