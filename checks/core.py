"""What the parameterization checks share (`python -m checks.coord_check`, `checks.spectral_check`):
compose the check config (conf/check/coord.yaml), sweep one size axis, fit log2-log2 slopes and
judge them against the parameterization's claims (docs/coord_check.md). checks/runner.py writes the files, draws the
figures and prints the verdict.

A check module provides `QUANTITIES`, `steps(cfg)` (the steps it records), `measure(cfg, seed)`
(one model at one size: {quantity: [value per step]}), `claims(cfg, family, alpha)` (a list of
Claim), `plot(sweep, quantities, out)` and `plot_compare(sweeps, quantities, path)`.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

import assemble
import cli
import data
from param.rules import rules_for
from train import resolve_device

AXES = {"width": "model.width", "depth": "model.depth"}
EXPECTS = ("mup", "sp", "none")
# the claim a parameterization makes is its YAML's `claim:` (conf/param/*.yaml): the μP family is
# flat in width, with depth claims that follow its branch exponent alpha (param/rules.py); SP is
# expected to grow; `preset` (param=abc) takes Everett's preset's name where it makes one
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
    if isinstance(c.seeds, int) and not isinstance(c.seeds, bool):
        c.seeds = [c.seeds]  # check.seeds=1 is one seed: [1]
    seeds = list(c.seeds) if isinstance(c.seeds, Sequence) and not isinstance(c.seeds, str) else c.seeds
    if not isinstance(seeds, list) or not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise cli.UserError(f"check.seeds={seeds} must be a non-empty list of integers >= 0, e.g. [1,2,3]")
    if c.get("batches", "fresh") not in ("fresh", "fixed"):
        raise cli.UserError(f"check.batches={c.batches!r}: choose fresh (a new batch each step) or fixed (step 0's batch every step)")
    if c.expect not in (None, *EXPECTS):
        raise cli.UserError(f"check.expect={c.expect!r}: choose null (from param.name), {', '.join(EXPECTS)}")
    for key, rule, default in (("tolerance", "number > 0", None), ("grow_min", "number > 0", None),
                               ("spike", "number >= 0 or null", None), ("seed_band", "number >= 0", 0.0)):
        cli.check_value(f"check.{key}", c.get(key, default), rule)  # the one validator (cli.VALUES' rule language)
    n, first = int(cfg.train.steps), c.get("judge_from")
    if first is not None and (isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= n):
        raise cli.UserError(f"check.judge_from={first!r} must be null (half of train.steps) or a step in 1..{n}")
    for size in sizes:  # a size no run would accept fails here, before any warning or work
        at_size(cfg, size)
    _warn_sizes(cfg, sizes)
    return cfg


def judge_from(cfg) -> int:
    """The first trained step a width claim is judged at: check.judge_from, else ceil(N/2). Steps
    1..judge_from-1 are the transient: the spectral paper's Fig. 1a,b (arXiv 2603.00541) draws
    steps 5-10 of 10, and microsoft/mup's coord-check notes let the output shrink as 1/sqrt(width)
    at init and for 'a few steps' after it (TP5, arXiv 2203.03466)."""
    first = cfg.check.get("judge_from")
    return int(first) if first is not None else max(1, math.ceil(int(cfg.train.steps) / 2))


def _warn_sizes(cfg, sizes: list[int]) -> None:
    """One line each: sizes below the base shape (m or r < 1) and a one-head smallest model."""
    p, m = cfg.param, cfg.model
    if cfg.check.axis == "width":
        if min(sizes) < int(p.base_width):
            cli.warn(f"check.sizes starts at width {min(sizes)} < param.base_width={p.base_width} (m = {min(sizes) / int(p.base_width):g} < 1): "
                     f"the rules are meant for m >= 1; set param.base_width={min(sizes)}")
        smallest = min(sizes)
    else:
        if min(sizes) < int(p.base_depth):
            cli.warn(f"check.sizes starts at depth {min(sizes)} < param.base_depth={p.base_depth} (r = {min(sizes) / int(p.base_depth):g} < 1): "
                     f"the rules are meant for r >= 1; set param.base_depth={min(sizes)}")
        smallest = int(m.width)
    if smallest == int(m.head_dim):
        cli.warn(f"the smallest model (width {smallest}) has 1 attention head of model.head_dim={m.head_dim}: its attention "
                 f"is not yet in the wide regime; start check.sizes at {2 * smallest} or lower model.head_dim")


def at_size(cfg, size: int):
    """A copy of the config with the swept dimension set to `size`, checked as a run would be."""
    out = copy.deepcopy(cfg)
    key = AXES[cfg.check.axis]
    section, name = key.split(".")
    out[section][name] = int(size)
    try:
        assemble.check_run(out)
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
    """(family, alpha): the claim to judge (check.expect, else the parameterization's `claim:`) and the
    residual-branch exponent (None for width-only parameterizations)."""
    p = cfg.param
    family = cfg.check.expect
    if family is None:
        claim = p.get("claim") or "none"
        family = ABC_FAMILY.get(p.get("preset"), "none") if claim == "preset" else claim
        if family not in EXPECTS:
            raise cli.UserError(f"param.claim={claim!r} (param={p.name}): choose {', '.join(EXPECTS)} or preset")
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
    fixed_batch: bool = False
    grad_norm: float = math.nan  # the last step's global gradient norm, before clipping


def setup(cfg, seed: int) -> Setup:
    data_dir = data.ensure_prepared(cfg.data)
    vocab = assemble.vocab_size(cfg)
    device = resolve_device(cfg.train.device)
    b = assemble.build(cfg, vocab, device, seed)
    ctx = int(cfg.model.context)
    return Setup(b.model, b.table, b.optimizer, b.schedule,
                 data.TokenWindows(data_dir, "train", ctx), data.TokenWindows(data_dir, "val", ctx),
                 device, seed, int(cfg.train.batch_size), float(cfg.train.grad_clip),
                 cfg.check.get("batches", "fresh") == "fixed")


def probe_batch(s: Setup):
    """The fixed batch every step is measured on: val windows drawn from the seed."""
    x, y = s.val.batch(s.batch_size, seed=s.seed, step=0)
    return x.to(s.device), y.to(s.device)


def train_step(s: Setup, step: int) -> float:
    """One optimizer step on the training windows of (seed, step), with the run's schedule and clip."""
    s.schedule.apply(s.optimizer, step)
    x, y = s.train.batch(s.batch_size, seed=s.seed, step=0 if s.fixed_batch else step)
    _, loss = s.model(x.to(s.device), y.to(s.device))
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(s.model.parameters(), s.grad_clip if s.grad_clip > 0 else math.inf)
    s.grad_norm = float(norm)
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
    runs: dict[str, np.ndarray] | None = None  # (seeds, steps, sizes): each seed's values
    spiked: np.ndarray | None = None  # (seeds, steps, sizes) bool: cells left out of the judged means (spikes)
    clip: float = 0.0  # train.grad_clip of the runs (0: none)


def run_sweep(cfg, tool: "Check", title: str) -> Sweep:
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
    threshold = float(c.get("spike") or 0.0)
    mask = spikes(runs["loss"], threshold) if threshold > 0 and "loss" in runs else None
    return Sweep(c.axis, sizes, steps, seeds, mean, std, title, runs, mask, float(cfg.train.grad_clip))


def spikes(loss: np.ndarray, threshold: float) -> np.ndarray:
    """(seeds, steps, sizes) -> bool, True where a run's probe loss exceeds the lowest it had at
    any earlier step by more than `threshold` nats: a loss spike. The probe batch is fixed, so a
    run that trains smoothly does not rise on it (measured at the check's shapes: the large
    spikes rise 1.1-5.5 nats; mini-spikes of 0.5-1 stay in; docs/coord_check.md). At that step the
    model is the blown-up one, and its activations say nothing about an exponent."""
    loss = np.asarray(loss, dtype=float)
    best = np.fmin.accumulate(loss, axis=1)
    before = np.concatenate([np.full_like(loss[:, :1], np.inf), best[:, :-1]], axis=1)
    return np.nan_to_num(loss - before, nan=0.0, posinf=0.0) > threshold


def kept(sweep: Sweep, step: int) -> np.ndarray | None:
    """(seeds, sizes) bool: the cells whose values count at `step` (None: all of them)."""
    if sweep.spiked is None:
        return None
    return ~sweep.spiked[:, sweep.steps.index(step), :]


def decidable(sweep: Sweep, step: int) -> bool:
    """A step can be judged when every size keeps at least half its seeds (rounded up) after the
    spiked cells are left out: a mean over what is left still averages seeds, not one survivor."""
    keep = kept(sweep, step)
    return keep is None or bool((keep.sum(axis=0) >= math.ceil(len(sweep.seeds) / 2)).all())


def judged_mean(sweep: Sweep, quantity: str, step: int) -> np.ndarray:
    """The values a slope is fitted to: the mean over seeds at each size, spiked cells left out."""
    i = sweep.steps.index(step)
    keep = kept(sweep, step)
    if keep is None or keep.all() or sweep.runs is None or quantity not in sweep.runs:
        return sweep.mean[quantity][i]
    values = np.where(keep, sweep.runs[quantity][:, i, :], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=0)


def fit_slope(sizes, values) -> float:
    """Least-squares slope of log2(value) against log2(size); NaN unless every value is positive,
    except a quantity that is exactly 0 at every size (a zero-init readout's logits at init, the
    branch updates after a first step that had no gradient to pass back): 0, flat."""
    v = np.asarray(values, dtype=float)
    if v.shape[0] >= 2 and (v == 0).all():
        return 0.0
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
    return fit_slope(sweep.sizes, judged_mean(sweep, quantity, step))


def slope_se(sweep: Sweep, quantity: str, step: int) -> float:
    """Standard error of the slope from the seed-to-seed spread: the standard deviation of the
    per-seed slopes over sqrt(seeds). 0 with one seed (no spread to measure) or no per-seed values.
    Only seeds with no spiked cell at that step count."""
    runs = (sweep.runs or {}).get(quantity)
    if runs is None or runs.shape[0] < 2:
        return 0.0
    i, keep = sweep.steps.index(step), kept(sweep, step)
    per = [fit_slope(sweep.sizes, runs[k, i]) for k in range(runs.shape[0]) if keep is None or keep[k].all()]
    per = [x for x in per if math.isfinite(x)]
    return float(np.std(per, ddof=1) / math.sqrt(len(per))) if len(per) >= 2 else 0.0


# ----------------------------------------------------------------------------- claims and verdict

@dataclass
class Claim:
    """slope(quantity, step) must lie in [lo, hi] at every step of `steps` (empty: the last step
    with values). grows: an SP claim, printed "grows as SP should" when it holds. A flatness claim
    (not grows) widens its band by check.seed_band standard errors of the slope (slope_se) on
    each side: the tolerance bounds a width exponent, the seed band the noise of a few seeds."""

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


def _worst(sweep: Sweep, c: Claim, z: float) -> tuple[int, float, float, bool | None]:
    """(step, slope, band, ok) at the step furthest outside [lo - band, hi + band] (or closest
    to leaving it); band = z·slope_se at that step (0 for growth claims). ok is None when every
    step of the claim that has something to judge is one where too many cells spiked."""
    steps = list(c.steps) or [_last(sweep, c.quantity)]
    rows = sweep.mean[c.quantity]
    # a step where the quantity is exactly 0 at every size (a zero readout passes no gradient back,
    # so nothing moves in step 1) has nothing to scale: a flatness claim holds there vacuously
    live = [t for t in steps if c.grows or not (rows[sweep.steps.index(t)] == 0).all()]
    if not live:
        return steps[0], 0.0, 0.0, True
    trained = [t for t in live if t > 0]
    live = [t for t in live if decidable(sweep, t)]
    undecided = bool(trained) and not any(t > 0 for t in live)  # a claim on training judged at init only is not judged
    if not live:
        return steps[-1], math.nan, 0.0, None
    found = [(t, slope(sweep, c.quantity, t), 0.0 if c.grows else z * slope_se(sweep, c.quantity, t)) for t in live]

    def outside(tsb):  # > 0: outside the widened band, by that much; NaN counts as furthest out
        _, s, b = tsb
        return math.inf if not math.isfinite(s) else max(c.lo - b - s, s - c.hi - b)

    t, s, b = max(found, key=outside)
    ok = outside((t, s, b)) <= 0
    return t, s, b, None if ok and undecided else ok


def _ranges(steps: list[int]) -> str:
    """[0, 5, 6, 7] -> '0,5-7'."""
    out, start = [], None
    for i, t in enumerate(steps):
        if start is None:
            start = t
        if i + 1 == len(steps) or steps[i + 1] != t + 1:
            out.append(str(start) if start == t else f"{start}-{t}")
            start = None
    return ",".join(out)


def clipped(sweep: Sweep) -> dict[int, tuple[int, int]]:
    """{size: (clipped, steps)}: how many training steps outside a spike had a global gradient norm
    above train.grad_clip, of how many. grad_norm at index t is step t's, taken on the model of
    probe step t-1, so the step after a spiked probe belongs to the spike. Clipping that acts on
    ordinary steps at some sizes and not at others is a size-dependent LR (docs/coord_check.md)."""
    norms = (sweep.runs or {}).get("grad_norm")
    if norms is None or not sweep.clip > 0:
        return {}
    ordinary = np.isfinite(norms)
    if sweep.spiked is not None:
        ordinary[:, 1:] &= ~sweep.spiked[:, :-1]
    over = ordinary & (np.nan_to_num(norms) > sweep.clip)
    return {size: (int(over[:, :, j].sum()), int(ordinary[:, :, j].sum())) for j, size in enumerate(sweep.sizes)}


def spiked_cells(sweep: Sweep) -> list[tuple[int, int, int]]:
    """(size, seed, step) of every spiked cell, in step order."""
    if sweep.spiked is None:
        return []
    k, i, j = np.nonzero(sweep.spiked)
    return sorted(((sweep.sizes[b], sweep.seeds[a], sweep.steps[t]) for a, t, b in zip(k, i, j)), key=lambda x: (x[2], x[0], x[1]))


def judge(sweep: Sweep, claims: list[Claim], seed_band: float = 0.0) -> dict:
    """Each claim's status: PASS (GROWS for an SP claim) or FAIL at its worst decidable step;
    UNDECIDED when spikes left none of its steps decidable. Overall: FAIL if any claim fails,
    else UNDECIDED if any is undecided, else PASS (GROWS)."""
    rows = []
    skipped = sorted({t for c in claims for t in c.steps if not decidable(sweep, t)})
    for c in claims:
        step, s, band, ok = _worst(sweep, c, seed_band)
        steps = list(c.steps) or [step]
        status = "UNDECIDED" if ok is None else ("GROWS" if c.grows else "PASS") if ok else "FAIL"
        rows.append({**asdict(c), "steps": _ranges(steps), "step": step, "slope": s, "band": band, "status": status})
    statuses = {r["status"] for r in rows}
    overall = ("NO CLAIM" if not rows else "FAIL" if "FAIL" in statuses else "UNDECIDED" if "UNDECIDED" in statuses
               else "GROWS" if "GROWS" in statuses else "PASS")
    return {"status": overall, "claims": rows, "spiked": [list(x) for x in spiked_cells(sweep)], "skipped_steps": skipped}
