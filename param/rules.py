"""The optimizer-agnostic half of a parameterization (spec §2.1): init std and forward
multiplier of every tensor, plus the global multipliers, as functions of m = width/base_width
and r = depth/base_depth. The optimizer half (lr, wd, eps) lives in optim/scaling.py.

Only SP exists so far; a new parameterization adds a function here and a YAML in conf/param/.
"""

from __future__ import annotations

import math

from cli import UserError


def sp_forward(p, depth: int, head_dim: int) -> dict:
    """SP (nanoGPT): base multipliers unchanged at every size (spec §2.1, SP column)."""
    return {
        "emb_multiplier": float(p.emb_multiplier),
        "readout_multiplier": float(p.readout_multiplier),
        "branch_multiplier": float(p.branch_multiplier),
        "attn_scale": attn_scale(p.attn_scale, head_dim),
    }


def sp_init(p, role: str, name: str, depth: int) -> tuple[str, float, str]:
    """(init kind: normal | zeros | ones, std, source) for one tensor under SP."""
    sigma = float(p.init_std)
    if role == "norm":
        return ("zeros" if name.endswith(".bias") else "ones"), 0.0, "LayerNorm: gain 1, bias 0"
    if role == "bias":
        return "zeros", 0.0, "biases start at 0 (nanoGPT; spectral paper App. E.2)"
    if role in ("attn_out", "mlp_out") and p.out_proj_depth_init:
        # GPT-2 paper §2.3: residual-path weights scaled by 1/sqrt(N), N = 2 residual layers per block.
        return "normal", sigma / math.sqrt(2 * depth), "sigma/sqrt(2L) (GPT-2 §2.3, nanoGPT)"
    return "normal", sigma, "sigma (nanoGPT: N(0, 0.02))"


def attn_scale(kind: str, head_dim: int) -> float:
    if kind == "sqrt":
        return 1.0 / math.sqrt(head_dim)  # Vaswani et al. 2017
    if kind == "linear":
        return 1.0 / head_dim  # muP, Yang et al. 2022 (TP5) Def. 4.1
    raise UserError(f"param.attn_scale={kind!r}: choose sqrt (1/sqrt(head_dim)) or linear (1/head_dim)")


PARAMETERIZATIONS = {"sp": (sp_forward, sp_init)}


def rules_for(name: str):
    if name not in PARAMETERIZATIONS:
        raise UserError(f"param.name={name!r} has no rules in param/rules.py: choose one of {', '.join(PARAMETERIZATIONS)}")
    return PARAMETERIZATIONS[name]
