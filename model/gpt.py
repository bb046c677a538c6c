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


class _ScaledLinearFn(torch.autograd.Function):
    """a·(x Wᵀ + b) with `a` inside the matmuls (BLAS's alpha and beta), forward and backward:
    the same number of passes over memory as a plain linear layer, where `linear(...) * a` adds an
    elementwise pass over the output forward and another over its gradient backward (about 3% of a
    training step at width 128 for spectral μP's eight branch multipliers). Mathematically
    a·(x Wᵀ + b); bit for bit the same when `a` is a power of 2 (an exact scaling), within
    float rounding otherwise."""

    @staticmethod
    def forward(ctx, x, weight, bias, a: float):
        device = x.device.type
        if torch.is_autocast_enabled(device):  # autocast's choice for a linear layer, made here
            dtype = torch.get_autocast_dtype(device)  # so that backward sees the same tensors
            x, weight, bias = x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype)
        x2 = x.reshape(-1, x.shape[-1])
        if bias is None:
            y = torch.addmm(x2.new_zeros(()), x2, weight.t(), beta=0, alpha=a)
        else:
            y = torch.addmm(bias * a, x2, weight.t(), alpha=a)  # beta = 1: BLAS scales no output by beta
        ctx.save_for_backward(x2, weight)
        ctx.a, ctx.has_bias, ctx.x_shape = a, bias is not None, x.shape
        return y.view(*x.shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, grad):
        x2, weight = ctx.saved_tensors
        a, g = ctx.a, grad.reshape(-1, grad.shape[-1])
        zero = g.new_zeros(())
        gx = torch.addmm(zero, g, weight, beta=0, alpha=a).view(ctx.x_shape) if ctx.needs_input_grad[0] else None
        gw = torch.addmm(zero, g.t(), x2, beta=0, alpha=a) if ctx.needs_input_grad[1] else None
        gb = g.sum(0) * a if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb, None


def scaled_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, a: float) -> torch.Tensor:
    """a · F.linear(x, weight, bias); a plain F.linear when a is 1."""
    return F.linear(x, weight, bias) if a == 1.0 else _ScaledLinearFn.apply(x, weight, bias, a)


class ScaledLinear(nn.Linear):
    """nn.Linear whose output is multiplied by a constant (folded into the matmul; nothing at 1)."""

    def __init__(self, n_in: int, n_out: int, bias: bool, multiplier: float = 1.0):
        super().__init__(n_in, n_out, bias=bias)
        self.multiplier = multiplier

    def forward(self, x):
        return scaled_linear(x, self.weight, self.bias, self.multiplier)


def _dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout where it does something: at p = 0 (every shipped config) not even a call."""
    return F.dropout(x, p, training) if p and training else x


def _norm(cfg: GPTConfig) -> nn.Module:
    return nn.LayerNorm(cfg.width, bias=cfg.bias) if cfg.layernorm else nn.Identity()


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig, scales: Scales):
        super().__init__()
        self.heads, self.head_dim, self.dropout = cfg.heads, cfg.head_dim, cfg.dropout
        self.scale = scales.attn_scale if scales.attn_scale is not None else 1.0 / math.sqrt(cfg.head_dim)
        self.qkv = ScaledLinear(cfg.width, 3 * cfg.width, cfg.bias, scales.of("attn_qkv"))
        self.out = ScaledLinear(cfg.width, cfg.width, cfg.bias, scales.of("attn_out"))

    def forward(self, x):
        B, T, C = x.shape
        # split, not view(B, T, 3, H, D).unbind: the same (B, H, T, D) views, and a backward that
        # writes the three gradients into one buffer (a cat) instead of a stack and a copy
        q, k, v = (t.view(B, T, self.heads, self.head_dim).transpose(1, 2) for t in self.qkv(x).split(C, dim=2))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, scale=self.scale, dropout_p=self.dropout if self.training else 0.0
        )
        return _dropout(self.out(y.transpose(1, 2).reshape(B, T, C)), self.dropout, self.training)


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig, scales: Scales):
        super().__init__()
        self.fc = ScaledLinear(cfg.width, 4 * cfg.width, cfg.bias, scales.of("mlp_in"))
        self.proj = ScaledLinear(4 * cfg.width, cfg.width, cfg.bias, scales.of("mlp_out"))
        self.dropout = cfg.dropout

    def forward(self, x):
        return _dropout(self.proj(F.gelu(self.fc(x), approximate="tanh")), self.dropout, self.training)  # GPT-2's tanh GELU


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
        if self.emb_mult == 1.0 and self.pos_mult == 1.0:
            x = tok + p
        else:  # one pass over (B, T, width): wpe's (T, width) is scaled first, wte's inside the add
            x = torch.add(p if self.pos_mult == 1.0 else p * self.pos_mult, tok, alpha=self.emb_mult)
        x = _dropout(x, self.cfg.dropout, self.training)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        if targets is None:
            x = x[:, -1:, :]
        logits = scaled_linear(x, self.readout_weight(), None, self.readout_mult)
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
