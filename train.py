"""Train a GPT-2: config -> data -> model -> table -> optimizer -> steps.

    python train.py                                   # char-level Shakespeare on CPU, a few minutes
    python train.py model.width=256 model.depth=8 optim.lr=3e-3
    python train.py -m optim.lr=1e-3,3e-3             # Hydra multirun
    python train.py hydra.run.dir=outputs/X train.resume=auto   # continue a run

    torchrun --standalone --nproc_per_node=8 train.py dist=fsdp2 experiment=owt_gpt2_124m

Records in the Hydra run dir: .hydra/, param_table.json, metrics.jsonl, summary.json, checkpoints/.
Only rank 0 writes them; every rank trains on its slice of the same global batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig

import assemble
import cli
import data
import parallel
from optim.diagnostics import make_diagnostics
from records.mfu import mfu, peak_flops
from records import (
    MetricsLog,
    is_distributed_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    load_distributed,
    make_logger,
    save_checkpoint,
    save_distributed,
    write_json_atomic,
)
from records.console import Progress, format_duration, log as console
from records.console import setup as setup_console
from records.faults import StopSignal, no_space_guard
from records.files import PARTIAL
from records.resume import cli_overrides, resume_command, resume_target, resumed_config, write_hydra_files
from records.rundir import RunLock, check_dir_usable, make_run_dir, static_prefix

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise cli.UserError("train.device=mps but MPS is not available: use train.device=cpu")
    return torch.device(name)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB (process RSS)


def _cpu_seconds() -> float:
    """This process's CPU time (user + system): what the run costs on a shared machine, which
    its wall time does not tell when other work competes for the cores."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def to_device(x: torch.Tensor, y: torch.Tensor, device: torch.device):
    """Batches to the device; on CUDA through pinned memory so the copy is asynchronous."""
    if device.type != "cuda":
        return x, y
    return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)


@torch.no_grad()
def evaluate(model, windows, cfg, batch_size: int, device, autocast, rt) -> float:
    """Mean val loss over eval_iters fixed batches (the same windows at every evaluation),
    every rank on its slice, averaged over ranks."""
    model.eval()
    total = torch.zeros((), device=device)
    for i in range(cfg.train.eval_iters):
        x, y = windows.batch(batch_size, seed=cfg.seed, step=i, rank=rt.rank, world=rt.world)
        with autocast:
            _, loss = model(*to_device(x, y, device))
        total += loss.float()
    model.train()
    return parallel.mean(total / cfg.train.eval_iters, rt).item()


def _optimizers(optimizer) -> list:
    return list(optimizer.parts.values()) if hasattr(optimizer, "parts") else [optimizer]


def _rng(device) -> dict:
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def save(ckpt_root, step, model, optimizer, scaler, extra: dict, rt, keep: int, device) -> None:
    """One checkpoint: a single file for one process, DCP shards (+ rank 0's meta) under torchrun."""
    if rt.distributed:
        save_distributed(ckpt_root, step, model, _optimizers(optimizer), {**extra, "scaler": scaler.state_dict()},
                         _rng(device), keep, rt.rank)
    else:
        save_checkpoint(ckpt_root, step, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                          "scaler": scaler.state_dict(), "rng": _rng(device), **extra}, keep=keep)


def restore(path, model, optimizer, scaler, table, rt, device, state: dict | None = None) -> None:
    """Load a checkpoint of either kind into model and optimizer (`state`: its state.pt or
    meta.pt when already loaded). The table is compared first, so a changed config gets its
    one-line error, not a shape mismatch."""
    distributed = is_distributed_checkpoint(path)
    if rt.distributed and not distributed:
        raise cli.UserError(f"train.resume: {path} is a single-process checkpoint: resume it without torchrun "
                            "(or export it with `python -m records.export` and start a new run)")
    state = state if state is not None else load_checkpoint(path)
    _same_table(state.get("param_table"), table, path)
    if distributed:
        rng = load_distributed(path, model, _optimizers(optimizer), rt.rank)
    else:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng = state["rng"]
    scaler.load_state_dict(state["scaler"])
    if rng is not None:  # None: this rank did not exist when the checkpoint was written
        torch.set_rng_state(rng["torch"])
        if device.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"], device)


def _same_table(saved: dict | None, table, path: Path) -> None:
    """A resumed run must train with the table it was checkpointed with."""
    if saved is None:
        return
    now = table.to_dict()
    for a, b in zip(saved["tensors"], now["tensors"]):
        for key in ("name", "shape", "init_std", "multiplier", "lr", "weight_decay", "eps"):
            if a[key] != b[key]:
                raise cli.UserError(
                    f"train.resume: {a['name']} {key} was {a[key]} in {path} but the config now gives {b[key]}: "
                    "resume with the checkpoint's config (its run dir's .hydra/overrides.yaml) or start a new run"
                )
    if len(saved["tensors"]) != len(now["tensors"]):
        raise cli.UserError(f"train.resume: the checkpoint in {path} has another model shape: resume with its config")


# ----------------------------------------------------------------------------- run dir, resume, faults

# Set by `python train.py` when it writes Hydra's files itself, once the run holds its dir: an
# environment variable, so that jobs a launcher runs in other processes (joblib, submitit) see it
HYDRA_SUBDIR_ENV = "HPTRANSFER_HYDRA_SUBDIR"


def _hydra_subdir() -> str | None:
    return os.environ.get(HYDRA_SUBDIR_ENV) or None


def note(msg: str) -> None:
    """One line for the user (a resume, a fallback, a stop, a lock taken over): through logging,
    so it reaches the console (beside the progress bar) and Hydra's <run dir>/train.log."""
    console.info(msg)


def _rank0_decides(rt, fn):
    """fn() on rank 0; its value, or its UserError, on every rank."""
    value, error = None, None
    if rt.main:
        try:
            value = fn()
        except cli.UserError as e:
            error = str(e)
    value, error = parallel.broadcast_object((value, error), rt)
    if error is not None:
        raise cli.UserError(error)
    return value


def _hold(run_dir: Path, lock: RunLock) -> None:
    make_run_dir(run_dir)
    lock.acquire()
    if lock.note:
        note(lock.note)


# ----------------------------------------------------------------------------- the run

def run(cfg, run_dir: Path) -> dict:
    """Train one model; returns the summary (also written to run_dir/summary.json on rank 0)."""
    setup_console()
    assemble.check_run(cfg, quiet=cfg.train.resume not in (None, False, "none"))  # a resume: checked again once merged
    t0 = time.time()
    rt, device_name = parallel.start(cfg.dist, str(cfg.train.device))
    run_dir = Path(parallel.broadcast_object(str(run_dir), rt))  # rank 0's dir for every rank
    lock, metrics = RunLock(run_dir), MetricsLog(run_dir)
    try:
        with StopSignal() as stop:
            _rank0_decides(rt, lambda: _hold(run_dir, lock))  # one process per run dir
            return _train(cfg, run_dir, rt, device_name, stop, metrics, t0)
    finally:
        metrics.close()
        lock.release()


def _train(cfg, run_dir: Path, rt, device_name: str, stop: StopSignal, metrics: MetricsLog, t0: float) -> dict:
    resume, state, cfg, changes = _resume_point(cfg, run_dir, rt)
    run = _build(cfg, run_dir, rt, device_name, metrics, t0, state.get("overrides") if resume is not None else cli_overrides())
    if resume is not None:
        _restore(run, resume, state)
        state = {k: v for k, v in state.items() if k not in ("model", "optimizer")}  # the copies in memory go
    _write_run_files(run, resume, state, changes)
    if run.start == 0:
        run.val_loss = run.best_val = run.evaluate()
        run.val_step = 0
        run.log({"step": 0, "tokens": 0, "val_loss": run.val_loss, "elapsed": time.time() - t0})
    done, diverged, stopped = _loop(run, stop)
    return _finish(run, done, diverged, stopped)


@dataclasses.dataclass
class Run:
    """One training run: what was built, where it writes, and the counters a checkpoint keeps."""

    cfg: Any
    rt: Any
    run_dir: Path
    metrics: MetricsLog
    t0: float
    overrides: list
    device: torch.device
    micro_bs: int
    autocast: Any
    built: assemble.Built
    diag: Any
    scaler: Any
    train_windows: Any
    val_windows: Any
    tokens_per_step: int
    peak: Any
    peak_what: str
    logger: Any = None
    # the counters (resumed from a checkpoint): step, losses, training time, the open loss window
    start: int = 0
    first_loss: float | None = None
    best_val: float = math.inf
    val_loss: float | None = None
    val_step: int | None = None
    train_time: float = 0.0
    carried: tuple = (0.0, 0)
    loss_sum: Any = None
    n_sum: int = 0

    @property
    def ckpt_root(self) -> Path:
        return self.run_dir / "checkpoints"

    def writing(self, path: Path):
        return no_space_guard(path, run_dir=self.run_dir, metrics=self.metrics)

    def evaluate(self) -> float:
        return evaluate(self.built.step_model, self.val_windows, self.cfg, self.micro_bs, self.device, self.autocast, self.rt)

    def log(self, record: dict) -> None:
        if self.rt.main:
            with self.writing(self.metrics.path):
                self.metrics.write(record)
            self.logger.log(record, step=record["step"])

    def diverges(self, loss: float) -> bool:
        return not math.isfinite(loss) or (self.first_loss is not None and loss > self.cfg.train.diverge_factor * self.first_loss)

    def checkpoint(self, step: int) -> None:
        b, tc = self.built, self.cfg.train
        extra = {"step": step, "first_loss": self.first_loss, "best_val": self.best_val, "val_loss": self.val_loss,
                 "val_step": self.val_step, "train_time": self.train_time, "loss_sum": parallel.mean(self.loss_sum, self.rt).item(),
                 "n_sum": self.n_sum, "config": cli.to_container(self.cfg), "overrides": self.overrides,
                 "param_table": b.table.to_dict()}
        with self.writing(self.ckpt_root / f"step_{step:06d}"):
            save(self.ckpt_root, step, b.model, b.optimizer, self.scaler, extra, self.rt, tc.ckpt_keep, self.device)
        if self.rt.main:
            note(f"step {step}: checkpoint {self.ckpt_root / f'step_{step:06d}'}")


def _resume_point(cfg, run_dir: Path, rt) -> tuple:
    """(checkpoint to resume or None, its state, the config to train with, what the resume changed).
    Rank 0 decides: it moves damaged checkpoints aside."""
    found = {}

    def decide():
        path, found["state"], notes = resume_target(cfg, run_dir / "checkpoints")
        for line in notes:
            note(line)
        return None if path is None else str(path)

    resume = _rank0_decides(rt, decide)
    if resume is None:
        return None, None, cfg, []
    resume = Path(resume)
    state = found.get("state")
    state = state if state is not None else load_checkpoint(resume)  # other ranks: meta.pt
    cfg, changes = resumed_config(cfg, state, resume)
    assemble.check_run(cfg)
    return resume, state, cfg, changes


def _build(cfg, run_dir: Path, rt, device_name: str, metrics: MetricsLog, t0: float, overrides: list) -> Run:
    """Device and precision, data, then table -> model -> optimizer (assemble.build; the table
    comes from names, before any sharding)."""
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(int(tc.threads))
    device = resolve_device(device_name if rt.distributed else str(tc.device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls on Ampere and newer
        torch.backends.cudnn.allow_tf32 = True
    if tc.dtype == "fp16" and device.type != "cuda":
        raise cli.UserError("train.dtype=fp16 needs a CUDA device: use train.dtype=bf16 or fp32 on CPU")
    per_rank = tc.batch_size // tc.grad_accum
    if per_rank % rt.world:
        raise cli.UserError(f"train.batch_size/grad_accum={per_rank} sequences per micro-batch do not split over "
                            f"{rt.world} ranks: make train.batch_size a multiple of grad_accum x {rt.world}")
    autocast = torch.autocast(device.type, dtype=DTYPES[tc.dtype]) if tc.dtype != "fp32" else contextlib.nullcontext()
    if rt.main:
        data.ensure_prepared(cfg.data)
    parallel.barrier(rt)
    data_dir = data.ensure_prepared(cfg.data)
    vocab = assemble.vocab_size(cfg, data.load_meta(data_dir)["vocab_size"])  # refuses a model.vocab_size below the data's
    b = assemble.build(cfg, vocab, device, cfg.seed, rt=rt, compile_blocks=bool(tc.compile))
    peak, peak_what = peak_flops(device, tc.dtype)
    return Run(cfg=cfg, rt=rt, run_dir=run_dir, metrics=metrics, t0=t0, overrides=overrides, device=device,
               micro_bs=per_rank // rt.world, autocast=autocast, built=b,  # micro_bs: this rank's rows of each micro-batch
               diag=make_diagnostics(cfg, b.model, b.optimizer, b.table, parallel.unwrap_name),  # None (no cost) unless diagnostics.interval > 0
               scaler=torch.amp.GradScaler(device.type, enabled=tc.dtype == "fp16"),
               train_windows=data.TokenWindows(data_dir, "train", cfg.model.context),
               val_windows=data.TokenWindows(data_dir, "val", cfg.model.context),
               tokens_per_step=tc.batch_size * cfg.model.context, peak=peak, peak_what=peak_what)


def _restore(run: Run, resume: Path, state: dict) -> None:
    """Model, optimizer, RNG and the counters; batches depend only on (seed, step, micro)."""
    b = run.built
    restore(resume, b.model, b.optimizer, run.scaler, b.table, run.rt, run.device, state)
    run.start, run.first_loss, run.best_val, run.val_loss = state["step"], state["first_loss"], state["best_val"], state["val_loss"]
    run.train_time, run.val_step = state["train_time"], state.get("val_step", run.start)
    run.carried = (state.get("loss_sum", 0.0), state.get("n_sum", 0))


def _write_run_files(run: Run, resume: Path | None, state: dict, changes: list) -> None:
    """Rank 0: the table, Hydra's files, metrics.jsonl rewound to the resumed step, what the run is."""
    cfg, tc, rt, b = run.cfg, run.cfg.train, run.rt, run.built
    if rt.main:
        with run.writing(run.run_dir / "param_table.json"):
            write_json_atomic(run.run_dir / "param_table.json", b.table.to_dict())
            (run.run_dir / "param_table.txt").write_text(b.table.format() + "\n")
            write_hydra_files(run.run_dir, _hydra_subdir(), cfg, resume, state, changes)
            moved, partial = run.metrics.rewind(run.start if resume is not None else -1)
        cut = f"; a cut-off last line of metrics.jsonl moved to {PARTIAL}" if partial is not None else ""
        if resume is not None:
            note(f"resumed from {resume} at step {run.start} with its config" + (f" (changed: {', '.join(changes)})" if changes else "")
                 + (f"; {moved} later records moved to metrics.superseded.jsonl" if moved else "") + cut)
        elif moved or cut:
            note(f"{run.run_dir} held metrics of an earlier run that left no checkpoint: moved to metrics.superseded.jsonl" + cut)
        g = b.table.globals
        note(f"run dir {run.run_dir} | {run.device} {tc.dtype}{' compiled' if tc.compile else ''} | world size {rt.world}"
             + (f" ({rt.strategy})" if rt.distributed else "")
             + f" | {b.n_params / 1e6:.2f}M params (non-embedding), width {cfg.model.width} x depth {cfg.model.depth}")
        note(f"param={g['param']} m={g['m']:g} r={g['r']:g} (base {g['base_width']}x{g['base_depth']}) optim={g['optim']} "
             f"lr={cfg.optim.lr:g} | {run.tokens_per_step:,} tokens/step x {tc.steps:,} steps"
             + (f", from step {run.start}" if run.start else ""))
        run.logger = make_logger(cfg, run.run_dir)


def _loop(run: Run, stop: StopSignal) -> tuple[int, tuple | None, str | None]:
    """The hot loop: no host sync except at log / eval / checkpoint steps. Returns the last step
    done, (step, what, loss) if the run diverged, and the name of the signal that stopped it."""
    cfg, tc, rt, b, device = run.cfg, run.cfg.train, run.rt, run.built, run.device
    step_model, optimizer, schedule, scaler, diag = b.step_model, b.optimizer, b.schedule, run.scaler, run.diag
    # a bar on a terminal; without one (SLURM, nohup, a pipe) a log line per train.log_interval
    bar = Progress(tc.steps, run.start, enabled=bool(tc.progress) and rt.main, quiet=not rt.main)
    params = list(b.model.parameters())
    foreach = None if rt.strategy == "fsdp2" else True  # DTensor grads: let torch pick
    run.loss_sum, run.n_sum = torch.tensor(float(run.carried[0]), device=device), int(run.carried[1])
    grad_norm, train_loss = None, float("nan")
    diverged, stopped = None, None  # (step, what, loss); the signal's name
    done, last_log_step, last_log_time, paused = run.start, run.start, time.time(), 0.0
    for step in range(run.start, tc.steps):
        done = step + 1
        is_diag = diag is not None and diag.due(done)  # a diagnostic step is also a logging step
        is_log = done % tc.log_interval == 0 or done == 1 or done == tc.steps or is_diag
        factor = schedule.apply(optimizer, step)
        for micro in range(tc.grad_accum):
            x, y = run.train_windows.batch(run.micro_bs, seed=cfg.seed, step=step, micro=micro, rank=rt.rank, world=rt.world)
            x, y = to_device(x, y, device)
            with run.autocast:
                _, loss = step_model(x, y)
            run.loss_sum += loss.detach().float() / tc.grad_accum
            scaler.scale(loss / tc.grad_accum).backward()
        if tc.grad_clip > 0 or is_log:
            scaler.unscale_(optimizer)
            max_norm = tc.grad_clip if tc.grad_clip > 0 else math.inf  # inf: measure only
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=foreach)
        if is_diag:
            diag.before(x)  # keeps W and this batch's layer inputs
        scaler.step(optimizer)
        diag_record = diag.after() if is_diag else {}
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        run.n_sum += 1
        bar.update(1)

        if is_log:
            now = time.time()
            train_loss = parallel.mean(run.loss_sum / run.n_sum, rt).item()  # the global mean over ranks
            gn = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            interval = max(now - last_log_time - paused, 1e-9)  # eval and checkpoint time excluded
            run.train_time += interval
            tok_s = (done - last_log_step) * run.tokens_per_step / interval
            run.first_loss = train_loss if run.first_loss is None else run.first_loss
            run.log({"step": done, "tokens": done * run.tokens_per_step, "train_loss": train_loss,
                     "lr": optimizer.param_groups[0]["lr"], "lr_factor": factor, "grad_norm": gn.item(),
                     "tok_per_s": tok_s, "mfu": mfu(b.flops_per_token, tok_s, run.peak), "peak_memory_mb": peak_memory_mb(device),
                     **diag_record, "elapsed": now - run.t0})
            eta = (tc.steps - done) * run.train_time / (done - run.start) if done > run.start else None
            bar.step(done, train_loss, optimizer.param_groups[0]["lr"], tok_s, eta)
            run.loss_sum.zero_()
            run.n_sum, last_log_step, last_log_time, paused = 0, done, time.time(), 0.0
            if run.diverges(train_loss):
                diverged = (done, "train_loss", train_loss)
                break

        pause_start = time.time()
        if done % tc.eval_interval == 0 or done == tc.steps:
            run.val_loss, run.val_step = run.evaluate(), done
            run.best_val = min(run.best_val, run.val_loss)
            run.log({"step": done, "tokens": done * run.tokens_per_step, "val_loss": run.val_loss, "elapsed": time.time() - run.t0})
            bar.postfix(loss=f"{train_loss:.4f}", val=f"{run.val_loss:.4f}")
            if rt.main:
                note(f"step {done}: val loss {run.val_loss:.4f} (best {run.best_val:.4f})")
            if not math.isfinite(run.val_loss):
                diverged = (done, "val_loss", run.val_loss)
                break
        # a signal: one process reads its flag every step; under torchrun rank 0's flag reaches
        # every rank at log steps (already a sync), so all ranks stop at the same step
        if rt.distributed:
            signum = parallel.broadcast_object(stop.signum, rt) if is_log else None
        else:
            signum = stop.signum
        due = (tc.ckpt_interval and done % tc.ckpt_interval == 0) or done == tc.steps or signum is not None
        if due and run.n_sum:  # steps since the last log: never checkpoint a state that has diverged
            window = parallel.mean(run.loss_sum / run.n_sum, rt).item()
            if run.diverges(window):
                span = f"step {done}" if run.n_sum == 1 else f"mean of steps {done - run.n_sum + 1}-{done}"
                diverged = (done, f"train_loss ({span}, checked before its checkpoint)", window)
                break
        if due:
            run.checkpoint(done)
        paused += time.time() - pause_start
        if signum is not None:
            stopped = signal.Signals(signum).name
            break
    bar.close()
    return done, diverged, stopped


def _finish(run: Run, done: int, diverged: tuple | None, stopped: str | None) -> dict:
    """The summary (rank 0 writes summary.json and tells the logger), with how to resume a stopped run."""
    cfg, tc, rt, b = run.cfg, run.cfg.train, run.rt, run.built
    finished = diverged is None and stopped is None and done == tc.steps
    tok_per_s = done * run.tokens_per_step / run.train_time if run.train_time > 0 else None
    summary = {
        "final_val_loss": run.val_loss if finished and run.val_step == done else None, "best_val_loss": run.best_val,
        "diverged": diverged is not None, "interrupted": stopped is not None,
        "steps": done, "tokens": done * run.tokens_per_step, "tok_per_s": tok_per_s,
        "mfu": mfu(b.flops_per_token, tok_per_s, run.peak) if tok_per_s else None, "mfu_peak": run.peak_what,
        "peak_memory_mb": peak_memory_mb(run.device), "wall_time_s": time.time() - run.t0, "cpu_time_s": _cpu_seconds(),
        "params_non_embedding": b.n_params, "flops_per_token": b.flops_per_token, "device": str(run.device), "world_size": rt.world,
        "first_train_loss": run.first_loss, "last_val_loss": run.val_loss, "last_val_step": run.val_step,
        "diverged_at_step": diverged and diverged[0], "diverged_on": diverged and diverged[1],
        "diverged_loss": diverged and diverged[2],
        "config": {
            "data": cfg.data.name, "param": cfg.param.name, "optim": cfg.optim.name, "lr": cfg.optim.lr,
            "weight_decay": cfg.optim.weight_decay, "width": cfg.model.width, "depth": cfg.model.depth,
            "context": cfg.model.context, "batch_size": tc.batch_size, "steps": tc.steps, "seed": cfg.seed,
            "dtype": tc.dtype, "dist": rt.strategy,
        },
        "run_dir": str(run.run_dir),
    }
    if summary["final_val_loss"] is None:
        summary["final_val_loss_note"] = (
            f"not measured: the run diverged at step {diverged[0]}" if diverged else
            f"not measured: stopped by {stopped} at step {done} of {tc.steps}" if stopped else
            f"not measured at step {done}")
    kept = latest_checkpoint(run.ckpt_root) if rt.main else None
    summary["last_checkpoint"] = str(kept) if kept is not None else None
    if stopped:
        summary.update(signal=stopped, exit_code=StopSignal.CODES[signal.Signals[stopped]],
                       resume_command=resume_command(run.run_dir, rt.distributed))
    if rt.main:
        run.metrics.close()
        with run.writing(run.run_dir / "summary.json"):
            write_json_atomic(run.run_dir / "summary.json", summary)
        run.logger.summary(summary)
        run.logger.finish()
        if stopped:
            note(f"stopped by {stopped} at step {done}: checkpoint {kept}; resume with: {summary['resume_command']}")
    return summary


def _report(summary: dict) -> None:
    where = f"run dir {summary['run_dir']}"
    if summary["interrupted"]:
        return  # run() said how to resume
    if summary["diverged"]:
        loss = summary["diverged_loss"]
        shown = f"{loss:.4g}" if loss is not None else "non-finite"
        first = summary["first_train_loss"]
        start = f" (first train loss {first:.4g})" if first is not None else ""
        kept = summary.get("last_checkpoint")
        console.info(f"DIVERGED at step {summary['diverged_at_step']}: {summary['diverged_on']} {shown}{start}; {where}; "
              + (f"last checkpoint {Path(kept).name}, from before the divergence" if kept else "no checkpoint was written"))
        return
    val = summary["final_val_loss"]
    took = f"  ({format_duration(summary['wall_time_s'])})" if summary.get("wall_time_s") else ""
    console.info(f"done: {where}  final val loss {val:.4f}{took}" if val is not None else f"done: {where}{took}")


def _check_dirs(argv: list[str]) -> None:
    """Before Hydra creates the run dir: a path under a file or an unwritable one, in one line."""
    multirun = any(a in ("-m", "--multirun") for a in argv)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    value = next((a.split("=", 1)[1] for a in argv if a.startswith(key + "=")), "multirun/" if multirun else "outputs/")
    check_dir_usable(Path(static_prefix(value)), key)


def _job(cfg) -> float:
    """One Hydra job: a run, or one job of a multirun on any launcher (basic, joblib, submitit)."""
    summary = cli.guard(run)(cfg, Path(HydraConfig.get().runtime.output_dir))
    if int(os.environ.get("RANK", "0")) == 0:
        _report(summary)
    parallel.finish()  # after run() returned: model and optimizer are gone
    if summary["interrupted"]:
        sys.exit(summary["exit_code"])  # 130 (SIGINT) / 143 (SIGTERM), as if the signal had ended it
    return float("nan") if summary["diverged"] else summary["final_val_loss"]  # for Hydra sweepers


def main(argv: list[str] | None = None) -> None:
    """`python train.py [overrides]`: check the overrides and the run dir in one line, then hand
    over to Hydra (which reads sys.argv)."""
    if argv is not None:
        sys.argv[1:] = argv
    cli.guard(assemble.check_overrides)(sys.argv[1:])
    cli.guard(_check_dirs)(sys.argv[1:])
    if not any(a.startswith("hydra.output_subdir=") for a in sys.argv):
        # .hydra/ is written by run() once it holds the run dir: a refused run (dir in use, a
        # fresh run over a finished one) changes nothing, and a resume keeps the original files
        sys.argv.append("hydra.output_subdir=null")
        os.environ[HYDRA_SUBDIR_ENV] = ".hydra"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not any(a.startswith("hydra.run.dir=") for a in sys.argv):
        # one run dir for every rank: the job id torchrun gives all of them (not each rank's clock)
        sys.argv.append(f"hydra.run.dir=outputs/${{now:%Y-%m-%d}}/torchrun-{os.environ.get('TORCHELASTIC_RUN_ID', 'job')}")
    # an absolute config path: Hydra then finds conf/ wherever the job function is imported from
    hydra.main(version_base=None, config_path=str(cli.CONF_DIR), config_name="config")(_job)()


if __name__ == "__main__":
    # Run as the module `train`, not as `__main__`: Hydra's launchers (submitit for SLURM,
    # joblib) pickle the job function, and a function of an importable module pickles by
    # reference, where one of `__main__` drags the whole script (and torch's module objects,
    # which do not pickle) along.
    import train

    train.main()
