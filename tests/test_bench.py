"""`make bench` measures the project's training step against a plain PyTorch GPT-2 step: the
reference is GPT-2 and trains, the project step the bench times is the step train.py takes, and
the quick mode runs end to end and records both timings and their ratio. No timings are judged
here: speed targets live in `make bench`."""

from __future__ import annotations

import json

import pytest
import torch

import bench
import assemble
import data
from model.reference import ReferenceGPT, ReferenceStep, reference_optimizer
from records import read_jsonl
from train import run


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_the_reference_is_gpt2_small_at_its_shape():
    # GPT-2 small (Radford et al. 2019): 124,439,808 parameters with the 50257-token vocabulary
    with torch.device("meta"):
        model = ReferenceGPT(width=768, depth=12, head_dim=64, context=1024, vocab_size=50257)
    assert sum(p.numel() for p in model.parameters()) == 124_439_808


def test_the_reference_decays_matrices_and_not_vectors():
    model = ReferenceGPT(width=32, depth=2, head_dim=16, context=16, vocab_size=50)
    decay, plain = reference_optimizer(model, weight_decay=0.1).param_groups
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in plain["params"])
    assert len(decay["params"]) + len(plain["params"]) == len(list(model.parameters()))  # tied wte counted once


def test_the_reference_trains_and_its_loss_falls(keep_threads):
    torch.set_num_threads(1)  # tiny kernels: a second thread only waits
    torch.manual_seed(0)
    model = ReferenceGPT(width=32, depth=2, head_dim=16, context=16, vocab_size=50)
    step = ReferenceStep(model, reference_optimizer(model, lr=1e-2))
    xy = torch.randint(0, 50, (4, 17), generator=torch.Generator().manual_seed(1))
    losses = [step(xy[:, :-1], xy[:, 1:]).item() for _ in range(25)]
    assert losses[0] == pytest.approx(torch.log(torch.tensor(50.0)).item(), rel=0.05)  # init: near-uniform logits
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is None for p in model.parameters())  # zero_grad(set_to_none=True)


def test_the_bench_times_the_step_train_py_takes(tiny_cfg, tmp_path):
    """Same config, seed and batches: the bench's project step gives train.py's losses exactly."""
    overrides = ("param=mup", "param.base_width=16", "model.width=64", "train.steps=6", "train.eval_interval=6",
                 "train.ckpt_interval=0")
    cfg = tiny_cfg(*overrides)
    run(cfg, tmp_path / "run")
    logged = [r["train_loss"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "train_loss" in r]
    data_dir = data.ensure_prepared(cfg.data)
    vocab = assemble.vocab_size(cfg, data.load_meta(data_dir)["vocab_size"])
    step = bench.ProjectStep(cfg, vocab, torch.device("cpu"), "fp32", compile_=False)
    windows = data.TokenWindows(data_dir, "train", cfg.model.context)
    losses = []
    for i in range(6):
        x, y = windows.batch(cfg.train.batch_size, seed=cfg.seed, step=i, micro=0, rank=0, world=1)
        losses.append(step(x, y).item())
    assert losses == logged


def test_quick_bench_writes_both_timings_and_the_ratio(tmp_path, capsys, keep_threads):
    path = bench.main(["--quick", "--out", str(tmp_path)])
    out = json.loads(path.read_text())
    assert out["threads"] == torch.get_num_threads() == 1
    assert {r["dtype"] for r in out["runs"]} == {"fp32", "bf16"}
    for r in out["runs"]:
        assert r["reference"]["ms_per_step"] > 0 and len(r["reference"]["ms_rounds"]) == r["rounds"] == 1
        assert set(r["project"]) == set(bench.PARAMS)
        for p in r["project"].values():
            assert p["ms_per_step"] > 0
            assert p["ratio"] == pytest.approx(r["reference"]["ms_per_step"] / p["ms_per_step"], rel=1e-3)
    printed = capsys.readouterr().out
    assert "1 thread" in printed and "| fp32 | 64 × 1 |" in printed and "project spectral" in printed


@pytest.mark.parametrize("shape", ["128", "100x4", "128x0"])
def test_a_bad_shape_is_one_line(shape, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--shapes", shape])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --shapes") and "\n" not in err


def test_fused_adamw_on_cpu_by_default_and_foreach_for_the_cpu_sweeps():
    """torch's fused AdamW on CPU unless optim.fused=false; the CPU science sweeps
    (experiment=cpu_transfer) keep foreach, with which every published CPU sweep ran (the two
    round differently in the last bit)."""
    from model import GPT
    from optim import build_optimizer
    from param import build_table, model_config

    for extra, fused in (((), True), (("optim.fused=false",), None), (("experiment=cpu_transfer",), None),
                         (("experiment=cpu_transfer", "optim.fused=true"), True)):
        cfg = bench.project_config("spectral", 64, 1, 64, 16, 2, extra)
        table = build_table(cfg, 64)
        opt = build_optimizer(cfg, GPT(model_config(cfg.model, 64), table.scales()), table, "cpu")
        assert opt.defaults["fused"] is fused and opt.defaults["foreach"] is (None if fused else True), extra
