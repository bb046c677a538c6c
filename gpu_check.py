"""`make gpu-check`: the GPU path in one command, for the first person with a CUDA GPU.

    python gpu_check.py                      # full check on CUDA; without CUDA, the --small dry run on CPU
    python gpu_check.py --small              # tiny shapes on this device (the CPU dry run, ~1-2 min)
    python gpu_check.py --json out.json --skip fsdp2,resume

Six parts, each timed, each one line of the report and one section of the JSON, each PASS, FAIL
or SKIP with its reason (budgets on one H100/H200, total <= 8 min):

  1. gpu_tests  `pytest -m gpu` in a subprocess: passed / failed / skipped            (45 s)
  2. gpt2_124m  GPT-2 124M (768 x 12, 12 heads, context 1024, GPT-2 BPE vocab 50304, the
                embedded Shakespeare corpus) in bf16 autocast + compile + SDPA: tok/s, MFU
                against the device's peak (records/mfu.py), peak memory, compile time, and the
                ratio to the plain reference step (model/reference.py) at the same shape (150 s)
  3. train      200 steps whose val loss falls; the first 20 in bf16 within TOL_BF16 of fp32 (90 s)
  4. fsdp2      `torchrun --nproc_per_node=<all GPUs> train.py dist=fsdp2`, 50 steps    (75 s)
  5. resume     part 4's checkpoint at step 25 resumed under torchrun equals the
                uninterrupted run; a DCP save/load in this process restores bitwise    (60 s)
  6. host_sync  the real train loop under torch.profiler: host syncs per step, zero on
                the steps that neither log, evaluate nor checkpoint                    (45 s)

Then a table and the JSON (device, torch version, date): bench_results/gpu-check-*.json.
Without CUDA every part runs at a tiny shape on CPU instead (2 gloo ranks for 4 and 5), labelled
"CPU dry run: no GPU figures": the checks are real, the figures are not GPU figures.

It is a script of its own, not part of `make bench` or of the test suite: bench.py times shapes
and tests assert claims, while this runs the whole product path (tests, compile, torchrun, DCP,
the loop's syncs) once, on a device the project has not yet been measured on, and says which
part of that path works there.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import gc
import getpass
import json
import logging
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import torch
import torch.distributed as tdist
from torch.profiler import ProfilerActivity, profile, record_function

import assemble
import cli
import data
import parallel
from data.loader import TokenWindows
from model.reference import ReferenceGPT, ReferenceStep, reference_optimizer
from records import load_distributed, read_jsonl, save_distributed
from records.mfu import mfu, peak_flops
from train import run

# bf16 against fp32, per logged step, over the first 20 steps at a stable LR. bf16 keeps 8
# significant bits (rounding 2^-9 ~ 0.2%); matmuls accumulate in fp32 and the loss is taken in fp32,
# so the loss moves far less. Measured on CPU at widths 32-64 (depth 2, context 64, batch 8, GPT-2 BPE,
# lr 2e-3, warmup 5): |dloss| <= 0.0025, growing with the step. 0.02 leaves 8x for the 124M shape.
# At an LR where the loss spikes (lr 1e-2 at width 64) the two part by up to 2 nats at a spike, so
# the check runs warmed-up at a stable LR, and a FAIL flags an unstable run as well as bad numerics.
TOL_BF16 = 0.02
# A resumed run on CPU repeats the uninterrupted one exactly (deterministic kernels, batches that
# are a function of (seed, step), restored RNG). On CUDA the restored weights are bitwise the
# saved ones and the forward has no atomics, so the first resumed step matches to TOL_FIRST; later
# steps go through backward kernels with atomic adds (embedding gradient, attention), which make
# even two uninterrupted runs differ at bf16 rounding level: TOL_BF16.
TOL_FIRST = 1e-5
SYNC_OPS = ("aten::item", "aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize",
            "cudaEventSynchronize", "cudaMemcpy")
MARK = "gpu_check/step/"  # a zero-length profiler range at the start of each optimizer step
CPU_LABEL = "CPU dry run: no GPU figures"
PARTS = ("gpu_tests", "gpt2_124m", "train", "fsdp2", "resume", "host_sync")
BUDGET_S = {"gpu_tests": 45, "gpt2_124m": 150, "train": 90, "fsdp2": 75, "resume": 60, "host_sync": 45}
SMALL_BUDGET_S = 120


@dataclass(frozen=True)
class Shape:
    width: int
    depth: int
    head_dim: int
    context: int
    batch: int  # global sequences per step
    steps: int  # part 3's long run
    match_steps: int  # part 3's bf16-vs-fp32 window
    dist_steps: int  # part 4 (and the uninterrupted run of part 5)
    lr: float
    warmup: int
    dtype: str
    compile: bool
    fall: float  # part 3: nats the val loss must fall by (from ln 50304 = 10.8 at init)
    params: tuple = ("sp", "mup")  # part 2: timed against the reference (a subset: the others differ in their factors only)
    rounds: int = 3  # part 2: interleaved timing rounds of `timed` steps each
    timed: int = 10


FULL = Shape(768, 12, 64, 1024, 16, 200, 20, 50, 6e-4, 50, "bf16", True, fall=2.0)  # nanoGPT's 124M LR, a short warmup
SMALL = Shape(64, 2, 16, 64, 8, 40, 20, 10, 2e-3, 5, "bf16", False, fall=1.0, rounds=3, timed=2)


@dataclass
class Check:
    small: bool
    device: torch.device
    ranks: int  # processes for parts 4 and 5
    shape: Shape
    work: Path  # run dirs, logs, torchrun's temp files
    data_root: str | None = None
    results: dict = field(default_factory=dict)


def make_check(small: bool, work: Path, data_root: str | None = None) -> Check:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    ranks = torch.cuda.device_count() if cuda else 2
    small = small or not cuda
    shape = SMALL if small else FULL
    shape = replace(shape, batch=-(-shape.batch // ranks) * ranks)  # a multiple of the ranks
    return Check(small=small, device=device, ranks=ranks, shape=shape, work=Path(work), data_root=data_root)


# ----------------------------------------------------------------------------- shared pieces

def run_overrides(ck: Check, **train) -> list[str]:
    """train.py's overrides for parts 3-6: the GPT-2 BPE Shakespeare data at the check's shape,
    a constant LR after warmup (so the first steps of runs of any length are the same steps)."""
    s = ck.shape
    values = {"steps": s.steps, "batch_size": s.batch, "log_interval": 1, "eval_interval": 100000, "eval_iters": 2,
              "ckpt_interval": 0, "progress": "false", "dtype": s.dtype, "compile": str(s.compile).lower(), **train}
    if ck.device.type == "cpu":
        values["threads"] = 1
    return ["data=shakespeare", *([f"data.root={ck.data_root}"] if ck.data_root else []),
            f"model.width={s.width}", f"model.depth={s.depth}", f"model.head_dim={s.head_dim}", f"model.context={s.context}",
            f"optim.lr={s.lr}", "schedule=constant", f"schedule.warmup={s.warmup}",
            *(f"train.{k}={v}" for k, v in values.items())]


def prepared_data(ck: Check) -> Path:
    return data.ensure_prepared(cli.compose(run_overrides(ck)).data)


def train_losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["train_loss"] for r in read_jsonl(Path(run_dir) / "metrics.jsonl") if "train_loss" in r}


def val_losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["val_loss"] for r in read_jsonl(Path(run_dir) / "metrics.jsonl") if "val_loss" in r}


def max_gap(a: dict, b: dict, steps) -> float:
    return max((abs(a[s] - b[s]) for s in steps), default=math.nan)


def run_in_process(ck: Check, name: str, *overrides: str) -> tuple[dict, Path]:
    run_dir = ck.work / name
    free_memory()
    if ck.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ck.device)  # the run's summary reports the peak since this
    summary = run(cli.compose([*run_overrides(ck), *overrides]), run_dir)
    free_memory()
    return summary, run_dir


def torchrun(ck: Check, run_dir: Path, *overrides: str, timeout: float) -> subprocess.CompletedProcess:
    # torchrun leaves its files in TMPDIR; the inductor cache stays the one this process uses
    env = {**os.environ, "TMPDIR": str(ck.work), "WANDB_MODE": "disabled",
           "TORCHINDUCTOR_CACHE_DIR": os.environ.get("TORCHINDUCTOR_CACHE_DIR") or inductor_cache()}
    if ck.device.type == "cpu":
        env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ck.ranks}", "train.py",
           *run_overrides(ck), "dist=fsdp2", *overrides, f"hydra.run.dir={run_dir}"]
    try:
        out = subprocess.run(cmd, cwd=cli.REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"torchrun x{ck.ranks} did not finish in {timeout:.0f} s ({run_dir.name})") from None
    (ck.work / f"{run_dir.name}.log").write_text(out.stdout + out.stderr)
    return out


def inductor_cache() -> str:
    return os.path.join(tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}")


@contextlib.contextmanager
def stderr_into(path: Path):
    """File descriptor 2 into `path` (the profiler's C++ start/stop lines), then back."""
    sys.stderr.flush()
    saved, fd = os.dup(2), os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(fd)
        os.close(saved)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def last_line(text: str) -> str:
    """The line of a failed process's output that says why: its last `error: ...` or `XError: ...`
    line (torchrun ends with its own summary of the failure), else its last line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    why = [ln for ln in lines if re.match(r"(error: |[\w.]*(Error|Exception): )", ln)]
    return (why or lines or [""])[-1][:300]


# ----------------------------------------------------------------------------- 1. the GPU tests

def part_gpu_tests(ck: Check) -> dict:
    xml = ck.work / "gpu_tests.xml"
    out = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", "tests"],
                         cwd=cli.REPO, capture_output=True, text=True, timeout=BUDGET_S["gpu_tests"] * 4,
                         env={**os.environ, "WANDB_MODE": "disabled"})
    counts = Counter()
    if xml.exists():
        for suite in ET.parse(xml).getroot().iter("testsuite"):
            for k in ("tests", "failures", "errors", "skipped"):
                counts[k] += int(suite.get(k, 0))
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    figures = {"passed": passed, "failed": counts["failures"] + counts["errors"], "skipped": counts["skipped"]}
    if out.returncode not in (0, 5) or figures["failed"]:
        return {"result": "FAIL", "reason": f"pytest -m gpu: {last_line(out.stdout)}", **figures}
    if not passed:
        why = "no test is marked gpu" if not counts["tests"] else f"all {counts['skipped']} skipped ({'no CUDA' if ck.device.type != 'cuda' else 'see pytest -m gpu -ra'})"
        return {"result": "SKIP", "reason": why, **figures}
    return {"result": "PASS", "reason": f"{passed} passed, {counts['skipped']} skipped", **figures}


# ----------------------------------------------------------------------------- 2. GPT-2 124M speed

def reference_step(s: Shape, vocab: int, device: torch.device, autocast, lr: float):
    """The plain GPT-2 step to time against, at the same shape (model/reference.py)."""
    torch.manual_seed(0)
    model = ReferenceGPT(s.width, s.depth, s.head_dim, s.context, vocab).to(device)
    if s.compile:
        for block in model.blocks:
            block.compile()  # per block, as train.py compiles the project's model
    return ReferenceStep(model, reference_optimizer(model, lr=lr, device_type=device.type), autocast)


def project_step(param: str, ck: Check, vocab: int, autocast):
    """The project's step as train.py takes it: table, multipliers, per-group AdamW, clipping,
    compiled per block by parallel.parallelize. Returns (step(x, y) -> loss, flops per token)."""
    cfg = cli.compose([*run_overrides(ck), f"param={param}", f"model.vocab_size={vocab}"])
    b = assemble.build(cfg, vocab, ck.device, 0, rt=parallel.Runtime(), compile_blocks=ck.shape.compile)
    model, fwd, opt = b.model, b.step_model, b.optimizer
    params = list(model.parameters())

    def step(x, y):
        with autocast:
            _, loss = fwd(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step, b.flops_per_token


def part_gpt2_124m(ck: Check) -> dict:
    s, device = ck.shape, ck.device
    meta = data.load_meta(prepared_data(ck))
    vocab = -(-meta["vocab_size"] // 64) * 64  # 50257 -> 50304, as model.vocab_multiple pads it
    x, y = (t.to(device) for t in data.TokenWindows(prepared_data(ck), "train", s.context).batch(s.batch, seed=0, step=0))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if s.dtype == "bf16" else contextlib.nullcontext()
    peak, peak_what = peak_flops(device, s.dtype)
    steps, fpt = {}, None
    for name in [f"project_{p}" for p in s.params] + ["reference"]:  # build and warm up, one at a time
        before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        if name == "reference":
            fn = reference_step(s, vocab, device, autocast, s.lr)
        else:
            fn, fpt = project_step(name.split("_", 1)[1], ck, vocab, autocast)
        t = time.perf_counter()
        fn(x, y)
        sync(device)
        first = time.perf_counter() - t
        loss = fn(x, y)
        sync(device)
        peak_mb = (torch.cuda.max_memory_allocated(device) - before) / 2**20 if device.type == "cuda" else None
        steps[name] = {"fn": fn, "first_step_s": first, "peak_memory_mb": peak_mb, "ms": [], "loss": float(loss)}
    for _ in range(s.rounds):  # interleaved rounds: a slow spell of the machine hits every model alike
        for r in steps.values():
            sync(device)
            t = time.perf_counter()
            for _ in range(s.timed):
                loss = r["fn"](x, y)
            sync(device)
            r["ms"].append((time.perf_counter() - t) / s.timed * 1e3)
            r["loss"] = float(loss)
    tokens = s.batch * s.context
    out = {"shape": f"{s.width}x{s.depth} heads {s.width // s.head_dim} context {s.context} vocab {vocab} batch {s.batch}",
           "dtype": s.dtype, "compiled": s.compile, "peak": peak, "peak_what": peak_what, "models": {}}
    for name, r in steps.items():
        ms = statistics.median(r["ms"])
        tok_s = tokens / ms * 1e3
        out["models"][name] = {"ms_per_step": round(ms, 3), "tok_per_s": round(tok_s, 1), "mfu": mfu(fpt, tok_s, peak),
                               "peak_memory_mb": r["peak_memory_mb"] and round(r["peak_memory_mb"], 1),
                               "compile_s": round(max(r["first_step_s"] - ms / 1e3, 0.0), 2) if s.compile else None,
                               "loss": r["loss"]}
    ref = out["models"]["reference"]["ms_per_step"]
    for name, m in out["models"].items():
        if name != "reference":
            m["vs_reference"] = round(ref / m["ms_per_step"], 3)  # > 1: faster than the reference
    del steps, r, fn
    free_memory()
    bad = [n for n, m in out["models"].items() if not math.isfinite(m["loss"])]
    head = out["models"][f"project_{s.params[0]}"]
    mfu_txt = f"MFU {head['mfu']:.1%}" if head["mfu"] is not None else "MFU n/a"
    ratios = ", ".join(f"{n[8:]} {m['vs_reference']:.2f}x" for n, m in out["models"].items() if n != "reference")
    goals = ""
    if not ck.small and head["mfu"] is not None:
        out["goal_mfu_40pct"] = head["mfu"] >= 0.40
        out["goal_vs_reference_1x"] = all(m["vs_reference"] >= 1.0 for n, m in out["models"].items() if n != "reference")
        goals = f"; goals MFU>=40% {'met' if out['goal_mfu_40pct'] else 'NOT met'}, >=1.0x {'met' if out['goal_vs_reference_1x'] else 'NOT met'}"
    summary = f"{head['tok_per_s']:,.0f} tok/s, {mfu_txt}, vs reference {ratios}{goals}"
    if bad:
        return {"result": "FAIL", "reason": f"non-finite loss from {', '.join(bad)}", **out}
    return {"result": "PASS", "reason": summary, **out}


# ----------------------------------------------------------------------------- 3. a short training run

def part_train(ck: Check) -> dict:
    s = ck.shape
    summary, long_dir = run_in_process(ck, "train_bf16")
    _, fp32_dir = run_in_process(ck, "train_fp32", f"train.steps={s.match_steps}", "train.dtype=fp32", "train.compile=false")
    bf16, fp32, val = train_losses(long_dir), train_losses(fp32_dir), val_losses(long_dir)
    window = range(1, s.match_steps + 1)
    gap = max_gap(bf16, fp32, window)
    fell = val[0] - val[s.steps] if s.steps in val else math.nan
    ck.results["train_losses"] = bf16
    out = {"steps": s.steps, "dtype": s.dtype, "compiled": s.compile, "val_loss_start": val.get(0), "val_loss_end": val.get(s.steps),
           "val_loss_fell_by": fell, "required_fall": s.fall, "bf16_vs_fp32_max_abs": gap, "tolerance": TOL_BF16,
           "match_steps": s.match_steps, "tok_per_s": summary["tok_per_s"], "mfu": summary["mfu"],
           "peak_memory_mb": summary["peak_memory_mb"], "run_dir": str(long_dir)}
    figures = f"val loss {val.get(0, math.nan):.3f} -> {val.get(s.steps, math.nan):.3f} in {s.steps} steps; " \
              f"first {s.match_steps} steps bf16 vs fp32 max |dloss| {gap:.4f} (tol {TOL_BF16})"
    if summary["diverged"] or not fell >= s.fall:
        return {"result": "FAIL", "reason": f"the loss did not fall by {s.fall} nats: {figures}", **out}
    if not gap <= TOL_BF16:
        return {"result": "FAIL", "reason": f"bf16 left fp32: {figures}", **out}
    return {"result": "PASS", "reason": figures, **out}


# ----------------------------------------------------------------------------- 4. torchrun + FSDP2

def dist_run(ck: Check) -> dict:
    """The uninterrupted torchrun run that parts 4 and 5 share (checkpoint halfway)."""
    if "dist_run" not in ck.results:
        s, run_dir = ck.shape, ck.work / "fsdp2"
        t = time.perf_counter()
        out = torchrun(ck, run_dir, f"train.steps={s.dist_steps}", f"train.ckpt_interval={s.dist_steps // 2}",
                       timeout=BUDGET_S["fsdp2"] * 4)
        ck.results["dist_run"] = {"rc": out.returncode, "stderr": out.stderr, "run_dir": run_dir, "s": time.perf_counter() - t}
    return ck.results["dist_run"]


def _torchrun_failed(what: str, out: dict | subprocess.CompletedProcess) -> str | None:
    rc, err = (out["rc"], out["stderr"]) if isinstance(out, dict) else (out.returncode, out.stderr)
    if rc:
        return f"{what} exited {rc}: {last_line(err)}"
    if "terminate called" in err:
        return f"{what} aborted at teardown (terminate called)"
    return None


def part_fsdp2(ck: Check) -> dict:
    s, run = ck.shape, dist_run(ck)
    if (why := _torchrun_failed(f"torchrun x{ck.ranks}", run)) is not None:
        return {"result": "FAIL", "reason": why, "log": str(ck.work / "fsdp2.log")}
    summary = json.loads((run["run_dir"] / "summary.json").read_text())
    losses = train_losses(run["run_dir"])
    out = {"ranks": ck.ranks, "world_size": summary["world_size"], "steps": summary["steps"], "tok_per_s": summary["tok_per_s"],
           "mfu": summary["mfu"], "first_loss": losses.get(1), "last_loss": losses.get(s.dist_steps), "run_dir": str(run["run_dir"])}
    sharded = "FSDP2" if summary["world_size"] > 1 else "world 1: one process, nothing to shard"
    if summary["steps"] != s.dist_steps or summary["diverged"] or not losses.get(s.dist_steps, math.inf) < losses[1]:
        return {"result": "FAIL", "reason": f"{summary['steps']} steps, loss {losses.get(1)} -> {losses.get(s.dist_steps)}", **out}
    figures = f"{ck.ranks} rank(s) ({sharded}), {s.dist_steps} steps, loss {losses[1]:.3f} -> {losses[s.dist_steps]:.3f}"
    one = ck.results.get("train_losses")
    if one is not None and summary["world_size"] > 1:  # same config, same global batch as part 3's run
        window = range(1, min(s.match_steps, s.dist_steps) + 1)
        out["vs_one_process_max_abs"], out["tolerance"] = max_gap(losses, one, window), TOL_BF16
        figures += f", first {len(window)} steps vs one process max |dloss| {out['vs_one_process_max_abs']:.2g}"
        if not out["vs_one_process_max_abs"] <= TOL_BF16:
            return {"result": "FAIL", "reason": f"FSDP2 left the one-process run: {figures}", **out}
    return {"result": "PASS", "reason": figures, **out}


# ----------------------------------------------------------------------------- 5. checkpoint + resume

def dcp_round_trip(ck: Check) -> dict:
    """In this process, on a 1-rank process group: FSDP2-shard the project's model on the device,
    take 2 steps, save through records.save_distributed (DCP), load into a fresh model and
    optimizer, and compare every parameter and optimizer tensor with the saved ones, bitwise; then
    2 more steps against 4 uninterrupted ones. (train.py writes DCP only with >= 2 ranks; this
    covers a 1-GPU machine.)"""
    own = not tdist.is_initialized()
    if own:
        tdist.init_process_group("nccl" if ck.device.type == "cuda" else "gloo", store=tdist.HashStore(), rank=0, world_size=1)
    try:
        tiny = replace(SMALL, context=32, batch=4)
        cfg = cli.compose([*run_overrides(replace(ck, shape=tiny)), "dist=fsdp2", "param=mup"])
        windows = data.TokenWindows(prepared_data(ck), "train", cfg.model.context)
        vocab = assemble.vocab_size(cfg, data.load_meta(prepared_data(ck))["vocab_size"])
        autocast = torch.autocast(ck.device.type, dtype=torch.bfloat16)

        def build():
            b = assemble.build(cfg, vocab, ck.device, 0, rt=parallel.Runtime(strategy="fsdp2"))
            return b.model, b.optimizer

        def steps(model, opt, first, n):
            losses = []
            for i in range(first, first + n):
                x, y = (t.to(ck.device) for t in windows.batch(tiny.batch, seed=0, step=i))
                with autocast:
                    _, loss = model(x, y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(list(model.parameters()), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
            return losses

        def tensors(model, opt):
            full = lambda t: t.full_tensor() if hasattr(t, "full_tensor") else t  # noqa: E731
            out = {n: full(p.detach()).clone() for n, p in model.named_parameters()}
            for n, p in model.named_parameters():
                out.update({f"{n}/{k}": full(v).clone() for k, v in opt.state[p].items() if torch.is_tensor(v)})
            return out

        whole = steps(*build(), 0, 4)
        model, opt = build()
        steps(model, opt, 0, 2)
        saved = tensors(model, opt)
        path = save_distributed(ck.work / "dcp", 2, model, [opt], {"step": 2}, {"torch": torch.get_rng_state()}, 1, 0)
        model, opt = build()
        load_distributed(path, model, [opt], 0)
        loaded = tensors(model, opt)
        differ = sorted(k for k in saved if k not in loaded or not torch.equal(saved[k], loaded[k]))
        tail = steps(model, opt, 2, 2)
        return {"tensors": len(saved), "differ": differ[:5], "n_differ": len(differ) + len(set(loaded) - set(saved)),
                "first_gap": abs(tail[0] - whole[2]), "later_gap": abs(tail[1] - whole[3])}
    finally:
        if own:
            tdist.destroy_process_group()
        free_memory()


def part_resume(ck: Check) -> dict:
    s, run = ck.shape, dist_run(ck)
    exact = ck.device.type == "cpu"
    tol_first, tol_later = (0.0, 0.0) if exact else (TOL_FIRST, TOL_BF16)
    rt = dcp_round_trip(ck)
    out = {"dcp_in_process": rt, "tolerance_first_step": tol_first, "tolerance_later_steps": tol_later}
    if rt["n_differ"] or rt["first_gap"] > tol_first or rt["later_gap"] > tol_later:
        return {"result": "FAIL", "reason": f"in-process DCP round trip: {rt['n_differ']} tensors differ ({', '.join(rt['differ'])}), "
                                            f"loss gaps {rt['first_gap']:.2g} / {rt['later_gap']:.2g}", **out}
    if (why := _torchrun_failed(f"the uninterrupted torchrun x{ck.ranks}", run)) is not None:
        return {"result": "FAIL", "reason": why, **out}
    half = s.dist_steps // 2
    src = run["run_dir"] / "checkpoints" / f"step_{half:06d}"
    resumed = ck.work / "resumed"
    shutil.copytree(src, resumed / "checkpoints" / src.name)
    proc = torchrun(ck, resumed, f"train.steps={s.dist_steps}", f"train.ckpt_interval={half}", "train.resume=auto",
                    timeout=BUDGET_S["resume"] * 4)
    if (why := _torchrun_failed(f"the resumed torchrun x{ck.ranks}", proc)) is not None:
        return {"result": "FAIL", "reason": why, **out}
    a, b = train_losses(run["run_dir"]), train_losses(resumed)
    later = range(half + 2, s.dist_steps + 1)
    out.update(kind="DCP" if (src / "meta.pt").exists() else "single file (world 1: train.py writes DCP with >= 2 ranks)",
               resumed_at=half, first_step_gap=abs(a[half + 1] - b[half + 1]), later_steps_max_gap=max_gap(a, b, later),
               val_gap=abs(val_losses(run["run_dir"])[s.dist_steps] - val_losses(resumed)[s.dist_steps]))
    figures = (f"{out['kind'].split(' (')[0]} checkpoint at step {half} of {s.dist_steps}: |dloss| first {out['first_step_gap']:.2g}, "
               f"later max {out['later_steps_max_gap']:.2g}, val {out['val_gap']:.2g} ({'exact' if exact else f'tol {tol_first:g} / {tol_later:g}'}); "
               f"in-process DCP: {rt['tensors']} tensors bitwise")
    if out["first_step_gap"] > tol_first or out["later_steps_max_gap"] > tol_later or out["val_gap"] > tol_later:
        return {"result": "FAIL", "reason": f"the resumed run left the uninterrupted one: {figures}", **out}
    return {"result": "PASS", "reason": figures, **out}


# ----------------------------------------------------------------------------- 6. host syncs

def count_syncs(events, cpu_optimizer: bool) -> tuple[dict[int, Counter], Counter]:
    """Host syncs per optimizer step from profiler events (name, start, end): a step runs from its
    MARK to the next one, its log / eval / checkpoint work included. With `cpu_optimizer`, syncs
    inside torch's optimizer step are counted apart: on CPU torch's AdamW (fused or foreach) reads
    each tensor's step counter, a host tensor, with item(); on CUDA the fused kernel reads it on
    the device."""
    marks = sorted((start, int(name[len(MARK):])) for name, start, _ in events if name.startswith(MARK))
    starts = [m[0] for m in marks]
    opt = [(a, b) for name, a, b in events if cpu_optimizer and name.startswith("Optimizer.step#")]
    per_step, in_opt = {step: Counter() for _, step in marks}, Counter()
    for name, start, _ in events:
        if name not in SYNC_OPS:
            continue
        i = bisect.bisect_right(starts, start) - 1
        if i < 0:
            continue  # before the first step: setup, the step-0 evaluation
        if any(a <= start <= b for a, b in opt):
            in_opt[name] += 1
        else:
            per_step[marks[i][1]][name] += 1
    return per_step, in_opt


def busy_steps(cfg) -> set[int]:
    """0-based steps whose end logs, evaluates or checkpoints (train.py's rules)."""
    t, out = cfg.train, set()
    for step in range(t.steps):
        done = step + 1
        if (done % t.log_interval == 0 or done == 1 or done == t.steps or done % t.eval_interval == 0
                or (t.ckpt_interval and done % t.ckpt_interval == 0)):
            out.add(step)
    return out


def part_host_sync(ck: Check) -> dict:
    cfg = cli.compose([*run_overrides(ck), "train.steps=12", "train.log_interval=5"])
    original = TokenWindows.batch

    def marked(self, batch_size, seed, step, rank=0, micro=0, world=1):
        if self.split == "train" and micro == 0:
            with record_function(f"{MARK}{step}"):
                pass
        return original(self, batch_size, seed, step, rank=rank, micro=micro, world=world)

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ck.device.type == "cuda" else [])
    with mock.patch.object(TokenWindows, "batch", marked), stderr_into(ck.work / "profiler.log"), profile(activities=acts) as prof:
        run(cfg, ck.work / "host_sync")
    events = [(e.name, e.time_range.start, e.time_range.end) for e in prof.events()]
    del prof
    free_memory()
    per_step, in_opt = count_syncs(events, cpu_optimizer=ck.device.type == "cpu")
    busy = busy_steps(cfg)
    quiet = {s: sum(c.values()) for s, c in per_step.items() if s not in busy}
    logged = {s: sum(c.values()) for s, c in per_step.items() if s in busy}
    out = {"steps": cfg.train.steps, "log_interval": cfg.train.log_interval, "counted": list(SYNC_OPS),
           "quiet_steps": sorted(quiet), "syncs_per_quiet_step": quiet, "syncs_per_busy_step": logged,
           "by_op": {str(s): dict(c) for s, c in per_step.items() if c},
           "inside_cpu_optimizer_per_step": {k: v / cfg.train.steps for k, v in in_opt.items()}}
    figures = f"{len(quiet)} quiet steps: {sum(quiet.values())} syncs; {len(logged)} log/eval/ckpt steps: {min(logged.values(), default=0)}-{max(logged.values(), default=0)} each"
    if in_opt:
        figures += f" (torch's CPU AdamW reading its step counters: {sum(in_opt.values()) // cfg.train.steps}/step, counted apart)"
    if len(per_step) != cfg.train.steps or not quiet:
        return {"result": "FAIL", "reason": f"saw {len(per_step)} of {cfg.train.steps} steps in the profile", **out}
    if not all(logged.values()):
        return {"result": "FAIL", "reason": f"no sync seen on a logging step: the counter is blind ({figures})", **out}
    if any(quiet.values()):
        bad = {s: dict(per_step[s]) for s, n in quiet.items() if n}
        return {"result": "FAIL", "reason": f"host syncs in the hot loop: {bad}", **out}
    return {"result": "PASS", "reason": figures, **out}


# ----------------------------------------------------------------------------- the report

RUNNERS = {"gpu_tests": part_gpu_tests, "gpt2_124m": part_gpt2_124m, "train": part_train, "fsdp2": part_fsdp2,
           "resume": part_resume, "host_sync": part_host_sync}


def run_part(ck: Check, name: str) -> dict:
    t = time.perf_counter()
    try:
        result = RUNNERS[name](ck)
    except Exception as e:  # a part that breaks is that part's FAIL; the others still run
        (ck.work / f"{name}.traceback").write_text(traceback.format_exc())
        result = {"result": "FAIL", "reason": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else 'no message'}"}
    result["seconds"] = round(time.perf_counter() - t, 2)
    result["budget_s"] = BUDGET_S[name]
    return result


def report_line(i: int, name: str, r: dict) -> str:
    return f"{i}. {name:<10} {r['result']:<4} {r['seconds']:6.1f}s  {r['reason']}"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} x{torch.cuda.device_count()}"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def check(small: bool, skip: set[str], work: Path, data_root: str | None = None, echo=print) -> dict:
    ck = make_check(small, work, data_root)
    threads = torch.get_num_threads()
    if ck.device.type == "cpu":
        torch.set_num_threads(1)  # light on a shared CPU; the torchrun ranks get OMP_NUM_THREADS=1
    try:
        return _check(ck, skip, echo)
    finally:
        torch.set_num_threads(threads)


def _check(ck: Check, skip: set[str], echo) -> dict:
    head = {"mode": "small" if ck.small else "full", "label": CPU_LABEL if ck.device.type == "cpu" else None,
            "device": device_name(ck.device), "device_type": ck.device.type, "torch": torch.__version__,
            "cuda": torch.version.cuda, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "budget_s": SMALL_BUDGET_S if ck.small else sum(BUDGET_S.values()), "tolerances": {"bf16_vs_fp32": TOL_BF16,
            "resume_first_step_cuda": TOL_FIRST, "resume_later_steps_cuda": TOL_BF16, "resume_cpu": 0.0}}
    echo(f"gpu-check on {head['device']}, torch {head['torch']}, {head['mode']} mode" + (f": {CPU_LABEL}" if head["label"] else ""))
    if set(PARTS) - skip - {"gpu_tests"}:
        prepared_data(ck)  # GPT-2 BPE Shakespeare (~2 s once); a missing corpus is one line here
    t0, parts = time.perf_counter(), {}
    for i, name in enumerate(PARTS, 1):
        if name in skip:
            parts[name] = {"result": "SKIP", "reason": "--skip", "seconds": 0.0, "budget_s": BUDGET_S[name]}
        else:
            parts[name] = run_part(ck, name)
        echo(report_line(i, name, parts[name]))
    head["total_s"] = round(time.perf_counter() - t0, 1)
    head["parts"] = parts
    head["ok"] = all(p["result"] != "FAIL" for p in parts.values())
    return head


def table(result: dict) -> str:
    rows = [f"{'part':<10} {'result':<6} {'time':>7}  key figures"]
    for name, r in result["parts"].items():
        rows.append(f"{name:<10} {r['result']:<6} {r['seconds']:6.1f}s  {r['reason'][:140]}")
    over = " (over budget)" if result["total_s"] > result["budget_s"] else ""
    rows.append(f"total {result['total_s']:.0f} s of a {result['budget_s']} s budget{over}; "
                + ("all parts passed or were skipped" if result["ok"] else "FAILED: see the lines above"))
    if result["label"]:
        rows.append(result["label"])
    return "\n".join(rows)


@cli.guard
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="tiny shapes (the default without CUDA)")
    ap.add_argument("--json", default=None, help="where to write the JSON (default bench_results/gpu-check-<device>-<time>.json)")
    ap.add_argument("--skip", default="", help=f"comma-separated parts to skip: {','.join(PARTS)}")
    ap.add_argument("--keep", default=None, help="keep the run dirs and logs in this dir (default: a temp dir, removed)")
    ap.add_argument("--data-root", default=None, help="data.root for the GPT-2 BPE Shakespeare data (default data/cache)")
    ap.add_argument("--verbose", action="store_true", help="print the training runs' own lines too")
    args = ap.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if unknown := skip - set(PARTS):
        raise cli.UserError(f"--skip {','.join(sorted(unknown))}: choose among {','.join(PARTS)}")
    if not torch.cuda.is_available() and not args.small:
        print(f"no CUDA device (torch {torch.__version__}): running the --small mode on CPU ({CPU_LABEL})")
    os.environ.setdefault("WANDB_MODE", "disabled")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    runs_log = logging.getLogger("hptransfer")  # the in-process runs' lines go to a file, not the report
    handler = logging.StreamHandler(sys.stderr) if args.verbose else logging.FileHandler(work / "runs.log")
    runs_log.addHandler(handler)
    runs_log.propagate = False
    try:
        result = check(args.small, skip, work, args.data_root)
    finally:
        runs_log.removeHandler(handler)
        handler.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(table(result))
    path = Path(args.json) if args.json else cli.REPO / "bench_results" / \
        f"gpu-check-{result['device_type']}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"wrote {path}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
