"""The GPU check cannot rot before its first GPU: its parts run on CPU at tiny shapes, and the
checks they make are real ones (the loop's host syncs counted, a DCP checkpoint compared bitwise).
The `gpu` tests run the same parts on CUDA; `make gpu-check` runs them as its part 1."""

from __future__ import annotations

import json

import pytest
import torch

import gpu_check
from conftest import run_cli


@pytest.fixture(scope="module")
def bpe_root(tmp_path_factory):
    """The embedded Shakespeare corpus in GPT-2 BPE (the check's data), prepared once (~2 s)."""
    import cli
    import data

    root = tmp_path_factory.mktemp("bpe")
    data.ensure_prepared(cli.compose(["data=shakespeare", f"data.root={root}"]).data)
    return root


def small_check(tmp_path, bpe_root):
    return gpu_check.make_check(True, tmp_path, str(bpe_root))


def test_syncs_are_counted_per_step_from_its_mark_and_the_cpu_optimizers_apart():
    M = gpu_check.MARK
    events = [("aten::item", 0, 1), (f"{M}0", 10, 10), ("aten::mm", 11, 12), (f"{M}1", 20, 20),
              ("Optimizer.step#AdamW.step", 21, 25), ("aten::item", 22, 22), ("aten::_local_scalar_dense", 22, 22),
              ("aten::item", 27, 27), (f"{M}2", 30, 30), ("cudaStreamSynchronize", 31, 31)]
    per_step, in_opt = gpu_check.count_syncs(events, cpu_optimizer=True)
    assert per_step == {0: {}, 1: {"aten::item": 1}, 2: {"cudaStreamSynchronize": 1}}  # the one before step 0: setup
    assert in_opt == {"aten::item": 1, "aten::_local_scalar_dense": 1}
    per_step, in_opt = gpu_check.count_syncs(events, cpu_optimizer=False)  # on CUDA every sync counts
    assert sum(per_step[1].values()) == 3 and not in_opt


def test_the_steps_that_may_sync_are_train_py_s_log_eval_and_checkpoint_steps(tiny_cfg):
    cfg = tiny_cfg("train.steps=12", "train.log_interval=5", "train.eval_interval=6", "train.ckpt_interval=4")
    # done = step + 1: logs at 1, 5, 10, 12; evals at 6, 12; checkpoints at 4, 8, 12
    assert gpu_check.busy_steps(cfg) == {0, 3, 4, 5, 7, 9, 11}


def test_on_cpu_the_train_loop_syncs_the_host_only_on_steps_that_log(tmp_path, bpe_root):
    r = gpu_check.part_host_sync(small_check(tmp_path, bpe_root))
    assert r["result"] == "PASS", r["reason"]
    assert r["quiet_steps"] == [1, 2, 3, 5, 6, 7, 8, 10]  # 12 steps, log_interval 5
    assert set(r["syncs_per_quiet_step"].values()) == {0}
    assert min(r["syncs_per_busy_step"].values()) >= 2  # the counter sees the log steps' .item() calls


def test_a_dcp_checkpoint_reloads_bitwise_and_continues_exactly_on_cpu(tmp_path, bpe_root):
    r = gpu_check.dcp_round_trip(small_check(tmp_path, bpe_root))
    assert r["tensors"] > 50 and r["n_differ"] == 0  # params, exp_avg, exp_avg_sq, step of every tensor
    assert r["first_gap"] == 0.0 and r["later_gap"] == 0.0
    assert not torch.distributed.is_initialized()  # the 1-rank group is gone again


def test_the_report_has_a_line_per_part_a_table_and_the_json_names_device_torch_and_date(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert gpu_check.main(["--small", "--skip", ",".join(gpu_check.PARTS), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert set(result) >= {"mode", "label", "device", "device_type", "torch", "date", "parts", "ok", "total_s", "tolerances"}
    assert result["torch"] == torch.__version__ and result["mode"] == "small" and result["ok"]
    assert list(result["parts"]) == list(gpu_check.PARTS)
    for i, name in enumerate(gpu_check.PARTS, 1):
        assert result["parts"][name]["result"] == "SKIP"
        assert f"{i}. {name}" in printed
    assert "part       result" in printed and "all parts passed or were skipped" in printed
    if not torch.cuda.is_available():
        assert result["label"] == gpu_check.CPU_LABEL and gpu_check.CPU_LABEL in printed


def test_a_part_that_breaks_is_its_own_fail_and_the_others_still_run(tmp_path, monkeypatch):
    def broken(ck):
        raise RuntimeError("CUDA error: an illegal memory access\nsecond line")

    monkeypatch.setitem(gpu_check.RUNNERS, "train", broken)
    result = gpu_check.check(True, set(gpu_check.PARTS) - {"train"}, tmp_path, echo=lambda line: None)
    assert result["parts"]["train"]["result"] == "FAIL" and not result["ok"]
    assert result["parts"]["train"]["reason"] == "RuntimeError: CUDA error: an illegal memory access"
    assert (tmp_path / "train.traceback").exists()


def test_an_unknown_part_to_skip_is_one_line_naming_the_parts():
    out = run_cli("gpu_check.py", "--skip", "speed")
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "--skip speed: choose among gpu_tests,gpt2_124m" in out.stderr


@pytest.mark.slow
def test_the_cpu_dry_run_passes_every_part_with_real_checks(tmp_path, bpe_root):
    out = run_cli("gpu_check.py", "--small", "--data-root", str(bpe_root), "--json", str(tmp_path / "r.json"),
                  "--keep", str(tmp_path / "work"), env={"OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    r = json.loads((tmp_path / "r.json").read_text())
    parts = r["parts"]
    assert {n: p["result"] for n, p in parts.items() if n != "gpu_tests"} == {n: "PASS" for n in gpu_check.PARTS[1:]}
    assert parts["gpt2_124m"]["models"]["reference"]["tok_per_s"] > 0 and "vs_reference" in parts["gpt2_124m"]["models"]["project_sp"]
    assert parts["train"]["val_loss_fell_by"] >= 1.0 and parts["train"]["bf16_vs_fp32_max_abs"] <= gpu_check.TOL_BF16
    assert parts["fsdp2"]["world_size"] == 2 and parts["fsdp2"]["vs_one_process_max_abs"] <= gpu_check.TOL_BF16
    assert parts["resume"]["kind"] == "DCP" and parts["resume"]["first_step_gap"] == parts["resume"]["later_steps_max_gap"] == 0
    assert set(parts["host_sync"]["syncs_per_quiet_step"].values()) == {0}
    if not torch.cuda.is_available():
        assert r["label"] == gpu_check.CPU_LABEL and parts["gpu_tests"]["result"] == "SKIP"


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
def test_on_cuda_the_train_loop_syncs_neither_host_nor_stream_outside_log_steps(tmp_path, bpe_root):
    r = gpu_check.part_host_sync(small_check(tmp_path, bpe_root))
    assert r["result"] == "PASS", r["reason"]
    assert not r["inside_cpu_optimizer_per_step"]  # nothing set apart on CUDA: every sync counted


@pytest.mark.gpu
@needs_cuda
def test_on_cuda_a_dcp_checkpoint_of_sharded_tensors_reloads_bitwise(tmp_path, bpe_root):
    r = gpu_check.dcp_round_trip(small_check(tmp_path, bpe_root))
    assert r["n_differ"] == 0 and r["first_gap"] <= gpu_check.TOL_FIRST
