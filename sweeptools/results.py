"""results.csv: one row per trial, read back from the trials' summary.json files; the same rows
from a Hydra multirun dir (`python train.py -m ...`) or a W&B sweep.

Columns: `trial`, every fixed and swept key of the sweep (fixed ones too, so that the CSVs of
two sweeps can be plotted together and still tell their rows apart), then `status` (done,
diverged, failed, running, interrupted), `final_val_loss`, `best_val_loss`, `diverged`, `tokens`,
`wall_time_s`, `cpu_time_s` (the trial's own CPU seconds: its cost whatever else ran beside it)
and `run_dir`.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import socket
from pathlib import Path

import yaml

from errors import UserError

OUTCOME = ["status", "final_val_loss", "best_val_loss", "diverged", "tokens", "wall_time_s", "cpu_time_s", "run_dir"]
TRIAL_FILE = "sweep_trial.json"  # what the runner asked of a trial dir (its overrides)


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """The mean of the seeds' values and their sample standard deviation (None below 2 values)."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, std


def cpu_seconds(rows: list[dict]) -> float:
    """The trials' own CPU seconds, summed (rows that ran; `cpu_time_s` is blank for the others)."""
    return sum(r["cpu_time_s"] for r in rows if isinstance(r.get("cpu_time_s"), (int, float)))


def read_summary(run_dir: Path) -> dict | None:
    path = run_dir / "summary.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:  # written atomically, so only a foreign file gets here
        return None


def outcome(run_dir: Path, exit_code: int | None = None) -> dict:
    """A trial's result columns from its run dir (status failed when no summary was written)."""
    s = read_summary(run_dir)
    if s is None or s.get("interrupted"):  # train.py stopped by a signal: resumed on the next run
        status = "interrupted" if s is not None else "running" if exit_code is None else "failed"
        return {"status": status, "final_val_loss": "", "best_val_loss": "", "diverged": "", "tokens": "",
                "wall_time_s": "", "cpu_time_s": "", "run_dir": str(run_dir)}
    return {"status": "diverged" if s["diverged"] else "done", "final_val_loss": s["final_val_loss"],
            "best_val_loss": s["best_val_loss"], "diverged": s["diverged"], "tokens": s["tokens"],
            "wall_time_s": round(s["wall_time_s"], 1),
            "cpu_time_s": round(s["cpu_time_s"], 1) if s.get("cpu_time_s") is not None else "", "run_dir": str(run_dir)}


def write(path: Path, rows: list[dict]) -> None:
    """Write the CSV atomically (a reader never sees half a file)."""
    columns = ["trial"]
    for row in rows:
        columns += [k for k in row if k not in columns and k not in OUTCOME]
    columns += OUTCOME
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def read(paths: list[str]) -> list[dict]:
    """Rows of one or more results.csv files or Hydra multirun dirs, numbers parsed; UserError
    names the fix."""
    rows = []
    for p in paths:
        path = Path(p)
        if path.is_dir() and not (path / "results.csv").is_file() and is_multirun(path):
            rows += read_multirun(path)
            continue
        if path.is_dir():
            path = path / "results.csv"
        if not path.is_file():
            raise UserError(f"{p}: no results.csv (nor Hydra multirun job dirs) there: run `python -m sweeptools.run "
                            "sweeps/<file>.yaml` first (it writes <out>/results.csv), or give a multirun/<date>/<time> dir")
        with open(path, newline="") as f:
            rows += [{k: parse(v) for k, v in r.items()} for r in csv.DictReader(f)]
    if not rows:
        raise UserError(f"{', '.join(paths)}: no trials in the results: is the sweep still starting?")
    return rows


# ----------------------------------------------------------------------------- Hydra multirun dirs

def _jobs(sweep_dir: Path) -> list[Path]:
    """The numbered job dirs of a `python train.py -m ...` sweep dir, in job order."""
    return sorted((d for d in sweep_dir.iterdir() if d.is_dir() and d.name.isdigit() and (d / ".hydra" / "overrides.yaml").is_file()),
                  key=lambda d: int(d.name))


def is_multirun(path: Path) -> bool:
    return bool(_jobs(path))


def read_multirun(sweep_dir: Path) -> list[dict]:
    """One row per job of a Hydra multirun dir (multirun/<date>/<time>/): the job's overrides
    (.hydra/overrides.yaml) as columns, then the outcome from its summary.json. A job without
    a summary.json (crashed, or still running) is a `failed` row."""
    rows = []
    for job in _jobs(sweep_dir):
        row = {"trial": f"{sweep_dir.name}/{job.name}"}
        for text in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []:
            key, sep, value = str(text).partition("=")
            if sep and not key.startswith("~"):
                row[key.lstrip("+")] = parse(value.strip("'\""))
        rows.append({**row, **outcome(job, exit_code=1)})
    return rows


def fmt(value) -> str:
    """A value as a Hydra override (and as W&B's ${args_no_hyphens} writes numbers)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)  # floats: Python's shortest round-trip form, as W&B writes them


def parse(text: str):
    if text in ("", None):
        return None
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    try:
        x = float(text)
    except ValueError:
        return text
    return int(x) if x.is_integer() and "." not in text and "e" not in text.lower() and math.isfinite(x) else x


# ----------------------------------------------------------------------------- W&B sweeps

# entity/project/sweep_id, or entity/project/sweeps/sweep_id as in the sweep's URL: W&B names
# entities and projects with letters, digits, '-', '_' and '.', and a sweep id is alphanumeric
# (8 lowercase characters when W&B draws it; `wandb sweep` accepts others)
WANDB_SWEEP = r"(?:https?://[\w.-]+/)?([\w.-]+)/([\w.-]+)/(?:sweeps/)?([A-Za-z0-9]+)"


def wandb_sweep_path(text: str) -> str | None:
    """`entity/project/id` when `text` names a W&B sweep rather than a local file, else None."""
    m = re.fullmatch(WANDB_SWEEP, text.rstrip("/"))
    return "/".join(m.groups()) if m and not Path(text).exists() else None


def read_any(paths: list[str]) -> list[dict]:
    """results.csv files or Hydra multirun dirs, or one W&B sweep path (entity/project/id)."""
    if len(paths) == 1 and wandb_sweep_path(paths[0]):
        return read_wandb(wandb_sweep_path(paths[0]))
    return read(paths)


def read_wandb(path: str) -> list[dict]:
    """The finished runs of a W&B sweep as results rows; needs the network and `wandb login`."""
    try:
        socket.create_connection(("api.wandb.ai", 443), timeout=3).close()
    except OSError:
        raise UserError(f"{path}: no such local file, so read as a W&B sweep id; that needs the network (api.wandb.ai "
                        "is unreachable): plot a local results.csv or multirun dir instead") from None
    import wandb  # a W&B sweep path only: slow to import

    try:
        sweep = wandb.Api(timeout=30).sweep(path)
    except Exception as e:  # no key, no such sweep, ...
        raise UserError(f"{path}: W&B could not return the sweep ({str(e).splitlines()[0]}): check the path and `wandb login`") from None
    keys = list(sweep.config.get("parameters", {}))
    rows = []
    for run in sweep.runs:
        s = run.summary
        row = {"trial": run.name, **{k: run.config.get(k) for k in keys}}
        if "final_val_loss" not in s:
            rows.append({**row, "status": "failed" if run.state in ("failed", "crashed") else run.state})
            continue
        rows.append({**row, "status": "diverged" if s.get("diverged") else "done", "final_val_loss": s.get("final_val_loss"),
                     "best_val_loss": s.get("best_val_loss"), "diverged": s.get("diverged"), "tokens": s.get("tokens"),
                     "wall_time_s": s.get("wall_time_s"), "cpu_time_s": s.get("cpu_time_s"), "run_dir": run.url})
    if not rows:
        raise UserError(f"{path}: the sweep has no runs yet")
    return rows
