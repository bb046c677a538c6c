"""Training diagnostics of the weight-decay paper and of Adam's ε
(docs/parameterizations.md §6.1, §6.2, §8.9, §8.10).

Off by default (`diagnostics.interval: 0`): then `make_diagnostics` returns None and the loop
does no extra work at all. With `diagnostics.interval=N`, every N-th optimizer step (which is
then also a logging step) costs one extra forward of the step's last micro-batch (eval mode, no
grad, no RNG drawn) and one copy of the matrices; no other step pays anything. Per matrix, with
W the weights before the step, ΔW = W_{t+1} − W_t the actual step (weight decay included) and X
the matrix's input on the same batch (Y = W X, §6.1):

- rel_update    ‖ΔW‖_F / ‖W‖_F
- rel_update_eq √(2·η_t·λ): AdamW's steady-state relative update for scale-invariant weights
                (§6.2; η_t the group's current lr, λ its weight_decay; only where λ > 0)
- weight_rms    RMS of W_{t+1}
- rrc           relative representation change ‖ΔW X‖_F / ‖W X‖_F (§6.1)
- align_ratio   α_ΔW / α_W = rrc / rel_update, with α_A = ‖A X‖_F / (‖A‖_F ‖X‖_F) (§6.1)
- eps_frac      fraction of entries with √v̂ < ε, v̂ = exp_avg_sq / (1 − β2^t), for optimizers
                that keep exp_avg_sq and have an ε (§8.10: must stay << 1%)

rrc and align_ratio are for the hidden matrices and an untied readout (the linear layers);
rel_update and weight_rms for every matrix; eps_frac for every tensor. Metrics are averaged per
role (`diag/<role>/<metric>`; eps_frac is the fraction over all the role's entries), and with
`diagnostics.per_layer=true` also given per tensor (`diag/<name>/<metric>`).
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch

import cli
from errors import UserError
from model import HIDDEN_ROLES, MATRIX_ROLES

LINEAR_ROLES = (*HIDDEN_ROLES, "readout")


def _setting(cfg, key: str, default):
    d = cfg.get("diagnostics") or {}
    return d.get(key, default) if d.get(key) is not None else default


def eps_counts(named_params, optimizer) -> dict[str, tuple[int, int]]:
    """Per tensor: (entries with √v̂ < ε, entries), v̂ = exp_avg_sq / (1 − β2^t), for optimizer
    state that has exp_avg_sq and a group with eps and betas (docs/parameterizations.md §8.10); others are left out."""
    groups = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    out, states = {}, optimizer.state
    for name, p in named_params:
        state, group = states.get(p, {}), groups.get(id(p), {})
        eps, betas = group.get("eps"), group.get("betas")
        if "exp_avg_sq" not in state or not eps or not betas or "step" not in state:
            continue
        vhat = state["exp_avg_sq"].float() / (1.0 - betas[1] ** float(state["step"]))
        out[name] = (int((vhat.sqrt() < eps).sum().item()), vhat.numel())
    return out


def make_diagnostics(cfg, model, optimizer, table, unwrap=lambda name: name) -> "Diagnostics | None":
    """None unless `diagnostics.interval` > 0 (the key may be absent: then off). `unwrap` turns the
    model's parameter names into the table's (parallel.unwrap_name for a wrapped model)."""
    interval = _setting(cfg, "interval", 0)
    max_tokens = _setting(cfg, "max_tokens", 4096)
    for key, value in (("diagnostics.interval", interval), ("diagnostics.max_tokens", max_tokens)):
        cli.check_value(key, value, cli.rule_of(key))  # the one validator (cli.VALUES)
    if interval == 0:
        return None
    if (cfg.get("dist") or {}).get("strategy") == "fsdp2":
        raise UserError("diagnostics.interval needs whole weight matrices: not available with dist=fsdp2 yet; use dist=ddp or one process")
    return Diagnostics(model, optimizer, table, interval, bool(_setting(cfg, "per_layer", False)), max_tokens, unwrap)


class Diagnostics:
    def __init__(self, model, optimizer, table, interval: int, per_layer: bool, max_tokens: int, unwrap=lambda name: name):
        self.model, self.optimizer, self.interval = model, optimizer, interval
        self.per_layer, self.max_tokens = per_layer, max_tokens
        rows = table.by_name()
        self.params = [(unwrap(n), p, rows[unwrap(n)].role) for n, p in model.named_parameters()]
        self.matrices = [(n, p, role) for n, p, role in self.params if role in MATRIX_ROLES]
        self.linears = {}  # weight name -> module whose input is X
        for mod_name, module in model.named_modules():
            name = unwrap(f"{mod_name}.weight")
            if isinstance(module, torch.nn.Linear) and name in rows and rows[name].role in LINEAR_ROLES:
                self.linears[name] = module
        self.before_w: dict[str, torch.Tensor] = {}
        self.inputs: dict[str, torch.Tensor] = {}

    def due(self, step: int) -> bool:
        """Whether optimizer step `step` (1-based, as the loop's `done`) is a diagnostic step."""
        return step % self.interval == 0

    @torch.no_grad()
    def before(self, x: torch.Tensor) -> None:
        """Before optimizer.step(): keep W, and capture each linear layer's input X on batch x."""
        self.before_w = {n: p.detach().float().clone() for n, p, _ in self.matrices}
        self.inputs = {}
        hooks = [m.register_forward_pre_hook(self._keeper(n)) for n, m in self.linears.items()]
        was_training = self.model.training
        self.model.eval()  # no dropout: no RNG drawn, the run's trajectory is untouched
        try:
            with torch.compiler.set_stance("force_eager"):  # compiled blocks run eagerly: no recompile
                self.model(x)
        finally:
            self.model.train(was_training)
            for h in hooks:
                h.remove()

    def _keeper(self, name: str):
        def keep(module, args):
            flat = args[0].detach().reshape(-1, args[0].shape[-1])
            stride = max(1, math.ceil(flat.shape[0] / self.max_tokens))  # spread over the batch
            self.inputs[name] = flat[::stride].float()

        return keep

    @torch.no_grad()
    def after(self) -> dict[str, float]:
        """After optimizer.step(): the metrics of this step, per role (and per tensor)."""
        per: dict[str, dict[str, float]] = {}
        # read every time: a resumed optimizer (or a hybrid's parts) may hold new group dicts
        groups = {id(p): g for g in self.optimizer.param_groups for p in g["params"]}
        for name, p, role in self.matrices:
            w0 = self.before_w[name]
            dw = p.detach().float() - w0
            w_norm, dw_norm = w0.norm().item(), dw.norm().item()
            m = {"rel_update": dw_norm / w_norm if w_norm > 0 else math.nan, "weight_rms": p.detach().float().pow(2).mean().sqrt().item()}
            group = groups.get(id(p), {})
            if group.get("weight_decay", 0) > 0:
                m["rel_update_eq"] = math.sqrt(2.0 * group["lr"] * group["weight_decay"])  # docs/parameterizations.md §6.2
            x = self.inputs.get(name)
            if x is not None:
                wx, dwx = (x @ w0.T).norm().item(), (x @ dw.T).norm().item()
                m["rrc"] = dwx / wx if wx > 0 else math.nan  # docs/parameterizations.md §6.1: ‖ΔY‖/‖Y‖
                m["align_ratio"] = m["rrc"] / m["rel_update"] if m["rel_update"] > 0 else math.nan  # α_ΔW/α_W
            per[name] = m
        counts = eps_counts([(n, p) for n, p, _ in self.params], self.optimizer)
        self.before_w, self.inputs = {}, {}
        return self._aggregate(per, counts)

    def _aggregate(self, per: dict, counts: dict) -> dict[str, float]:
        roles = {n: role for n, _, role in self.params}
        sums: dict[tuple[str, str], list[float]] = defaultdict(list)
        for name, m in per.items():
            for k, v in m.items():
                sums[(roles[name], k)].append(v)
        out = {f"diag/{role}/{k}": sum(v) / len(v) for (role, k), v in sums.items()}
        eps: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for name, (below, n) in counts.items():
            eps[roles[name]][0] += below
            eps[roles[name]][1] += n
        out |= {f"diag/{role}/eps_frac": below / n for role, (below, n) in eps.items()}
        if self.per_layer:
            out |= {f"diag/{name}/{k}": v for name, m in per.items() for k, v in m.items()}
            out |= {f"diag/{name}/eps_frac": below / n for name, (below, n) in counts.items()}
        return out
