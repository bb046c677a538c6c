"""The parameterization table: one row per named parameter, computed from the config before
the model exists (README, "The table"). The model reads its multipliers from it, param.init its
stds, and optim/ builds one param group per distinct (lr, weight_decay, eps)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import torch

import cli
from errors import UserError
from model import GPT, HIDDEN_ROLES, GPTConfig, Scales, block_of, role_of
from param.scaling import check, tensor_hparams, wd_on_vectors
from param.rules import rule_role, rules_for

FIELDS = ("name", "shape", "role", "fan_in", "fan_out", "init_std", "multiplier", "lr", "weight_decay", "eps")


@dataclass
class Row:
    name: str
    shape: list[int]
    role: str
    block: int | None
    fan_in: int
    fan_out: int
    init: str  # normal | zeros | ones | normal_zero_query (normal, with the query rows of qkv zero)
    init_std: float
    multiplier: float
    lr: float
    weight_decay: float
    eps: float | None  # None: the optimizer has no eps (SGD)
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

    @classmethod
    def from_dict(cls, d: dict) -> "Table":
        """The table back from `to_dict()` (param_table.json, a checkpoint's `param_table`)."""
        return cls(globals=d["globals"], rows=[Row(**r) for r in d["tensors"]])

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def format(self) -> str:
        """Human-readable table (what `python -m param` prints): the rows, then the formula and
        source of every factor, once per role."""
        g = self.globals
        k = f" k={g['block_depth']}" if g.get("block_depth") else ""
        alpha = f" alpha={g['alpha']:g}" if g.get("alpha") is not None else ""
        head = (
            f"param={g['param']}{k}{alpha} optim={g['optim']} width={g['width']} depth={g['depth']} "
            f"m={g['m']:g} r={g['r']:g} (base {g['base_width']}x{g['base_depth']}) wd_mode={g['wd_mode']}\n"
            f"globals: emb_multiplier={g['emb_multiplier']:.4g} branch_multiplier={g['branch_multiplier']:.4g} "
            f"readout_multiplier={g['readout_multiplier']:.4g} attn_scale={g['attn_scale']:.4g} "
            f"tie_embeddings={g['tie_embeddings']}\n"
        )
        cols = ["name", "shape", "role", "fan_in", "fan_out", "init_std", "multiplier", "lr", "weight_decay", "eps"]
        cells = [cols] + [
            [r.name, "x".join(map(str, r.shape)), r.role, str(r.fan_in), str(r.fan_out),
             _g(r.init_std) if r.init.startswith("normal") else r.init, _g(r.multiplier), _g(r.lr), _g(r.weight_decay), _g(r.eps)]
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        seen, formulas = set(), []
        for r in self.rows:
            key = (r.role, r.block is None, tuple(sorted(r.source.items())))
            if key in seen:
                continue
            seen.add(key)
            where = r.role + (" (final LN)" if r.role == "norm" and r.block is None else " (pre-LN)" if r.role == "norm" else "")
            formulas.append(f"  {where}:")
            formulas += [f"    {q:<13} {v}" for q, v in r.source.items()]
        glob = [f"  {k}: {v}" for k, v in g.get("sources", {}).items()]
        return head + "\n".join(lines) + "\nglobal factors:\n" + "\n".join(glob) + "\nper-tensor factors (formula [source]):\n" + "\n".join(formulas)


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


ATTN_SCALES = {
    "sqrt": "1/sqrt(head_dim) (Vaswani et al. 2017)",
    "linear": "1/head_dim (TP5 Def. 4.1)",
    "anchored": "sqrt(base_head_dim)/head_dim: 1/head_dim (TP5 Def. 4.1) scaled to equal 1/sqrt(head_dim) at the base "
                "(microsoft/mup's 8/d is this with base_head_dim 64)",
}


def attn_scale(kind: str, head_dim: int, base_head_dim: int | None = None) -> float:
    if kind == "sqrt":
        return 1.0 / math.sqrt(head_dim)  # Vaswani et al. 2017
    if kind == "linear":
        return 1.0 / head_dim  # muP: Yang et al. 2022 (TP5) Def. 4.1
    if kind == "anchored":
        # 1/sqrt(d_b) * (d_b/d): exactly 1/sqrt(d) at d = d_b (the ratio is 1.0), so muP's base model is SP
        return (1.0 / math.sqrt(base_head_dim)) * (base_head_dim / head_dim)
    raise UserError(f"param.attn_scale={kind!r}: choose sqrt (1/sqrt(head_dim)), linear (1/head_dim) or anchored "
                    "(sqrt(param.base_head_dim)/head_dim)")


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


def check_param(cfg) -> None:
    """Shape constraints a parameterization puts on the model: one line each, naming the fix."""
    p, mc = cfg.param, cfg.model
    for key in ("base_width", "base_depth") + (("base_head_dim",) if p.get("attn_scale") == "anchored" else ()):
        cli.check_value(f"param.{key}", p.get(key), cli.rule_of(f"param.{key}"))  # the one validator (cli.VALUES)
    if p.base_width % mc.head_dim:
        raise UserError(
            f"param.base_width={p.base_width} is not a multiple of model.head_dim={mc.head_dim}: the base model "
            "must have whole heads; pick a base_width that is a multiple of head_dim"
        )
    reason = p.get("untied_only")  # the parameterization's own (abc.yaml), else a flag that needs it
    if mc.tie_embeddings and (reason or p.get("zero_readout")):
        what = f"param={p.name} ({reason})" if reason else "param.zero_readout=true"
        raise UserError(f"{what} needs a separate readout matrix: add model.tie_embeddings=false")


def build_table(cfg, vocab_size: int) -> Table:
    """The table for a composed config; names and shapes come from a meta-device model."""
    p, o, mc = cfg.param, cfg.optim, model_config(cfg.model, vocab_size)
    check_param(cfg)
    rules = rules_for(p, mc.width, mc.depth)
    check(o, rules)
    env = rules.env
    sigma = float(p.init_std)
    hidden_sigma = sigma if p.get("hidden_init_std") is None else float(p.hidden_init_std)
    # forward multipliers (docs/parameterizations.md §2.1): base alpha x the parameterization's factor
    emb, readout, branch = rules.forward("embedding"), rules.forward("readout"), rules.forward("branch")
    g = {
        "emb_multiplier": float(p.emb_multiplier) * emb.value,
        "readout_multiplier": float(p.readout_multiplier) * readout.value,
        "branch_multiplier": float(p.branch_multiplier) * branch.value,
        "attn_scale": attn_scale(p.attn_scale, mc.head_dim, p.get("base_head_dim")),
    }
    with torch.device("meta"):
        shapes = [(n, list(t.shape)) for n, t in GPT(mc).named_parameters()]
    rows = []
    for name, shape in shapes:
        role, block = role_of(name), block_of(name)
        lookup = rule_role(role, block)
        source = {}
        if role in ("norm", "bias"):
            kind, std = ("ones" if role == "norm" and name.endswith(".weight") else "zeros"), 0.0
            source["init"] = "LayerNorm gain 1, bias 0" if role == "norm" else "biases start at 0 (spectral paper App. E.2)"
        else:
            f = rules.init(role)
            hidden = role in HIDDEN_ROLES and p.get("hidden_init_std") is not None
            kind, std = "normal", (hidden_sigma if hidden else sigma) * f.value
            source["init"] = f.shown("σ_hidden" if hidden else "σ", env)
            if role == "readout" and p.get("zero_readout"):
                kind, std, source["init"] = "zeros", 0.0, "0 (param.zero_readout; TP5's recommendation)"
            elif role == "attn_qkv" and p.get("zero_query"):
                kind, source["init"] = "normal_zero_query", source["init"] + "; query rows 0 (param.zero_query; TP5)"
        mult = 1.0
        if role in ("embedding", "position_embedding"):
            mult = g["emb_multiplier"]
        elif role == "readout":
            mult = g["readout_multiplier"]
        elif role in HIDDEN_ROLES:
            hidden = rules.forward(role)
            mult = hidden.value * (g["branch_multiplier"] if role in ("attn_out", "mlp_out") else 1.0)
        h = tensor_hparams(o, p, rules, lookup, vector=len(shape) == 1)
        source.update(h.formulas)
        fan_in, fan_out = _fans(role, shape)
        rows.append(Row(
            name=name, shape=shape, role=role, block=block, fan_in=fan_in, fan_out=fan_out, init=kind, init_std=std,
            multiplier=mult, lr=h.lr, weight_decay=h.weight_decay, eps=h.eps, source=source,
        ))
    glob = {
        "param": p.name, "optim": o.name, "width": mc.width, "depth": mc.depth, "head_dim": mc.head_dim,
        "vocab_size": mc.vocab_size, "base_width": int(p.base_width), "base_depth": int(p.base_depth),
        "m": env["m"], "r": env["r"], "alpha": env["alpha"], "block_depth": p.get("block_depth"),
        "tie_embeddings": mc.tie_embeddings, "wd_mode": o.get("wd_mode", "coupled"), "wd_on_vectors": wd_on_vectors(o, p),
        **g,
        "sources": {
            "emb_multiplier": emb.shown("α_in", env), "readout_multiplier": readout.shown("α_out", env),
            "branch_multiplier": branch.shown("α_res", env),
            "attn_scale": ATTN_SCALES.get(p.attn_scale, p.attn_scale),
        },
    }
    return Table(globals=glob, rows=rows)
