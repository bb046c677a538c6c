"""What our own optimizers share: closure handling and, per param group, the list of
parameters that have gradients; each subclass implements one group's update with foreach ops."""

from __future__ import annotations

import torch


class GroupwiseOptimizer(torch.optim.Optimizer):
    def group_step(self, group: dict, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        raise NotImplementedError

    def state_tensors(self, params, *names: str) -> list[list[torch.Tensor]]:
        """Per-parameter state buffers (zeros like the parameter at first use), one list per name."""
        for p in params:
            state = self.state[p]
            for name in names:
                if name not in state:
                    state[name] = torch.zeros_like(p)
        return [[self.state[p][name] for p in params] for name in names]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self.group_step(group, params, [p.grad for p in params])
        return loss
