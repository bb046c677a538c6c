"""The optimizers of issue 5 against docs/parameterizations.md and the papers' update rules.

Expected values are computed here from the update rules (Lion: Chen et al. 2023 Alg. 2; Adam-atan2:
docs/parameterizations.md §4; Muon: Jordan et al. 2024 + Liu et al. 2025 as §2.4 writes them; Adafactor: Shazeer &
Stern 2018 as torch implements it) and from the §2.4 scaling map, not from optim/*.py.

Shapes for the scaling map are far from the base (256 x 4): width 2048 (m = 8), depth 16 (r = 4),
head_dim 64, so sqrt(m), m, sqrt(r), r and their products are all distinct.

Band of the quintic Newton-Schulz iteration (coefficients (3.4445, -4.7750, 2.0315), 5 steps, input
normalised by its Frobenius norm): every singular value s of G with s/||G||_F in [0.003, 1] comes out
as p^5(s/||G||_F) in [0.68, 1.21] (test_quintic_band_is_0p68_to_1p21); the tests allow [0.6, 1.3].
"""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path

import pytest
import torch

import assemble
import cli
from conftest import resume_midway
from model import GPT, HIDDEN_ROLES
from optim import build_optimizer
from optim.adam_atan2 import AdamAtan2
from optim.lion import Lion
from optim.muon import Hybrid, Muon, orthogonalize
from param import apply_init, build_table, model_config

# ----------------------------------------------------------------------------- config helpers


@functools.lru_cache(maxsize=None)
def _hydra(choices: tuple[str, ...]):
    return cli.compose(list(choices))


def cfg_of(*overrides: str):
    """cli.compose(overrides), but Hydra runs once per choice of config groups: value overrides
    (`a.b=v`) are parsed by Hydra's own override grammar and set on a copy (struct mode still
    rejects unknown keys). test_cfg_of_equals_cli_compose checks the two agree."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    groups = tuple(o.input_line for o in parsed if "." not in o.key_or_group)
    cfg = copy.deepcopy(_hydra(groups))
    for o in parsed:
        if "." in o.key_or_group:
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
    return cfg


W, D, HD = 2048, 16, 64
BW = 256  # the spectral paper's base shape 256 x 4 (docs/parameterizations.md §5), set explicitly (the default param.base_width is the tiny model's 128)
M, R = W / BW, D / 4  # 8, 4
ETA, LAM, EPS, SIGMA = 3e-3, 0.05, 1e-10, 0.02
HAS_EPS = ("adamw", "adam", "muon", "muon_kimi")  # optimizers whose config has an eps
PARAM = {  # the §2.4 columns (and §2.2 for the AdamW half)
    "sp": ("param=sp",),
    "mup": ("param=mup",),
    "spectral_k1": ("param=spectral", "param.block_depth=1"),
    "spectral_k2": ("param=spectral",),
}
COLUMN = {"sp": "SP", "mup": "width-muP", "spectral_k1": "spectral k=1", "spectral_k2": "spectral k>=2"}


@functools.lru_cache(maxsize=None)
def table(param: str, optim: str, *extra: str, width=W, depth=D):
    ov = (*PARAM[param], f"optim={optim}", f"model.width={width}", f"model.depth={depth}", f"model.head_dim={HD}",
          "model.vocab_size=64", f"optim.lr={ETA}", f"optim.weight_decay={LAM}", f"param.base_width={BW}")
    if optim in HAS_EPS:
        ov += (f"optim.eps={EPS}",)
    cfg = cfg_of(*ov, *extra)
    return build_table(cfg, assemble.vocab_size(cfg))


def hidden(t):
    rows = [r for r in t.rows if r.role in HIDDEN_ROLES]
    assert len(rows) == 4 * D
    return rows


def non_hidden(t):
    return [r for r in t.rows if r.role not in HIDDEN_ROLES]


def test_cfg_of_equals_cli_compose():
    from omegaconf import OmegaConf

    for ov in [("param=spectral", "param.block_depth=1", "optim=muon_kimi", "optim.lr=3e-3", "optim.qkv_split=false"),
               ("optim=adafactor", "param=mup", "model.tie_embeddings=false", "schedule=wsd", "schedule.decay_shape=sqrt")]:
        assert OmegaConf.to_container(cfg_of(*ov)) == OmegaConf.to_container(cli.compose(list(ov)))


def small_model(cfg, seed=0):
    """A model for the config (meant for small shapes) with the table's init."""
    vocab = assemble.vocab_size(cfg)
    t = build_table(cfg, vocab)
    torch.manual_seed(seed)
    model = GPT(model_config(cfg.model, vocab), t.scales())
    apply_init(model, t)
    return model, t


SMALL = ("model.width=64", "model.depth=2", "model.head_dim=16", "model.context=16", "model.vocab_size=64",
         "param.base_width=16", "param.base_depth=1")


# ----------------------------------------------------------------------------- Lion (Chen et al. 2023, Alg. 2)

def _param(x):
    return torch.nn.Parameter(x.clone())


def test_lion_first_step_moves_every_entry_by_exactly_plus_or_minus_lr_before_weight_decay():
    torch.manual_seed(0)
    w0, g = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    p = _param(w0)
    opt = Lion([p], lr=0.01, betas=(0.9, 0.99), weight_decay=0.0)
    p.grad = g.clone()
    opt.step()
    delta = p.detach() - w0
    assert torch.allclose(delta.abs(), torch.full_like(delta, 0.01), rtol=0, atol=1e-15)
    assert torch.equal(torch.sign(delta), -torch.sign(g))


def test_lion_two_steps_match_the_interpolated_sign_rule_with_decoupled_weight_decay():
    """c_t = b1*m + (1-b1)*g; W <- W*(1 - lr*wd) - lr*sign(c_t); m <- b2*m + (1-b2)*g. The second gradient
    is -0.05 x the first, so sign(c_2) = sign(g_1) != sign(g_2): the interpolation, not the raw gradient."""
    torch.manual_seed(1)
    lr, wd, b1, b2 = 0.01, 0.5, 0.9, 0.99
    w0, g1 = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    g2 = -0.05 * g1
    p = _param(w0)
    opt = Lion([p], lr=lr, betas=(b1, b2), weight_decay=wd)
    w, m = w0.clone(), torch.zeros_like(w0)
    for g in (g1, g2):
        p.grad = g.clone()
        opt.step()
        c = b1 * m + (1 - b1) * g
        w = w * (1 - lr * wd) - lr * torch.sign(c)
        m = b2 * m + (1 - b2) * g
    assert torch.equal(torch.sign(b1 * (1 - b2) * g1 + (1 - b1) * g2), torch.sign(g1))  # the case is the intended one
    assert torch.allclose(p.detach(), w, rtol=0, atol=1e-14)
    assert torch.allclose(opt.state[p]["exp_avg"], m, rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- Adam-atan2 (§4)

def _atan2_by_hand(w0, grads, lr, betas, wd, a, b):
    """m_hat = m/(1-b1^t), v_hat = v/(1-b2^t), W <- W - lr*(a*atan2(m_hat, b*sqrt(v_hat)) + wd*W)."""
    b1, b2 = betas
    w, m, v = w0.clone(), torch.zeros_like(w0), torch.zeros_like(w0)
    for t, g in enumerate(grads, 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        w = w - lr * (a * torch.atan2(m_hat, b * v_hat.sqrt()) + wd * w)
    return w


def test_adam_atan2_first_step_is_a_atan2_of_m_hat_and_b_sqrt_v_hat():
    """Step 1: m_hat = g and sqrt(v_hat) = |g|, so the update is a*atan2(g, b|g|) = a*atan(1/b)*sign(g):
    with the reference implementation's a = 1.27, b = 1 that is 1.27*pi/4 ~ 0.997 per entry."""
    torch.manual_seed(2)
    w0, g = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    for a, b in [(1.27, 1.0), (1.27, 2.0), (0.5, 0.25)]:
        p = _param(w0)
        opt = AdamAtan2([p], lr=0.01, betas=(0.9, 0.95), weight_decay=0.0, a=a, b=b)
        p.grad = g.clone()
        opt.step()
        expected = w0 - 0.01 * a * math.atan(1 / b) * torch.sign(g)
        assert torch.allclose(p.detach(), expected, rtol=0, atol=1e-14), (a, b)
        assert torch.allclose(p.detach(), _atan2_by_hand(w0, [g], 0.01, (0.9, 0.95), 0.0, a, b), rtol=0, atol=1e-14)


def test_adam_atan2_three_steps_with_weight_decay_match_the_rule_by_hand():
    torch.manual_seed(3)
    w0 = torch.randn(4, 4, dtype=torch.float64)
    grads = [torch.randn(4, 4, dtype=torch.float64) * s for s in (1.0, 0.3, 2.0)]
    p = _param(w0)
    opt = AdamAtan2([p], lr=0.02, betas=(0.9, 0.95), weight_decay=0.1, a=1.27, b=1.0)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    assert torch.allclose(p.detach(), _atan2_by_hand(w0, grads, 0.02, (0.9, 0.95), 0.1, 1.27, 1.0), rtol=0, atol=1e-12)


def test_adam_atan2_is_invariant_to_scaling_the_gradient_by_1000():
    torch.manual_seed(4)
    w0 = torch.randn(6, 8)
    grads = [torch.randn(6, 8) for _ in range(4)]
    p, q = _param(w0), _param(w0)
    opt_p = AdamAtan2([p], lr=0.01, betas=(0.9, 0.95), weight_decay=0.1)
    opt_q = AdamAtan2([q], lr=0.01, betas=(0.9, 0.95), weight_decay=0.1)
    for g in grads:
        p.grad, q.grad = g.clone(), 1000.0 * g
        opt_p.step()
        opt_q.step()
    assert not torch.equal(p.detach(), w0)
    assert torch.allclose(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)


def test_adam_atan2_leaves_entries_with_zero_gradient_alone():
    p = _param(torch.ones(2, 3))
    opt = AdamAtan2([p], lr=0.1, weight_decay=0.0)
    p.grad = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, -2.0]])
    opt.step()
    assert torch.isfinite(p).all()
    assert p[0, 0].item() == 1.0 and p[1, 0].item() == 1.0
    assert p[0, 1].item() == pytest.approx(1 - 0.1 * 1.27 * math.pi / 4)


def test_adam_atan2_from_the_config_has_the_spec_constants_and_no_eps():
    cfg = cfg_of("optim=adam_atan2", *SMALL)
    model, _ = small_model(cfg)
    opt = build_optimizer(cfg, model, build_table(cfg, 64), "cpu")
    assert isinstance(opt, AdamAtan2)
    assert all(g["a"] == 1.27 and g["b"] == 1.0 and "eps" not in g for g in opt.param_groups)


# ----------------------------------------------------------------------------- Muon: Newton-Schulz

QUINTIC = (3.4445, -4.7750, 2.0315)  # Jordan et al. 2024 (the Muon blog post)
BAND = (0.6, 1.3)


def _p5(x: torch.Tensor) -> torch.Tensor:
    """Five steps of the scalar quintic x <- a x + b x^3 + c x^5: what NS does to each normalised singular value."""
    a, b, c = QUINTIC
    for _ in range(5):
        x = a * x + b * x**3 + c * x**5
    return x


def test_quintic_band_is_0p68_to_1p21():
    """The band quoted for Muon: singular values at >= 0.3% of the Frobenius norm land in [0.68, 1.21]."""
    y = _p5(torch.linspace(0.003, 1.0, 200_001, dtype=torch.float64))
    assert 0.68 < y.min().item() < 0.69 and 1.20 < y.max().item() < 1.21
    assert BAND[0] < y.min().item() and y.max().item() < BAND[1]
    assert _p5(torch.tensor(1e-3, dtype=torch.float64)).item() < 0.5  # far smaller singular values are not lifted


def _with_singular_values(n_out, n_in, s, seed=0):
    """U diag(s) V^T with random orthonormal U, V."""
    gen = torch.Generator().manual_seed(seed)
    k = min(n_out, n_in)
    u, _ = torch.linalg.qr(torch.randn(n_out, k, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n_in, k, generator=gen, dtype=torch.float64))
    return (u * torch.as_tensor(s, dtype=torch.float64)) @ v.T


@pytest.mark.parametrize("shape", [(16, 48), (48, 16), (24, 24)], ids=["wide", "tall", "square"])
def test_orthogonalize_maps_each_singular_value_s_to_p5_of_s_over_frobenius_norm_inside_the_band(shape):
    n_out, n_in = shape
    s = torch.linspace(0.05, 1.0, min(shape)) * 7.0  # condition number 20: every s/||G||_F > 0.003
    g = _with_singular_values(n_out, n_in, s).float()
    o = orthogonalize(g)
    got = torch.linalg.svdvals(o.double())
    want = _p5(s.double() / s.double().norm()).sort(descending=True).values
    assert torch.allclose(got, want, atol=2e-3), (got, want)
    assert BAND[0] <= got.min().item() and got.max().item() <= BAND[1]
    # same singular vectors as G: O = U f(S) V^T, so O^T G is symmetric positive definite for square G
    if n_out == n_in:
        sym = o.double().T @ g.double()
        assert torch.allclose(sym, sym.T, atol=1e-3) and torch.linalg.eigvalsh(sym).min() > 0


def test_orthogonalize_of_a_gaussian_matrix_has_its_singular_values_in_the_band():
    torch.manual_seed(5)
    for shape in [(32, 128), (128, 32), (3, 64, 16)]:
        o = orthogonalize(torch.randn(*shape))
        sv = torch.linalg.svdvals(o)
        assert BAND[0] <= sv.min().item() and sv.max().item() <= BAND[1], shape


def _ns_by_hand(u: torch.Tensor) -> torch.Tensor:
    """Keller Jordan's zeropower_via_newtonschulz5, in float64."""
    a, b, c = QUINTIC
    x = u.double()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(5):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


@pytest.mark.parametrize("nesterov", [True, False], ids=["nesterov", "heavy ball"])
def test_muon_momentum_recurrence_over_two_steps_matches_by_hand(nesterov):
    """B_t = mu B_{t-1} + G_t; U_t = G_t + mu B_t (Nesterov) or B_t; W <- W(1 - lr wd) - lr*scale*NS(U_t)."""
    torch.manual_seed(6)
    lr, wd, mu = 0.05, 0.2, 0.95
    w0 = torch.randn(12, 20)
    g1, g2 = torch.randn(12, 20), torch.randn(12, 20)
    p = _param(w0)
    opt = Muon([p], lr=lr, weight_decay=wd, momentum=mu, nesterov=nesterov, scale="kimi")
    scale = 0.2 * math.sqrt(20)
    w, buf = w0.double(), torch.zeros(12, 20, dtype=torch.float64)
    for g in (g1, g2):
        p.grad = g.clone()
        opt.step()
        buf = mu * buf + g.double()
        u = g.double() + mu * buf if nesterov else buf
        w = w * (1 - lr * wd) - lr * scale * _ns_by_hand(u)
    assert torch.allclose(opt.state[p]["momentum_buffer"].double(), buf, atol=1e-5)
    assert torch.allclose(p.detach().double(), w, atol=2e-5)


@pytest.mark.parametrize("scale, shape, factor", [
    ("kimi", (16, 48), 0.2 * math.sqrt(48)), ("kimi", (48, 16), 0.2 * math.sqrt(48)),
    ("original", (48, 16), math.sqrt(3)), ("original", (16, 48), 1.0), ("none", (48, 16), 1.0),
], ids=["kimi wide: 0.2 sqrt(max)", "kimi tall: 0.2 sqrt(max)", "original tall: sqrt(n_out/n_in)",
        "original wide: 1", "none: 1"])
def test_muon_update_spectral_norm_is_lr_times_scale_times_the_band(scale, shape, factor):
    """Muon-Kimi: ||dW||_2 = 0.2*lr*sqrt(max(n_in, n_out)) up to the NS band (docs/parameterizations.md §2.4, §8.6)."""
    torch.manual_seed(7)
    lr = 0.01
    w0, g = torch.randn(*shape), torch.randn(*shape)
    p = _param(w0)
    opt = Muon([p], lr=lr, weight_decay=0.0, momentum=0.95, nesterov=True, scale=scale)
    p.grad = g
    opt.step()
    sv = torch.linalg.svdvals((p.detach() - w0).double()) / (lr * factor)
    assert BAND[0] <= sv.min().item() and sv.max().item() <= BAND[1]


def _qkv_blocks_of_unequal_size(n=16, n_in=48):
    """W_qkv-shaped gradient whose Q, K, V blocks differ in size by 100x each (all well conditioned)."""
    s = torch.linspace(0.2, 1.0, n)
    return torch.cat([_with_singular_values(n, n_in, s * k, seed=i).float() for i, k in enumerate((100.0, 1.0, 0.01))])


def test_per_qkv_split_orthogonalises_each_third_and_the_whole_does_not():
    g = _qkv_blocks_of_unequal_size()
    lr = 0.01
    steps = {}
    for split in (3, 1):
        p = _param(torch.zeros_like(g))
        opt = Muon([{"params": [p], "split": split}], lr=lr, weight_decay=0.0, momentum=0.0, nesterov=False, scale="none")
        p.grad = g.clone()
        opt.step()
        steps[split] = -p.detach() / lr
    for block in steps[3].chunk(3):
        sv = torch.linalg.svdvals(block)
        assert BAND[0] <= sv.min().item() and sv.max().item() <= BAND[1]
    whole = [torch.linalg.svdvals(b).max().item() for b in steps[1].chunk(3)]
    assert whole[2] < 0.1  # as one matrix, V (1e-4 of Q) is drowned by Q: NS does not lift it into the band


def test_muon_kimi_scale_of_a_split_qkv_uses_each_blocks_own_shape():
    """Per-Q/K/V orthogonalisation treats W_Q, W_K, W_V as three d x d matrices: 0.2*sqrt(d), not sqrt(3d)."""
    g = _qkv_blocks_of_unequal_size(n=16, n_in=16)
    p = _param(torch.zeros_like(g))
    opt = Muon([{"params": [p], "split": 3}], lr=1.0, weight_decay=0.0, momentum=0.0, nesterov=False, scale="kimi")
    p.grad = g
    opt.step()
    for block in (-p.detach()).chunk(3):
        sv = torch.linalg.svdvals(block) / (0.2 * math.sqrt(16))
        assert BAND[0] <= sv.min().item() and sv.max().item() <= BAND[1]


def test_muon_refuses_a_vector():
    p = _param(torch.ones(5))
    opt = Muon([p], lr=0.1)
    p.grad = torch.ones(5)
    with pytest.raises(ValueError, match="matrices only"):
        opt.step()


@pytest.mark.parametrize("optim", ["muon_kimi", "muon"])
def test_hybrid_from_the_config_steps_hidden_matrices_by_spectral_norm_lr_times_scale(optim):
    """Through the table: one step of the built optimizer on the real GPT, weight decay off. The MLP
    up-projection (4d x d) moves by lr_row x 0.2 sqrt(4d) (Kimi) or lr_row x 1 (muon.yaml's default
    scale none: plain Muon W -= lr·UV^T, docs/parameterizations.md §2.4), up to the band."""
    cfg = cfg_of(f"optim={optim}", "optim.weight_decay=0", "param=mup", *SMALL)
    model, t = small_model(cfg)
    opt = build_optimizer(cfg, model, t, "cpu")
    torch.manual_seed(8)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    rows = t.by_name()
    name = "blocks.0.mlp.fc.weight"
    n_out, n_in = rows[name].shape
    scale = 0.2 * math.sqrt(max(n_out, n_in)) if optim == "muon_kimi" else 1.0  # muon.yaml: scale none
    delta = dict(model.named_parameters())[name].detach() - before[name]
    sv = torch.linalg.svdvals(delta) / (rows[name].lr * scale)
    assert BAND[0] <= sv.min().item() and sv.max().item() <= BAND[1]


# ----------------------------------------------------------------------------- Adafactor

def test_adafactor_is_torchs_built_in_with_the_tables_lr_and_no_table_eps():
    cfg = cfg_of("optim=adafactor", "optim.weight_decay=0.01", *SMALL)
    model, t = small_model(cfg)
    opt = build_optimizer(cfg, model, t, "cpu")
    assert type(opt) is torch.optim.Adafactor
    rows = t.by_name()
    for g in opt.param_groups:
        for n in g["names"]:
            assert (g["lr"], g["weight_decay"]) == (rows[n].lr, rows[n].weight_decay) and rows[n].eps is None
        assert g["eps"] == (None, 1e-3)  # torch's own (eps1, eps2), not a table eps


def test_adafactor_first_step_on_a_rank_one_gradient_is_rms_w_times_lr_times_sign_g():
    """Shazeer & Stern: step 1 has beta2_hat = 0, V = R C^T / mean(R) with R, C the row and column means of
    g^2; for g = x y^T that is g^2 exactly, so U = sign(g), RMS(U) = 1 (no clipping) and
    W <- W - max(eps2, RMS(W)) * min(lr, 1/sqrt(1)) * sign(g)."""
    torch.manual_seed(9)
    w0 = torch.randn(6, 10, dtype=torch.float64) * 0.3
    g = torch.outer(torch.randn(6, dtype=torch.float64), torch.randn(10, dtype=torch.float64))
    p = _param(w0)
    opt = torch.optim.Adafactor([p], lr=0.01, foreach=False)
    p.grad = g
    opt.step()
    rms = w0.pow(2).mean().sqrt()
    assert torch.allclose(p.detach(), w0 - rms * 0.01 * torch.sign(g), rtol=0, atol=1e-12)


def _adafactor_matrix_row_check(param):
    """Everett's rule acts on the width exponent b only: the init's width factor is its std here over
    its std at the base width (same depth), so constants such as nanoGPT's 1/sqrt(2L) stay out."""
    untied = "model.tie_embeddings=false"
    adam, af = table(param, "adamw", untied), table(param, "adafactor", untied)
    base = table(param, "adamw", untied, width=256).by_name()  # param.base_width: m = 1
    for a, f in zip(adam.rows, af.rows):
        assert a.name == f.name
        width_init = a.init_std / base[a.name].init_std if f.init == "normal" else 1.0
        assert f.lr == pytest.approx(a.lr / width_init, rel=1e-12), f.name
        # torch's Adafactor decays by lr·wd per step: lr·wd stays what the adam rules give
        assert f.weight_decay == pytest.approx(a.weight_decay * width_init, rel=1e-12) and f.eps is None
    return {r.role: r.lr for r in af.rows}


def test_adafactor_lr_under_mup_is_the_adam_factor_over_the_init_std_factor():
    """Everett et al.: c_Adafactor = c_Adam - b. muP (docs/parameterizations.md §4 table, Adafactor full alignment: c = (0, 1/2, 0)):
    embedding eta, hidden eta/sqrt(m) (= (eta/m) / (1/sqrt(m))), readout eta (Table 8 form: Adam eta, init sigma)."""
    lr = _adafactor_matrix_row_check("mup")
    assert lr["embedding"] == pytest.approx(ETA) and lr["position_embedding"] == pytest.approx(ETA)
    assert lr["attn_qkv"] == pytest.approx(ETA / math.sqrt(M)) and lr["mlp_in"] == pytest.approx(ETA / math.sqrt(M))
    assert lr["readout"] == pytest.approx(ETA)
    # muP's O/proj init sigma/sqrt(2Lm) has the same width exponent b = 1/2: eta/sqrt(m) too, no depth factor
    assert lr["attn_out"] == pytest.approx(ETA / math.sqrt(M))


def test_adafactor_lr_under_sp_is_the_adam_lr_where_the_init_is_sigma():
    lr = _adafactor_matrix_row_check("sp")
    for role in ("embedding", "attn_qkv", "mlp_in", "readout"):
        assert lr[role] == pytest.approx(ETA), role


def test_adafactor_per_step_weight_decay_lr_times_wd_is_width_invariant_under_mup():
    """docs/parameterizations.md §1: 'a column entry λ·m means that group's product η_group·λ_group stays width-invariant, which is
    exactly independent WD'; §2.2 provenance: the recipe 'always yields η_l·λ_l = width- and depth-invariant per
    layer'. torch's Adafactor decays by W <- W(1 - lr*wd), so lr*wd is its per-step decay; with the LR divided
    by the init-std factor (Everett), the WD must be multiplied by it to keep lr*wd = eta*lambda as AdamW's [I]."""
    for param in ("mup", "spectral_k2"):
        small = table(param, "adafactor", "model.tie_embeddings=false", width=256, depth=4)
        big = table(param, "adafactor", "model.tie_embeddings=false", width=W, depth=4)
        for a, b in zip(small.rows, big.rows):
            if a.role in HIDDEN_ROLES:
                assert b.lr * b.weight_decay == pytest.approx(a.lr * a.weight_decay, rel=1e-12), (param, b.name)


# ----------------------------------------------------------------------------- §2.4 scaling map, one test per cell

SR_M, SR_R = math.sqrt(M), math.sqrt(R)
HYBRID_CELLS = [
    # (id, param, optim, field, expected value on every hidden matrix)
    ("Muon-Kimi hidden LR is eta under SP", "sp", "muon_kimi", "lr", ETA),
    ("Muon-Kimi hidden WD is lambda under SP", "sp", "muon_kimi", "weight_decay", LAM),
    ("Muon-Kimi hidden LR is eta/sqrt(m) under width-muP", "mup", "muon_kimi", "lr", ETA / SR_M),
    ("Muon-Kimi hidden WD is lambda*sqrt(m) under width-muP", "mup", "muon_kimi", "weight_decay", LAM * SR_M),
    ("Muon-Kimi k=1 hidden LR is eta/sqrt(m*r)", "spectral_k1", "muon_kimi", "lr", ETA / math.sqrt(M * R)),
    ("Muon-Kimi k=1 hidden WD is lambda*sqrt(m)", "spectral_k1", "muon_kimi", "weight_decay", LAM * SR_M),
    ("Muon-Kimi k>=2 hidden LR is eta/sqrt(m)", "spectral_k2", "muon_kimi", "lr", ETA / SR_M),
    ("Muon-Kimi k>=2 hidden WD is lambda*sqrt(m)", "spectral_k2", "muon_kimi", "weight_decay", LAM * SR_M),
    ("Muon hidden LR is eta under SP", "sp", "muon", "lr", ETA),
    ("Muon hidden WD is lambda under SP", "sp", "muon", "weight_decay", LAM),
    ("Muon hidden LR is eta under width-muP", "mup", "muon", "lr", ETA),
    ("Muon hidden WD is lambda under width-muP", "mup", "muon", "weight_decay", LAM),
    ("Muon k=1 hidden LR is eta/sqrt(r)", "spectral_k1", "muon", "lr", ETA / SR_R),
    ("Muon k=1 hidden WD is lambda", "spectral_k1", "muon", "weight_decay", LAM),
    ("Muon k>=2 hidden LR is eta", "spectral_k2", "muon", "lr", ETA),
    ("Muon k>=2 hidden WD is lambda", "spectral_k2", "muon", "weight_decay", LAM),
]


@pytest.mark.parametrize("param, optim, field, expected", [c[1:] for c in HYBRID_CELLS], ids=[c[0] for c in HYBRID_CELLS])
def test_matrix_optimizer_cell(param, optim, field, expected):
    for r in hidden(table(param, optim)):
        assert getattr(r, field) == pytest.approx(expected, rel=1e-12), (r.name, getattr(r, field), expected)
        assert r.eps is None, f"{r.name}: Muon has no eps"


# AdamW hidden rows of §2.2 (Lion and Sophia share them, §2.4 last row)
ADAMW_HIDDEN = {"sp": (ETA, LAM), "mup": (ETA / M, LAM * M), "spectral_k1": (ETA / (M * SR_R), LAM * M),
                "spectral_k2": (ETA / M, LAM * M)}
ADAMW_HIDDEN_TEXT = {"sp": ("eta", "lambda"), "mup": ("eta/m", "lambda*m"), "spectral_k1": ("eta/(m sqrt r)", "lambda*m"),
                     "spectral_k2": ("eta/m", "lambda*m")}


@pytest.mark.parametrize("param", list(PARAM), ids=[
    f"Lion takes AdamW's rules under {COLUMN[p]} (hidden LR {ADAMW_HIDDEN_TEXT[p][0]}, WD {ADAMW_HIDDEN_TEXT[p][1]})" for p in PARAM])
def test_lion_takes_adamws_rules(param):
    lion, adamw = table(param, "lion"), table(param, "adamw")
    for a, b in zip(adamw.rows, lion.rows):
        assert a.name == b.name and b.eps is None
        assert (b.lr, b.weight_decay) == pytest.approx((a.lr, a.weight_decay), rel=1e-12), b.name
    lr, wd = ADAMW_HIDDEN[param]
    for r in hidden(lion):
        assert (r.lr, r.weight_decay) == pytest.approx((lr, wd), rel=1e-12), r.name


@pytest.mark.parametrize("param", list(PARAM), ids=[f"Adam-atan2 takes AdamW's LR and WD and has no eps under {COLUMN[p]}" for p in PARAM])
def test_adam_atan2_takes_adamws_lr_and_wd(param):
    at, adamw = table(param, "adam_atan2"), table(param, "adamw")
    for a, b in zip(adamw.rows, at.rows):
        assert (b.lr, b.weight_decay, b.eps) == (pytest.approx(a.lr, rel=1e-12), pytest.approx(a.weight_decay, rel=1e-12), None)


# the AdamW half of a hybrid, §2.2 cells written out: (emb LR, readout LR, hidden-bias LR, emb eps, hidden-bias eps, vec WD)
ADAMW_HALF = {
    "sp": (ETA, ETA, ETA, EPS, EPS, 0.0),
    "mup": (ETA, ETA, ETA, EPS / M, EPS / M, 0.0),
    "spectral_k1": (ETA, ETA, ETA / SR_R, EPS / M, EPS / (M * SR_R), LAM),
    "spectral_k2": (ETA, ETA, ETA, EPS / M, EPS / (M * R), LAM),
}
HALF_CASES = [(p, o) for p in PARAM for o in ("muon", "muon_kimi")]


@pytest.mark.parametrize("param, optim", HALF_CASES, ids=[
    f"hybrids give the AdamW half the 2.2 rows: {o} under {COLUMN[p]}" for p, o in HALF_CASES])
def test_hybrids_give_the_adamw_half_the_section_2_2_rows(param, optim):
    hyb = table(param, optim, "optim.adamw_lr_ratio=1", "model.tie_embeddings=false")
    adamw = table(param, "adamw", "model.tie_embeddings=false")
    for a, h in zip(non_hidden(adamw), non_hidden(hyb)):
        assert a.name == h.name
        assert (h.lr, h.weight_decay, h.eps) == pytest.approx((a.lr, a.weight_decay, a.eps), rel=1e-12), h.name
    emb_lr, out_lr, bias_lr, emb_eps, bias_eps, vec_wd = ADAMW_HALF[param]
    by = {r.name: r for r in hyb.rows}
    assert by["wte.weight"].lr == pytest.approx(emb_lr) and by["wte.weight"].eps == pytest.approx(emb_eps)
    assert by["wte.weight"].weight_decay == pytest.approx(LAM)  # emb WD lambda in every column
    assert by["lm_head.weight"].lr == pytest.approx(out_lr) and by["lm_head.weight"].weight_decay == pytest.approx(LAM)
    biases = [r for r in hyb.rows if r.role == "bias"]
    assert biases
    for r in biases:
        assert (r.lr, r.eps, r.weight_decay) == pytest.approx((bias_lr, bias_eps, vec_wd), rel=1e-12), r.name


@pytest.mark.parametrize("optim", ["muon", "muon_kimi"])
def test_spectral_hybrids_decay_every_adamw_group_with_lambda(optim):
    """docs/parameterizations.md §5, Hybrids: 'All AdamW groups in the hybrids use WD lambda.'"""
    for param in ("spectral_k1", "spectral_k2"):
        for r in non_hidden(table(param, optim)):
            assert r.weight_decay == pytest.approx(LAM), (param, r.name)


@pytest.mark.parametrize("optim, ratio", [("muon", 0.1), ("muon_kimi", 0.25)],
                         ids=["adamw_lr_ratio scales only the AdamW half (Muon, 1/10 as the paper)",
                              "adamw_lr_ratio scales only the AdamW half (Muon-Kimi, 1/4)"])
def test_adamw_lr_ratio_scales_only_the_adamw_half(optim, ratio):
    one = table("spectral_k2", optim, "optim.adamw_lr_ratio=1")
    scaled = table("spectral_k2", optim, f"optim.adamw_lr_ratio={ratio}")
    for a, b in zip(one.rows, scaled.rows):
        want = a.lr if a.role in HIDDEN_ROLES else a.lr * ratio
        assert b.lr == pytest.approx(want, rel=1e-12), b.name
        assert (b.weight_decay, b.eps) == (a.weight_decay, a.eps), b.name


def test_muon_yaml_default_gives_the_adamw_half_a_tenth_of_the_lr():
    """docs/parameterizations.md §5: Muon-AdamW runs AdamW at eta_base/10; Muon-Kimi-AdamW uses one eta for both halves."""
    t = table("sp", "muon")
    assert all(r.lr == pytest.approx(ETA) for r in hidden(t))
    assert all(r.lr == pytest.approx(ETA / 10) for r in non_hidden(t))
    assert all(r.lr == pytest.approx(ETA) for r in table("sp", "muon_kimi").rows)


UNCOVERED = [
    ("completep", "muon_kimi", ()), ("completep", "muon", ()),
    ("depth_mup", "muon", ()), ("depth_mup", "muon_kimi", ()),
    ("abc", "muon", ("model.tie_embeddings=false",)), ("abc", "muon_kimi", ("model.tie_embeddings=false",)),
]


@pytest.mark.parametrize("param, optim, extra", UNCOVERED, ids=[f"param={p} optim={o} has no rule: one-line error" for p, o, _ in UNCOVERED])
def test_uncovered_parameterization_optimizer_pair_is_a_one_line_error(param, optim, extra):
    cfg = cli.compose([f"param={param}", f"optim={optim}", "model.vocab_size=64", *extra])
    for check in (lambda: assemble.check_run(cfg), lambda: build_table(cfg, 64)):
        with pytest.raises(cli.UserError) as exc:
            check()
        msg = str(exc.value)
        assert "\n" not in msg
        assert f"param={param}" in msg and f"optim={optim}" in msg
        assert "choose another optimizer" in msg  # the fix


# ----------------------------------------------------------------------------- optimizer groups

@pytest.mark.parametrize("optim, qkv_split", [("muon", True), ("muon", False), ("muon_kimi", True), ("muon_kimi", False)])
def test_hybrid_puts_hidden_matrices_in_muon_and_everything_else_in_adamw(optim, qkv_split):
    cfg = cfg_of(f"optim={optim}", f"optim.qkv_split={str(qkv_split).lower()}", "param=spectral", *SMALL)
    model, t = small_model(cfg)
    opt = build_optimizer(cfg, model, t, "cpu")
    assert isinstance(opt, Hybrid) and set(opt.parts) == {"muon", "adamw"}
    assert type(opt.parts["adamw"]) is torch.optim.AdamW and isinstance(opt.parts["muon"], Muon)
    rows = t.by_name()
    muon_names = [n for g in opt.parts["muon"].param_groups for n in g["names"]]
    adamw_names = [n for g in opt.parts["adamw"].param_groups for n in g["names"]]
    assert muon_names and all(rows[n].role in HIDDEN_ROLES for n in muon_names)
    assert adamw_names and not any(rows[n].role in HIDDEN_ROLES for n in adamw_names)
    assert sorted(muon_names + adamw_names) == sorted(rows)  # every tensor exactly once
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    for g in opt.parts["muon"].param_groups:
        qkv = {rows[n].role == "attn_qkv" for n in g["names"]}
        if qkv_split:
            assert len(qkv) == 1, "W_qkv shares a group with other hidden matrices"
        assert g["split"] == (3 if qkv_split and qkv == {True} else 1)
        assert g["scale"] == ("kimi" if optim == "muon_kimi" else "none")
        assert "eps" not in g
        assert {(rows[n].lr, rows[n].weight_decay) for n in g["names"]} == {(g["lr"], g["weight_decay"])}
    for g in opt.parts["adamw"].param_groups:
        assert {(rows[n].lr, rows[n].weight_decay, rows[n].eps) for n in g["names"]} == {(g["lr"], g["weight_decay"], g["eps"])}


OPTIMS = ("adamw", "adam", "sgd", "lion", "adam_atan2", "adafactor", "muon", "muon_kimi")


@pytest.mark.parametrize("optim", OPTIMS)
def test_eps_only_where_the_optimizer_has_one_and_groups_carry_the_tables_values(optim):
    cfg = cfg_of(f"optim={optim}", "param=mup", *SMALL)
    model, t = small_model(cfg)
    opt = build_optimizer(cfg, model, t, "cpu")
    rows = t.by_name()
    adam_like = {id(g) for g in opt.parts["adamw"].param_groups} if isinstance(opt, Hybrid) else (
        {id(g) for g in opt.param_groups} if optim in ("adamw", "adam") else set())
    for g in opt.param_groups:
        for n in g["names"]:
            r = rows[n]
            assert (g["lr"], g["peak_lr"], g["weight_decay"]) == (r.lr, r.lr, r.weight_decay), n
            if id(g) in adam_like:
                assert isinstance(r.eps, float) and g["eps"] == r.eps, n
            else:
                assert r.eps is None, f"{optim}: {n} has eps {r.eps} in the table"
                assert g.get("eps") is None or optim == "adafactor", n


# ----------------------------------------------------------------------------- training

TRAIN_LR = {"adamw": 1e-2, "adam": 1e-2, "sgd": 0.5, "lion": 3e-3, "adam_atan2": 1e-2,
            "adafactor": 0.1,  # the cap of Adafactor's relative step
            "muon": 0.05, "muon_kimi": 1e-2}
TRAIN_CASES = [(o, ()) for o in OPTIMS] + [("muon_kimi", ("param=spectral",)), ("muon", ("param=mup",))]


@pytest.mark.parametrize("optim, extra", TRAIN_CASES, ids=[" ".join((o, *e)) for o, e in TRAIN_CASES])
def test_twenty_steps_of_each_optimizer_lower_the_loss(tiny_cfg, tmp_path, optim, extra):
    from records import read_jsonl
    from train import run

    summary = run(tiny_cfg(f"optim={optim}", f"optim.lr={TRAIN_LR[optim]}", *extra), tmp_path)
    recs = read_jsonl(tmp_path / "metrics.jsonl")
    train = [r["train_loss"] for r in recs if "train_loss" in r]
    val = [r["val_loss"] for r in recs if "val_loss" in r]
    assert not summary["diverged"] and len(train) == 20
    assert sum(train[-5:]) / 5 < train[0] - 0.5, train
    assert val[-1] < val[0] - 0.5, val


def _curve(run_dir: Path):
    from records import read_jsonl

    keep = ("step", "train_loss", "val_loss", "lr", "lr_factor", "grad_norm")
    return [{k: r[k] for k in keep if k in r} for r in read_jsonl(run_dir / "metrics.jsonl")]


def test_hybrid_state_dict_nests_by_part_and_round_trips():
    cfg = cfg_of("optim=muon_kimi", *SMALL)
    model, t = small_model(cfg)
    opt = build_optimizer(cfg, model, t, "cpu")
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"muon", "adamw"}
    assert all("momentum_buffer" in s for s in sd["muon"]["state"].values())
    assert all("exp_avg_sq" in s for s in sd["adamw"]["state"].values())
    fresh = build_optimizer(cfg, model, t, "cpu")
    fresh.load_state_dict(copy.deepcopy(sd))
    for name in ("muon", "adamw"):
        a, b = opt.parts[name].state_dict()["state"], fresh.parts[name].state_dict()["state"]
        assert a.keys() == b.keys()
        for k in a:
            assert all(torch.equal(torch.as_tensor(a[k][f]), torch.as_tensor(b[k][f])) for f in a[k])


def test_hybrid_schedule_still_reaches_every_part_after_load_state_dict():
    """The schedule sets lr on Hybrid.param_groups; after a resume (load_state_dict) those must still be
    the groups the parts step with, or the resumed run trains at the checkpoint's LR forever."""
    from optim import set_lr

    cfg = cfg_of("optim=muon_kimi", *SMALL)
    model, t = small_model(cfg)
    opt = build_optimizer(cfg, model, t, "cpu")
    opt.load_state_dict(opt.state_dict())
    set_lr(opt, 0.5)
    for part in opt.parts.values():
        for g in part.param_groups:
            assert g["lr"] == pytest.approx(0.5 * g["peak_lr"]), g["names"][:1]


@pytest.mark.parametrize("optim", ["muon_kimi", "muon"])
def test_a_resumed_hybrid_run_repeats_the_uninterrupted_loss_curve_exactly(tiny_cfg, tmp_path, optim):
    cfg = tiny_cfg(f"optim={optim}", f"optim.lr={TRAIN_LR[optim]}", "optim.weight_decay=0.1")  # cosine: the LR moves after step 10
    whole, part = resume_midway(cfg, tmp_path)
    assert _curve(part) == _curve(whole)


# ----------------------------------------------------------------------------- the registry is the YAML

def test_a_new_optimizer_is_one_yaml_naming_its_class_args_speed_and_rules():
    """torch.optim.RAdam, which no code here names: the config alone builds it with the table's groups."""
    from omegaconf import OmegaConf

    from errors import UserError
    from param.scaling import spec_of

    cfg = cli.compose(["param=mup", "model.width=64", "model.head_dim=16", "model.vocab_size=64", "param.base_width=32"])
    OmegaConf.set_struct(cfg, False)
    cfg.optim = OmegaConf.create({
        "name": "radam", "_target_": "torch.optim.RAdam", "args": {"lr": "float", "betas": "tuple", "eps": "float"},
        "speed": "fused", "rules": {"family": "adam", "eps": True}, "lr": 3e-3, "betas": [0.9, 0.99], "eps": 1e-8,
        "weight_decay": 0.0, "wd_mode": "coupled", "wd_scaling": True, "eps_scaling": True, "wd_on_vectors": None})
    assert spec_of(cfg.optim).family == "adam"
    t = build_table(cfg, 64)
    model = GPT(model_config(cfg.model, 64), t.scales())
    opt = build_optimizer(cfg, model, t, "cpu")
    assert type(opt) is torch.optim.RAdam and opt.defaults["betas"] == (0.9, 0.99) and opt.defaults["foreach"]
    assert sorted({g["lr"] for g in opt.param_groups}) == pytest.approx([3e-3 / 2, 3e-3])  # muP: hidden eta/m at m = 2
    cfg.optim._target_ = "torch.optim.NoSuchThing"
    with pytest.raises(UserError, match="not an importable class"):
        build_optimizer(cfg, model, t, "cpu")


@pytest.mark.parametrize("path", sorted((Path(cli.CONF_DIR) / "optim").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_optimizer_names_an_importable_target_and_args_it_has(path):
    from optim.build import kwargs, target

    o = cli.compose([f"optim={path.stem}"]).optim
    assert callable(target(o)) and set(kwargs(o)) == set(o.args)
