"""GPT-2 (pre-LN) whose forward multipliers come from outside.

The model holds no parameterization rule: the param table (param/) hands it one multiplier
per role and the attention logit scale, and initialises its tensors (param.init). Attention
runs through F.scaled_dot_product_attention (flash / memory-efficient kernels on GPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    width: int = 128
    depth: int = 4
    head_dim: int = 64
    context: int = 256
    vocab_size: int = 65
    bias: bool = True
    tie_embeddings: bool = True
    layernorm: bool = True
    dropout: float = 0.0

    @property
    def heads(self) -> int:
        return self.width // self.head_dim


@dataclass
class Scales:
    """Forward multipliers, one per role (a branch's multiplier is folded into its last
    projection: attn_out, mlp_out), and the attention logit scale."""

    multipliers: dict[str, float] = field(default_factory=dict)
    attn_scale: float | None = None  # None: 1/sqrt(head_dim)

    def of(self, role: str) -> float:
        return float(self.multipliers.get(role, 1.0))


class ScaledLinear(nn.Linear):
    """nn.Linear whose output is multiplied by a constant (skipped when it is 1)."""

    def __init__(self, n_in: int, n_out: int, bias: bool, multiplier: float = 1.0):
        super().__init__(n_in, n_out, bias=bias)
        self.multiplier = multiplier

    def forward(self, x):
        y = super().forward(x)
        return y if self.multiplier == 1.0 else y * self.multiplier


def _norm(cfg: GPTConfig) -> nn.Module:
    return nn.LayerNorm(cfg.width, bias=cfg.bias) if cfg.layernorm else nn.Identity()


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig, scales: Scales):
        super().__init__()
        self.heads, self.head_dim, self.dropout = cfg.heads, cfg.head_dim, cfg.dropout
        self.scale = scales.attn_scale if scales.attn_scale is not None else 1.0 / math.sqrt(cfg.head_dim)
        self.qkv = ScaledLinear(cfg.width, 3 * cfg.width, cfg.bias, scales.of("attn_qkv"))
        self.out = ScaledLinear(cfg.width, cfg.width, cfg.bias, scales.of("attn_out"))
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, self.head_dim).transpose(1, 3).unbind(dim=2)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, scale=self.scale, dropout_p=self.dropout if self.training else 0.0
        )
        return self.resid_drop(self.out(y.transpose(1, 2).reshape(B, T, C)))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig, scales: Scales):
        super().__init__()
        self.fc = ScaledLinear(cfg.width, 4 * cfg.width, cfg.bias, scales.of("mlp_in"))
        self.proj = ScaledLinear(4 * cfg.width, cfg.width, cfg.bias, scales.of("mlp_out"))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))  # GPT-2's tanh GELU


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, scales: Scales):
        super().__init__()
        self.ln_attn, self.attn = _norm(cfg), Attention(cfg, scales)
        self.ln_mlp, self.mlp = _norm(cfg), MLP(cfg, scales)

    def forward(self, x):
        x = x + self.attn(self.ln_attn(x))
        return x + self.mlp(self.ln_mlp(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig, scales: Scales | None = None):
        super().__init__()
        scales = scales or Scales()
        self.cfg = cfg
        self.emb_mult = scales.of("embedding")
        self.pos_mult = scales.of("position_embedding")
        self.readout_mult = scales.of("readout")
        self.wte = nn.Embedding(cfg.vocab_size, cfg.width)
        self.wpe = nn.Embedding(cfg.context, cfg.width)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, scales) for _ in range(cfg.depth))
        self.ln_f = _norm(cfg)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.width, cfg.vocab_size, bias=False)

    def readout_weight(self) -> torch.Tensor:
        return self.wte.weight if self.lm_head is None else self.lm_head.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits (B, T, V) and the mean cross-entropy when targets are given; without
        targets only the last position's logits are computed (generation)."""
        T = idx.shape[1]
        if T > self.cfg.context:
            raise ValueError(f"sequence of {T} tokens exceeds model.context={self.cfg.context}")
        pos = torch.arange(T, device=idx.device)
        tok, p = self.wte(idx), self.wpe(pos)
        x = self.drop((tok if self.emb_mult == 1.0 else tok * self.emb_mult) + (p if self.pos_mult == 1.0 else p * self.pos_mult))
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        if targets is None:
            x = x[:, -1:, :]
        logits = F.linear(x, self.readout_weight())
        if self.readout_mult != 1.0:
            logits = logits * self.readout_mult
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, new_tokens: int, temperature: float = 1.0, top_k: int | None = None):
        for _ in range(new_tokens):
            logits, _ = self(idx[:, -self.cfg.context :])
            logits = logits[:, -1, :] / max(temperature, 1e-6)
            if top_k:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                logits = logits.masked_fill(logits < kth, -float("inf"))
            idx = torch.cat([idx, torch.multinomial(F.softmax(logits, dim=-1), 1)], dim=1)
        return idx


def count_params(model: nn.Module, non_embedding: bool = True) -> int:
    """Parameters; with non_embedding, the embedding lookups (wpe, and wte when untied) are
    left out, as they cost no matmul FLOPs (a tied wte is the readout matrix and counts)."""
    n = sum(p.numel() for p in model.parameters())
    if non_embedding:
        n -= model.wpe.weight.numel()
        if model.lm_head is not None:
            n -= model.wte.weight.numel()
    return n


def flops_per_token(model: GPT) -> float:
    """Training FLOPs per token: 6N + 12·L·H·Q·T (Kaplan et al. 2020; PaLM App. B), with
    N the non-embedding parameters and H·Q = width."""
    c = model.cfg
    return 6 * count_params(model) + 12 * c.depth * c.width * c.context
