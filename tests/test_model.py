"""The GPT computes what GPT-2 computes, with every multiplier supplied from outside."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model import GPT, GPTConfig, Scales, count_params, flops_per_token, role_of
from parallel import unwrap_name


def small(**kw) -> GPTConfig:
    return GPTConfig(**{"width": 32, "depth": 2, "head_dim": 16, "context": 16, "vocab_size": 50, **kw})


def test_every_parameter_has_a_role_from_its_name():
    for tie in (True, False):
        for bias in (True, False):
            model = GPT(small(tie_embeddings=tie, bias=bias))
            roles = {role_of(n) for n, _ in model.named_parameters()}
            assert {"embedding", "position_embedding", "attn_qkv", "attn_out", "mlp_in", "mlp_out"} <= roles
            assert ("readout" in roles) == (not tie)
            assert ("bias" in roles) == bias


def test_role_survives_compile_and_fsdp_name_wrappers():
    assert role_of(unwrap_name("_orig_mod.blocks.3.attn.qkv.weight")) == "attn_qkv"  # the parallel layer strips them
    assert role_of(unwrap_name("_fsdp_wrapped_module.blocks.0.mlp.proj.weight")) == "mlp_out"
    assert role_of(unwrap_name("blocks.1._checkpoint_wrapped_module.attn.out.weight")) == "attn_out"
    with pytest.raises(KeyError, match="model/roles.py"):
        role_of("blocks.0.mystery.weight")


def test_gpt2_124m_has_the_published_parameter_count():
    # GPT-2 small: 124,439,808 params with the 50257 vocab (nanoGPT reports 124.44M incl. wpe)
    with torch.device("meta"):
        model = GPT(GPTConfig(width=768, depth=12, head_dim=64, context=1024, vocab_size=50257))
    total = sum(p.numel() for p in model.parameters())
    assert total == 124_439_808
    assert count_params(model) == total - 1024 * 768  # wpe is a lookup, no matmul FLOPs


def test_flops_per_token_is_6n_plus_attention():
    with torch.device("meta"):
        model = GPT(small())
    c = model.cfg
    assert flops_per_token(model) == 6 * count_params(model) + 12 * c.depth * c.width * c.context


def test_multipliers_scale_exactly_the_outputs_they_name():
    torch.manual_seed(0)
    idx = torch.randint(0, 50, (2, 16))
    base = GPT(small())
    logits, _ = base(idx, idx)
    scaled = GPT(small(), Scales(multipliers={"readout": 0.5}))
    scaled.load_state_dict(base.state_dict())
    logits2, _ = scaled(idx, idx)
    torch.testing.assert_close(logits2, 0.5 * logits)


def test_zero_branch_multiplier_leaves_only_embeddings_and_final_norm():
    torch.manual_seed(0)
    cfg = small()
    model = GPT(cfg, Scales(multipliers={"attn_out": 0.0, "mlp_out": 0.0}))
    idx = torch.randint(0, 50, (2, 16))
    logits, _ = model(idx, idx)
    x = model.wte(idx) + model.wpe(torch.arange(16))
    torch.testing.assert_close(logits, F.linear(model.ln_f(x), model.wte.weight))


def test_attention_logit_scale_is_passed_to_sdpa():
    torch.manual_seed(0)
    idx = torch.randint(0, 50, (1, 16))
    a = GPT(small(), Scales(attn_scale=1 / 16))
    b = GPT(small(), Scales(attn_scale=1 / math.sqrt(16)))
    b.load_state_dict(a.state_dict())
    assert a.blocks[0].attn.scale == 1 / 16
    assert not torch.allclose(a(idx, idx)[0], b(idx, idx)[0])


def test_attention_is_causal():
    torch.manual_seed(0)
    model = GPT(small()).eval()
    idx = torch.randint(0, 50, (1, 16))
    changed = idx.clone()
    changed[0, -1] = (idx[0, -1] + 1) % 50
    a, _ = model(idx, idx)
    b, _ = model(changed, changed)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])


def test_without_layernorm_there_are_no_norm_parameters():
    model = GPT(small(layernorm=False))
    assert not [n for n, _ in model.named_parameters() if role_of(n) == "norm"]


def test_generate_extends_the_sequence():
    model = GPT(small()).eval()
    out = model.generate(torch.zeros(1, 3, dtype=torch.long), new_tokens=20, top_k=5)
    assert out.shape == (1, 23)


# ----------------------------------------------------------------------------- multipliers folded into the matmuls
# model/gpt.py multiplies a branch's or the readout's output by its constant inside the matmul
# (BLAS alpha/beta, forward and backward) instead of in an elementwise pass of its own; these
# tests hold it to the formulation it replaced, `F.linear(x, W, b) * a`.

def _explicit(x, weight, bias, a):
    y = F.linear(x, weight, bias)
    return y if a == 1.0 else y * a


def _fwd_bwd(fn, a, dtype, bias, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 40, 24, generator=g).requires_grad_()
    w = (torch.randn(56, 24, generator=g) * 0.1).requires_grad_()
    b = torch.randn(56, generator=g).requires_grad_() if bias else None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        y = fn(x, w, b, a)
    y.backward(torch.randn(y.shape, generator=g).to(y.dtype))
    return [y, x.grad, w.grad] + ([b.grad] if bias else [])


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("a", [1.0, 0.5, 1 / 3, 2.7, 0.0])
def test_a_multiplier_inside_the_matmul_computes_the_separate_multiply(a, dtype, bias):
    from model.gpt import scaled_linear

    got, want = _fwd_bwd(scaled_linear, a, dtype, bias), _fwd_bwd(_explicit, a, dtype, bias)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        if a == 1.0:
            assert torch.equal(g, w)  # nothing folded: the very same F.linear
        else:  # fp32: float rounding; bf16: one bf16 rounding of a·(xW + b) against two
            scale = w.float().abs().max().item()
            tol = {"rtol": 1e-5, "atol": 1e-6 * scale} if dtype == "fp32" else {"rtol": 2e-2, "atol": 2e-2 * scale}
            torch.testing.assert_close(g.float(), w.float(), **tol)


class _CountOps(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.calls.append((str(func.overloadpacket.__name__), out.numel() if isinstance(out, torch.Tensor) else 0))
        return out


def _ops_of_a_step(model, idx):
    with _CountOps() as ops:
        _, loss = model(idx, idx)
        loss.backward()
    return ops.calls


def test_multipliers_of_one_dispatch_exactly_the_ops_of_the_plain_reference_gpt():
    """SP's multipliers are all 1: forward and backward are, op for op, the plain GPT-2's."""
    from model.reference import ReferenceGPT

    idx = torch.randint(0, 50, (2, 16))
    project = _ops_of_a_step(GPT(small()), idx)
    reference = _ops_of_a_step(ReferenceGPT(width=32, depth=2, head_dim=16, context=16, vocab_size=50), idx)
    assert sorted(name for name, _ in project) == sorted(name for name, _ in reference)


def test_branch_and_readout_multipliers_cost_no_pass_over_an_activation():
    """Spectral μP's eight branch multipliers and the readout's: every multiply left is a bias
    gradient (width numbers), none over a (batch, tokens, width) activation or its gradient."""
    idx = torch.randint(0, 50, (2, 16))
    scaled = GPT(small(), Scales(multipliers={"attn_out": 0.5, "mlp_out": 0.5, "readout": 1 / 3}))
    muls = [n for name, n in _ops_of_a_step(scaled, idx) if name == "mul"]
    assert muls and max(muls) <= 32  # the attn_out / mlp_out bias gradients
    plain = [name for name, _ in _ops_of_a_step(GPT(small()), idx)]
    assert len(_ops_of_a_step(scaled, idx)) <= len(plain) + 2 * 4  # + a scalar zero and a bias-grad multiply per scaled linear


def test_the_qkv_split_gives_the_views_the_unbind_gave():
    B, T, H, D = 2, 8, 3, 4
    qkv = torch.randn(B, T, 3 * H * D)
    before = qkv.view(B, T, 3, H, D).transpose(1, 3).unbind(dim=2)  # the formulation before the split
    after = [t.view(B, T, H, D).transpose(1, 2) for t in qkv.split(H * D, dim=2)]
    for a, b in zip(before, after):
        assert torch.equal(a, b) and a.stride() == b.stride()


def test_embedding_multipliers_in_one_add_compute_the_separate_multiplies():
    torch.manual_seed(0)
    idx = torch.randint(0, 50, (2, 16))
    model = GPT(small(), Scales(multipliers={"embedding": 1.7, "position_embedding": 0.6, "attn_out": 0.0, "mlp_out": 0.0}))
    logits, _ = model(idx, idx)
    x = model.wte(idx) * 1.7 + model.wpe(torch.arange(16)) * 0.6
    torch.testing.assert_close(logits, F.linear(model.ln_f(x), model.wte.weight))


@pytest.mark.parametrize("param", ["mup", "spectral"])
def test_folded_multipliers_train_the_loss_curve_of_the_separate_multiplies(param, tiny_cfg, tmp_path, monkeypatch):
    """Non-power-of-2 multipliers (m = 3: readout 1/3; r = 3/2: branch 2/3), 20 AdamW steps: the
    loss curve of the folded formulation is the separate multiplies' to ~1e-6."""
    import model.gpt
    from records import read_jsonl
    from train import run

    cfg = tiny_cfg(f"param={param}", "model.width=48", "param.base_width=16", "model.depth=3", "param.base_depth=2",
                   "train.ckpt_interval=0", "train.eval_interval=20")
    run(cfg, tmp_path / "folded")
    monkeypatch.setattr(model.gpt, "scaled_linear", _explicit)
    run(cfg, tmp_path / "separate")
    curves = [[r["train_loss"] for r in read_jsonl(tmp_path / d / "metrics.jsonl") if "train_loss" in r] for d in ("folded", "separate")]
    assert len(curves[0]) == 20
    assert max(abs(a - b) / b for a, b in zip(*curves)) < 2e-6
