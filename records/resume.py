"""What a resumed run trains with: the checkpoint's own config, whatever today's defaults say.

`python train.py hydra.run.dir=X train.resume=auto` continues run X as it was configured. A key
given on the command line (or, for a direct `run()` call, a key whose value differs from the
defaults) is compared with the checkpoint's value:
- equal: nothing to say (the sweep runner repeats every override on each resume);
- one of ALLOWED (extend `train.steps`, or change how the run is logged, checkpointed or
  executed: it trains the same model on the same batches): applied, with a one-line note;
- anything else (seed, batch, schedule, optimizer, model, parameterization, data, dtype, ...):
  refused in one line naming the key, the checkpoint's value and the new one.
Keys not given take the checkpoint's value. Keys the checkpoint's config predates (a newer
version of this code) take today's default.
"""

from __future__ import annotations

import copy
import shlex
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

import cli
from errors import UserError
from records.checkpoint import DamagedCheckpoint, find_resumable, latest_checkpoint, load_checkpoint

# keys that do not change what is trained (or, train.steps, only how far)
ALLOWED = ("train.steps", "train.progress", "train.log_interval", "train.eval_interval", "train.ckpt_interval",
           "train.ckpt_keep", "train.threads", "train.device", "train.compile",
           "optim.fused",  # torch's fused or foreach AdamW kernel: the same update, rounded differently
           "data.root")  # where the prepared data lives, not what it is (meta.json says that)
ALLOWED_GROUPS = ("logger", "diagnostics")  # W&B or not; diagnostics only measure
ALWAYS_NEW = ("train.resume", "dist")  # how this launch runs (DCP checkpoints reshard to any world size)
_MISSING = object()


def leaves(d: dict, prefix: str = "") -> dict:
    """{dotted key: value} of a nested dict; lists are values."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(leaves(v, key + "."))
        else:
            out[key] = v
    return out


def override_keys(overrides) -> set[str]:
    """The keys a list of Hydra overrides names: `a.b=1`, `+a.b=1`, `~a.b` -> a.b; `optim=sgd`
    -> optim (a group: every key under it counts as given)."""
    keys = set()
    for text in overrides or ():
        key = str(text).split("=", 1)[0].lstrip("+~").split("@", 1)[0].strip("/")
        if key and key != "hydra" and not key.startswith("hydra."):
            keys.add(key)
    return keys


def given_keys(cfg: dict, defaults: dict, overrides=()) -> set[str]:
    """Keys named by the overrides, plus every leaf whose value differs from the defaults (what
    a group choice or an experiment preset set)."""
    a, b = leaves(cfg), leaves(defaults)
    return override_keys(overrides) | {k for k in set(a) | set(b) if a.get(k, _MISSING) != b.get(k, _MISSING)}


def _given(key: str, given: set[str]) -> bool:
    return key in given or any(key.startswith(g + ".") for g in given)


def _allowed(key: str) -> bool:
    return key in ALLOWED or key.split(".", 1)[0] in ALLOWED_GROUPS


def _set(d: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    if value is _MISSING:
        d.pop(last, None)
    else:
        d[last] = value


def _show(v) -> str:
    return "(unset)" if v is _MISSING else repr(v) if isinstance(v, str) else str(v)


def merge(saved: dict, new: dict, given: set[str], step: int, where: str) -> tuple[dict, list[str]]:
    """The config to resume with: `saved` (the checkpoint's, at `step`, from `where`) plus the
    allowed changes among the `given` keys of `new`. Returns (config, ["key old -> new", ...]);
    UserError naming every refused key."""
    out = copy.deepcopy(saved)
    old_l, new_l = leaves(saved), leaves(new)
    changes, refused = [], []
    for key in sorted(set(old_l) | set(new_l)):
        old, now = old_l.get(key, _MISSING), new_l.get(key, _MISSING)
        if key in ALWAYS_NEW or key.split(".", 1)[0] in ALWAYS_NEW:
            _set(out, key, now)
        elif _given(key, given):
            if old == now:
                continue
            (changes if _allowed(key) else refused).append(f"{key} {_show(old)} -> {_show(now)}")
            if _allowed(key):
                _set(out, key, now)
        elif old is _MISSING and not _other_choice(saved, new, key):
            _set(out, key, now)  # a key this checkpoint's config predates: today's default
    if refused:
        raise UserError(f"train.resume: the checkpoint {where} was trained with other values ({', '.join(refused)}): "
                        "resume without those overrides (the checkpoint's config is used), or start a new run "
                        "with a new hydra.run.dir")
    steps = out.get("train", {}).get("steps")
    if isinstance(steps, int) and steps < step:
        raise UserError(f"train.resume: train.steps={steps} is below the checkpoint's step {step} ({where}): "
                        f"give train.steps >= {step}, or leave it out")
    return out, changes


def _other_choice(saved: dict, new: dict, key: str) -> bool:
    """True when `key` belongs to a config group whose choice (its `name`) differs between the
    checkpoint and today's config: such a key is not part of the checkpoint's choice."""
    group = key.split(".", 1)[0]
    a, b = saved.get(group), new.get(group)
    return isinstance(a, dict) and isinstance(b, dict) and a.get("name", _MISSING) != b.get("name", _MISSING)


# ----------------------------------------------------------------------------- the checkpoint to resume

def resume_command(run_dir: Path, distributed: bool = False) -> str:
    cmd = f"train.py hydra.run.dir={shlex.quote(str(run_dir))} train.resume=auto"
    return f"your torchrun command with {cmd}" if distributed else f"python {cmd}"


def resume_target(cfg, ckpt_root: Path) -> tuple[Path | None, dict | None, list[str]]:
    """(checkpoint to resume from, its loaded state, notes), from train.resume. A fresh run in a
    dir that holds checkpoints is refused: the old run's higher steps would count as newest."""
    r = cfg.train.resume
    if r in (None, False, "none"):
        old = latest_checkpoint(ckpt_root)
        if old is not None:
            raise UserError(f"{ckpt_root.parent} already holds checkpoints of a run (latest {old.name}): continue it "
                            "with train.resume=auto, or start this run in a new hydra.run.dir")
        return None, None, []
    if r == "auto":
        return find_resumable(ckpt_root)
    path = Path(str(r))
    if not (path / "state.pt").exists() and not (path / "meta.pt").exists():
        raise UserError(f"train.resume={r}: no checkpoint there; use train.resume=auto or a checkpoints/step_N dir")
    try:
        return path, load_checkpoint(path), []
    except DamagedCheckpoint as e:
        raise UserError(f"train.resume={r}: the checkpoint is damaged ({e}): use train.resume=auto (the newest "
                        "checkpoint that loads) or another checkpoints/step_N") from None


def cli_overrides() -> list[str] | None:
    """This process's command-line overrides (None outside `python train.py`)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None


def resumed_config(cfg, state: dict, path: Path):
    """(the checkpoint's config plus the allowed changes given now, the changes as "key old ->
    new"). What the user gave: the command line's overrides and every key that differs from
    the defaults (for a direct `run()` call, the latter only)."""
    if state.get("config") is None:
        return cfg, []
    if HydraConfig.initialized():  # inside `python train.py`: compose through the running Hydra
        overrides, defaults = cli_overrides(), hydra.compose(config_name=HydraConfig.get().job.config_name)
    else:
        overrides, defaults = [], cli.compose([])
    new = cli.to_container(cfg)
    given = given_keys(new, cli.to_container(defaults), overrides)
    merged, changes = merge(state["config"], new, given, int(state["step"]), str(path))
    return OmegaConf.create(merged), changes


def write_hydra_files(run_dir: Path, subdir: str | None, cfg, resume: Path | None, state: dict | None,
                      changes: list[str]) -> None:
    """<run dir>/<subdir>/ as Hydra writes it (config.yaml, hydra.yaml, overrides.yaml), but only
    once the run holds its dir. A resume keeps the original run's files and adds itself to
    resumes.yaml (checkpoint, step, its overrides, what changed)."""
    if subdir is None or not HydraConfig.initialized():
        return
    d = run_dir / subdir
    d.mkdir(exist_ok=True)
    overrides = cli_overrides()
    if resume is None:
        OmegaConf.save(cfg, d / "config.yaml")
        OmegaConf.save(OmegaConf.create({"hydra": HydraConfig.get()}), d / "hydra.yaml")
        OmegaConf.save(OmegaConf.create(overrides), d / "overrides.yaml")
        return
    if not (d / "overrides.yaml").exists() and state.get("overrides") is not None:
        OmegaConf.save(OmegaConf.create(state["overrides"]), d / "overrides.yaml")
    if not (d / "config.yaml").exists():
        OmegaConf.save(OmegaConf.create(state["config"]), d / "config.yaml")
    past = OmegaConf.to_container(OmegaConf.load(d / "resumes.yaml")) if (d / "resumes.yaml").exists() else []
    past.append({"from": str(resume), "step": int(state["step"]), "overrides": overrides, "changed": changes})
    OmegaConf.save(OmegaConf.create(past), d / "resumes.yaml")
