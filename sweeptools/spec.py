"""A sweep file: a W&B sweep config, read once and checked, and its trials as Hydra overrides.

The file is what `wandb sweep` takes:

    program: train.py
    method: grid                        # grid | random | bayes
    metric: {name: final_val_loss, goal: minimize}
    parameters:                         # dotted Hydra keys (or group names: param, optim, ...)
      param: {values: [sp, mup]}
      optim.lr: {values: [0.0009765625, 0.001953125]}
    command:                            # block style (docs/platform.md §5)
      - ${env}
      - ${interpreter}
      - ${program}
      - experiment=cpu_transfer         # fixed overrides of every trial
      - logger=wandb                    # the final metric reaches W&B through the run summary
      - ${args_no_hyphens}

Everything after `${program}` that is not a macro is a fixed `key=value` override; everything
before it (`torchrun --nproc_per_node=8`, say) is how a trial is launched.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import assemble
import cli
from errors import UserError
from sweeptools import engine
from sweeptools.results import fmt

MACROS = {"${env}", "${interpreter}", "${program}", "${args_no_hyphens}"}
SUMMARY_METRICS = ("final_val_loss", "best_val_loss")  # keys of summary.json a sweep can minimize
MAX_NAME = 120  # longer trial names become a hash


@dataclass
class Sweep:
    path: Path
    raw: dict
    method: str
    metric: str
    params: dict  # key -> W&B parameter spec, in file order
    fixed: list[str]  # key=value overrides from `command`
    launch: list[str]  # command tokens before ${program}
    program: str
    extra: list[str] = field(default_factory=list)  # overrides the user adds on the runner's command line

    @property
    def swept(self) -> list[str]:
        """Keys that take more than one value (the columns that tell trials apart)."""
        return [k for k, p in self.params.items() if "value" not in p and len(p.get("values", [0, 1])) != 1]

    def fixed_dict(self) -> dict:
        return dict(o.split("=", 1) for o in self.fixed + self.extra if not o.startswith("logger="))


def read_mapping(path: Path, shape: str, yaml_hint: str = "") -> dict:
    """A YAML file that must hold a mapping (a sweep or a claim file): a parse error is one line
    (with `yaml_hint` after it), another shape is one line saying `shape`."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]}){yaml_hint}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: {shape}")
    return raw


def load(path: str | Path, extra: list[str] = ()) -> Sweep:
    """Read and check a sweep file; every mistake is one UserError naming the fix."""
    path = Path(path)
    if not path.is_file():
        found = ", ".join(sorted(p.name for p in Path("sweeps").glob("*.yaml"))[:6])
        raise UserError(f"{path}: no such sweep file (`ls sweeps/*.yaml` lists them: {found}, ...)")
    raw = read_mapping(path, "a sweep file is a YAML mapping with program, method, metric, parameters and command",
                       ": write `command:` as a block list (- item per line)")
    bad = engine.violations(raw)
    if bad:
        raise UserError(f"{path}: not a valid W&B sweep config: {bad[0]}")
    metric = (raw.get("metric") or {}).get("name")
    if metric not in SUMMARY_METRICS:
        raise UserError(f"{path}: metric.name={metric!r}: use one of {', '.join(SUMMARY_METRICS)} (train.py's summary.json keys)")
    if raw.get("program") != "train.py":
        raise UserError(f"{path}: program={raw.get('program')!r}: sweep files run `program: train.py`")
    launch, fixed = _split_command(path, raw.get("command"))
    params = raw["parameters"]
    for key, p in params.items():
        if "values" in p and not p["values"]:
            raise UserError(f"{path}: parameter {key} has an empty `values` list: give it at least one value")
        if raw["method"] == "grid" and "value" not in p and "values" not in p:
            raise UserError(f"{path}: parameter {key} has no `values`: a grid sweep needs a list (or use method: random)")
    clash = sorted(set(params) & {o.split("=", 1)[0] for o in fixed})
    if clash:
        raise UserError(f"{path}: {clash[0]} is both a parameter and fixed in `command`: keep one")
    return Sweep(path, raw, raw["method"], metric, params, fixed, launch, raw["program"], list(extra))


def _split_command(path: Path, command) -> tuple[list[str], list[str]]:
    if not command:
        raise UserError(f"{path}: no `command`: add the block list ${{env}} ${{interpreter}} ${{program}} ... ${{args_no_hyphens}}")
    command = [str(c) for c in command]
    if command[-1] != "${args_no_hyphens}" or "${program}" not in command:
        raise UserError(f"{path}: `command` must contain ${{program}} and end with ${{args_no_hyphens}} (Hydra takes key=value)")
    at = command.index("${program}")
    fixed = command[at + 1:-1]
    for token in fixed:
        if token in MACROS or "=" not in token or token.startswith("-"):
            raise UserError(f"{path}: command item {token!r} after ${{program}} is not a key=value Hydra override")
    return command[:at], fixed


# ----------------------------------------------------------------------------- trials

def grid(sweep: Sweep) -> list[dict]:
    """Every point of a grid sweep, in file order (the last key varies fastest)."""
    keys = list(sweep.params)
    lists = [p["values"] if "values" in p else [p["value"]] for p in sweep.params.values()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*lists)]


def overrides(sweep: Sweep, values: dict) -> list[str]:
    return [f"{k}={fmt(v)}" for k, v in values.items()]


def name(sweep: Sweep, values: dict) -> str:
    """A trial's directory name: its swept values, readable (a hash when too long)."""
    keys = sweep.swept or list(values)
    if "seed" in values and "seed" not in keys:  # --seeds 1 then --seeds 2: each seed its own dir
        keys = [*keys, "seed"]
    text = ",".join(f"{k}={fmt(values[k])}" for k in keys)
    text = re.sub(r"[^A-Za-z0-9_.=,+-]", "_", text)
    if len(text) <= MAX_NAME:
        return text
    return "trial-" + hashlib.sha1(",".join(overrides(sweep, values)).encode()).hexdigest()[:12]


def matches(values: dict, condition: str) -> bool:
    """Does a trial meet `key=v,key>=v,...` (all of them)? Used by the runner's --skip."""
    for part in condition.split(","):
        m = re.fullmatch(r"\s*([\w.+]+)\s*(>=|<=|!=|=|>|<)\s*(.+?)\s*", part)
        if not m:
            raise UserError(f"--skip {condition!r}: write conditions as key=v, key>=v, key<v, ... joined by commas")
        key, op, want = m.groups()
        if key not in values:
            raise UserError(f"--skip {condition!r}: {key} is not a parameter of this sweep ({', '.join(values)})")
        have = values[key]
        if op in ("=", "!="):
            if _equal(have, want) != (op == "="):
                return False
            continue
        try:
            a, b = float(have), _number(want)
        except (TypeError, ValueError):
            raise UserError(f"--skip {condition!r}: {key}={have!r} is not a number to compare") from None
        if not {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]:
            return False
    return True


def _equal(have, want: str) -> bool:
    try:
        return float(have) == _number(want)
    except (TypeError, ValueError):
        return fmt(have) == want


def _number(text: str) -> float:
    """A number, or 2^k (octaves read better in a Makefile)."""
    m = re.fullmatch(r"2\^(-?\d+(?:\.\d+)?)", text)
    return 2.0 ** float(m.group(1)) if m else float(text)


# ----------------------------------------------------------------------------- validation

def check_trials(sweep: Sweep, trials: list[dict], use_wandb: bool = False) -> None:
    """Compose every trial's overrides as train.py would and check them (assemble.check_run):
    an unknown key or a shape that cannot train fails here, before any trial starts. The
    file's `logger=` is kept with `use_wandb` (the runner's --wandb), as the trials get it."""
    fixed = [o for o in sweep.fixed if use_wandb or not o.startswith("logger=")] + sweep.extra
    loggers = [o for o in sweep.extra if o.startswith("logger.")]
    if loggers and not use_wandb:
        raise UserError(f"{loggers[0]}: the trials run with logger=local unless you pass --wandb: add --wandb")
    seen = set()
    for values in trials:
        ovr = fixed + overrides(sweep, values)
        if tuple(ovr) in seen:
            continue
        seen.add(tuple(ovr))
        try:
            assemble.check_run(cli.compose(ovr))
        except UserError as e:
            raise UserError(f"{sweep.path}: trial {' '.join(overrides(sweep, values))}: {e}") from None


def covering(sweep: Sweep) -> list[dict]:
    """A few grid points that still check every key: every combination of the non-numeric
    parameters (group choices, modes), every value of a `model.*` shape key (divisibility),
    and the extremes of the other numbers. A fraction of the cost of composing the whole grid."""
    lists = {k: p.get("values", [p.get("value")]) for k, p in sweep.params.items()}
    words = {k: v for k, v in lists.items() if not all(isinstance(x, (int, float)) for x in v)}
    numbers = {k: (v if k.startswith("model.") else sorted({min(v), max(v)})) for k, v in lists.items() if k not in words}
    combos = [dict(zip(words, c)) for c in itertools.product(*words.values())] or [{}]
    n = max([len(combos)] + [len(v) for v in numbers.values()])
    return [{**combos[i % len(combos)], **{k: v[i % len(v)] for k, v in numbers.items()}} for i in range(n)]


def log2(x: float) -> float:
    return math.log2(x) if x and x > 0 else float("nan")
