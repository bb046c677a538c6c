"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Alg. 2):
    c_t = beta1·m_{t-1} + (1 - beta1)·g_t
    W  <- W - lr·(sign(c_t) + wd·W)          (decoupled weight decay)
    m_t = beta2·m_{t-1} + (1 - beta2)·g_t
Every entry moves by exactly ±lr before weight decay. Foreach ops: one kernel per group, not
per tensor. The spectral paper's rules for Lion are AdamW's (docs/parameterizations.md §2.4; spectral paper App. C.7).
"""

from __future__ import annotations

import torch

from optim.base import GroupwiseOptimizer


class Lion(GroupwiseOptimizer):
    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0):
        if not 0.0 <= lr:
            raise ValueError(f"invalid lr {lr}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    def group_step(self, group, params, grads):
        (moms,) = self.state_tensors(params, "exp_avg")
        beta1, beta2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        if wd:
            torch._foreach_mul_(params, 1.0 - lr * wd)
        update = torch._foreach_lerp(moms, grads, 1.0 - beta1)  # c_t = beta1 m + (1-beta1) g
        torch._foreach_sign_(update)
        torch._foreach_add_(params, update, alpha=-lr)
        torch._foreach_lerp_(moms, grads, 1.0 - beta2)
