"""W&B's sweep engine (the `sweeps` package on PyPI), loaded under another module name.

The engine's import name is `sweeps`, the same as this package's, so a plain `import sweeps`
from the repository root finds this package. The engine uses only relative imports, so it
loads fine from its installed files as `wandb_sweeps`. It validates sweep configs against
W&B's JSON schema and proposes random and Bayesian trials exactly as a W&B server would
(docs/platform.md §5).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import random
import sys
import warnings

from cli import UserError

NAME = "wandb_sweeps"


def engine():
    """The engine module (imported once); UserError when it is not installed."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    try:
        dist = importlib.metadata.distribution("sweeps")
    except importlib.metadata.PackageNotFoundError:
        raise UserError("W&B's sweep engine is not installed: run `.venv/bin/pip install sweeps==0.2.0` (or `make setup`)") from None
    init = dist.locate_file("sweeps/__init__.py")
    spec = importlib.util.spec_from_file_location(NAME, init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    with warnings.catch_warnings():
        # sweeps 0.2.0 is written for pydantic 1; pydantic 2 warns about its class-based config (harmless)
        warnings.simplefilter("ignore")
        spec.loader.exec_module(module)
    return module


def violations(raw: dict) -> list[str]:
    """Schema violations of a W&B sweep config ([] when valid)."""
    return list(engine().schema_violations_from_proposed_config(raw))


def propose(raw: dict, finished: list[tuple[dict, float | None]], n: int, seed: int) -> list[dict]:
    """n new trials ({key: value}) from random or Bayesian search, given the finished ones
    as (values, metric) pairs (metric None: failed or diverged). Seeded: the same history
    gives the same proposals, so an interrupted search replays and skips what is done."""
    import numpy as np

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
    printed by `sweeps.best` are then the same short strings."""
    return float(f"{value:.4g}") if isinstance(value, float) else value
