"""Every parameterization is a table that trains: the model, init and optimizer read it, the
docs are generated from it, and ablations are overrides."""

from __future__ import annotations

import math

import pytest
import torch

import assemble
import cli
from conftest import REPO
from errors import UserError
from model import GPT
from optim import build_optimizer, lr_factor, set_lr
from param import apply_init, build_table, model_config, registry
from param.markdown import END, START, markdown_table
from records import read_jsonl
from train import run

PARAMS = registry.variants()  # every conf/param/*.yaml, spectral with k=1 and k>=2


def table_for(*overrides):
    cfg = cli.compose(["model.vocab_size=64", *overrides])
    return cfg, build_table(cfg, assemble.vocab_size(cfg))


@pytest.mark.parametrize("optim", ["adamw", "sgd"])
@pytest.mark.parametrize("param", PARAMS, ids=lambda p: " ".join(p))
def test_every_parameterization_trains_and_lowers_the_loss(tiny_cfg, tmp_path, param, optim):
    lr = "optim.lr=3e-2" if optim == "adamw" else "optim.lr=1.0"
    shape = [f"optim={optim}", lr, "train.steps=12", "model.width=64", "model.depth=3",
             "param.base_width=32", "param.base_depth=2", "train.eval_interval=100"]
    cfg = tiny_cfg(*param, *shape)
    if cfg.param.untied_only:  # abc: Everett's model has an untied readout
        cfg = tiny_cfg(*param, "model.tie_embeddings=false", *shape)
    summary = run(cfg, tmp_path)
    train = [r["train_loss"] for r in read_jsonl(tmp_path / "metrics.jsonl") if "train_loss" in r]
    assert not summary["diverged"] and all(math.isfinite(x) for x in train)
    assert sum(train[-3:]) / 3 < train[0] - 0.2


def test_the_readme_table_is_generated_from_the_yaml():
    readme = (REPO / "README.md").read_text()
    section = readme.split(START, 1)[1].split(END, 1)[0]
    assert section.strip() == markdown_table().strip(), "run `make docs`"


def test_the_tables_columns_are_the_docs_fields_of_the_yaml(monkeypatch):
    header = markdown_table().splitlines()[0].split(" | ")[2:]
    header[-1] = header[-1].removesuffix(" |")
    assert header == [c.title for c in registry.columns()]
    shown = {c.overrides[0].removeprefix("param=") for c in registry.columns()}
    assert shown == set(registry.names()) - {"abc"}  # abc.yaml says docs: null
    monkeypatch.setattr(registry, "_docs", lambda name: (1, [registry.Column("SP", (f"param={name}",))]))
    with pytest.raises(UserError, match="the docs column 'SP' is named twice"):
        registry.columns()


def test_the_model_applies_the_tables_multipliers():
    cfg, t = table_for("param=completep", "model.width=64", "model.depth=8", "model.head_dim=16",
                       "param.base_width=32", "param.base_depth=2")
    model = GPT(model_config(cfg.model, 64), t.scales())
    assert model.readout_mult == pytest.approx(0.5)  # 1/m
    for block in model.blocks:
        assert block.attn.out.multiplier == block.mlp.proj.multiplier == pytest.approx(0.25)  # 1/r
        assert block.attn.qkv.multiplier == block.mlp.fc.multiplier == 1.0
        assert block.attn.scale == pytest.approx(32**0.5 / 16)  # anchored: sqrt(base_head_dim = 32)/d_head


def test_the_schedule_cannot_erase_the_per_tensor_scaling():
    cfg, t = table_for("param=mup", "model.width=1024", "model.head_dim=64", "train.steps=100", "schedule.warmup=10")
    with torch.device("meta"):
        model = GPT(model_config(cfg.model, 64), t.scales())
    opt = build_optimizer(cfg, model, t, "cpu")
    peaks = [g["lr"] for g in opt.param_groups]
    assert len(set(peaks)) == 2  # eta (embeddings, vectors) and eta/m (hidden)
    for step in (0, 5, 10, 50, 99):
        f = lr_factor(step, 100, cfg.schedule)
        set_lr(opt, f)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([p * f for p in peaks])


def test_zero_query_init_zeroes_only_the_query_rows():
    cfg, t = table_for("param=mup", "param.zero_query=true", "model.width=64", "model.head_dim=16")
    model = GPT(model_config(cfg.model, 64), t.scales())
    apply_init(model, t)
    w = model.blocks[0].attn.qkv.weight
    assert torch.all(w[:64] == 0) and w[64:].std() > 0


def test_zero_readout_init_zeroes_the_untied_readout():
    cfg, t = table_for("param=mup", "param.zero_readout=true", "model.tie_embeddings=false")
    model = GPT(model_config(cfg.model, 64), t.scales())
    apply_init(model, t)
    assert torch.all(model.lm_head.weight == 0) and model.wte.weight.std() > 0


def test_an_ablation_is_one_override():
    _, t = table_for("param=mup", "param.forward.readout=1", "model.width=1024", "model.head_dim=64")
    assert t.globals["readout_multiplier"] == 1.0
    _, t = table_for("param=completep", "param.alpha=0.75", "model.depth=64")
    assert t.globals["branch_multiplier"] == pytest.approx(16 ** -0.75)
    hidden = t.by_name()["blocks.0.mlp.fc.weight"]
    assert hidden.lr == pytest.approx(2e-3 * 16 ** -0.25)  # eta/m · r^(alpha-1), m = 128/128 (the default model is the base)


def test_attention_scale_is_a_flag():
    _, t = table_for("param=mup", "param.attn_scale=sqrt", "model.head_dim=64")
    assert t.globals["attn_scale"] == pytest.approx(1 / 8)


@pytest.mark.parametrize("overrides, fix", [
    (["param=spectral", "param.block_depth=0"], "param.block_depth=0 must be an integer >= 1"),
    (["param.base_width=100", "model.head_dim=32"], "multiple of head_dim"),
    (["param=abc"], "model.tie_embeddings=false"),
    (["param=mup", "param.zero_readout=true"], "model.tie_embeddings=false"),
    (["optim=sgd", "~param.sgd"], "has no scaling map for optim=sgd"),
    (["optim.wd_mode=decoupled"], "choose coupled"),
    (["param=abc", "model.tie_embeddings=false", "param.preset=muP"], "choose one of sp, ntk, mup, mfp"),
    (["param=mup", "param.adam.lr.hiden=1"], "did you mean param.adam.lr.hidden?"),
    (["param=mup", "+param.adam.lr.hiden=1"], "unknown key 'hiden'"),
    (["param=mup", "param.adam.lr.hidden=1/q"], "unknown name 'q'"),
])
def test_misconfigured_parameterizations_get_one_line(capsys, overrides, fix):
    with pytest.raises(SystemExit):
        cli.guard(assemble.check_overrides)(overrides)
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and fix in err, err


@pytest.mark.parametrize("tie", ["true", "false"])
def test_mup_at_the_base_shape_given_sps_base_values_trains_bitwise_like_sp(tie):
    """At m = 1 every muP factor is 1 and the anchored attention scale is exactly 1/sqrt(head_dim): the same seed
    gives the same weights, the same 5 losses and the same weights after them, bit for bit."""
    from checks.core import setup, train_step

    shape = ["model.width=64", "model.depth=2", "model.head_dim=16", "model.context=32", "train.batch_size=4",
             "param.base_width=64", "param.base_depth=2", "param.base_head_dim=16", f"model.tie_embeddings={tie}",
             "optim.weight_decay=0.1"]
    losses, weights = {}, {}
    for p in ("sp", "mup"):
        s = setup(cli.compose(["+check=coord", f"param={p}", *shape]), seed=3)
        assert s.model.blocks[0].attn.scale == 1 / math.sqrt(16)
        losses[p] = [train_step(s, i) for i in range(5)]
        weights[p] = {n: t.detach().clone() for n, t in s.model.named_parameters()}
    assert losses["mup"] == losses["sp"]
    assert all(torch.equal(weights["mup"][n], w) for n, w in weights["sp"].items())
