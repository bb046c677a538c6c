"""An optimizer's scaling map: per-tensor factors on the base lr, weight decay and eps as
functions of the parameterization, the tensor's role, m and r (spec §2.2 for AdamW).

SP is the identity map; the other parameterizations add their columns here.
"""

from __future__ import annotations

from cli import UserError

SUPPORTED = {"adamw": ("sp",)}


def factors(optim_name: str, param_name: str, role: str, m: float, r: float) -> dict[str, float]:
    """{'lr', 'weight_decay', 'eps'} multiplicative factors for one tensor."""
    if optim_name not in SUPPORTED:
        raise UserError(f"optim.name={optim_name!r} is unknown: choose one of {', '.join(SUPPORTED)}")
    if param_name not in SUPPORTED[optim_name]:
        raise UserError(f"param={param_name} has no scaling map for optim={optim_name} (supported: {', '.join(SUPPORTED[optim_name])})")
    # SP: every tensor gets the base values (spec §2.2, SP column).
    return {"lr": 1.0, "weight_decay": 1.0, "eps": 1.0}


def decays(role: str, wd_on_vectors: bool) -> bool:
    """Whether weight decay applies at all: matrices always, vectors only on request
    (nanoGPT decays every 2-D tensor and no bias or LayerNorm gain)."""
    return role not in ("norm", "bias") or wd_on_vectors
