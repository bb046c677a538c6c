"""The parameterization table: one row per named parameter, computed from the config before
the model exists (shared/DESIGN.md). The model reads its multipliers from it, param.init its
stds, and optim/ builds one param group per distinct (lr, weight_decay, eps)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import torch

from model import GPT, GPTConfig, Scales, block_of, role_of
from optim.scaling import decays, factors
from param.rules import rules_for

FIELDS = ("name", "shape", "role", "fan_in", "fan_out", "init_std", "multiplier", "lr", "weight_decay", "eps")


@dataclass
class Row:
    name: str
    shape: list[int]
    role: str
    block: int | None
    fan_in: int
    fan_out: int
    init: str  # normal | zeros | ones
    init_std: float
    multiplier: float
    lr: float
    weight_decay: float
    eps: float
    source: dict[str, str] = field(default_factory=dict)


@dataclass
class Table:
    globals: dict
    rows: list[Row]

    def scales(self) -> Scales:
        """What the model needs: one multiplier per role and the attention scale."""
        mults = {row.role: row.multiplier for row in self.rows}
        if self.globals["tie_embeddings"]:
            mults["readout"] = self.globals["readout_multiplier"]
        mults["embedding"] = self.globals["emb_multiplier"]
        return Scales(multipliers=mults, attn_scale=self.globals["attn_scale"])

    def by_name(self) -> dict[str, Row]:
        return {row.name: row for row in self.rows}

    def to_dict(self) -> dict:
        return {"globals": self.globals, "tensors": [asdict(r) for r in self.rows]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def format(self) -> str:
        """Human-readable table (what `python -m param` prints)."""
        g = self.globals
        head = (
            f"param={g['param']} optim={g['optim']} width={g['width']} depth={g['depth']} "
            f"m={g['m']:g} r={g['r']:g} (base {g['base_width']}x{g['base_depth']})\n"
            f"globals: emb_multiplier={g['emb_multiplier']:g} branch_multiplier={g['branch_multiplier']:g} "
            f"readout_multiplier={g['readout_multiplier']:g} attn_scale={g['attn_scale']:.6g} "
            f"tie_embeddings={g['tie_embeddings']} wd_mode={g['wd_mode']}\n"
        )
        cols = ["name", "shape", "role", "fan_in", "fan_out", "init_std", "multiplier", "lr", "weight_decay", "eps"]
        cells = [cols] + [
            [r.name, "x".join(map(str, r.shape)), r.role, str(r.fan_in), str(r.fan_out), _g(r.init_std) if r.init == "normal" else r.init,
             _g(r.multiplier), _g(r.lr), _g(r.weight_decay), _g(r.eps)]
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        sources = sorted({f"{k}: {v}" for r in self.rows for k, v in r.source.items()})
        return head + "\n".join(lines) + "\nsources:\n  " + "\n  ".join(sources)


def _g(x: float) -> str:
    return f"{x:.4g}"


def model_config(mcfg, vocab_size: int) -> GPTConfig:
    return GPTConfig(
        width=int(mcfg.width), depth=int(mcfg.depth), head_dim=int(mcfg.head_dim), context=int(mcfg.context),
        vocab_size=int(vocab_size), bias=bool(mcfg.bias), tie_embeddings=bool(mcfg.tie_embeddings),
        layernorm=bool(mcfg.layernorm), dropout=float(mcfg.dropout),
    )


def _fans(role: str, shape: list[int]) -> tuple[int, int]:
    """(fan_in, fan_out) as the tensor is used in the forward pass."""
    if role in ("embedding", "position_embedding"):
        return shape[0], shape[1]  # one-hot of V (or T) in, width out
    if len(shape) == 2:
        return shape[1], shape[0]  # nn.Linear weight is (out, in)
    return 1, shape[0]  # vectors


def build_table(cfg, vocab_size: int) -> Table:
    """The table for a composed config; names and shapes come from a meta-device model."""
    p, o, mc = cfg.param, cfg.optim, model_config(cfg.model, vocab_size)
    m, r = mc.width / p.base_width, mc.depth / p.base_depth
    forward, init = rules_for(p.name)
    g = forward(p, mc.depth, mc.head_dim)
    with torch.device("meta"):
        shapes = [(n, list(t.shape)) for n, t in GPT(mc).named_parameters()]
    rows = []
    for name, shape in shapes:
        role = role_of(name)
        kind, std, init_src = init(p, role, name, mc.depth)
        f = factors(o.name, p.name, role, m, r)
        wd = float(o.weight_decay) * f["weight_decay"] if decays(role, o.wd_on_vectors) else 0.0
        mult = {"embedding": g["emb_multiplier"], "readout": g["readout_multiplier"],
                "attn_out": g["branch_multiplier"], "mlp_out": g["branch_multiplier"]}.get(role, 1.0)
        fan_in, fan_out = _fans(role, shape)
        rows.append(Row(
            name=name, shape=shape, role=role, block=block_of(name), fan_in=fan_in, fan_out=fan_out,
            init=kind, init_std=std, multiplier=mult,
            lr=float(o.lr) * f["lr"], weight_decay=wd, eps=float(o.eps) * f["eps"],
            source={"init": init_src, "lr/wd/eps": f"{o.name} x {p.name}: base values (spec §2.2)"},
        ))
    glob = {
        "param": p.name, "optim": o.name, "width": mc.width, "depth": mc.depth, "head_dim": mc.head_dim,
        "vocab_size": mc.vocab_size, "base_width": int(p.base_width), "base_depth": int(p.base_depth), "m": m, "r": r,
        "tie_embeddings": mc.tie_embeddings, "wd_mode": "coupled", **g,
    }
    return Table(globals=glob, rows=rows)
