"""What the parameterization checks share (`python -m param.coord_check`, `param.spectral_check`):
compose the check config (conf/check/coord.yaml), sweep one size axis, fit log2-log2 slopes and
judge them against the spec's claims (spec §8). param/check_cli.py writes the files, draws the
figures and prints the verdict.

A check module provides `QUANTITIES`, `steps(cfg)` (the steps it records), `measure(cfg, seed)`
(one model at one size: {quantity: [value per step]}), `claims(cfg, family, alpha)` (a list of
Claim), `plot(sweep, quantities, out)` and `plot_compare(sweeps, quantities, path)`.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

import cli

AXES = {"width": "model.width", "depth": "model.depth"}
EXPECTS = ("mup", "sp", "none")
# the claim a parameterization makes (spec §8.4-§8.6): the μP family is flat in width; depth claims
# follow its branch exponent alpha (param/rules.py); SP is expected to grow
FAMILY = {"sp": "sp", "mup": "mup", "depth_mup": "mup", "completep": "mup", "spectral": "mup"}
ABC_FAMILY = {"sp": "sp", "mup": "mup"}  # Everett's presets; ntk and mfp make no claim here
MIN_SIZES = 3  # two points always fit a line exactly: a slope needs a third to mean anything


# ----------------------------------------------------------------------------- config

def compose(overrides: list[str]):
    """The check's config: the protocol of conf/check/coord.yaml, then the user's overrides."""
    cfg = cli.compose(["+check=coord", *overrides])
    c = cfg.check
    if c.axis not in AXES:
        raise cli.UserError(f"check.axis={c.axis!r}: choose width or depth")
    sizes = list(c.sizes) if c.sizes is not None else []
    if len(sizes) < MIN_SIZES:
        raise cli.UserError(f"check.sizes={sizes} has {len(sizes)} sizes: a slope needs at least {MIN_SIZES}, e.g. check.sizes=[64,128,256]")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes) or len(set(sizes)) != len(sizes):
        raise cli.UserError(f"check.sizes={sizes} must be distinct positive integers, e.g. [64,128,256,512]")
    seeds = list(c.seeds) if c.seeds is not None else []
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise cli.UserError(f"check.seeds={seeds} must be a non-empty list of integers >= 0, e.g. [1,2,3]")
    if c.expect not in (None, *EXPECTS):
        raise cli.UserError(f"check.expect={c.expect!r}: choose null (from param.name), {', '.join(EXPECTS)}")
    for key in ("tolerance", "grow_min"):
        if isinstance(c[key], bool) or not isinstance(c[key], (int, float)) or not c[key] > 0:
            raise cli.UserError(f"check.{key}={c[key]!r} must be a positive number")
    return cfg


def at_size(cfg, size: int):
    """A copy of the config with the swept dimension set to `size`, checked as a run would be."""
    out = copy.deepcopy(cfg)
    key = AXES[cfg.check.axis]
    section, name = key.split(".")
    out[section][name] = int(size)
    try:
        cli.check_run(out)
    except cli.UserError as e:
        raise cli.UserError(f"check.sizes: at {key}={size}: {e}") from None
    return out


def selected(cfg, known: tuple[str, ...]) -> tuple[str, ...]:
    q = cfg.check.quantities
    if q is None:
        return known
    for name in q:
        if name not in known:
            raise cli.UserError(f"check.quantities: unknown quantity {name!r}: choose from {', '.join(known)}")
    return tuple(q)


def expectation(cfg) -> tuple[str, float | None]:
    """(family, alpha): the claim to judge (check.expect, else from param.name) and the
    residual-branch exponent (None for width-only parameterizations)."""
    from param.rules import rules_for

    p = cfg.param
    family = cfg.check.expect
    if family is None:
        family = ABC_FAMILY.get(p.get("preset"), "none") if p.name == "abc" else FAMILY.get(p.name, "none")
    return family, rules_for(p, int(cfg.model.width), int(cfg.model.depth)).env["alpha"]


# ----------------------------------------------------------------------------- one model

@dataclass
class Setup:
    """One model at one size and seed, built as train.py builds it (table -> model -> optimizer)."""

    model: object
    table: object
    optimizer: object
    schedule: object
    train: object  # data.TokenWindows
    val: object
    device: object
    seed: int
    batch_size: int
    grad_clip: float


def setup(cfg, seed: int) -> Setup:
    import torch

    import data
    from model import GPT
    from optim import build_optimizer, make_schedule
    from param import apply_init, build_table, model_config
    from train import resolve_device

    data_dir = data.ensure_prepared(cfg.data)
    vocab = cli.vocab_size(cfg)
    device = resolve_device(cfg.train.device)
    table = build_table(cfg, vocab)
    torch.manual_seed(seed)
    model = GPT(model_config(cfg.model, vocab), table.scales())
    apply_init(model, table)
    model.to(device)
    ctx = int(cfg.model.context)
    return Setup(model, table, build_optimizer(cfg, model, table, device.type), make_schedule(cfg, table),
                 data.TokenWindows(data_dir, "train", ctx), data.TokenWindows(data_dir, "val", ctx),
                 device, seed, int(cfg.train.batch_size), float(cfg.train.grad_clip))


def probe_batch(s: Setup):
    """The fixed batch every step is measured on: val windows drawn from the seed."""
    x, y = s.val.batch(s.batch_size, seed=s.seed, step=0)
    return x.to(s.device), y.to(s.device)


def train_step(s: Setup, step: int) -> float:
    """One optimizer step on the training windows of (seed, step), with the run's schedule and clip."""
    import torch

    s.schedule.apply(s.optimizer, step)
    x, y = s.train.batch(s.batch_size, seed=s.seed, step=step)
    _, loss = s.model(x.to(s.device), y.to(s.device))
    loss.backward()
    if s.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(s.model.parameters(), s.grad_clip)
    s.optimizer.step()
    s.optimizer.zero_grad(set_to_none=True)
    return loss.item()


# ----------------------------------------------------------------------------- the sweep

@dataclass
class Sweep:
    """mean[q] and std[q]: arrays (steps, sizes) over seeds; NaN where q has no value."""

    axis: str
    sizes: list[int]
    steps: list[int]
    seeds: list[int]
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    title: str


def run_sweep(cfg, tool, title: str) -> Sweep:
    """tool.measure at every size and seed; values averaged over seeds."""
    c = cfg.check
    sizes, seeds, steps = list(c.sizes), list(c.seeds), tool.steps(cfg)
    runs: dict[str, np.ndarray] = {}
    for j, size in enumerate(sizes):
        scfg = at_size(cfg, size)
        for i, seed in enumerate(seeds):
            for q, values in tool.measure(scfg, seed).items():
                arr = runs.setdefault(q, np.full((len(seeds), len(steps), len(sizes)), np.nan))
                arr[i, :, j] = values
    with warnings.catch_warnings():  # a quantity with no value at some step (an update at step 0) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = {q: np.nanmean(a, axis=0) for q, a in runs.items()}
        std = {q: np.nanstd(a, axis=0) for q, a in runs.items()}
    return Sweep(c.axis, sizes, steps, seeds, mean, std, title)


def fit_slope(sizes, values) -> float:
    """Least-squares slope of log2(value) against log2(size); NaN unless every value is positive."""
    v = np.asarray(values, dtype=float)
    if v.shape[0] < 2 or not (np.isfinite(v).all() and (v > 0).all()):
        return math.nan
    return float(np.polyfit(np.log2(np.asarray(sizes, dtype=float)), np.log2(v), 1)[0])


def _last(sweep: Sweep, quantity: str) -> int:
    """The last step at which `quantity` has values."""
    rows = sweep.mean[quantity]
    defined = [t for i, t in enumerate(sweep.steps) if np.isfinite(rows[i]).any()]
    return defined[-1] if defined else sweep.steps[-1]


def slope(sweep: Sweep, quantity: str, step: int = -1) -> float:
    """Slope at `step` (-1: the last step at which the quantity has values)."""
    step = _last(sweep, quantity) if step < 0 else step
    return fit_slope(sweep.sizes, sweep.mean[quantity][sweep.steps.index(step)])


# ----------------------------------------------------------------------------- claims and verdict

@dataclass
class Claim:
    """slope(quantity, step) must lie in [lo, hi] at every step of `steps` (empty: the last step
    with values). grows: an SP claim, printed "grows as SP should" when it holds."""

    quantity: str
    lo: float
    hi: float
    text: str
    steps: tuple[int, ...] = ()
    grows: bool = False


def flat(quantity: str, expected: float, tol: float, text: str, steps=()) -> Claim:
    return Claim(quantity, expected - tol, expected + tol, text, tuple(steps))


def grows(quantity: str, text: str, lo: float, hi: float = math.inf, steps=()) -> Claim:
    """A growth claim: lo <= slope <= hi (hi = inf: at least lo)."""
    return Claim(quantity, lo, hi, text, tuple(steps), grows=True)


def _worst(sweep: Sweep, c: Claim) -> tuple[int, float, bool]:
    """(step, slope, ok) at the step furthest outside [lo, hi] (or closest to leaving it)."""
    steps = list(c.steps) or [_last(sweep, c.quantity)]
    mid = c.lo if c.hi == math.inf else (c.lo + c.hi) / 2
    found = [(t, slope(sweep, c.quantity, t)) for t in steps]
    bad = [(t, s) for t, s in found if not (math.isfinite(s) and c.lo <= s <= c.hi)]
    if bad:
        t, s = max(bad, key=lambda ts: math.inf if not math.isfinite(ts[1]) else max(c.lo - ts[1], ts[1] - c.hi))
        return t, s, False
    if c.hi == math.inf:
        t, s = min(found, key=lambda ts: ts[1])
    else:
        t, s = max(found, key=lambda ts: abs(ts[1] - mid))
    return t, s, True


def judge(sweep: Sweep, claims: list[Claim]) -> dict:
    rows = []
    for c in claims:
        step, s, ok = _worst(sweep, c)
        steps = list(c.steps) or [step]
        where = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
        status = ("GROWS" if c.grows else "PASS") if ok else "FAIL"
        rows.append({**asdict(c), "steps": where, "step": step, "slope": s, "status": status})
    statuses = {r["status"] for r in rows}
    overall = "NO CLAIM" if not rows else "FAIL" if "FAIL" in statuses else "GROWS" if "GROWS" in statuses else "PASS"
    return {"status": overall, "claims": rows}
