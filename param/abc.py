"""Everett et al. 2024 ("Scaling Exponents Across Parameterizations and Optimizers"): the
abc-parameterization, turned into the same rule sections as every other parameterization.

Per layer class l in {embedding, hidden, readout}: forward multiplier m^-a_l, init std
sigma·m^-b_l, learning rate eta·gamma_l·m^-c_l (ratio form of W = n^-a w, w ~ N(0, n^-2b),
eta_l ∝ n^-c with n/b -> m = width/base_width, so that m = 1 is the base model).
The c exponents follow from (a, b) and the alignment assumption by the closed forms of docs/parameterizations.md §4
([I]: re-derived from the paper's constraint LP, checked against its exponent table):
  Adam:  c_1 = -a_1,  c_l = A - a_l,  c_{L+1} = A - a_{L+1}
  SGD:   c_{L+1} = A - 2a_{L+1};  G = min(a_{L+1}+b_{L+1}, 2a_{L+1}+c_{L+1});  c_l = A - 2a_l - G;  c_1 = -2a_1 - G
with A = 1 (full alignment) or 1/2 (no alignment); lr_mode=global sets every c to 0.
"""

from __future__ import annotations

from errors import UserError

# (a, b) per class: embedding, hidden, readout (docs/parameterizations.md §4, "ab exponents")
AB = {
    "sp": {"embedding": (0.0, 0.0), "hidden": (0.0, 0.5), "readout": (0.0, 0.5)},
    "ntk": {"embedding": (0.0, 0.0), "hidden": (0.5, 0.0), "readout": (0.5, 0.0)},
    "mup": {"embedding": (-0.5, 0.5), "hidden": (0.0, 0.5), "readout": (0.5, 0.5)},
    "mfp": {"embedding": (-0.5, 0.5), "hidden": (0.5, 0.0), "readout": (1.0, 0.0)},
}
CLASSES = ("embedding", "hidden", "readout")
ALIGNMENT = {"full": 1.0, "none": 0.5}


def c_exponents(ab: dict, family: str, alignment: str) -> dict[str, float]:
    """LR exponents c per class from the closed forms (docs/parameterizations.md §4)."""
    A = ALIGNMENT[alignment]
    (a1, _), (al, _), (ao, bo) = ab["embedding"], ab["hidden"], ab["readout"]
    if family == "adam":
        return {"embedding": -a1, "hidden": A - al, "readout": A - ao}
    c_out = A - 2 * ao
    G = min(ao + bo, 2 * ao + c_out)
    return {"embedding": -2 * a1 - G, "hidden": A - 2 * al - G, "readout": c_out}


def _exponents(p) -> dict:
    """(a, b) per class: the preset, with any `param.exponents.<class>.a|b` overrides."""
    if p.preset not in AB:
        raise UserError(f"param.preset={p.preset!r}: choose one of {', '.join(AB)} (Everett et al. Table 1)")
    ab = {k: list(v) for k, v in AB[p.preset].items()}
    for cls, override in (p.get("exponents") or {}).items():
        if cls not in CLASSES:
            raise UserError(f"param.exponents.{cls}: choose a class among {', '.join(CLASSES)}")
        for i, key in enumerate(("a", "b")):
            if override.get(key) is not None:
                ab[cls][i] = float(override[key])
    return {k: tuple(v) for k, v in ab.items()}


def _m_pow(e: float, coef: float = 1.0) -> str:
    """A formula string coef·m^-e (the factor a class gets)."""
    return f"{coef!r} * m^({-e!r})" if coef != 1.0 else f"m^({-e!r})"


def abc_sections(p) -> dict:
    if p.lr_mode not in ("global", "per_layer"):
        raise UserError(f"param.lr_mode={p.lr_mode!r}: choose global (one LR) or per_layer (c exponents)")
    if p.alignment not in ALIGNMENT:
        raise UserError(f"param.alignment={p.alignment!r}: choose full or none")
    ab = _exponents(p)
    src = f"Everett et al. 2024, {p.preset} (a, b)"
    gamma = {cls: float((p.get("gamma") or {}).get(cls, 1.0)) for cls in CLASSES}
    eps_e = {cls: float((p.get("eps_exponents") or {}).get(cls, 0.0)) for cls in CLASSES}
    sections = {
        "init": {"source": f"{src}: std sigma·m^-b"} | {c: _m_pow(ab[c][1]) for c in CLASSES},
        "forward": {"source": f"{src}: multiplier m^-a"} | {c: _m_pow(ab[c][0]) for c in CLASSES},
    }
    for family in ("adam", "sgd"):
        overrides = (p.get("c") or {}).get(family) or {}
        if p.lr_mode == "global":
            cs, how = {c: 0.0 for c in CLASSES}, "global LR (c = 0)"
        else:
            cs, how = c_exponents(ab, family, p.alignment), f"per-layer c, {p.alignment} alignment (docs/parameterizations.md §4 closed forms [I])"
        cs |= {k: float(v) for k, v in overrides.items() if v is not None}
        lr = {"source": f"{src}; {how}; x gamma"} | {c: _m_pow(cs[c], gamma[c]) for c in CLASSES}
        lr["vector"] = {"f": 1, "src": "[I] biases and LN gains: global LR (Everett's model has no biases)"}
        sections[family] = {"lr": lr, "wd": {}}
        if family == "adam":
            sections[family]["eps"] = {"source": f"{src}: per-layer eps m^-e (param.eps_exponents)"} | {
                c: _m_pow(eps_e[c]) for c in CLASSES} | {"vector": _m_pow(eps_e["hidden"])}
    return sections
