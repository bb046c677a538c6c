"""Run a sweep file without a W&B server: every trial is one `train.py` process.

    python -m sweeptools.run sweeps/cpu_width_lr_adamw.yaml --jobs 2
    python -m sweeptools.run sweeps/cpu_proxy_search.yaml --count 24 --jobs 2     # random / bayes
    python -m sweeptools.run sweeps/gpu_width_lr_adamw.yaml --launcher slurm --slurm partition=gpu
    python -m sweeptools.run sweeps/X.yaml train.steps=5 data.root=/tmp/d        # overrides for every trial
    python -m sweeptools.run sweeps/cpu_transfer_sp.yaml --seeds 2 --jobs 2       # every point with seed=1 and seed=2

Each trial runs in `<out>/<trial>/` (its Hydra run dir). A trial whose dir holds summary.json
is done and is not run again, so an interrupted sweep continues where it stopped; a trial
that was cut off reruns with `train.resume=auto` (from its last checkpoint, if any).
A trial is the whole set of overrides it runs with (the file's fixed ones and those given here
too): a dir that ran with others is refused in one line naming the difference, so
`<out>/results.csv` (rewritten after every trial) never reports a value a trial did not run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from tqdm import tqdm

import cli
from errors import UserError
from sweeptools import engine, results, spec


# set by the runner per launch (run dir, resume, threads for --jobs, progress bar, logger): not
# part of what a trial computes
LAUNCH_KEYS = ("hydra.", "train.resume", "train.progress", "train.threads", "logger")


def identity(overrides: list[str]) -> dict[str, str]:
    """key -> value of every override that defines a trial's result, in order (the last wins)."""
    out = {}
    for o in overrides:
        key, _, value = o.partition("=")
        if not key.lstrip("+~").startswith(LAUNCH_KEYS):
            out[key] = value
    return out


class Trial:
    def __init__(self, sweep: spec.Sweep, values: dict, out: Path):
        self.values = values
        self.name = spec.name(sweep, values)
        self.dir = out / self.name
        self.overrides = spec.overrides(sweep, values)
        self.fixed, self.extra = list(sweep.fixed), list(sweep.extra)
        self.row = {"trial": self.name, **sweep.fixed_dict(), **values}

    @property
    def identity(self) -> dict[str, str]:
        return identity(self.fixed + self.overrides + self.extra)  # in the order command() passes them

    def done(self) -> bool:
        s = results.read_summary(self.dir)
        return s is not None and not s.get("interrupted")  # an interrupted trial resumes from its checkpoint

    def ran_with(self) -> dict[str, str] | None:
        """The identity this dir was claimed (or, before the runner recorded it, launched) with."""
        path = self.dir / results.TRIAL_FILE
        if path.exists():
            claimed = json.loads(path.read_text())
            if "identity" in claimed:
                return claimed["identity"]
        hydra = self.dir / ".hydra" / "overrides.yaml"  # what train.py was given: an older runner's trial
        if hydra.exists():
            return identity([str(o) for o in yaml.safe_load(hydra.read_text()) or []])
        return None

    def check(self) -> None:
        """UserError naming the difference when this dir ran with other overrides."""
        before = self.ran_with()
        if before is None or before == self.identity:
            return
        keys = list(dict.fromkeys([*before, *self.identity]))
        differ = [k for k in keys if before.get(k) != self.identity.get(k)]
        then = " ".join(f"{k}={before[k]}" if k in before else f"(no {k})" for k in differ)
        now = " ".join(f"{k}={self.identity[k]}" if k in self.identity else f"(no {k})" for k in differ)
        raise UserError(f"{self.dir} ran with {then}; this sweep asks {now}: use another --out for these overrides "
                        "(or the old ones to continue that sweep)")

    def claim(self) -> None:
        """Record what this dir is for; refuse a dir that was used with other overrides."""
        self.check()
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / results.TRIAL_FILE
        record = {"overrides": self.overrides, "identity": self.identity}
        if not path.exists() or json.loads(path.read_text()) != record:
            path.write_text(json.dumps(record) + "\n")


def distinct(batch: list[Trial]) -> list[Trial]:
    """The batch with repeated trials (same overrides, e.g. a random search proposing a point twice)
    once; UserError when two different trials would share a run dir (their names collide)."""
    by_dir: dict[Path, Trial] = {}
    for t in batch:
        first = by_dir.setdefault(t.dir.resolve(), t)
        if first.identity != t.identity:
            raise UserError(f"trials {' '.join(first.overrides)} and {' '.join(t.overrides)} would share the run dir "
                            f"{t.dir}: give their values names that differ in letters, digits or . _ = , + -")
    return list(by_dir.values())


def command(sweep: spec.Sweep, trial: Trial, threads: int | None, use_wandb: bool) -> list[str]:
    """The trial's command line: the file's `command` with its macros filled in, as `wandb
    agent` would run it, plus the run dir and resume settings."""
    head = []
    for token in sweep.launch:
        if token == "${env}":
            continue
        if token == "${interpreter}":
            head.append(sys.executable)
        elif token == "torchrun" and shutil.which("torchrun") is None:
            head += [sys.executable, "-m", "torch.distributed.run"]
        else:
            head.append(token)
    fixed = [o if use_wandb or not o.startswith("logger=") else "logger=local" for o in sweep.fixed]
    run_dir = str(trial.dir.resolve())
    if "'" in run_dir or "\\" in run_dir:
        raise UserError(f"--out {trial.dir.parent}: a path with quotes or backslashes cannot be a Hydra run dir; pick a plain one")
    # quoted: a trial name holds '=' and ',' (like Hydra's override_dirname), which Hydra would read as a sweep
    tail = [f"hydra.run.dir='{run_dir}'", "train.resume=auto", "train.progress=false"]
    if threads:
        tail.append(f"train.threads={threads}")
    return (head or [sys.executable]) + [str(cli.REPO / sweep.program)] + fixed + trial.overrides + sweep.extra + tail


def cost(trial: Trial) -> float:
    """A rough size of a trial, to start the longest first (a shorter tail with --jobs > 1)."""
    size = 1.0
    for key, power in (("model.width", 2), ("model.depth", 1), ("train.steps", 1)):
        try:
            size *= float(trial.row.get(key, 1)) ** power
        except (TypeError, ValueError):
            pass
    return size


# ----------------------------------------------------------------------------- local processes

class Local:
    """Trials as child processes, `jobs` at a time; children are stopped with the runner."""

    def __init__(self, jobs: int):
        self.jobs, self.procs, self.lock = jobs, set(), threading.Lock()

    def one(self, cmd: list[str], trial: Trial, env: dict) -> int:
        with open(trial.dir / "sweep.log", "a") as log:
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cli.REPO, env=env)
            with self.lock:
                self.procs.add(proc)
            code = proc.wait()
            with self.lock:
                self.procs.discard(proc)
        return code

    def stop(self) -> None:
        with self.lock:
            for proc in self.procs:
                proc.send_signal(signal.SIGINT)  # train.py keeps its last checkpoint
        for proc in list(self.procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def run(self, jobs: list[tuple[Trial, list[str]]], env: dict, on_done) -> None:
        dirs = [t.dir.resolve() for t, _ in jobs]
        assert len(set(dirs)) == len(dirs), f"parallel trials would share a run dir: {dirs}"
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        futures = {pool.submit(self.one, cmd, t, env): t for t, cmd in jobs}
        try:
            for f in as_completed(futures):
                on_done(futures[f], f.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            self.stop()
            raise
        pool.shutdown()


def run_submitit(jobs: list[tuple[Trial, list[str]]], out: Path, cluster: str, settings: list[str], on_done) -> None:
    """Trials as one SLURM job array through submitit (Hydra's submitit launcher's library),
    with conf/hydra/launcher/slurm.yaml's settings; `--slurm key=value` overrides them."""
    import submitit  # --launcher slurm only

    conf = OmegaConf.to_container(OmegaConf.load(cli.CONF_DIR / "hydra" / "launcher" / "slurm.yaml"))
    conf.pop("defaults", None)
    for kv in settings:
        key, _, value = kv.partition("=")
        if key not in conf:
            raise UserError(f"--slurm {kv}: unknown setting {key!r}: choose from {', '.join(conf)}")
        conf[key] = OmegaConf.create({"v": value})["v"] if value else None
    generic = {"timeout_min", "nodes", "tasks_per_node", "gpus_per_node", "cpus_per_task", "mem_gb", "name"}
    params = {(k if k in generic else f"slurm_{k}"): v for k, v in conf.items() if v not in (None, [], "")}
    try:
        executor = submitit.AutoExecutor(folder=out / ".submitit", cluster=cluster)
    except RuntimeError as e:  # no srun / sbatch on this machine
        raise UserError(f"--launcher slurm: {str(e).splitlines()[0]}: run the sweep from a SLURM login node (or use --launcher local)") from None
    executor.update_parameters(**params)
    with executor.batch():
        submitted = [(t, executor.submit(submitit.helpers.CommandFunction(cmd, cwd=str(cli.REPO), verbose=False))) for t, cmd in jobs]
    print(f"submitted {len(submitted)} trials ({cluster}); logs in {out / '.submitit'}", file=sys.stderr)
    pending = list(submitted)
    while pending:
        for t, job in [p for p in pending if p[1].done()]:
            pending.remove((t, job))
            try:
                job.result()
                on_done(t, 0)
            except Exception:  # a failed job: the row says failed, the log says why
                on_done(t, 1)
        time.sleep(0.5 if cluster == "local" else 10)


# ----------------------------------------------------------------------------- the sweep

def parse_seeds(text: str | None) -> list[int]:
    """--seeds N (seeds 1..N) or --seeds 3,7 (those); [] without the option."""
    if text is None:
        return []
    try:
        seeds = list(range(1, int(text) + 1)) if "," not in text else [int(x) for x in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text}: give a count (--seeds 3 runs seed=1,2,3) or distinct seeds >= 0 (--seeds 1,5)")
    return seeds


def with_seeds(sweep: spec.Sweep, seeds: list[int]) -> spec.Sweep:
    """The sweep with `seed` as its last (fastest-varying) parameter: every grid point once per seed,
    and every trial's name and results row with its seed (random / bayes proposals get theirs
    from `seeded`)."""
    if not seeds:
        return sweep
    if "seed" in sweep.params or any(o.split("=", 1)[0].lstrip("+") == "seed" for o in sweep.fixed + sweep.extra):
        raise UserError(f"{sweep.path}: seed is already set (a parameter or an override): drop it or --seeds")
    return dataclasses.replace(sweep, params={**sweep.params, "seed": {"values": list(seeds)}})


def seeded(values: list[dict], seeds: list[int]) -> list[dict]:
    """Proposals of a random / bayes search, each once per seed (the seed is not searched)."""
    return [{**v, "seed": s} for v in values for s in seeds] if seeds else values


def sweep_trials(sweep: spec.Sweep, out: Path, skip: list[str], count: int | None, seed: int) -> list[Trial]:
    if sweep.method == "grid":
        values = [v for v in spec.grid(sweep) if not any(spec.matches(v, c) for c in skip)]
    else:
        if not count:
            raise UserError(f"{sweep.path}: method {sweep.method} needs --count N (the number of trials, as `wandb agent --count N`)")
        values = []  # proposed round by round (bayes) or all at once (random), in run()
    if sweep.method == "grid" and not values:
        raise UserError(f"{sweep.path}: the grid is empty after --skip: drop a --skip condition")
    return [Trial(sweep, v, out) for v in values]


def run(sweep: spec.Sweep, out: Path, jobs: int = 1, launcher: str = "local", skip: list[str] = (),
        count: int | None = None, seed: int = 0, use_wandb: bool = False, slurm: list[str] = (),
        progress: bool = True, seeds: list[int] = ()) -> list[dict]:
    """Run (or continue) a sweep, each trial once per seed in `seeds` (none: the config's seed);
    returns the rows written to <out>/results.csv."""
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds)
    proposals = sweep  # random / bayes propose from the file's parameters; the seeds expand each proposal
    sweep = with_seeds(sweep, seeds)
    trials = sweep_trials(sweep, out, list(skip), count, seed)
    rows: dict[str, dict] = {}
    user_threads = any(o.startswith("train.threads=") for o in sweep.fixed + sweep.extra) or "train.threads" in sweep.params
    threads = 1 if jobs > 1 and launcher == "local" and not user_threads else None
    env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if threads else {})}
    if use_wandb:  # W&B's own variable: the trials' runs are grouped under the sweep's name
        env.setdefault("WANDB_RUN_GROUP", sweep.path.stem)
    bar = tqdm(total=len(trials) if sweep.method == "grid" else count * max(1, len(seeds)), desc=sweep.path.stem, unit="trial",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def record(t: Trial, code: int | None) -> None:
        rows[t.name] = {**t.row, **results.outcome(t.dir, code)}
        results.write(out / "results.csv", list(rows.values()))
        if code is not None:
            bar.update(1)
            bar.set_postfix(last=f"{rows[t.name]['status']} {t.name}"[:60])

    def execute(batch: list[Trial]) -> None:
        spec.check_trials(sweep, [t.values for t in batch], use_wandb)
        batch = distinct(batch)
        for t in batch:  # every dir checked before any is claimed or results.csv rewritten
            t.check()
        todo = []
        for t in batch:
            t.claim()
            if t.done():
                record(t, 0)
            else:
                rows[t.name] = {**t.row, **results.outcome(t.dir), "status": "pending"}
                todo.append((t, command(sweep, t, threads, use_wandb)))
        todo.sort(key=lambda tc: -cost(tc[0]))
        if launcher == "local":
            Local(jobs).run(todo, env, record)
        else:
            run_submitit(todo, out, "local" if launcher == "submitit-local" else "slurm", list(slurm), record)

    try:
        if sweep.method == "grid":
            execute(trials)
        elif sweep.method == "random":
            execute([Trial(sweep, v, out) for v in seeded(engine.propose(proposals.raw, [], count, seed), seeds)])
        else:
            history: list[tuple[dict, float | None]] = []
            while len(history) < count * max(1, len(seeds)):
                n = min(jobs, count - len(history) // max(1, len(seeds)))
                batch = [Trial(sweep, v, out) for v in seeded(engine.propose(proposals.raw, history, n, seed), seeds)]
                execute(batch)
                history += [({k: v for k, v in t.values.items() if k != "seed" or not seeds}, _metric(rows[t.name], sweep.metric))
                            for t in batch]
    finally:
        bar.close()
    return list(rows.values())


def _metric(row: dict, key: str) -> float | None:
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) and row.get("status") == "done" else None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sweeptools.run", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", help="a sweep file, e.g. sweeps/cpu_width_lr_adamw.yaml")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides added to every trial (e.g. train.steps=5)")
    ap.add_argument("--jobs", type=int, default=1, help="trials at once (local launcher); each gets train.threads=1 when > 1")
    ap.add_argument("--out", help="output dir (default outputs/sweeps/<file name>)")
    ap.add_argument("--launcher", choices=["local", "slurm", "submitit-local"], default="local")
    ap.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE", help="override conf/hydra/launcher/slurm.yaml")
    ap.add_argument("--skip", action="append", default=[], metavar="COND",
                    help="leave out grid points matching all of key=v,key>=v,... (repeatable; v may be 2^k)")
    ap.add_argument("--count", type=int, help="trials of a random or bayes sweep")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random / bayes proposals")
    ap.add_argument("--seeds", help="run every trial with seed=1..N (--seeds N) or with the listed seeds (--seeds 1,5)")
    ap.add_argument("--wandb", action="store_true", help="keep the file's logger=wandb (default: logger=local)")
    ap.add_argument("--dry-run", action="store_true", help="check every trial and print the commands; run nothing")
    args = ap.parse_intermixed_args(argv)
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: give a positive number of parallel trials")
    sweep = spec.load(args.file, extra=args.overrides)
    out = Path(args.out or Path("outputs") / "sweeps" / sweep.path.stem)
    seeds = parse_seeds(args.seeds)
    if args.dry_run:
        named = with_seeds(sweep, seeds)
        trials = sweep_trials(named, out, args.skip, args.count, args.seed)
        if sweep.method == "random":
            trials = [Trial(named, v, out) for v in seeded(engine.propose(sweep.raw, [], args.count, args.seed), seeds)]
        spec.check_trials(sweep, [t.values for t in trials], args.wandb)
        trials = distinct(trials)
        for t in trials:
            t.check()
        for t in trials:
            print(("done  " if t.done() else "to do ") + " ".join(command(sweep, t, 1 if args.jobs > 1 else None, args.wandb)))
        print(f"{len(trials)} trials checked" + (" (bayes: the next ones depend on the results)" if sweep.method == "bayes" else ""))
        return
    t0 = time.time()
    try:
        rows = run(sweep, out, args.jobs, args.launcher, args.skip, args.count, args.seed, args.wandb, args.slurm,
                   seeds=seeds)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished trials are kept in {out}; run the same command again to continue", file=sys.stderr)
        sys.exit(130)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "diverged", "failed")}
    print(f"{out / 'results.csv'}: {len(rows)} trials ({counts['done']} done, {counts['diverged']} diverged, "
          f"{counts['failed']} failed) in {time.time() - t0:.0f} s; plot: python -m sweeptools.plot {out / 'results.csv'}")
    if counts["failed"]:
        print(f"failed trials: see <trial dir>/sweep.log, e.g. {next(r['run_dir'] for r in rows if r['status'] == 'failed')}/sweep.log", file=sys.stderr)


if __name__ == "__main__":
    cli.guard(main)()
