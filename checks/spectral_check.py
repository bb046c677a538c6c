"""Spectral check: the RMS->RMS operator norm of every matrix at init and of its first update.

    python -m checks.spectral_check param=mup                     # against width (m)
    python -m checks.spectral_check param=completep check.axis=depth check.sizes=[2,4,8,16,32]
    python -m checks.spectral_check param=sp --json

For each matrix, ‖W‖_R = √(n_in/n_out)·σ_max(W) (the spectral paper's §2.1; n_in, n_out as the tensor is used in
the forward pass: the table's fan_in, fan_out), σ_max by power iteration from a seeded start
(`check.power_iters` steps), times the tensor's forward multiplier (the table's `multiplier`:
α_out for the readout, the residual-branch α_l for the out-projections). Recorded per role,
averaged over blocks:

- W.<role>  at init (step 0);
- dW.<role> for ΔW = W_1 − W_0, one optimizer step on the protocol's first batch (step 1).

With tied embeddings, wte is measured twice: as the embedding (n_in = vocab, n_out = width,
α_in) and as the readout (n_in = width, n_out = vocab, α_out). The verdict judges the claims in
`claims`. Settings: conf/check/coord.yaml (train.steps is not used: one step).
"""

from __future__ import annotations

import math
import sys

import torch

from model import HIDDEN_ROLES, MATRIX_ROLES
from checks import runner as check_cli, core as checks

ROLES = MATRIX_ROLES
QUANTITIES = tuple(f"{kind}.{role}" for kind in ("W", "dW") for role in ROLES)
BRANCH_IN, BRANCH_OUT = ("attn_qkv", "mlp_in"), ("attn_out", "mlp_out")
# Slope of a hidden ‖ΔW‖_R in width under SP, per optimizer (spectral paper Eqs. 9, 17, 21). Entrywise-normalised
# (sign-like) updates have ‖ΔW‖_2 ≈ η√(n_in·n_out), so ‖ΔW‖_R ≈ η·n_in. An optimizer without a
# row gets no SP update claim.
SP_UPDATE_SLOPE = {"adamw": 1.0, "adam": 1.0, "lion": 1.0, "adam_atan2": 1.0,
                   "muon_kimi": 0.5, "muon": 0.0}  # Muon-Kimi: 0.2·η·√max(n_in, n_out); Muon: ‖UVᵀ‖_R = Θ(1)


def steps(cfg) -> list[int]:
    return [0, 1]


@torch.no_grad()
def sigma_max(a: torch.Tensor, iters: int, generator: torch.Generator) -> float:
    """Largest singular value by power iteration on aᵀa from a seeded Gaussian start."""
    a = a.float()
    v = torch.randn(a.shape[1], generator=generator).to(a.device)
    v /= v.norm()
    s = torch.zeros(())
    for _ in range(iters):
        u = a @ v
        u /= u.norm().clamp_min(1e-30)
        v = a.T @ u
        s = v.norm()
        v /= s.clamp_min(1e-30)
    return float(s)


def rms_norm(a: torch.Tensor, fan_in: int, fan_out: int, iters: int, generator: torch.Generator) -> float:
    """‖A‖_R = √(n_in/n_out)·σ_max(A): the largest ratio of output RMS to input RMS (spectral paper §2.1)."""
    return math.sqrt(fan_in / fan_out) * sigma_max(a, iters, generator)


def matrices(model, table) -> list[tuple[str, torch.Tensor, int, int, float]]:
    """(role, tensor, fan_in, fan_out, forward multiplier) of every matrix, the tied readout included."""
    params = dict(model.named_parameters())
    out = []
    for row in table.rows:
        if row.role in ROLES:
            out.append((row.role, params[row.name], row.fan_in, row.fan_out, row.multiplier))
    if model.lm_head is None:  # tied: wte, read as the (vocab x width) readout
        wte = params["wte.weight"]
        out.append(("readout", wte, wte.shape[1], wte.shape[0], table.globals["readout_multiplier"]))
    return out


def measure(cfg, seed: int) -> dict[str, list[float]]:
    """One model at one size: {W.<role>: [at init, NaN], dW.<role>: [NaN, after one step]}."""
    s = checks.setup(cfg, seed)
    mats = matrices(s.model, s.table)
    iters = int(cfg.check.power_iters)
    gen = torch.Generator().manual_seed(seed)
    before = [t.detach().clone() for _, t, _, _, _ in mats]
    w = [mult * rms_norm(t.detach(), fi, fo, iters, gen) for _, t, fi, fo, mult in mats]
    checks.train_step(s, 0)
    dw = [mult * rms_norm(t.detach() - t0, fi, fo, iters, gen) for (_, t, fi, fo, mult), t0 in zip(mats, before)]
    out = {}
    for role in ROLES:
        idx = [i for i, m in enumerate(mats) if m[0] == role]
        if idx:
            out[f"W.{role}"] = [sum(w[i] for i in idx) / len(idx), math.nan]
            out[f"dW.{role}"] = [math.nan, sum(dw[i] for i in idx) / len(idx)]
    return out


def claims(cfg, family: str, alpha: float | None) -> list[checks.Claim]:
    """What is asserted, with tol = check.tolerance and g = check.grow_min:

    width, μP family: W.<hidden> and dW.<hidden> slope 0 ± tol (‖W‖_R = 2σ√d_base for a square
        matrix at σ/√m; ‖ΔW‖_R = Θ(1) is the spectral condition every optimizer map aims at);
        α_out·‖W_out‖_R and α_out·‖ΔW_out‖_R do not grow (slope <= tol: Θ(1) once width >> vocab;
        at width ~ vocab the √vocab term of σ_max makes them shrink).
    width, SP: W.<hidden> slope +1/2 ± tol (σ fixed: ‖W‖_R ≈ σ(n_in/√n_out + √n_in)), the readout's
        >= g; dW.<hidden> slope SP_UPDATE_SLOPE[optim] ± tol (+1 for Adam and the other
        sign-like updates).
    depth, branch exponent alpha: W.attn_qkv, W.mlp_in slope 0; W.attn_out, W.mlp_out -alpha (the
        branch multiplier, init without depth); dW.attn_qkv, dW.mlp_in alpha - 1 (k>=2: 0, k=1: -1/2)
        and dW.attn_out, dW.mlp_out -1 (r·α_l·‖ΔW‖_R flat, Cond. 3.1 C2.2 / Cond. B.1), all ± tol.
    depth, SP with an optimizer in SP_UPDATE_SLOPE: dW.attn_out, dW.mlp_out slope 0 ± tol where the
        condition wants -1: with no 1/L, r·α_l·‖ΔW‖_R grows ∝ r.
    """
    tol, g = float(cfg.check.tolerance), float(cfg.check.grow_min)
    sp_update = SP_UPDATE_SLOPE.get(cfg.optim.name)
    if cfg.check.axis == "width":
        if family == "mup":
            out = [checks.flat(f"{k}.{r}", 0.0, tol, "‖W‖_R, ‖ΔW‖_R flat in width (spectral paper Cond. 3.1, Eq. 6)") for k in ("W", "dW") for r in HIDDEN_ROLES]
            return out + [checks.Claim(f"{k}.readout", -math.inf, tol, "α_out·‖W_out‖_R = O(1) (spectral paper Cond. 3.1)") for k in ("W", "dW")]
        if family == "sp":
            out = [checks.grows(f"W.{r}", "SP: ‖W‖_R ∝ √width (σ fixed)", 0.5 - tol, 0.5 + tol) for r in HIDDEN_ROLES]
            out.append(checks.grows("W.readout", "SP: α_out·‖W_out‖_R grows (σ fixed, no 1/m)", g))
            if sp_update is not None:
                text = f"SP: {cfg.optim.name}'s ‖ΔW‖_R ∝ width^{sp_update:g} (spectral paper Eqs. 9, 17, 21)"
                out += [checks.grows(f"dW.{r}", text, sp_update - tol, sp_update + tol) for r in HIDDEN_ROLES]
            return out
        return []
    if family == "sp":
        text = "SP: no 1/L, so r·α·‖ΔW‖_R grows ∝ r (Cond. 3.1 C2.2)"
        return [checks.grows(f"dW.{r}", text, -tol, tol) for r in BRANCH_OUT] if sp_update is not None else []
    if family != "mup" or alpha is None:
        return []
    out = [checks.flat(f"W.{r}", 0.0, tol, "init has no depth factor (spectral paper App. D)") for r in BRANCH_IN]
    out += [checks.flat(f"W.{r}", -alpha, tol, f"α_l·‖W‖_R ∝ L^-{alpha:g}, the branch multiplier (Cond. 3.1 / B.1)") for r in BRANCH_OUT]
    out += [checks.flat(f"dW.{r}", alpha - 1.0, tol, f"‖ΔW‖_R ∝ L^{alpha - 1:g}, the LR's depth factor (spectral paper Tables 6, 12)") for r in BRANCH_IN]
    return out + [checks.flat(f"dW.{r}", -1.0, tol, "r·α_l·‖ΔW‖_R flat (Cond. 3.1 C2.2, B.1)") for r in BRANCH_OUT]


def plot(sweep: checks.Sweep, quantities, out) -> None:
    """W.png (at init) and dW.png (first update): log2 of α·‖·‖_R against size, one line per role."""
    plt = check_cli.pyplot()
    for kind, step, what in (("W", 0, "α·‖W‖_R at init"), ("dW", 1, "α·‖ΔW‖_R after one step")):
        lines = {q.split(".", 1)[1]: sweep.mean[q][step] for q in quantities if q.startswith(kind + ".") and q in sweep.mean}
        if not lines:
            continue
        fig, ax = plt.subplots(figsize=(5.4, 3.4), layout="constrained")
        check_cli.loglog_panel(ax, sweep.sizes, lines, what, "width" if sweep.axis == "width" else "depth L",
                               f"log2 {what.split(' ')[0]}", palette="tab10")
        check_cli.save_panel(fig, ax, sweep, out / f"{kind}.png")


def plot_compare(sweeps, quantities, path) -> None:
    """A column per parameterization, a row per kind (W, dW), one line per role."""
    plt = check_cli.pyplot()
    fig, axes = plt.subplots(2, len(sweeps), figsize=(3.6 * len(sweeps) + 1.2, 5.6), squeeze=False, sharey="row", layout="constrained")
    for col, (name, sweep) in enumerate(sweeps):
        for row, (kind, step) in enumerate((("W", 0), ("dW", 1))):
            lines = {q.split(".", 1)[1]: sweep.mean[q][step] for q in quantities if q.startswith(kind + ".") and q in sweep.mean}
            norm = f"α·‖{'Δ' if kind == 'dW' else ''}W‖_R"
            check_cli.loglog_panel(axes[row][col], sweep.sizes, lines, f"{name}: {norm}", sweep.axis,
                                   f"log2 {norm}" if col == 0 else "", palette="tab10")
    for row in axes:
        check_cli.octave_ticks(row[0])
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside right center", fontsize=6)
    check_cli.save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    check_cli.entry(sys.modules[__name__], "spectral_check")
