"""The GPT computes what GPT-2 computes, with every multiplier supplied from outside."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model import GPT, GPTConfig, Scales, count_params, flops_per_token, role_of


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
    assert role_of("_orig_mod.blocks.3.attn.qkv.weight") == "attn_qkv"
    assert role_of("_fsdp_wrapped_module.blocks.0.mlp.proj.weight") == "mlp_out"
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
