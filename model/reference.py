"""A plain PyTorch GPT-2 training step: the yardstick `make bench` (and the GPU check) times the
project's step against, at the same shape, batch and dtype.

What it is, from the architecture's published facts (Radford et al. 2019, GPT-2 §2.3; the
nanoGPT layout): token + learned position embeddings, pre-LN blocks whose attention is one
nn.Linear for Q|K|V, causal scaled-dot-product attention and one nn.Linear out, a 4x MLP with
GELU, a final LayerNorm, and a readout tied to the token embedding. Init N(0, 0.02), the two
residual projections 0.02/sqrt(2L), biases 0. One AdamW with two groups: weight decay on every
tensor of 2 or more dimensions, none on vectors; gradients clipped to norm 1.0.

What it is not: no param table, no multipliers, no per-tensor learning rates. It lives here,
apart from model/gpt.py, so that nothing of the project's machinery can leak into the yardstick,
and so that bench.py and gpu_check.py share one definition.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class _SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int, bias: bool):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=bias)
        self.out = nn.Linear(width, width, bias=bias)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # scale 1/sqrt(head_dim)
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class _Block(nn.Module):
    def __init__(self, width: int, heads: int, bias: bool):
        super().__init__()
        self.ln1 = nn.LayerNorm(width, bias=bias)
        self.attn = _SelfAttention(width, heads, bias)
        self.ln2 = nn.LayerNorm(width, bias=bias)
        self.up = nn.Linear(width, 4 * width, bias=bias)
        self.down = nn.Linear(4 * width, width, bias=bias)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))  # GPT-2's tanh GELU


class ReferenceGPT(nn.Module):
    """GPT-2 in plain PyTorch; forward(idx, targets) -> (logits, mean cross-entropy)."""

    def __init__(self, width: int, depth: int, head_dim: int, context: int, vocab_size: int, bias: bool = True):
        super().__init__()
        if width % head_dim:
            raise ValueError(f"width {width} is not a multiple of head_dim {head_dim}")
        self.wte = nn.Embedding(vocab_size, width)
        self.wpe = nn.Embedding(context, width)
        self.blocks = nn.ModuleList(_Block(width, width // head_dim, bias) for _ in range(depth))
        self.ln_f = nn.LayerNorm(width, bias=bias)
        self.context = context
        for name, p in self.named_parameters():
            if p.dim() < 2:
                nn.init.zeros_(p) if name.endswith("bias") else nn.init.ones_(p)
            else:  # GPT-2 §2.3: residual projections scaled by 1/sqrt(number of residual layers)
                std = 0.02 / math.sqrt(2 * depth) if name.endswith(("attn.out.weight", "down.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied readout
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.reshape(-1))


def reference_optimizer(model: nn.Module, lr: float = 2e-3, weight_decay: float = 0.1, betas=(0.9, 0.95),
                        eps: float = 1e-8, device_type: str = "cpu") -> torch.optim.AdamW:
    """AdamW, one group decayed (matrices) and one not (vectors), with torch's fastest
    implementation on the device: the fused kernel where torch has one (CUDA, CPU), else foreach."""
    params = list(model.parameters())
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    fast = {"fused": True} if device_type in ("cuda", "cpu") else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, **fast)


class ReferenceStep:
    """One training step of the reference: forward, backward, clip to 1.0, AdamW, zero_grad."""

    def __init__(self, model: ReferenceGPT, optimizer: torch.optim.Optimizer, autocast=None):
        self.model, self.optimizer = model, optimizer
        self.autocast = autocast if autocast is not None else contextlib.nullcontext()
        self.params = list(model.parameters())

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with self.autocast:
            _, loss = self.model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()
