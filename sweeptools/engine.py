"""W&B's sweep engine (the `sweeps` package on PyPI, imported as `sweeps`): it validates sweep
configs against W&B's JSON schema and proposes random and Bayesian trials exactly as a W&B server
would (docs/platform.md §5). This package is `sweeptools` so that the engine's own import name
stays free; the sweep files live in the folder `sweeps/`, which holds no Python.
"""

from __future__ import annotations

import random
import sys
import warnings

import numpy as np

from errors import UserError


def engine():
    """The engine module (imported once); UserError when it is not installed."""
    if "sweeps" in sys.modules and hasattr(sys.modules["sweeps"], "next_runs"):
        return sys.modules["sweeps"]
    try:
        with warnings.catch_warnings():
            # sweeps 0.2.0 is written for pydantic 1; pydantic 2 warns about its class-based config (harmless)
            warnings.simplefilter("ignore")
            import sweeps  # random / bayes only: slow to import (pydantic), and may be missing or shadowed
    except ImportError:
        raise UserError("W&B's sweep engine is not installed: run `.venv/bin/pip install sweeps==0.2.0` (or `make setup`)") from None
    if not hasattr(sweeps, "next_runs"):  # a `sweeps` folder of sweep files found before the installed package
        raise UserError(f"`import sweeps` found {getattr(sweeps, '__path__', sweeps)}, not W&B's sweep engine: "
                        "reinstall it with `.venv/bin/pip install sweeps==0.2.0` (or `make setup`)")
    return sweeps


def violations(raw: dict) -> list[str]:
    """Schema violations of a W&B sweep config ([] when valid)."""
    return list(engine().schema_violations_from_proposed_config(raw))


def propose(raw: dict, finished: list[tuple[dict, float | None]], n: int, seed: int) -> list[dict]:
    """n new trials ({key: value}) from random or Bayesian search, given the finished ones
    as (values, metric) pairs (metric None: failed or diverged). Seeded: the same history
    gives the same proposals, so an interrupted search replays and skips what is done."""
    eng = engine()
    runs = []
    for i, (values, metric) in enumerate(finished):
        ok = metric is not None
        runs.append(eng.SweepRun(
            name=f"t{i}", config={k: {"value": v} for k, v in values.items()},
            state=eng.RunState.finished if ok else eng.RunState.failed,
            summary_metrics={raw["metric"]["name"]: metric} if ok else {},
        ))
    random.seed(seed + len(finished))  # the engine samples with Python's and numpy's global generators
    np.random.seed(seed + len(finished))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's GP convergence warnings on a few points
        proposed = eng.next_runs(raw, runs, validate=False, n=n)
    return [{k: _short(v["value"]) for k, v in r.config.items()} for r in proposed if r is not None]


def _short(value):
    """Continuous proposals to 4 significant digits: the overrides that are run, recorded and
    printed by `sweeptools.best` are then the same short strings."""
    return float(f"{value:.4g}") if isinstance(value, float) else value
