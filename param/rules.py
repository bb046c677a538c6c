"""A parameterization as data: per-role formulas for init std, forward multiplier, and, per
optimizer family, lr / weight decay / eps factors (docs/parameterizations.md §2.1-§2.3).

The YAML of a parameterization (conf/param/*.yaml) holds sections

    init:     {<key>: formula}           factor on sigma
    forward:  {<key>: formula, branch:}  factor on the multipliers; branch = residual-branch multiplier
    adam:     {lr: {...}, wd: {...}, eps: {...}}   AdamW / Adam / Lion rules (docs/parameterizations.md §2.2)
    sgd:      {lr: {...}, wd: {...}}               SGD rules (docs/parameterizations.md §2.3)
    muon, muon_kimi: {lr: {...}, wd: {...}}        hidden matrices under Muon / Muon-Kimi (docs/parameterizations.md §2.4);
                                                   the hybrids' other tensors use the adam rules

A formula is a number, a string in m, r, L, k, alpha (param/expr.py), or {f: formula, src: "..."}.
A mapping may carry `source:` for all its cells. Keys name roles or classes of roles; a tensor
takes the first key of its chain that is present (below), else the factor 1. Everett's abc
parameterization generates the same sections from its exponents (param/abc.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from errors import UserError
from param.abc import abc_sections
from param.expr import evaluate, render

# where a tensor looks up its factor: most specific key first
CHAINS = {
    "embedding": ("embedding",),
    "position_embedding": ("position_embedding", "embedding"),
    "attn_qkv": ("attn_qkv", "hidden"),
    "mlp_in": ("mlp_in", "hidden"),
    "attn_out": ("attn_out", "out_proj", "hidden"),
    "mlp_out": ("mlp_out", "out_proj", "hidden"),
    "readout": ("readout",),
    "bias": ("hidden_bias", "vector"),
    "block_norm": ("block_norm", "vector"),
    "final_norm": ("final_norm", "vector"),
}
KEYS = {k for chain in CHAINS.values() for k in chain}
FAMILY_QUANTITIES = {"adam": ("lr", "wd", "eps"), "sgd": ("lr", "wd"), "muon": ("lr", "wd"), "muon_kimi": ("lr", "wd")}


def rule_role(role: str, block: int | None) -> str:
    """The lookup role: LayerNorms split into pre-LN (in a block) and the final LN."""
    if role == "norm":
        return "block_norm" if block is not None else "final_norm"
    return role


@dataclass(frozen=True)
class Factor:
    value: float
    formula: str  # as written in the YAML
    source: str

    def shown(self, base: str, env: dict) -> str:
        return f"{render(self.formula, env, base)}  [{self.source}]" if self.source else render(self.formula, env, base)


class Rules:
    """The sections of one parameterization, with the variables they are evaluated at."""

    def __init__(self, name: str, sections: dict, env: dict):
        self.name, self.sections, self.env = name, sections, env
        for section in ("init", "forward"):
            self._check_keys(sections.get(section) or {}, section, extra={"branch"} if section == "forward" else set())
        for family, quantities in FAMILY_QUANTITIES.items():
            fam = sections.get(family)
            if fam is None:
                continue
            unknown = set(fam) - set(quantities) - {"source"}
            if unknown:
                raise UserError(f"param={name}: section {family} has unknown entry {sorted(unknown)[0]!r}: use {', '.join(quantities)}")
            for q in quantities:
                self._check_keys(fam.get(q) or {}, f"{family}.{q}")
        for role in CHAINS:  # every formula evaluates: a typo fails here, not mid-table
            if role not in ("bias", "block_norm", "final_norm"):
                self.init(role), self.forward(role)
            for family, quantities in FAMILY_QUANTITIES.items():
                if self.has_family(family):
                    for q in quantities:
                        self.optim(family, q, role)
        self.forward("branch")

    def _check_keys(self, mapping: dict, where: str, extra=frozenset()) -> None:
        unknown = set(mapping) - KEYS - {"source"} - set(extra)
        if unknown:
            raise UserError(f"param={self.name}: {where} has unknown key {sorted(unknown)[0]!r}: use {', '.join(sorted(KEYS | set(extra)))}")

    def _lookup(self, mapping: dict, keys: tuple[str, ...], where: str, default_source: str) -> Factor:
        section_source = mapping.get("source", default_source)
        for key in keys:
            if key in mapping:
                cell = mapping[key]
                formula, src = (cell.get("f"), cell.get("src", section_source)) if isinstance(cell, dict) else (cell, section_source)
                return Factor(evaluate(formula, self.env, f"param={self.name} {where}.{key}"), str(formula), str(src or ""))
        return Factor(1.0, "1", "")

    def init(self, role: str) -> Factor:
        return self._lookup(self.sections.get("init") or {}, CHAINS[role], "init", "")

    def forward(self, key: str) -> Factor:
        chain = ("branch",) if key == "branch" else CHAINS[key]
        return self._lookup(self.sections.get("forward") or {}, chain, "forward", "")

    def has_family(self, family: str) -> bool:
        return self.sections.get(family) is not None

    def optim(self, family: str, quantity: str, role: str) -> Factor:
        fam = self.sections[family]
        return self._lookup(fam.get(quantity) or {}, CHAINS[role], f"{family}.{quantity}", fam.get("source", ""))


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def rules_for(p, width: int, depth: int) -> Rules:
    """Rules of the configured parameterization at this shape."""
    k = p.get("block_depth")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise UserError(f"param.block_depth={k!r} must be an integer >= 1 (1: one matrix per residual branch, 2: GPT-2's attention/MLP branches)")
    alpha = p.get("alpha")
    if alpha is None and k is not None:
        alpha = 0.5 if k == 1 else 1.0  # spectral paper: Cond. B.1 (k=1) gives 1/sqrt(L), Cond. 3.1 (k>=2) gives 1/L
    env = {"m": width / p.base_width, "r": depth / p.base_depth, "L": float(depth), "k": None if k is None else float(k), "alpha": None if alpha is None else float(alpha)}
    if p.name == "abc":
        return Rules("abc", abc_sections(p), env)
    sections = {s: _plain(p.get(s)) for s in ("init", "forward", *FAMILY_QUANTITIES)}
    return Rules(str(p.name), sections, env)
