"""Entry-point plumbing shared by `train.py`, `python -m data.prepare` and `python -m param`.

Composes the real Hydra config from command-line overrides, checks it, and turns every
user mistake into one line that names the fix (`HYDRA_FULL_ERROR=1` shows the traceback).
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sys
from pathlib import Path
from typing import Callable, Iterable

REPO = Path(__file__).resolve().parent
CONF_DIR = REPO / "conf"


class UserError(Exception):
    """A mistake the user can fix; printed as one line, never as a traceback."""


def full_errors() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def guard(fn: Callable) -> Callable:
    """Run `fn`; print a UserError as `error: ...` and exit 2 (exit 1 for other failures
    keeps their traceback: those are bugs, not user mistakes)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            if full_errors():
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except BrokenPipeError:  # `python -m param ... | head`: the reader left, nothing is wrong
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)

    return wrapper


# ----------------------------------------------------------------------------- composition

def _first_of_sweeps(overrides: Iterable[str]) -> list[str]:
    """Multirun overrides (`a=1,2`) replaced by their first value, for a quick check."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for text in overrides:
        try:
            (o,) = OverridesParser.create().parse_overrides([text])
        except Exception as e:  # OverrideParseException: report it as a user error
            raise UserError(f"cannot parse override {text!r}: {str(e).splitlines()[0]}") from None
        if o.is_sweep_override():
            value = next(iter(o.sweep_string_iterator()))
            text = f"{o.get_key_element()}={value}"
        out.append(text)
    return out


def _leaf_keys(cfg, prefix: str = "") -> list[str]:
    from omegaconf import DictConfig

    keys = []
    for k in cfg.keys():
        v = cfg._get_node(k)
        full = f"{prefix}{k}"
        if isinstance(v, DictConfig):
            keys += _leaf_keys(v, full + ".")
        keys.append(full)
    return keys


def _compose_raw(overrides: list[str], config_name: str):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return compose(config_name=config_name, overrides=overrides)


def compose(overrides: Iterable[str] = (), config_name: str = "config"):
    """The run's config from overrides, as `train.py` would see it; UserError on mistakes."""
    from hydra.errors import ConfigCompositionException, MissingConfigException

    overrides = _first_of_sweeps(list(overrides))
    try:
        return _compose_raw(overrides, config_name)
    except MissingConfigException as e:
        msg = str(e)
        m = re.search(r"Could not find '([^/']+)/([^']+)'", msg)
        if m:
            group, choice = m.groups()
            options = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
            hint = difflib.get_close_matches(choice, options, n=1)
            did = f"did you mean {group}={hint[0]}? " if hint else ""
            raise UserError(f"unknown option {group}={choice}: {did}choose one of {', '.join(options)}") from None
        raise UserError(msg.splitlines()[0]) from None
    except ConfigCompositionException as e:
        msg = str(e)
        m = re.search(r"Could not override '([^']+)'", msg) or re.search(r"Could not append to config\. An item is already at '([^']+)'", msg)
        if m and "not in struct" in repr(e.__cause__) + msg:
            key = m.group(1)
            groups_only = [o for o in overrides if "." not in o.split("=", 1)[0].lstrip("+~")]
            known = _leaf_keys(_compose_raw(groups_only, config_name))
            hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            fix = f"did you mean {hint[0]}?" if hint else f"to add a new key write +{key}=..."
            raise UserError(f"unknown config key '{key}': {fix} (`python -m param --cfg` lists every key)") from None
        cause = f" ({str(e.__cause__).splitlines()[0]})" if e.__cause__ else ""
        raise UserError(msg.splitlines()[0] + cause) from None


# Hydra's own flags: those that print and exit (nothing to check), and those that take a value
# (the value is not an override: `-sc install=bash`, `-cn other`)
_HYDRA_EXITS = {"-h", "--help", "--hydra-help", "--version", "-sc", "--shell-completion", "-i", "--info",
                "--experimental-rerun"}
_HYDRA_VALUED = {"-c", "--cfg", "-p", "--package", "-cp", "--config-path", "-cn", "--config-name",
                 "-cd", "--config-dir"}


def check_overrides(argv: list[str]) -> None:
    """Before Hydra runs `train.py`: compose once so a typo fails in one line, not deep in Hydra.
    Hydra's own flags pass through untouched."""
    if any(a.split("=", 1)[0] in _HYDRA_EXITS for a in argv):
        return
    overrides, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a.startswith("-"):
            skip = a in _HYDRA_VALUED  # `--cfg job`: the next word is the flag's value
        elif ("=" in a or a.startswith("~")) and not a.lstrip("+~").startswith("hydra"):
            overrides.append(a)
    check_run(compose(overrides))


# ----------------------------------------------------------------------------- value checks

def _positive(value, name: str, kind=float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 or (kind is int and int(value) != value):
        what = "a positive integer" if kind is int else "a positive number"
        raise UserError(f"{name}={value!r} must be {what}")


def check_config(cfg) -> None:
    """Values that compose fine but cannot train: one line each, naming the fix."""
    m, t, o = cfg.model, cfg.train, cfg.optim
    for key in ("width", "depth", "head_dim", "context"):
        _positive(m[key], f"model.{key}", int)
    if m.width % m.head_dim:
        ok = [h for h in (16, 32, 64, 128) if m.width % h == 0]
        raise UserError(
            f"model.width={m.width} is not divisible by model.head_dim={m.head_dim}: "
            f"use a width that is a multiple of {m.head_dim}" + (f" or model.head_dim={ok[-1]}" if ok else "")
        )
    _positive(o.lr, "optim.lr")
    for key in ("steps", "batch_size", "grad_accum"):
        _positive(t[key], f"train.{key}", int)
    if t.batch_size % t.grad_accum:
        raise UserError(
            f"train.batch_size={t.batch_size} is not divisible by train.grad_accum={t.grad_accum}: "
            "the batch is split into grad_accum equal micro-batches; pick a divisor"
        )
    if not 0 <= m.dropout < 1:
        raise UserError(f"model.dropout={m.dropout} must be in [0, 1)")
    if t.device not in ("auto", "cpu", "cuda", "mps") and not str(t.device).startswith("cuda:"):
        raise UserError(f"train.device={t.device!r}: choose auto, cpu, cuda, cuda:N or mps")
    if str(t.device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(
                f"train.device={t.device} but this torch ({torch.__version__}) sees no CUDA device: "
                "use train.device=cpu, or install a CUDA build of torch (README, 'Training on a GPU')"
            )
    if t.dtype not in ("fp32", "bf16", "fp16"):
        raise UserError(f"train.dtype={t.dtype!r}: choose fp32, bf16 or fp16")


# ----------------------------------------------------------------------------- derived values

GPT2_VOCAB = 50257  # GPT-2 BPE: 50,000 merges + 256 bytes + <|endoftext|>


def vocab_size(cfg, data_vocab: int | None = None) -> int:
    """model.vocab_size, or the data's (`data_vocab` when the caller has read meta.json already),
    padded up to model.vocab_multiple."""
    v = cfg.model.vocab_size if cfg.model.vocab_size is not None else data_vocab
    if v is None:
        if cfg.data.tokenizer == "gpt2":
            v = GPT2_VOCAB  # known without preparing (openwebtext may not be prepared here)
        else:
            import data

            v = data.load_meta(data.ensure_prepared(cfg.data))["vocab_size"]
    k = int(cfg.model.get("vocab_multiple") or 1)
    return -(-int(v) // k) * k


def to_container(cfg) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)


def check_run(cfg) -> None:
    """Everything `check_config` checks, plus the parameterization x optimizer pair."""
    from optim.scaling import check
    from param.rules import rules_for
    from param.table import check_param

    from optim.schedule import Schedule

    check_config(cfg)
    check_param(cfg)
    check(cfg.optim, rules_for(cfg.param, cfg.model.width, cfg.model.depth))
    Schedule(cfg.schedule, 1, hidden_wd=1.0)  # names, warmup, decay: checked before any work
