"""Acceptance tests of the parameterization table against docs/parameterizations.md.

One test per cell of its §2.1 (init, forward multipliers, residual multiplier, attention
scale), §2.2 (AdamW lr / wd / eps) and §2.3 (SGD lr / wd), plus §3.3 / §8.1 (base-shape
identity), §8.2 (group ratios, independent WD), §4 (Everett's abc exponents), the optimizer
param groups, the checkpoint round trip of the table and the mis-configurations.

The expected values below are read off that page, not off conf/param/*.yaml. Shapes are far
from the base (256 x 4) so every factor shows: width 2048 (m = 8), depth 16 (r = 4,
sqrt(r) = 2), d_head = 64. No formula of one cell collides with another cell's at this shape
(1, 1/8, 1/16, 1/32, 1/2, 4, 8, 32 are all distinct).

Spec column -> config:
  SP                 param=sp
  muP (TP5)          param=mup
  Depth-muP (a=1/2)  param=depth_mup            (SGD: "Depth-muP (k=1, Table 11)")
  CompleteP (a=1)    param=completep           (SGD: "Spectral k>=2 / CompleteP-style")
  Spectral k=1       param=spectral param.block_depth=1   (SGD: Table 11 column)
  Spectral k>=2      param=spectral param.block_depth=2   (SGD: Table 5 column)
"""

from __future__ import annotations

import copy
import functools
import io
import json
import math

import pytest
import torch

import assemble
import cli
from param import build_table

# ----------------------------------------------------------------------------- shapes and base values

W, D, HD = 2048, 16, 64           # target shape
BW, BD = 256, 4                   # the spectral paper's base shape 256 x 4 (docs/parameterizations.md §5), set explicitly: the default base_width is 128
M, R = W / BW, D / BD             # 8, 4
SR = math.sqrt(R)                 # 2
ETA, LAM, EPS, SIGMA = 3e-3, 0.05, 1e-10, 0.025
A_IN, A_OUT, A_RES = 2.0, 3.0, 1.5
VOCAB = 64
REL = 1e-9

# pinned to the page's columns (the table above), not read from conf/param/: abc's §4 has its own tests below
PARAMS = ("sp", "mup", "depth_mup", "completep", "spectral_k1", "spectral_k2")
PNAME = {"sp": "SP", "mup": "muP", "depth_mup": "depth-muP", "completep": "CompleteP",
         "spectral_k1": "spectral k=1", "spectral_k2": "spectral k>=2"}
PARAM_OVERRIDES = {
    "sp": ("param=sp",),
    "mup": ("param=mup",),
    "depth_mup": ("param=depth_mup",),
    "completep": ("param=completep",),
    "spectral_k1": ("param=spectral", "param.block_depth=1"),
    "spectral_k2": ("param=spectral", "param.block_depth=2"),
}
# forward multipliers set away from 1 where the page's column uses them (SP has none; muP's
# residual multiplier is 1 in §2.1, so alpha_res is left at its default there)
MULT_OVERRIDES = {
    "sp": (),
    "mup": (f"param.emb_multiplier={A_IN}", f"param.readout_multiplier={A_OUT}"),
    **{p: (f"param.emb_multiplier={A_IN}", f"param.readout_multiplier={A_OUT}", f"param.branch_multiplier={A_RES}")
       for p in ("depth_mup", "completep", "spectral_k1", "spectral_k2")},
}
HIDDEN_ROLES = ("attn_qkv", "attn_out", "mlp_in", "mlp_out")


@functools.lru_cache(maxsize=None)
def _composed(group_choices: tuple[str, ...]):
    return cli.compose(list(group_choices))


def _value(text: str):
    """A Hydra override value as Hydra's grammar reads the ones used here (numbers, bools, null, words)."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "null":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def fast_compose(overrides):
    """cli.compose(overrides), with Hydra run once per choice of config groups and the value overrides
    (`a.b=v`, keys that exist) applied to a copy (Hydra costs ~70 ms a call; hundreds of tables are built
    here). test_fast_compose_is_cli_compose checks that both give the same tables."""
    from omegaconf import OmegaConf

    groups = tuple(o for o in overrides if "." not in o.split("=", 1)[0])
    cfg = copy.deepcopy(_composed(groups))
    for o in overrides:
        key, val = o.split("=", 1)
        if "." in key:
            OmegaConf.update(cfg, key, _value(val), merge=False)
    return cfg


@functools.lru_cache(maxsize=None)
def _table(overrides: tuple[str, ...]):
    cfg = fast_compose(overrides)
    return build_table(cfg, assemble.vocab_size(cfg))


def base_overrides(optim="adamw", width=W, depth=D, lr=ETA) -> tuple[str, ...]:
    o = (f"optim={optim}", f"model.width={width}", f"model.depth={depth}", f"model.head_dim={HD}",
         f"model.vocab_size={VOCAB}", f"optim.lr={lr}", f"optim.weight_decay={LAM}", f"param.base_width={BW}")
    if optim != "sgd":
        o += (f"optim.eps={EPS}",)
    return o


def table(param, optim="adamw", *extra, width=W, depth=D, lr=ETA, mults=True, sigma=True):
    """The table of one spec column at the target shape (tied embeddings unless `extra` says)."""
    ov = PARAM_OVERRIDES[param] + base_overrides(optim, width, depth, lr)
    if sigma:
        ov += (f"param.init_std={SIGMA}",)
    if mults:
        ov += MULT_OVERRIDES[param]
    return _table(ov + tuple(extra))


UNTIED = "model.tie_embeddings=false"

# row selections by the weight classes of docs/parameterizations.md §1
SELECT = {
    "emb": lambda r: r.name in ("wte.weight", "wpe.weight"),
    "wte": lambda r: r.name == "wte.weight",
    "wpe": lambda r: r.name == "wpe.weight",
    "hidden": lambda r: r.role in HIDDEN_ROLES,
    "qkv/fc": lambda r: r.role in ("attn_qkv", "mlp_in"),
    "O/proj": lambda r: r.role in ("attn_out", "mlp_out"),
    "hidden biases": lambda r: r.role == "bias",
    "pre-LN": lambda r: r.role == "norm" and r.block is not None,
    "final LN": lambda r: r.role == "norm" and r.block is None,
    "readout": lambda r: r.name == "lm_head.weight",
    "vec": lambda r: r.role in ("norm", "bias"),
}


def rows(t, what):
    sel = [r for r in t.rows if SELECT[what](r)]
    assert sel, f"no rows for {what!r} in {[r.name for r in t.rows]}"
    return sel


def close(a, b, rel=REL) -> bool:
    """Elementwise approx equality of two tuples that may hold None (SGD's eps)."""
    return len(a) == len(b) and all(x is y if (x is None or y is None) else x == pytest.approx(y, rel=rel, abs=1e-300)
                                    for x, y in zip(a, b))


def assert_field(t, what, field, expected, rel=REL):
    for r in rows(t, what):
        got = getattr(r, field)
        assert got == pytest.approx(expected, rel=rel, abs=0 if expected else 1e-300), (
            f"{r.name}.{field} = {got!r}, spec says {expected!r}")


def test_fast_compose_is_cli_compose():
    for ov in [PARAM_OVERRIDES["spectral_k1"] + base_overrides("sgd") + (UNTIED, "optim.wd_mode=independent"),
               PARAM_OVERRIDES["completep"] + base_overrides("adamw") + MULT_OVERRIDES["completep"] + ("param.alpha=0.5",),
               ("param=abc", UNTIED, "param.preset=mfp", "param.alignment=none") + base_overrides("sgd")]:
        cfg = cli.compose(list(ov))
        assert build_table(cfg, assemble.vocab_size(cfg)).to_dict() == _table(tuple(ov)).to_dict()


# ----------------------------------------------------------------------------- cell tables

# factor name -> value at m=8, r=4
OPTNAME = {"adamw": "AdamW", "sgd": "SGD", "any": "any optimizer"}
F = {
    "1": 1.0, "m": M, "1/m": 1 / M, "1/(m sqrt r)": 1 / (M * SR), "1/sqrt r": 1 / SR,
    "1/(m*r)": 1 / (M * R), "r": R, "m*r": M * R, "1/r": 1 / R, "0": 0.0,
}


def _cells(section, optim, quantity, field, what, by_param, base, extra=(), note=""):
    """One pytest.param per spec column: (param, optim, row class, field, expected value, extra overrides)."""
    out = []
    for p, f in by_param.items():
        text = "0" if f == "0" else quantity if f == "1" else quantity + (f[1:] if f.startswith("1/") else "*" + f)
        cid = f"{section} {PNAME[p]} {OPTNAME[optim]} {what} {field_label(field)} is {text}{note}"
        out.append(pytest.param(p, optim, what, field, base * F[f], tuple(extra), id=cid))
    return out


def field_label(field):
    return {"lr": "LR", "weight_decay": "WD", "eps": "eps", "init_std": "init std", "multiplier": "multiplier"}[field]


ALL = lambda f: {p: f for p in PARAMS}  # noqa: E731

# ---- §2.2 AdamW (Table 6 / Table 12 / CompleteP Table 1 / mup MuAdamW)
ADAMW_CELLS = [
    *_cells("2.2", "adamw", "eta", "lr", "emb", ALL("1"), ETA),
    *_cells("2.2", "adamw", "eta", "lr", "hidden", {"sp": "1", "mup": "1/m", "depth_mup": "1/(m sqrt r)", "completep": "1/m",
                                                     "spectral_k1": "1/(m sqrt r)", "spectral_k2": "1/m"}, ETA),
    *_cells("2.2", "adamw", "eta", "lr", "hidden biases", {"sp": "1", "mup": "1", "depth_mup": "1/sqrt r", "completep": "1",
                                                            "spectral_k1": "1/sqrt r", "spectral_k2": "1"}, ETA),
    *_cells("2.2", "adamw", "eta", "lr", "pre-LN", {"sp": "1", "mup": "1", "depth_mup": "1/sqrt r", "completep": "1"}, ETA),
    *_cells("2.2", "adamw", "eta", "lr", "pre-LN", {"spectral_k1": "1/sqrt r", "spectral_k2": "1"}, ETA, note=" [I]"),
    *_cells("2.2", "adamw", "eta", "lr", "final LN", ALL("1"), ETA),
    *_cells("2.2", "adamw", "eta", "lr", "readout", ALL("1"), ETA, extra=(UNTIED,), note=" (Table 8 form)"),
    *_cells("2.2", "adamw", "lambda", "weight_decay", "emb", ALL("1"), LAM),
    *_cells("2.2", "adamw", "lambda", "weight_decay", "hidden", {"sp": "1", **{p: "m" for p in PARAMS[1:]}}, LAM),
    *_cells("2.2", "adamw", "lambda", "weight_decay", "readout", ALL("1"), LAM, extra=(UNTIED,)),
    *_cells("2.2", "adamw", "lambda", "weight_decay", "vec", {"sp": "0", "mup": "0", "depth_mup": "0", "completep": "0",
                                                            "spectral_k1": "1", "spectral_k2": "1"}, LAM, note=" by default"),
    *_cells("2.2", "adamw", "eps", "eps", "emb", {"sp": "1", "mup": "1/m", "depth_mup": "1/m", "completep": "1/(m*r)",
                                                   "spectral_k1": "1/m", "spectral_k2": "1/m"}, EPS),
    *_cells("2.2", "adamw", "eps", "eps", "hidden", {"sp": "1", "mup": "1/m", "depth_mup": "1/(m sqrt r)", "completep": "1/(m*r)",
                                                      "spectral_k1": "1/(m sqrt r)", "spectral_k2": "1/(m*r)"}, EPS),
    *_cells("2.2", "adamw", "eps", "eps", "hidden biases", {"sp": "1", "mup": "1/m", "depth_mup": "1/(m sqrt r)",
                                                             "completep": "1/(m*r)", "spectral_k1": "1/(m sqrt r)",
                                                             "spectral_k2": "1/(m*r)"}, EPS),
    *_cells("2.2", "adamw", "eps", "eps", "readout", {"sp": "1", "mup": "1/m", "depth_mup": "1/m", "completep": "1/(m*r)",
                                                       "spectral_k1": "1/m", "spectral_k2": "1/m"}, EPS, extra=(UNTIED,)),
]

# ---- §2.3 SGD (Tables 5 / 11, TP5 Table 3/8, mup MuSGD); k=1 column = depth_mup and spectral k=1,
# k>=2 column = completep and spectral k>=2
K1, K2 = ("depth_mup", "spectral_k1"), ("completep", "spectral_k2")


def sgd_col(sp, mup, k1, k2):
    return {"sp": sp, "mup": mup, **{p: k1 for p in K1}, **{p: k2 for p in K2}}


VEC_ON = "optim.wd_on_vectors=true"
SGD_CELLS = [
    *_cells("2.3", "sgd", "eta", "lr", "emb", sgd_col("1", "m", "m", "m"), ETA),
    *_cells("2.3", "sgd", "eta", "lr", "hidden", sgd_col("1", "1", "1", "r"), ETA),
    *_cells("2.3", "sgd", "eta", "lr", "hidden biases", sgd_col("1", "m", "m", "m*r"), ETA),
    *_cells("2.3", "sgd", "eta", "lr", "pre-LN", sgd_col("1", "m", "m", "m*r"), ETA, note=" [I: LN vec as hidden biases]"),
    *_cells("2.3", "sgd", "eta", "lr", "readout", sgd_col("1", "m", "m", "m"), ETA, extra=(UNTIED,), note=" (Table 8 form)"),
    *_cells("2.3", "sgd", "lambda", "weight_decay", "emb", sgd_col("1", "1/m", "1/m", "1/m"), LAM),
    *_cells("2.3", "sgd", "lambda", "weight_decay", "hidden", sgd_col("1", "1", "1/sqrt r", "1/r"), LAM),
    *_cells("2.3", "sgd", "lambda", "weight_decay", "readout", sgd_col("1", "1/m", "1/m", "1/m"), LAM, extra=(UNTIED,)),
    *_cells("2.3", "sgd", "lambda", "weight_decay", "hidden biases", sgd_col("1", "1/m", "1/(m sqrt r)", "1/(m*r)"), LAM,
            extra=(VEC_ON,), note=" with wd_on_vectors=true"),
]

# ---- §2.1 optimizer-agnostic (checked on the AdamW table; init and multipliers do not depend on the optimizer)
INIT_CELLS = _cells("2.1", "any", "sigma", "init_std", "emb", ALL("1"), SIGMA)


def _sqrt_m_cells():
    out = []
    for p in PARAMS:
        exp = SIGMA if p == "sp" else SIGMA / math.sqrt(M)
        text = "sigma" if p == "sp" else "sigma/sqrt m"
        out.append(pytest.param(p, "adamw", "qkv/fc", "init_std", exp, (), id=f"2.1 {PNAME[p]} QKV and fc init std is {text}"))
    for p in ("depth_mup", "completep", "spectral_k1", "spectral_k2"):
        out.append(pytest.param(p, "adamw", "O/proj", "init_std", SIGMA / math.sqrt(M), (),
                                id=f"2.1 {PNAME[p]} O and proj init std is sigma/sqrt m with no 1/sqrt(2L)"))
    out.append(pytest.param("sp", "adamw", "O/proj", "init_std", SIGMA / math.sqrt(2 * D), (),
                            id="2.1 SP O and proj init std is sigma/sqrt(2L)"))
    for p in PARAMS:
        exp = 1.0 if p == "sp" else A_IN
        text = "1" if p == "sp" else "alpha_in"
        out.append(pytest.param(p, "adamw", "wte", "multiplier", exp, (), id=f"2.1 {PNAME[p]} wte forward multiplier is {text}"))
        out.append(pytest.param(p, "adamw", "wpe", "multiplier", exp, (),
                                id=f"2.1 {PNAME[p]} wpe forward multiplier is {text} (emb = wte and wpe, spec 1)"))
        exp = 1.0 if p == "sp" else A_OUT / M
        text = "1" if p == "sp" else "alpha_out/m"
        out.append(pytest.param(p, "adamw", "readout", "multiplier", exp, (UNTIED,),
                                id=f"2.1 {PNAME[p]} untied readout multiplier is {text}"))
        out.append(pytest.param(p, "adamw", "readout", "init_std", SIGMA, (UNTIED,),
                                id=f"2.1 {PNAME[p]} untied readout init std is sigma (Table 8 form)"))
        branch = {"sp": 1.0, "mup": 1.0, "depth_mup": A_RES / SR, "completep": A_RES / R,
                  "spectral_k1": A_RES / SR, "spectral_k2": A_RES / R}[p]
        text = {"sp": "1", "mup": "1", "depth_mup": "alpha_res*r^-1/2", "completep": "alpha_res*r^-1",
                "spectral_k1": "alpha_res*r^-1/2", "spectral_k2": "alpha_res*r^-1"}[p]
        out.append(pytest.param(p, "adamw", "O/proj", "multiplier", branch, (),
                                id=f"2.1 {PNAME[p]} residual-branch multiplier on O and proj is {text}"))
        for what in ("qkv/fc", "pre-LN", "final LN"):
            out.append(pytest.param(p, "adamw", what, "multiplier", 1.0, (), id=f"2.1 {PNAME[p]} {what} multiplier is 1"))
    return out


INIT_CELLS += _sqrt_m_cells()
ALL_CELLS = INIT_CELLS + ADAMW_CELLS + SGD_CELLS


@pytest.mark.parametrize("param, optim, what, field, expected, extra", ALL_CELLS)
def test_spec_cell(param, optim, what, field, expected, extra):
    t = table(param, "adamw" if optim == "any" else optim, *extra)
    assert_field(t, what, field, expected)


# ----------------------------------------------------------------------------- §2.1 globals

@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"2.1 {PNAME[p]} globals carry the forward multipliers")
def test_globals_multipliers(param):
    g = table(param).globals
    assert g["emb_multiplier"] == pytest.approx(1.0 if param == "sp" else A_IN, rel=REL)
    assert g["readout_multiplier"] == pytest.approx(1.0 if param == "sp" else A_OUT / M, rel=REL)
    branch = {"sp": 1.0, "mup": 1.0, "depth_mup": A_RES / SR, "completep": A_RES / R,
              "spectral_k1": A_RES / SR, "spectral_k2": A_RES / R}[param]
    assert g["branch_multiplier"] == pytest.approx(branch, rel=REL)


BHD = 16  # a base head_dim other than HD, so the anchored scale is told apart from 1/sqrt(HD)


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"2.1 {PNAME[p]} attention logit scale is "
                         + ("1/sqrt(d_head)" if p == "sp" else "1/d_head, anchored to 1/sqrt(d_head) at the base head_dim"))
def test_attention_scale(param):
    """TP5 Def. 4.1's 1/d_head for the muP family, times sqrt(d_base) so that it equals SP's 1/sqrt(d_head) at the
    base head_dim (microsoft/mup's 8/d is d_base = 64): 1/d_head in scaling, SP at the base."""
    at = {hd: table(param, "adamw", f"param.base_head_dim={BHD}", f"model.head_dim={hd}").globals["attn_scale"]
          for hd in (BHD, HD)}
    assert at[BHD] == 1 / math.sqrt(BHD)  # bitwise SP's value at the base head_dim
    assert at[HD] == pytest.approx(1 / math.sqrt(HD) if param == "sp" else math.sqrt(BHD) / HD, rel=REL)
    if param != "sp":
        assert at[HD] / at[BHD] == pytest.approx(BHD / HD, rel=REL)  # 1/d_head in scaling


def test_attention_scale_linear_is_tp5_literal():
    assert table("mup", "adamw", "param.attn_scale=linear").globals["attn_scale"] == pytest.approx(1 / HD, rel=REL)


@pytest.mark.parametrize("param, kind, expected", [
    ("mup", "sqrt", 1 / math.sqrt(HD)), ("spectral_k2", "sqrt", 1 / math.sqrt(HD)), ("sp", "linear", 1 / HD)],
    ids=["muP with param.attn_scale=sqrt is 1/sqrt(d_head)", "spectral with param.attn_scale=sqrt is 1/sqrt(d_head)",
         "SP with param.attn_scale=linear is 1/d_head"])
def test_attention_scale_override(param, kind, expected):
    assert table(param, "adamw", f"param.attn_scale={kind}").globals["attn_scale"] == pytest.approx(expected, rel=REL)


def test_mup_out_proj_init_is_sigma_over_sqrt_m_or_masters_sigma_over_sqrt_2Lm():
    """§2.1 muP: 'sigma/sqrt m (nanoGPT-mup master: O/proj sigma/sqrt(2Lm))': §2.1 admits both for muP."""
    for r in rows(table("mup"), "O/proj"):
        assert any(r.init_std == pytest.approx(x, rel=REL) for x in (SIGMA / math.sqrt(M), SIGMA / math.sqrt(2 * D * M))), (
            r.name, r.init_std)


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"2.1 {PNAME[p]} LN gain init 1, LN bias and hidden bias init 0")
def test_vector_init(param):
    t = table(param)
    for r in rows(t, "vec"):
        want = "ones" if (r.role == "norm" and r.name.endswith(".weight")) else "zeros"
        assert r.init == want, (r.name, r.init)


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"2.1 {PNAME[p]} matrices init normal (query zero only when asked)")
def test_matrix_init_kind(param):
    extra = () if param == "sp" else ("param.zero_query=false",)
    t = table(param, "adamw", *extra)
    for r in t.rows:
        if r.role in HIDDEN_ROLES + ("embedding", "position_embedding"):
            assert r.init == "normal", (r.name, r.init)


@pytest.mark.parametrize("param", ("mup", "depth_mup"), ids=lambda p: f"2.1 {PNAME[p]} param.zero_query zero-inits W_Q (TP5)")
def test_zero_query(param):
    t = table(param, "adamw", "param.zero_query=true")
    for r in rows(t, "hidden"):
        if r.role == "attn_qkv":
            assert r.init == "normal_zero_query", r.name
            assert r.init_std == pytest.approx(SIGMA / math.sqrt(M), rel=REL), r.name  # K and V keep sigma/sqrt m
        else:
            assert r.init == "normal", r.name


@pytest.mark.parametrize("param", ("mup", "depth_mup"), ids=lambda p: f"2.1 {PNAME[p]} param.zero_readout zero-inits lm_head")
def test_zero_readout(param):
    t = table(param, "adamw", UNTIED, "param.zero_readout=true")
    (r,) = rows(t, "readout")
    assert r.init == "zeros"
    assert r.init_std == 0


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"{PNAME[p]} tied wte takes the embedding rows (2.1 note on tying)")
def test_tied_wte_is_embedding(param):
    for optim in ("adamw", "sgd"):
        tied, untied = table(param, optim), table(param, optim, UNTIED)
        a, b = tied.by_name()["wte.weight"], untied.by_name()["wte.weight"]
        assert "lm_head.weight" not in tied.by_name()
        assert close((a.lr, a.weight_decay, a.eps, a.init_std, a.multiplier),
                     (b.lr, b.weight_decay, b.eps, b.init_std, b.multiplier)), optim
        assert tied.globals["readout_multiplier"] == pytest.approx(untied.by_name()["lm_head.weight"].multiplier, rel=REL)
    # spec 2.1 note: for SGD the shared matrix's emb LR eta*m equals the Table-8 readout SGD LR eta*m
    t = table(param, "sgd", UNTIED)
    assert t.by_name()["wte.weight"].lr == pytest.approx(t.by_name()["lm_head.weight"].lr, rel=REL)


# ----------------------------------------------------------------------------- globals, alpha, block depth

@pytest.mark.parametrize("param, alpha", [("depth_mup", 0.5), ("completep", 1.0), ("spectral_k1", 0.5), ("spectral_k2", 1.0)],
                         ids=["depth-muP alpha is 1/2", "CompleteP alpha is 1", "spectral k=1 derives alpha 1/2",
                              "spectral k>=2 derives alpha 1"])
def test_depth_exponent(param, alpha):
    g = table(param).globals
    assert g["alpha"] == pytest.approx(alpha, rel=REL)


@pytest.mark.parametrize("param", PARAMS + ("spectral_k1",), ids=lambda p: f"{PNAME[p]} globals echo the shape and config")
def test_globals_echo(param):
    g = table(param).globals
    assert g["m"] == pytest.approx(M, rel=REL) and g["r"] == pytest.approx(R, rel=REL)
    assert (g["width"], g["depth"], g["head_dim"]) == (W, D, HD)
    assert g["param"] == ("spectral" if param.startswith("spectral") else param)
    assert g["optim"] == "adamw" and g["wd_mode"] == "coupled" and g["tie_embeddings"] is True
    if param.startswith("spectral"):
        assert g["block_depth"] == (1 if param == "spectral_k1" else 2)


def test_spectral_block_depth_3_is_the_k_ge_2_rule():
    """§2.5: 'Going to k>2 changes nothing (App. B.2).'"""
    for optim in ("adamw", "sgd"):
        a = table("spectral_k2", optim)
        b = _table(PARAM_OVERRIDES["spectral_k2"][:1] + ("param.block_depth=3",) + base_overrides(optim)
                   + (f"param.init_std={SIGMA}",) + MULT_OVERRIDES["spectral_k2"])
        assert b.globals["alpha"] == pytest.approx(1.0)
        assert b.globals["branch_multiplier"] == pytest.approx(a.globals["branch_multiplier"], rel=REL)
        for ra, rb in zip(a.rows, b.rows):
            assert ra.name == rb.name
            assert close((rb.lr, rb.weight_decay, rb.eps, rb.init_std, rb.multiplier),
                         (ra.lr, ra.weight_decay, ra.eps, ra.init_std, ra.multiplier)), ra.name


def test_completep_alpha_half_is_depth_mup_in_the_blocks():
    """§2.2 provenance: 'Depth-muP: CompleteP Table 1 with alpha=1/2'; CompleteP T1: pre-LN and hidden bias LR
    eta*r^(alpha-1), hidden WD lambda*m, block eps eps*m^-1*r^-alpha, branch r^-alpha."""
    c = table("completep", "adamw", "param.alpha=0.5")
    d = table("depth_mup")
    assert c.globals["branch_multiplier"] == pytest.approx(A_RES / SR, rel=REL)
    assert_field(c, "hidden", "lr", ETA / (M * SR))
    assert_field(c, "hidden biases", "lr", ETA / SR)
    assert_field(c, "pre-LN", "lr", ETA / SR)
    assert_field(c, "hidden", "weight_decay", LAM * M)
    assert_field(c, "hidden", "eps", EPS / (M * SR))
    assert_field(c, "hidden biases", "eps", EPS / (M * SR))
    for what in ("hidden", "hidden biases", "pre-LN"):
        for rc, rd in zip(rows(c, what), rows(d, what)):
            assert rc.lr == pytest.approx(rd.lr, rel=REL), rc.name


# ----------------------------------------------------------------------------- switches

@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"{PNAME[p]} eps_scaling=false gives every tensor eps")
def test_eps_scaling_off(param):
    t = table(param, "adamw", "optim.eps_scaling=false")
    for r in t.rows:
        assert r.eps == pytest.approx(EPS, rel=REL), r.name


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"{PNAME[p]} SGD rows have no eps")
def test_sgd_has_no_eps(param):
    assert all(r.eps is None for r in table(param, "sgd").rows)


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"2.2 {PNAME[p]} Adam takes AdamW's lr and eps")
def test_adam_same_lr_eps_as_adamw(param):
    a, b = table(param, "adamw"), table(param, "adam")
    for ra, rb in zip(a.rows, b.rows):
        assert ra.name == rb.name
        assert (rb.lr, rb.eps) == pytest.approx((ra.lr, ra.eps), rel=REL), ra.name


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"{PNAME[p]} LN lr/eps/wd are finite and lr, eps positive ([I] cells)")
def test_i_cells_finite(param):
    for optim in ("adamw", "sgd"):
        for r in rows(table(param, optim, VEC_ON), "vec"):
            assert math.isfinite(r.lr) and r.lr > 0, r.name
            assert math.isfinite(r.weight_decay) and r.weight_decay >= 0, r.name
            if optim == "adamw":
                assert math.isfinite(r.eps) and r.eps > 0, r.name


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: f"{PNAME[p]} wd_on_vectors overrides the default")
def test_wd_on_vectors_switch(param):
    """optim.wd_on_vectors=true/false overrides the parameterization's default (false; spectral: true)."""
    for optim in ("adamw", "sgd"):
        default = table(param, optim)
        flipped = table(param, optim, "optim.wd_on_vectors=" + ("false" if param.startswith("spectral") else "true"))
        off, on = (flipped, default) if param.startswith("spectral") else (default, flipped)
        assert all(r.weight_decay == 0 for r in rows(off, "vec"))
        assert all(r.weight_decay > 0 for r in rows(on, "vec"))
        for a, b in zip(off.rows, on.rows):  # matrices do not care
            if a.role not in ("norm", "bias"):
                assert a.weight_decay == pytest.approx(b.weight_decay, rel=REL), a.name


@pytest.mark.parametrize("optim", ("adamw", "sgd"), ids=["2.2 spectral AdamW vector WD defaults to lambda (paper's convention)",
                                                       "2.3 spectral SGD decays hidden biases by default"])
def test_spectral_vector_wd_default(optim):
    for p in ("spectral_k1", "spectral_k2"):
        t = table(p, optim)
        if optim == "adamw":
            assert_field(t, "vec", "weight_decay", LAM)
        else:
            assert_field(t, "hidden biases", "weight_decay", LAM / (M * (SR if p == "spectral_k1" else R)))


# ----------------------------------------------------------------------------- independent WD (§1, §2.2 provenance, §6.2, §8.2)

IND = "optim.wd_mode=independent"
CLASSES = ("emb", "hidden", "readout")


def _lrwd(t, what):
    return [r.lr * r.weight_decay for r in rows(t, what)]


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("optim", ("adamw", "sgd"))
@pytest.mark.parametrize("what", CLASSES)
def test_independent_wd_is_coupled_over_eta(param, optim, what):
    """Independent WD: torch weight_decay = lambda x WD factor / eta (docs/parameterizations.md §1: lambda_torch = lambda~/eta_peak)."""
    c = table(param, optim, UNTIED)
    i = table(param, optim, UNTIED, IND)
    assert i.globals["wd_mode"] == "independent"
    for rc, ri in zip(rows(c, what), rows(i, what)):
        assert ri.lr == pytest.approx(rc.lr, rel=REL)
        assert ri.weight_decay == pytest.approx(rc.weight_decay / ETA, rel=REL), rc.name


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: PNAME[p])
@pytest.mark.parametrize("optim", ("adamw", "sgd"))
@pytest.mark.parametrize("what", CLASSES)
def test_independent_wd_keeps_lr_wd_width_invariant(param, optim, what):
    """'independent WD keeps lr*wd width-invariant' (§2.2 provenance: eta_l*lambda_l width-invariant per layer)."""
    small = table(param, optim, UNTIED, IND, width=BW)
    big = table(param, optim, UNTIED, IND)
    assert _lrwd(big, what) == pytest.approx(_lrwd(small, what), rel=REL)
    # and does not depend on the base LR eta
    other = table(param, optim, UNTIED, IND, lr=ETA * 4)
    assert _lrwd(other, what) == pytest.approx(_lrwd(big, what), rel=REL)


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: PNAME[p])
@pytest.mark.parametrize("optim", ("adamw", "sgd"))
def test_independent_wd_hidden_depth_rule(param, optim):
    """§2.2 caveat: eta*lambda per layer is depth-invariant for k>=2; for k=1 the hidden product scales r^-1/2."""
    shallow = table(param, optim, UNTIED, IND, depth=BD)
    deep = table(param, optim, UNTIED, IND)
    ratio = 1 / SR if param in K1 else 1.0
    assert _lrwd(deep, "hidden")[0] == pytest.approx(_lrwd(shallow, "hidden")[0] * ratio, rel=REL)
    assert len(set(round(x / _lrwd(deep, "hidden")[0], 12) for x in _lrwd(deep, "hidden"))) == 1


# ----------------------------------------------------------------------------- §3.3 / §8.1 base-shape identity

BASE_EXTRA = ("optim.wd_on_vectors=false",)


@pytest.mark.parametrize("tie", ("true", "false"))
@pytest.mark.parametrize("optim", ("adamw", "sgd"))
@pytest.mark.parametrize("param", PARAMS[1:], ids=lambda p: PNAME[p])
def test_base_shape_identity(param, optim, tie):
    """§8.1: at m = r = 1 every per-group LR, WD, eps, init std and multiplier equals SP's; exceptions (§3.3)
    are the attention scale and the O/proj init convention."""
    extra = BASE_EXTRA + (f"model.tie_embeddings={tie}",)
    sp = table("sp", optim, *extra, width=BW, depth=BD, mults=False)
    p = table(param, optim, *extra, width=BW, depth=BD, mults=False)
    assert [r.name for r in p.rows] == [r.name for r in sp.rows]
    for a, b in zip(sp.rows, p.rows):
        assert b.lr == pytest.approx(a.lr, rel=REL), b.name
        assert b.weight_decay == pytest.approx(a.weight_decay, rel=REL, abs=1e-300), b.name
        assert b.eps == (None if a.eps is None else pytest.approx(a.eps, rel=REL)), b.name
        assert b.multiplier == pytest.approx(a.multiplier, rel=REL), b.name
        if a.role in ("attn_out", "mlp_out"):
            # SP: sigma/sqrt(2L); depth-muP/CompleteP/spectral: sigma (no 1/sqrt(2L)); muP: either convention
            assert a.init_std == pytest.approx(SIGMA / math.sqrt(2 * BD), rel=REL)
            allowed = [SIGMA, SIGMA / math.sqrt(2 * BD)] if param == "mup" else [SIGMA]
            assert any(b.init_std == pytest.approx(x, rel=REL) for x in allowed), (b.name, b.init_std)
        else:
            assert b.init_std == pytest.approx(a.init_std, rel=REL, abs=1e-300), b.name
    for key in ("emb_multiplier", "readout_multiplier", "branch_multiplier"):
        assert p.globals[key] == pytest.approx(1.0, rel=REL) and sp.globals[key] == pytest.approx(1.0, rel=REL), key
    assert sp.globals["attn_scale"] == pytest.approx(1 / math.sqrt(HD), rel=REL)
    # anchored at the default base head_dim (32, not this HD): sqrt(32)/HD; at base_head_dim = HD it is SP's
    assert p.globals["attn_scale"] == pytest.approx(math.sqrt(32) / HD, rel=REL)
    assert table(param, optim, *extra, f"param.base_head_dim={HD}", width=BW, depth=BD, mults=False).globals["attn_scale"] \
        == sp.globals["attn_scale"]


@pytest.mark.parametrize("optim", ("adamw", "sgd"))
def test_sp_base_values_at_base_shape(optim):
    """§8.1: at the base every factor is 1.0, so SP (and hence every column) hands out eta, lambda (0 on vectors), eps."""
    t = table("sp", optim, width=BW, depth=BD, mults=False)
    for r in t.rows:
        assert r.lr == pytest.approx(ETA, rel=REL), r.name
        assert r.weight_decay == pytest.approx(0.0 if r.role in ("norm", "bias") else LAM, rel=REL, abs=1e-300), r.name
        assert r.eps == (None if optim == "sgd" else pytest.approx(EPS, rel=REL)), r.name


@pytest.mark.parametrize("optim", ("adamw", "sgd"))
@pytest.mark.parametrize("param", ("spectral_k1", "spectral_k2"), ids=lambda p: PNAME[p])
def test_spectral_vector_wd_default_at_base(param, optim):
    """§2.2 'WD vec ... lambda (paper's convention)' / §2.3 hidden-bias WD factor 1 at the base."""
    t = table(param, optim, width=BW, depth=BD, mults=False)
    assert_field(t, "hidden biases", "weight_decay", LAM)
    assert_field(t, "pre-LN", "weight_decay", LAM)
    assert_field(t, "final LN", "weight_decay", LAM)


# ----------------------------------------------------------------------------- rows, fans, groups

@pytest.mark.parametrize("param", PARAMS, ids=lambda p: PNAME[p])
def test_rows_shapes_fans_blocks(param):
    t = table(param, "adamw", UNTIED)
    names = [r.name for r in t.rows]
    assert len(names) == len(set(names))
    by = t.by_name()
    assert by["blocks.3.attn.qkv.weight"].shape == [3 * W, W]
    assert by["blocks.3.mlp.proj.weight"].shape == [W, 4 * W]
    for r in t.rows:
        if r.role in HIDDEN_ROLES + ("readout",):
            assert (r.fan_in, r.fan_out) == (r.shape[1], r.shape[0]), r.name
        if r.name.startswith("blocks."):
            assert r.block == int(r.name.split(".")[1]), r.name
        else:
            assert r.block is None, r.name
    assert {r.role for r in t.rows} == {"embedding", "position_embedding", "norm", "attn_qkv", "attn_out", "mlp_in",
                                        "mlp_out", "bias", "readout"}
    assert sum(r.role == "attn_qkv" for r in t.rows) == D


GROUP_CASES = [(p, o, tie) for p in PARAMS for o in ("adamw", "sgd") for tie in ("true", "false")] + [
    ("abc", o, "false") for o in ("adamw", "sgd")]


def _abc(optim="adamw", *extra, width=W, preset="mup", lr_mode="per_layer", alignment="full"):
    return _table(("param=abc", UNTIED) + base_overrides(optim, width, BD)
                  + (f"param.preset={preset}", f"param.lr_mode={lr_mode}", f"param.alignment={alignment}") + tuple(extra))


@pytest.mark.parametrize("param, optim, tie", GROUP_CASES, ids=[f"{p}-{o}-tied={t}" for p, o, t in GROUP_CASES])
def test_every_parameter_in_one_row_and_one_group_per_distinct_lr_wd_eps(param, optim, tie):
    from model import GPT
    from optim import param_groups
    from param import model_config

    if param == "abc":
        over = ("param=abc", UNTIED) + base_overrides(optim, 512, 8) + ("param.preset=mup", "param.lr_mode=per_layer",
                                                                          "param.alignment=full")
    else:
        over = PARAM_OVERRIDES[param] + base_overrides(optim, 512, 8) + (f"model.tie_embeddings={tie}", VEC_ON)
    cfg = fast_compose(over)
    t = _table(tuple(over))
    with torch.device("meta"):
        model = GPT(model_config(cfg.model, assemble.vocab_size(cfg)), t.scales())
    params = dict(model.named_parameters())
    by = t.by_name()
    assert len(by) == len(t.rows), "a parameter has two rows"
    assert set(by) == set(params)
    for n, p in params.items():
        assert list(p.shape) == list(by[n].shape), n
    groups = param_groups(model, t)
    keys = [(g["lr"], g["weight_decay"], g.get("eps")) for g in groups]
    assert len(keys) == len(set(keys)) == len({(r.lr, r.weight_decay, r.eps) for r in t.rows})
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen)) == len(params)
    ids = {id(p): n for n, p in params.items()}
    for g in groups:
        for p in g["params"]:
            r = by[ids[id(p)]]
            assert (r.lr, r.weight_decay, r.eps) == (g["lr"], g["weight_decay"], g.get("eps")), r.name
    assert len(groups) > 1 or param == "sp"  # width 512, depth 8 is off the base: the factors split the groups


# ----------------------------------------------------------------------------- checkpoint round trip

@pytest.mark.parametrize("case", ["mup-adamw", "spectral_k1-sgd", "depth_mup-adamw-untied", "abc-adamw"])
def test_table_survives_checkpoint_round_trip(case):
    if case.startswith("abc"):
        t = _abc("adamw")
    else:
        p, o, *rest = case.split("-")
        t = table(p, o, *((UNTIED,) if rest else ()))
    d = t.to_dict()
    assert json.loads(json.dumps(d)) == d
    buf = io.BytesIO()
    torch.save(d, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    assert loaded == d
    # and the same table is rebuilt from the same config
    assert t.to_dict() == d


# ----------------------------------------------------------------------------- mis-configurations

def _build_checked(overrides):
    cfg = cli.compose(list(overrides))
    cli.check_config(cfg)
    return build_table(cfg, assemble.vocab_size(cfg))


MISCONFIG = [
    pytest.param(("param=spectral", "param.block_depth=0"), ("param.block_depth",), ("param=spectral", "param.block_depth=1"),
                 id="param.block_depth=0 is refused naming param.block_depth"),
    pytest.param(("param=mup", "param.base_width=96"), ("param.base_width", "model.head_dim"), ("param=mup", "param.base_width=128"),
                 id="param.base_width not a multiple of model.head_dim is refused naming the key"),
    pytest.param(("param=abc", "model.tie_embeddings=true", "param.preset=mup"), ("model.tie_embeddings",),
                 ("param=abc", UNTIED, "param.preset=mup"), id="param=abc with tied embeddings is refused naming model.tie_embeddings"),
    pytest.param(("param=mup", "model.tie_embeddings=true", "param.zero_readout=true"), ("model.tie_embeddings", "param.zero_readout"),
                 ("param=mup", UNTIED, "param.zero_readout=true"),
                 id="param.zero_readout=true with tied embeddings is refused naming the key"),
]


@pytest.mark.parametrize("bad, keys, good", MISCONFIG)
def test_misconfiguration_raises_user_error(bad, keys, good):
    common = base_overrides("adamw")
    with pytest.raises(cli.UserError) as exc:
        _build_checked(common + bad)
    msg = str(exc.value)
    assert "\n" not in msg.strip(), msg
    assert any(k in msg for k in keys), f"{msg!r} names none of {keys}"
    _build_checked(common + good)  # the fix works


# ----------------------------------------------------------------------------- §4 Everett abc

# (a, b) per class (emb, hidden, readout), §4 "ab exponents"
AB = {
    "sp": ((0, 0), (0, 0.5), (0, 0.5)),
    "ntk": ((0, 0), (0.5, 0), (0.5, 0)),
    "mup": ((-0.5, 0.5), (0, 0.5), (0.5, 0.5)),
    "mfp": ((-0.5, 0.5), (0.5, 0), (1, 0)),
}
# (c_1, c_l, c_{L+1}) per (optimizer, alignment), §4 "Resulting exponents". The two dagger cells (SGD none,
# muP and MFP) use the table's values: they are the closed form that keeps every layer's update Theta(1)
# (r_l = 0); the LP alternative (0,-1/2,0) / (0,-3/2,-1) has r_{L+1} = 1/2, i.e. a vanishing logit update,
# which Everett's nontriviality condition (logits change Theta(1)) excludes.
C = {
    ("sgd", "full"): {"sp": (-0.5, 0.5, 1), "ntk": (-0.5, -0.5, 0), "mup": (0, 0, 0), "mfp": (0, -1, -1)},
    ("sgd", "none"): {"sp": (-0.5, 0, 0.5), "ntk": (-0.5, -1, -0.5), "mup": (0.5, 0, -0.5), "mfp": (0.5, -1, -1.5)},
    ("adamw", "full"): {"sp": (0, 1, 1), "ntk": (0, 0.5, 0.5), "mup": (0.5, 1, 0.5), "mfp": (0.5, 0.5, 0)},
    ("adamw", "none"): {"sp": (0, 0.5, 0.5), "ntk": (0, 0, 0), "mup": (0.5, 0.5, 0), "mfp": (0.5, 0, -0.5)},
}
ABC_CLASS = {"embedding": "emb", "hidden": "hidden", "readout": "readout"}
NRATIO = 2048 / 256  # width ratio used for the exponent checks


def _abc_pair(optim, preset, lr_mode="per_layer", alignment="full", extra=()):
    return (_abc(optim, *extra, width=256, preset=preset, lr_mode=lr_mode, alignment=alignment),
            _abc(optim, *extra, width=2048, preset=preset, lr_mode=lr_mode, alignment=alignment))


def _ratios(small, big, what, field):
    s, b = rows(small, what), rows(big, what)
    assert [r.name for r in s] == [r.name for r in b]
    return [getattr(rb, field) / getattr(rs, field) for rs, rb in zip(s, b)]


ABC_LR_CASES = [
    pytest.param(o, al, pr, k, C[(o, al)][pr][k],
                 id=f"4 abc {pr} {'Adam' if o == 'adamw' else 'SGD'} {al}-alignment {('emb', 'hidden', 'readout')[k]} LR ~ n^-({C[(o, al)][pr][k]:g})")
    for (o, al) in C for pr in AB for k in range(3)
]


@pytest.mark.parametrize("optim, alignment, preset, k, c", ABC_LR_CASES)
def test_abc_lr_exponent(optim, alignment, preset, k, c):
    small, big = _abc_pair(optim, preset, alignment=alignment)
    what = ("emb", "hidden", "readout")[k]
    for ratio in _ratios(small, big, what, "lr"):
        assert ratio == pytest.approx(NRATIO ** (-c), rel=REL), f"lr ratio {ratio} = 8^{-math.log(ratio, 8):g}"


@pytest.mark.parametrize("optim", ("adamw", "sgd"))
@pytest.mark.parametrize("preset", list(AB))
def test_abc_global_lr_mode_has_c_zero(optim, preset):
    small, big = _abc_pair(optim, preset, lr_mode="global")
    for what in ("emb", "hidden", "readout"):
        for ratio in _ratios(small, big, what, "lr"):
            assert ratio == pytest.approx(1.0, rel=REL), what


@pytest.mark.parametrize("field, exponent", [("init_std", 1), ("multiplier", 0)],
                         ids=("init std follows n^-b", "multiplier follows n^-a"))
@pytest.mark.parametrize("preset", list(AB))
@pytest.mark.parametrize("k", range(3), ids=("emb", "hidden", "readout"))
def test_abc_init_std_and_multiplier_follow_their_exponents(preset, k, field, exponent):
    small, big = _abc_pair("adamw", preset)
    what = ("emb", "hidden", "readout")[k]
    e = AB[preset][k][exponent]  # (a, b): multiplier n^-a, init std n^-b
    for ratio in _ratios(small, big, what, field):
        assert ratio == pytest.approx(NRATIO ** (-e), rel=REL), f"{preset} {what} {field} ratio {ratio}, want 8^{-e}"


@pytest.mark.parametrize("optim", ("adamw", "sgd"))
def test_abc_gamma_multiplies_each_class_lr(optim):
    g = {"embedding": 2.0, "hidden": 3.0, "readout": 5.0}
    ones = tuple(f"param.gamma.{k}=1.0" for k in g)
    set_ = tuple(f"param.gamma.{k}={v}" for k, v in g.items())
    for width in (256, 2048):
        t1 = _abc(optim, *ones, width=width)
        tg = _abc(optim, *set_, width=width)
        for cls, what in ABC_CLASS.items():
            for r1, rg in zip(rows(t1, what), rows(tg, what)):
                assert rg.lr == pytest.approx(g[cls] * r1.lr, rel=REL), rg.name


@pytest.mark.parametrize("optim", ("adamw", "sgd"))
def test_abc_lr_at_base_width_is_eta_times_gamma(optim):
    """§4: eta_l = beta_n * gamma_l * (n/b)^-c_l, so at n = b a class's LR is eta * gamma."""
    g = {"embedding": 2.0, "hidden": 3.0, "readout": 5.0}
    t = _abc(optim, "param.base_width=512", *(f"param.gamma.{k}={v}" for k, v in g.items()), width=512)
    for cls, what in ABC_CLASS.items():
        assert_field(t, what, "lr", ETA * g[cls])
