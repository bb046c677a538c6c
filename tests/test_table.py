"""The parameterization table is the single source of truth for init, multipliers and
per-tensor lr / weight decay / eps (README, "The table")."""

from __future__ import annotations

import json
import math

import pytest
import torch

import assemble
import cli
from model import GPT
from optim import lr_factor, param_groups, set_lr
from param import FIELDS, apply_init, build_table, model_config


def table_for(*overrides, vocab=64):
    cfg = cli.compose([f"model.vocab_size={vocab}", *overrides])
    return cfg, build_table(cfg, assemble.vocab_size(cfg))


def test_sp_table_is_nanogpts_init():
    _, t = table_for("model.depth=6")
    for row in t.rows:
        if row.role in ("attn_out", "mlp_out"):
            assert row.init_std == pytest.approx(0.02 / math.sqrt(2 * 6))  # GPT-2 §2.3
        elif row.role in ("embedding", "position_embedding", "attn_qkv", "mlp_in"):
            assert row.init_std == 0.02
        else:
            assert row.init in ("zeros", "ones")


def test_sp_gives_every_tensor_the_base_lr_eps_and_decays_only_matrices():
    _, t = table_for("optim.lr=3e-3", "optim.weight_decay=0.05", "optim.eps=1e-10")
    for row in t.rows:
        assert row.lr == 3e-3 and row.eps == 1e-10
        assert row.weight_decay == (0.05 if len(row.shape) == 2 else 0.0)
    _, t = table_for("optim.wd_on_vectors=true")
    assert all(row.weight_decay == 0.1 for row in t.rows)


def test_table_json_has_the_documented_fields():
    _, t = table_for()
    d = json.loads(t.to_json())
    assert set(d) == {"globals", "tensors"}
    assert all(set(FIELDS) <= set(row) for row in d["tensors"])
    for key in ("emb_multiplier", "branch_multiplier", "readout_multiplier", "attn_scale", "m", "r"):
        assert key in d["globals"]


def test_model_reads_its_init_from_the_table():
    cfg, t = table_for("model.width=256", "model.depth=4")
    torch.manual_seed(0)
    model = GPT(model_config(cfg.model, 64), t.scales())
    apply_init(model, t)
    for name, p in model.named_parameters():
        row = t.by_name()[name]
        if row.init == "normal":
            assert p.std().item() == pytest.approx(row.init_std, rel=0.1), name
        else:
            assert torch.all(p == (1.0 if row.init == "ones" else 0.0)), name


def test_one_param_group_per_distinct_lr_wd_eps():
    cfg, t = table_for()
    model = GPT(model_config(cfg.model, 64), t.scales())
    groups = param_groups(model, t)
    keys = [(g["lr"], g["weight_decay"], g["eps"]) for g in groups]
    assert len(keys) == len(set(keys)) == len({(r.lr, r.weight_decay, r.eps) for r in t.rows})
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_schedule_multiplies_each_groups_own_peak_lr():
    cfg = cli.compose(["schedule.warmup=10", "train.steps=100"])
    p = [torch.nn.Parameter(torch.zeros(2)) for _ in range(2)]
    opt = torch.optim.AdamW([{"params": [p[0]], "lr": 1e-2, "peak_lr": 1e-2}, {"params": [p[1]], "lr": 1e-4, "peak_lr": 1e-4}])
    for step in (0, 5, 50, 99):
        f = lr_factor(step, 100, cfg.schedule)
        set_lr(opt, f)
        assert opt.param_groups[0]["lr"] / opt.param_groups[1]["lr"] == pytest.approx(100)
    assert lr_factor(0, 100, cfg.schedule) == pytest.approx(0.1)
    assert lr_factor(9, 100, cfg.schedule) == pytest.approx(1.0)
    assert lr_factor(99, 100, cfg.schedule) == pytest.approx(0.1, abs=1e-3)  # cosine floor = min_lr_ratio


def test_warmup_as_a_fraction_of_training():
    cfg = cli.compose(["schedule.warmup=0.1"])
    assert lr_factor(9, 100, cfg.schedule) == pytest.approx(1.0)
    assert lr_factor(4, 100, cfg.schedule) == pytest.approx(0.5)


def test_python_m_param_prints_the_table_and_json(tmp_path):
    from conftest import run_cli

    out = run_cli("-m", "param", "model.vocab_size=64", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert len(d["tensors"]) == len({r["name"] for r in d["tensors"]})
    out = run_cli("-m", "param", "model.vocab_size=64", "--diff", "model.depth=8")
    assert out.returncode == 0 and "≠" in out.stdout, out.stderr
