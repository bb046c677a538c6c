"""Adam-atan2 (Everett et al. 2024, docs/parameterizations.md §4): Adam without epsilon, scale invariant.
    m_hat = m/(1 - beta1^t),  v_hat = v/(1 - beta2^t)
    W <- W - lr·(a·atan2(m_hat, b·sqrt(v_hat)) + wd·W)    (decoupled weight decay)
with a = 1.27 (~4/pi, so that a·atan(1) ~ 1 matches a unit Adam step) and b = 1 (the reference
implementation's constants; the paper's text was not available, docs/parameterizations.md §4). Multiplying every
gradient by a constant leaves the update unchanged, so there is no epsilon to scale.

atan2(y, x) with x >= 0 is computed as atan(y / x) with foreach ops; x is floored at 1e-38
only so that an entry whose gradients were all exactly zero gets atan(0/1e-38) = 0, not NaN.
"""

from __future__ import annotations

import math

import torch

from optim.base import GroupwiseOptimizer

TINY = 1e-38


class AdamAtan2(GroupwiseOptimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.95), weight_decay: float = 0.0, a: float = 1.27, b: float = 1.0):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay, "a": a, "b": b})

    def group_step(self, group, params, grads):
        m, v = self.state_tensors(params, "exp_avg", "exp_avg_sq")
        for p in params:  # every tensor of a group steps together; the count lives per tensor for checkpoints
            self.state[p]["step"] = self.state[p].get("step", 0) + 1
        t = self.state[params[0]]["step"]
        beta1, beta2 = group["betas"]
        lr, wd, a, b = group["lr"], group["weight_decay"], group["a"], group["b"]
        torch._foreach_lerp_(m, grads, 1.0 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1.0 - beta2)
        if wd:
            torch._foreach_mul_(params, 1.0 - lr * wd)
        # atan2(m/(1-b1^t), b·sqrt(v/(1-b2^t))) = atan(m / (b·sqrt(v)·(1-b1^t)/sqrt(1-b2^t)))
        denom = torch._foreach_sqrt(v)
        torch._foreach_mul_(denom, b * (1.0 - beta1**t) / math.sqrt(1.0 - beta2**t))
        torch._foreach_clamp_min_(denom, TINY)
        ratio = torch._foreach_div(m, denom)
        torch._foreach_atan_(ratio)
        torch._foreach_add_(params, ratio, alpha=-lr * a)
