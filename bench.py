"""`make bench`: time full training steps (forward, backward, clip, AdamW with the param
table's groups) for a few shapes on this device, eager and compiled; write a JSON file.

    python bench.py                          # default shapes, eager + compiled
    python bench.py --no-compile --steps 5   # quicker
    python bench.py --shapes 128x4 256x4 --vocab 50304 --context 256 --batch 8

Also reports what the per-tensor param groups cost: the optimizer step with the table's groups
against the same step with all tensors in one group (the bar: at most 2% of a training step),
fp32 against bf16 autocast where asked (default on CUDA), and one process against FSDP2 on 2
ranks (whole `train.py` runs, their summary's tok/s; on CPU the 2 ranks get 1 thread each).
Speed targets live here, never in timed unit tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

import cli
from model import GPT, flops_per_token
from model.mfu import mfu, peak_flops
from optim import build_optimizer, lr_factor, set_lr
from param import apply_init, build_table, model_config

CHAR_VOCAB, BPE_VOCAB = 128, 50304  # 84 Shakespeare chars and 50257 GPT-2 tokens, padded to 64


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_shape(width, depth, vocab, context, batch, steps, compile_, device, dtype, param) -> dict:
    cfg = cli.compose([f"param={param}", f"model.width={width}", f"model.depth={depth}", f"model.context={context}",
                       f"model.vocab_size={vocab}", "model.vocab_multiple=1", "model.head_dim=64", "param.base_width=64", "param.base_depth=2"])
    table = build_table(cfg, vocab)
    torch.manual_seed(0)
    model = GPT(model_config(cfg.model, vocab), table.scales())
    apply_init(model, table)
    model.to(device)
    opt = build_optimizer(cfg, model, table, device.type)
    fwd = torch.compile(model) if compile_ else model
    x = torch.randint(0, vocab, (batch, context), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    params = list(model.parameters())

    def step(i):
        set_lr(opt, lr_factor(i, 1000, cfg.schedule))
        with autocast:
            _, loss = fwd(x, x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)

    t = time.perf_counter()
    step(0)  # first step: compile / allocator warm-up
    _sync(device)
    first = time.perf_counter() - t
    for i in range(2):
        step(i + 1)
    _sync(device)
    t = time.perf_counter()
    for i in range(steps):
        step(i + 3)
    _sync(device)
    ms = (time.perf_counter() - t) / steps * 1e3

    # optimizer step alone: the table's groups vs one group over the same tensors
    for p in params:
        p.grad = torch.randn_like(p)
    one = torch.optim.AdamW(params, lr=1e-3, **({"fused": True} if device.type == "cuda" else {"foreach": True}))
    opt_ms = {}
    for name, o in (("groups", opt), ("one_group", one)):
        o.step()
        _sync(device)
        t = time.perf_counter()
        for _ in range(steps):
            o.step()
        _sync(device)
        opt_ms[name] = (time.perf_counter() - t) / steps * 1e3
    tokens = batch * context
    return {
        "param": param, "width": width, "depth": depth, "vocab": vocab, "context": context, "batch": batch, "compiled": compile_,
        "dtype": dtype, "ms_per_step": round(ms, 2), "tok_per_s": round(tokens / ms * 1e3, 1),
        "first_step_s": round(first, 2), "param_groups": len(opt.param_groups),
        "optimizer_ms_groups": round(opt_ms["groups"], 3), "optimizer_ms_one_group": round(opt_ms["one_group"], 3),
        "group_overhead_pct_of_step": round(100 * (opt_ms["groups"] - opt_ms["one_group"]) / ms, 2),
        "achieved_tflops": round(flops_per_token(model) * tokens / ms * 1e3 / 1e12, 4),
        "mfu": mfu(flops_per_token(model), tokens / ms * 1e3, peak_flops(device, dtype)[0]),
    }


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


@cli.guard
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["128x4", "256x4", "512x4"], help="WIDTHxDEPTH (char vocab); the first also runs with the BPE vocab")
    ap.add_argument("--vocab", type=int, nargs="+", default=None, help=f"vocab sizes for every shape (default: {CHAR_VOCAB}; {BPE_VOCAB} for the first shape too)")
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per shape")
    ap.add_argument("--no-compile", action="store_true", help="eager only (torch.compile costs 10-25 s per shape on CPU)")
    ap.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"], default=None, help="default: fp32, plus bf16 on CUDA")
    ap.add_argument("--no-dist", action="store_true", help="skip the 1 process vs FSDP2 x2 comparison")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--param", default="spectral", help="parameterization (spectral: the most param groups)")
    ap.add_argument("--out", default="bench_results")
    args = ap.parse_args()
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    dtypes = args.dtypes or (["fp32", "bf16"] if device.type == "cuda" else ["fp32"])
    runs = []
    for i, shape in enumerate(args.shapes):
        width, depth = (int(v) for v in shape.lower().split("x"))
        vocabs = args.vocab or ([CHAR_VOCAB, BPE_VOCAB] if i == 0 else [CHAR_VOCAB])
        for vocab in vocabs:
            for dtype in dtypes:
                for compile_ in (False,) if args.no_compile else (False, True):
                    r = bench_shape(width, depth, vocab, args.context, args.batch, args.steps, compile_, device, dtype, args.param)
                    runs.append(r)
                    print(f"d={width:<5} L={depth:<3} V={vocab:<6} T={args.context} B={args.batch} {dtype} "
                          f"{'compiled' if compile_ else 'eager   '} {r['ms_per_step']:9.1f} ms/step {r['tok_per_s']:10,.0f} tok/s  "
                          f"groups {r['param_groups']} cost {r['group_overhead_pct_of_step']:+.2f}% of a step", flush=True)
    first_w, first_d = (int(v) for v in args.shapes[0].lower().split("x"))
    dist_runs = [] if args.no_dist else bench_dist(first_w, first_d, args.context, args.batch, 30, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    path = out / f"bench-{device.type}-{stamp}.json"
    path.write_text(json.dumps({"device": name, "torch": torch.__version__, "created": stamp, "runs": runs, "dist": dist_runs}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
