"""Every parameter of the GPT has a role, derived from its name alone.

Roles are what the parameterization table (param/) keys its rules on; deriving them from
names (not tensor attributes) keeps them valid through sharding and checkpoints (README, "The
table"). The names are the model's own: prefixes that a wrapper puts into them are the parallel
layer's to strip (parallel.unwrap_name), before a name comes here.
"""

from __future__ import annotations

import re

# role -> what it is (README and `python -m param` print these)
ROLES = {
    "embedding": "token embedding wte (the readout too when tied)",
    "position_embedding": "learned position embedding wpe",
    "attn_qkv": "attention input projection, Q|K|V stacked (hidden matrix)",
    "attn_out": "attention output projection W_O (hidden matrix, ends the attention branch)",
    "mlp_in": "MLP up-projection W_fc, width -> 4 width (hidden matrix)",
    "mlp_out": "MLP down-projection W_proj, 4 width -> width (hidden matrix, ends the MLP branch)",
    "readout": "untied output layer lm_head",
    "norm": "LayerNorm gain or bias (pre-LN in a block, or the final LN)",
    "bias": "bias of a hidden linear layer",
}

MATRIX_ROLES = ("embedding", "position_embedding", "attn_qkv", "attn_out", "mlp_in", "mlp_out", "readout")
HIDDEN_ROLES = ("attn_qkv", "attn_out", "mlp_in", "mlp_out")

_PATTERNS = [
    (r"wte\.weight", "embedding"),
    (r"wpe\.weight", "position_embedding"),
    (r"lm_head\.weight", "readout"),
    (r"blocks\.\d+\.attn\.qkv\.weight", "attn_qkv"),
    (r"blocks\.\d+\.attn\.out\.weight", "attn_out"),
    (r"blocks\.\d+\.mlp\.fc\.weight", "mlp_in"),
    (r"blocks\.\d+\.mlp\.proj\.weight", "mlp_out"),
    (r"(blocks\.\d+\.)?ln_\w+\.(weight|bias)", "norm"),
    (r"blocks\.\d+\.(attn|mlp)\.\w+\.bias", "bias"),
]
_COMPILED = [(re.compile(p), role) for p, role in _PATTERNS]
_BLOCK = re.compile(r"blocks\.(\d+)\.")


def role_of(name: str) -> str:
    for pattern, role in _COMPILED:
        if pattern.fullmatch(name):
            return role
    raise KeyError(f"parameter {name!r} has no role: add a pattern to model/roles.py")


def block_of(name: str) -> int | None:
    """Index of the transformer block a parameter lives in (None for embeddings, final LN, readout)."""
    m = _BLOCK.match(name)
    return int(m.group(1)) if m else None
