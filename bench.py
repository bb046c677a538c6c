"""`make bench`: the project's training step against a plain PyTorch GPT-2 step, side by side.

    python bench.py                                # 128x4, 256x4, 512x4; fp32 and bf16 on CPU
    python bench.py --shapes 128x4 --dtypes fp32 --rounds 7
    python bench.py --compile                      # torch.compile per block, as train.compile=true does
    python bench.py --quick                        # a tiny shape, one round: does it run end to end

For each shape and dtype one process builds the reference (model/reference.py: GPT-2 laid out
as nanoGPT does, one AdamW with weight decay on matrices, no table, no multipliers) and the
project's step for each parameterization (GPT + param table + its AdamW groups + clipping, the
work train.py's hot loop does per step), on the same batch, and times them in interleaved rounds
(within a round one step of each of the reference, sp, mup, spectral and a second reference,
built last, in a shuffled order, and again). Per round, ratio = reference ms / project ms (> 1:
the project is faster); the table shows the median over rounds and its spread (half the range of
the rounds, the lowest and highest left out). The reference's ms is the mean of its two copies;
their ratio, reference against itself, is the floor under which a ratio says nothing (two
identical steps differ by where their tensors landed in memory). On a CPU with one torch thread
a step is timed in the thread's CPU time, which leaves out the time other processes hold the
core; otherwise in wall time. Interleaving step by step makes the ratio robust to a machine whose
load drifts; absolute ms on a loaded machine are not.

Also kept: what the per-tensor param groups cost (the project's optimizer step against the same
step with every tensor in one group, as % of a training step), and `--dist`: one process
against FSDP2 on 2 ranks (whole train.py runs, their summary's tok/s). Speed targets live
here, never in timed unit tests. JSON: bench_results/bench-<device>-<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import assemble
import cli
import parallel
from model import flops_per_token
from param import registry
from records.mfu import mfu, peak_flops
from model.reference import ReferenceGPT, ReferenceStep, reference_optimizer

CHAR_VOCAB, BPE_VOCAB = 128, 50304  # 84 Shakespeare chars and 50257 GPT-2 tokens, padded to 64
# timed by default: SP, μP and spectral (the others differ from them in their factors only, not in the step);
# --params takes any parameterization of conf/param/*.yaml
PARAMS = ("sp", "mup", "spectral")
DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device, dtype: str):
    """As train.py: autocast for bf16, nothing at all for fp32."""
    return torch.autocast(device.type, dtype=DTYPES[dtype]) if DTYPES[dtype] else contextlib.nullcontext()


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_name()}, {torch.get_num_threads()} thread{'s' * (torch.get_num_threads() != 1)}"


class ProjectStep:
    """train.py's hot loop, one optimizer step at grad_accum=1, at a non-logging step: the
    schedule sets every group's lr, forward under the run's autocast, the loss joins the running
    sum, (loss / grad_accum).backward() through the (disabled) GradScaler, the clip, the
    optimizer step, zero_grad(set_to_none=True). The batch comes from outside (the same for the
    reference), so data loading is timed for neither."""

    def __init__(self, cfg, vocab: int, device, dtype: str, compile_: bool):
        self.cfg = cfg
        # train.py's composition: with compile_, parallel.parallelize compiles each block (train.compile=true)
        b = assemble.build(cfg, vocab, device, cfg.seed, rt=parallel.Runtime() if compile_ else None, compile_blocks=compile_)
        self.table, self.model, self.optimizer, self.schedule = b.table, b.model, b.optimizer, b.schedule
        self.scaler = torch.amp.GradScaler(device.type, enabled=False)  # train.py: enabled for fp16 only
        self.autocast = _autocast(device, dtype)
        self.params = list(self.model.parameters())
        self.loss_sum, self.n_sum, self.step_i = torch.zeros((), device=device), 0, 0
        self.grad_accum, self.grad_clip = int(cfg.train.grad_accum), float(cfg.train.grad_clip)
        self.foreach = True

    def __call__(self, x, y):
        self.schedule.apply(self.optimizer, self.step_i % self.schedule.total)
        with self.autocast:
            _, loss = self.model(x, y)
        self.loss_sum += loss.detach().float() / self.grad_accum
        self.scaler.scale(loss / self.grad_accum).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=self.foreach)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.n_sum += 1
        self.step_i += 1
        if self.n_sum == 10:  # train.py zeroes the window at each log step (its .item() is left out)
            self.loss_sum.zero_()
            self.n_sum = 0
        return loss.detach()


def project_config(param: str, width: int, depth: int, vocab: int, context: int, batch: int, extra=()):
    return cli.compose([f"param={param}", f"model.width={width}", f"model.depth={depth}", f"model.context={context}",
                        f"model.vocab_size={vocab}", "model.vocab_multiple=1", "model.head_dim=64",
                        "param.base_width=64", "param.base_depth=2", f"train.batch_size={batch}", *extra])


def make_reference(cfg, vocab: int, device, dtype: str, compile_: bool) -> ReferenceStep:
    m, o = cfg.model, cfg.optim
    torch.manual_seed(cfg.seed)
    model = ReferenceGPT(int(m.width), int(m.depth), int(m.head_dim), int(m.context), vocab).to(device)
    if compile_:
        for block in model.blocks:
            block.compile()
    opt = reference_optimizer(model, float(o.lr), float(o.weight_decay), tuple(o.betas), float(o.eps), device.type)
    return ReferenceStep(model, opt, _autocast(device, dtype))


def _time(step, x, y, n: int, device, clock=time.perf_counter) -> float:
    _sync(device)
    t = clock()
    for _ in range(n):
        step(x, y)
    _sync(device)
    return (clock() - t) / n * 1e3


def spread(values: list[float]) -> float:
    """Half the range of the rounds, the lowest and highest left out when there are 5 or more."""
    v = sorted(values)
    if len(v) >= 5:
        v = v[1:-1]
    return (v[-1] - v[0]) / 2


def group_cost(step: ProjectStep, ms_step: float, device, n: int, clock) -> dict:
    """The table's param groups against one group over the same tensors: optimizer step alone."""
    params = step.params
    for p in params:
        p.grad = torch.randn_like(p)
    fast = {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}
    one = torch.optim.AdamW(params, lr=1e-3, **fast)
    opts = {"groups": step.optimizer, "one_group": one}
    rounds = {name: [] for name in opts}
    for o in opts.values():
        o.step()
    for _ in range(5):  # interleaved, as the steps
        for name, o in opts.items():
            _sync(device)
            t = clock()
            for _ in range(n):
                o.step()
            _sync(device)
            rounds[name].append((clock() - t) / n * 1e3)
    out = {name: statistics.median(v) for name, v in rounds.items()}
    step.optimizer.zero_grad(set_to_none=True)
    return {"param_groups": len(step.optimizer.param_groups), "optimizer_ms_groups": round(out["groups"], 3),
            "optimizer_ms_one_group": round(out["one_group"], 3),
            "group_overhead_pct_of_step": round(100 * (out["groups"] - out["one_group"]) / ms_step, 2)}


def cpu_clock(device) -> bool:
    """Whether steps are timed in CPU time of this thread: on a CPU with one torch thread every
    kernel of a step (forward, autograd's backward, the optimizer) runs in the calling thread, and
    its CPU time leaves out the time other processes hold the core, which wall time counts."""
    return device.type == "cpu" and torch.get_num_threads() == 1


def bench_shape(width, depth, vocab, context, batch, dtype, params, rounds, steps, compile_, device, extra=()) -> dict:
    """Interleaved rounds of the reference and each parameterization's project step."""
    clock = time.thread_time if cpu_clock(device) else time.perf_counter
    cfgs = {p: project_config(p, width, depth, vocab, context, batch, extra) for p in params}
    gen = torch.Generator().manual_seed(0)
    xy = torch.randint(0, vocab, (batch, context + 1), generator=gen).to(device)
    x, y = xy[:, :-1].contiguous(), xy[:, 1:].contiguous()
    # the reference twice, built first and last: two identical steps differ by where their tensors
    # landed in memory (±1.5% at width 128 here); their mean is the yardstick, their ratio the floor
    steps_of = {"reference": make_reference(cfgs[params[0]], vocab, device, dtype, compile_)}
    steps_of.update({p: ProjectStep(cfgs[p], vocab, device, dtype, compile_) for p in params})
    steps_of["reference_2"] = make_reference(cfgs[params[0]], vocab, device, dtype, compile_)
    names = list(steps_of)
    t = time.perf_counter()
    for name in names:  # warm-up: allocator, lazy optimizer state, compile
        _time(steps_of[name], x, y, 2, device)
    warmup_s = time.perf_counter() - t
    if steps is None:  # about 0.4 s of the reference's steps per round, at least 2
        probe = _time(steps_of["reference"], x, y, 1, device, clock)
        steps = max(2, math.ceil(400 / max(probe, 1e-3)))
    ms, wall = {name: [] for name in names}, {name: [] for name in names}
    shuffle = random.Random(0)
    for _ in range(rounds):  # a round: `steps` steps of each, one step of each in turn, in a fresh order
        total, total_wall = dict.fromkeys(names, 0.0), dict.fromkeys(names, 0.0)
        for _ in range(steps):
            for name in shuffle.sample(names, len(names)):  # no variant always follows the same one
                t = time.perf_counter()
                total[name] += _time(steps_of[name], x, y, 1, device, clock)
                total_wall[name] += time.perf_counter() - t
        for name in names:
            ms[name].append(total[name] / steps)
            wall[name].append(total_wall[name] / steps * 1e3)
    ref = [(a + b) / 2 for a, b in zip(ms["reference"], ms["reference_2"])]
    floor = [a / b for a, b in zip(ms["reference"], ms["reference_2"])]
    tokens = batch * context
    out = {"width": width, "depth": depth, "vocab": vocab, "context": context, "batch": batch, "dtype": dtype,
           "compiled": compile_, "rounds": rounds, "steps_per_round": steps, "warmup_s": round(warmup_s, 2),
           "clock": "thread CPU time" if clock is time.thread_time else "wall",
           "reference": {"ms_per_step": round(statistics.median(ref), 3), "ms_rounds": [round(v, 3) for v in ref],
                         "wall_ms_rounds": [round((a + b) / 2, 3) for a, b in zip(wall["reference"], wall["reference_2"])],
                         "tok_per_s": round(tokens / statistics.median(ref) * 1e3, 1),
                         "itself": round(statistics.median(floor), 4), "itself_spread": round(spread(floor), 4)},
           "project": {}}
    peak = peak_flops(device, dtype)[0]
    for p in params:
        ratios = [a / b for a, b in zip(ref, ms[p])]
        med = statistics.median(ms[p])
        step = steps_of[p]
        fpt = flops_per_token(step.model)
        out["project"][p] = {
            "ms_per_step": round(med, 3), "ms_rounds": [round(v, 3) for v in ms[p]],
            "wall_ms_rounds": [round(v, 3) for v in wall[p]],
            "ratio": round(statistics.median(ratios), 4), "ratio_rounds": [round(v, 4) for v in ratios],
            "ratio_spread": round(spread(ratios), 4), "tok_per_s": round(tokens / med * 1e3, 1),
            "mfu": mfu(fpt, tokens / med * 1e3, peak),
            **group_cost(step, med, device, max(2, steps), clock),
        }
    return out


def bench_dist(width: int, depth: int, context: int, batch: int, steps: int, device: torch.device) -> list[dict]:
    """tok/s of whole training runs: one process, then FSDP2 on 2 ranks (same global batch)."""
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        print("dist: skipped (FSDP2 on 2 ranks needs 2 GPUs here)")
        return []
    args = [f"model.width={width}", f"model.depth={depth}", f"model.context={context}", "model.head_dim=64",
            f"train.batch_size={batch}", f"train.steps={steps}", "train.eval_interval=100000", "train.eval_iters=1",
            "train.ckpt_interval=0", "train.log_interval=5", "train.progress=false", "param=spectral",
            "param.base_width=64", "param.base_depth=2"]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TMPDIR": tmp}
        for name, launcher, extra in (("1 process", [sys.executable, "train.py"], []),
                                      ("fsdp2 x2", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                    "--nproc_per_node=2", "train.py"], ["dist=fsdp2"])):
            run_dir = f"{tmp}/{len(out)}"
            proc = subprocess.run([*launcher, *args, *extra, f"hydra.run.dir={run_dir}"], cwd=cli.REPO, env=env,
                                  capture_output=True, text=True)
            if proc.returncode:
                print(f"dist {name}: failed\n{proc.stderr[-2000:]}")
                continue
            summary = json.loads(open(f"{run_dir}/summary.json").read())
            out.append({"mode": name, "width": width, "depth": depth, "context": context, "batch": batch,
                        "tok_per_s": round(summary["tok_per_s"], 1), "peak_memory_mb": round(summary["peak_memory_mb"], 1),
                        "mfu": summary["mfu"]})
            print(f"dist d={width} L={depth} T={context} B={batch} {name:<9} {summary['tok_per_s']:10,.0f} tok/s "
                  f"(whole train.py run, {steps} steps)", flush=True)
    return out


def _shape(text: str) -> tuple[int, int]:
    try:
        width, depth = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise cli.UserError(f"--shapes {text!r}: write WIDTHxDEPTH, e.g. 128x4") from None
    if width % 64 or width < 64 or depth < 1:
        raise cli.UserError(f"--shapes {text!r}: the width must be a multiple of 64 (head_dim 64) and the depth >= 1")
    return width, depth


def table_lines(runs: list[dict], params) -> list[str]:
    """Markdown: one row per (dtype, shape), reference ms and project/reference per parameterization."""
    head = "| dtype | width × depth | reference ms | reference / itself | " + " | ".join(f"project {p}" for p in params) + " |"
    lines = [head, "|" + "---|" * (4 + len(params))]
    for r in runs:
        cells = [f"{r['project'][p]['ratio']:.3f}× ±{r['project'][p]['ratio_spread']:.3f}" for p in params]
        ref = r["reference"]
        lines.append(f"| {r['dtype']}{' compiled' if r['compiled'] else ''} | {r['width']} × {r['depth']} | "
                     f"{ref['ms_per_step']:.1f} | {ref['itself']:.3f}× ±{ref['itself_spread']:.3f} | " + " | ".join(cells) + " |")
    return lines


@cli.guard
def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["128x4", "256x4", "512x4"], help="WIDTHxDEPTH, head_dim 64")
    ap.add_argument("--vocab", type=int, default=CHAR_VOCAB, help=f"vocabulary ({CHAR_VOCAB}: char Shakespeare; {BPE_VOCAB}: GPT-2 BPE)")
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=["fp32", "bf16"])
    ap.add_argument("--params", nargs="+", choices=registry.names(), default=list(PARAMS))
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median and spread over them)")
    ap.add_argument("--steps", type=int, default=None, help="steps of each per round (default: 0.4 s of the reference's, at least 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as the CPU sweeps run)")
    ap.add_argument("--compile", action="store_true", help="torch.compile each block of both models (10-25 s per model on CPU)")
    ap.add_argument("--dist", action="store_true", help="also one process vs FSDP2 x2 (whole train.py runs of the first shape)")
    ap.add_argument("overrides", nargs="*", help="config overrides for the project's step, e.g. optim.fused=false (foreach AdamW on CPU)")
    ap.add_argument("--quick", action="store_true", help="a tiny shape (64x1, context 32, batch 2), one round of 1 step")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="bench_results")
    args = ap.parse_args(argv)
    if args.quick:
        args.shapes, args.context, args.batch, args.rounds, args.steps = ["64x1"], 32, 2, 1, 1
    if args.rounds < 1 or (args.steps is not None and args.steps < 1):
        raise cli.UserError("--rounds and --steps must be at least 1")
    shapes = [_shape(s) for s in args.shapes]
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    name = device_name(device)
    print(f"{name} | torch {torch.__version__} | vocab {args.vocab}, context {args.context}, batch {args.batch} | "
          + (f"project with {' '.join(args.overrides)} | " if args.overrides else "") +
          f"{args.rounds} interleaved rounds; ratio = reference ms / project ms (> 1: project faster)", flush=True)
    runs = []
    for dtype in args.dtypes:
        for width, depth in shapes:
            r = bench_shape(width, depth, args.vocab, args.context, args.batch, dtype, args.params, args.rounds,
                            args.steps, args.compile, device, args.overrides)
            runs.append(r)
            cells = "  ".join(f"{p} {r['project'][p]['ratio']:.3f}x±{r['project'][p]['ratio_spread']:.3f} "
                              f"(groups {r['project'][p]['param_groups']}: {r['project'][p]['group_overhead_pct_of_step']:+.2f}%)"
                              for p in args.params)
            print(f"{dtype}{' compiled' if args.compile else ''} {width}x{depth}: reference "
                  f"{r['reference']['ms_per_step']:.1f} ms/step (against itself {r['reference']['itself']:.3f}x"
                  f"±{r['reference']['itself_spread']:.3f})  {cells}", flush=True)
    dist_runs = bench_dist(*shapes[0], args.context, args.batch, 30, device) if args.dist else []
    print("\n" + "\n".join(table_lines(runs, args.params)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = out / f"bench-{device.type}-{stamp}.json"
    path.write_text(json.dumps({"device": name, "threads": torch.get_num_threads() if device.type == "cpu" else None,
                                "torch": torch.__version__, "created": stamp, "overrides": args.overrides, "ratio": "reference ms / project ms (> 1: project faster)",
                                "runs": runs, "dist": dist_runs}, indent=1) + "\n")
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
