"""Entry-point plumbing shared by `train.py`, `python -m data.prepare` and `python -m param`.

Composes the real Hydra config from command-line overrides, checks it, and turns every
user mistake into one line that names the fix (`HYDRA_FULL_ERROR=1` shows the traceback).
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
import sys
from pathlib import Path
from typing import Iterable

import hydra
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from errors import UserError, full_errors, guard  # noqa: F401  (cli.UserError, cli.guard: the old names)

REPO = Path(__file__).resolve().parent
# a source checkout (pyproject.toml beside this file), or an installed wheel (REPO is site-packages)
CHECKOUT = (REPO / "pyproject.toml").is_file()


def data_cache() -> Path:
    """Where prepared data goes when data.root is null: <repo>/data/cache in a checkout; for an
    installed package $HPTRANSFER_DATA, else $XDG_CACHE_HOME/hptransfer/data (~/.cache/...),
    never inside site-packages."""
    if CHECKOUT:
        return REPO / "data" / "cache"
    if os.environ.get("HPTRANSFER_DATA"):
        return Path(os.environ["HPTRANSFER_DATA"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "hptransfer" / "data"

CONF_DIR = REPO / "conf"


def options(group: str) -> list[str]:
    """The options of a config group, sorted: the stems of conf/<group>/*.yaml (e.g. param: sp, mup, ...)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


# UserError, full_errors, guard: errors.py (the bottom of the import graph); re-exported here


# ----------------------------------------------------------------------------- composition

def _first_of_sweeps(overrides: Iterable[str]) -> list[str]:
    """Multirun overrides (`a=1,2`) replaced by their first value, for a quick check."""
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
    keys = []
    for k in cfg.keys():
        v = cfg._get_node(k)
        full = f"{prefix}{k}"
        if isinstance(v, DictConfig):
            keys += _leaf_keys(v, full + ".")
        keys.append(full)
    return keys


def _compose_raw(overrides: list[str], config_name: str):
    GlobalHydra.instance().clear()
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        return hydra.compose(config_name=config_name, overrides=overrides)


def compose(overrides: Iterable[str] = (), config_name: str = "config"):
    """The run's config from overrides, as `train.py` would see it; UserError on mistakes."""
    overrides = _first_of_sweeps(list(overrides))
    try:
        cfg = _compose_raw(overrides, config_name)
    except MissingConfigException as e:
        msg = str(e)
        m = re.search(r"Could not find '([^/']+)/([^']+)'", msg)
        if m:
            group, choice = m.groups()
            known = options(group)
            hint = difflib.get_close_matches(choice, known, n=1)
            did = f"did you mean {group}={hint[0]}? " if hint else ""
            raise UserError(f"unknown option {group}={choice}: {did}choose one of {', '.join(known)}") from None
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
    _check_resolves(cfg)
    return cfg


def _check_resolves(cfg, prefix: str = "") -> None:
    """Every `${...}` of the composed config resolves; else one line naming the key. A
    `${hydra:...}` resolves only inside a run (Hydra sets it then): left to that run."""
    for k in cfg.keys():
        node = cfg._get_node(k)
        if isinstance(node, DictConfig):
            _check_resolves(node, f"{prefix}{k}.")
            continue
        try:
            value = cfg[k]
            if isinstance(value, ListConfig):
                OmegaConf.to_container(value, resolve=True)
        except InterpolationResolutionError as e:
            if "HydraConfig was not set" not in str(e):
                raise UserError(f"{prefix}{k}={node._value()}: cannot resolve ({str(e).splitlines()[0]}): give a value, "
                                "or ${other.key} naming a key that exists (`python -m param --cfg` lists them)") from None


# ----------------------------------------------------------------------------- value checks

# What every checked value must be, one line per key: `int`, `number` (finite) or `bool`, an
# optional bound (`>= 1`, `> 0`, `in [0, 1)`), `or null`, `or inf`. `pair in [a, b)`: a list of
# two such numbers. A key not listed takes its type from the shipped config files (below): an
# int key given 1e9 or "abc", a bool key given "maybe", a float key given a word, all fail.
VALUES = {
    "seed": "int >= 0",
    "model.width": "int >= 1", "model.depth": "int >= 1", "model.head_dim": "int >= 1", "model.context": "int >= 1",
    "model.vocab_size": "int >= 1 or null", "model.vocab_multiple": "int >= 1", "model.dropout": "number in [0, 1)",
    "train.steps": "int >= 1", "train.batch_size": "int >= 1", "train.grad_accum": "int >= 1",
    "train.log_interval": "int >= 1", "train.eval_interval": "int >= 1", "train.eval_iters": "int >= 1",
    "train.ckpt_interval": "int >= 0", "train.ckpt_keep": "int >= 0", "train.threads": "int >= 1 or null",
    "train.grad_clip": "number >= 0", "train.diverge_factor": "number > 1 or inf",
    "optim.lr": "number > 0", "optim.eps": "number >= 0", "optim.weight_decay": "number >= 0",
    "optim.betas": "pair in [0, 1)", "optim.momentum": "number in [0, 1)", "optim.adamw_lr_ratio": "number > 0",
    "optim.ns_steps": "int >= 1", "optim.a": "number > 0", "optim.b": "number > 0", "optim.beta2_decay": "number <= 0",
    "optim.wd_on_vectors": "bool or null", "schedule.min_lr_ratio": "number in [0, 1]",
    "param.init_std": "number >= 0", "param.hidden_init_std": "number >= 0 or null", "param.alpha": "number or null",
    "param.base_head_dim": "int >= 1",
    "param.base_width": "int >= 1", "param.base_depth": "int >= 1",
    "data.val_fraction": "number in (0, 1)", "data.split_seed": "int >= 0", "data.num_proc": "int >= 1",
    "diagnostics.interval": "int >= 0", "diagnostics.max_tokens": "int >= 1",
}
HINTS = {  # said after the rule, where the meaning of the edge is not obvious
    "train.threads": "null: torch's default", "train.ckpt_interval": "0: only the final checkpoint",
    "train.ckpt_keep": "0: keep every checkpoint", "train.grad_clip": "0: no clipping",
    "train.diverge_factor": "a loss above diverge_factor x the first loss stops the run; .inf: never",
    "diagnostics.interval": "0: off",
    "check.spike": "nats of probe-loss rise that mark a spike; 0 or null: off",
    "check.seed_band": "standard errors of the slope; 0: none",
}
# Sizes far beyond any model or run this trainer can allocate: caught here in one line instead of
# an allocation failure deep in torch (GPT-3 175B is width 12,288, depth 96, context 2,048).
LARGEST = {"model.width": 2**16, "model.depth": 2**12, "model.head_dim": 2**12, "model.context": 2**20,
           "model.vocab_size": 2**20, "train.batch_size": 2**24, "train.steps": 10**10, "train.eval_iters": 10**6,
           "seed": 2**63 - 1}
_FORMULAS = ("param.init.", "param.forward.", "param.adam.", "param.sgd.", "param.muon.", "param.muon_kimi.",
             "param.exponents.", "param.c.", "check.")  # checked by param/ and the check CLIs
@functools.lru_cache(maxsize=1)
def shipped_types() -> dict[str, frozenset]:
    """key -> the Python types the shipped config files (conf/**.yaml) give it, over every group option."""
    types: dict[str, set] = {}

    def walk(node, prefix: str) -> None:
        for k in node.keys():
            child = node._get_node(k)
            if isinstance(child, DictConfig):
                walk(child, f"{prefix}{k}.")
            elif not (prefix == "" and k == "defaults"):
                types.setdefault(f"{prefix}{k}", set()).add(type(child._value()).__name__)

    for path in CONF_DIR.rglob("*.yaml"):
        rel = path.relative_to(CONF_DIR)
        if rel.parts[0] == "hydra":
            continue
        glob = len(rel.parts) == 1 or "@package _global_" in path.read_text()
        walk(OmegaConf.load(path), "" if glob else ".".join(rel.parts[:-1]) + ".")
    return {k: frozenset(v) for k, v in types.items()}


def rule_of(key: str) -> str | None:
    """The rule of `key`: from VALUES, else from the shipped types (None: not checked)."""
    if key in VALUES:
        return VALUES[key]
    shipped = shipped_types().get(key, frozenset())
    seen, null = shipped - {"NoneType"}, " or null" if "NoneType" in shipped else ""
    for kind, types in (("bool", {"bool"}), ("int", {"int"}), ("number", {"int", "float"})):
        if seen and seen <= types:
            return kind + null
    return None


_RULE = re.compile(r"(?P<kind>int|number|bool|pair)(?: (?P<op>>=|>|<=) (?P<bound>-?[\d.]+)"
                   r"| in (?P<lo_br>[\[(])(?P<lo>-?[\d.]+), (?P<hi>-?[\d.]+)(?P<hi_br>[\])]))?(?P<extra>(?: or (?:null|inf))*)")
_NAMED = {("int", ">=", "1"): "positive", ("number", ">", "0"): "positive",
          ("int", ">=", "0"): "non-negative", ("number", ">=", "0"): "non-negative"}


def _admits(r: dict, value, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, int if kind == "int" else (int, float)):
        return False
    if not math.isfinite(value):
        return value == math.inf and "inf" in r["extra"]
    if r["op"]:
        b = float(r["bound"])
        return {">=": value >= b, ">": value > b, "<=": value <= b}[r["op"]]
    if r["lo_br"]:
        lo, hi = float(r["lo"]), float(r["hi"])
        return (value >= lo if r["lo_br"] == "[" else value > lo) and (value <= hi if r["hi_br"] == "]" else value < hi)
    return True


def _words(r: dict) -> str:
    """The rule as the message says it: `a positive integer`, `two numbers in [0, 1)`, `true or false`."""
    kind = r["kind"]
    if kind == "bool":
        text = "true or false"
    else:
        base, noun = ("number", "numbers") if kind == "pair" else (kind, {"int": "integer", "number": "number"}[kind])
        if (base, r["op"], r["bound"]) in _NAMED:
            text = f"{_NAMED[base, r['op'], r['bound']]} {noun}"
        elif r["op"]:
            text = f"{noun} {r['op']} {r['bound']}"
        elif r["lo_br"]:
            text = f"{noun} in {r['lo_br']}{r['lo']}, {r['hi']}{r['hi_br']}"
        else:
            text = noun
        text = "two " + text if kind == "pair" else ("an " if text[0] in "aeiou" else "a ") + text
    return text + (" or null" if "null" in r["extra"] else "")


def check_value(key: str, value, rule: str) -> None:
    """UserError `<key>=<value> must be <the rule in words>` unless `value` meets `rule`."""
    m = _RULE.fullmatch(rule)
    if m is None:
        raise ValueError(f"bad rule {rule!r} for {key}")
    r = m.groupdict()
    if value is None and "null" in r["extra"]:
        return
    if r["kind"] == "pair":
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(_admits(r, v, "number") for v in value)
    else:
        ok = _admits(r, value, r["kind"])
    if not ok:
        hint = HINTS.get(key)
        if r["kind"] == "int" and isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            hint = f"write it without a decimal point or exponent: {key}={int(value)}"
        shown = repr(value) if isinstance(value, str) else str(value)
        raise UserError(f"{key}={shown} must be {_words(r)}" + (f" ({hint})" if hint else ""))
    top = LARGEST.get(key)
    if top is not None and value is not None and value > top:
        raise UserError(f"{key}={value} is more than {top:,}, the largest this trainer accepts: give a smaller value")


def _leaves(cfg, prefix: str = ""):
    """(dotted key, value) of every leaf, lists as plain lists."""
    for k in cfg.keys():
        node, full = cfg._get_node(k), f"{prefix}{k}"
        if isinstance(node, DictConfig):
            yield from _leaves(node, full + ".")
        else:
            try:
                value = cfg[k]
                value = OmegaConf.to_container(value, resolve=True) if isinstance(value, ListConfig) else value
            except InterpolationResolutionError:  # a ${hydra:...}, resolved in the run (see _check_resolves)
                continue
            yield full, value


def check_values(cfg) -> None:
    """Every key of the composed config against its rule (VALUES, else the shipped types)."""
    for key, value in _leaves(cfg):
        rule = None if key.startswith(_FORMULAS) else rule_of(key)
        if rule is not None:
            check_value(key, value, rule)


_warned: set[str] = set()


def warn(message: str) -> None:
    """One line on stderr, once per process: for values a user may mean (the run goes on)."""
    if message not in _warned:
        _warned.add(message)
        print(f"warning: {message}", file=sys.stderr)


def check_config(cfg) -> None:
    """Values that compose fine but cannot train: one line each, naming the fix."""
    m, t = cfg.model, cfg.train
    check_values(cfg)
    if m.width % m.head_dim:
        ok = [h for h in (16, 32, 64, 128) if m.width % h == 0]
        raise UserError(
            f"model.width={m.width} is not divisible by model.head_dim={m.head_dim}: "
            f"use a width that is a multiple of {m.head_dim}" + (f" or model.head_dim={ok[-1]}" if ok else "")
        )
    if t.batch_size % t.grad_accum:
        raise UserError(
            f"train.batch_size={t.batch_size} is not divisible by train.grad_accum={t.grad_accum}: "
            "the batch is split into grad_accum equal micro-batches; pick a divisor"
        )
    if t.device not in ("auto", "cpu", "cuda", "mps") and not str(t.device).startswith("cuda:"):
        raise UserError(f"train.device={t.device!r}: choose auto, cpu, cuda, cuda:N or mps")
    if str(t.device).startswith("cuda"):
        import torch  # here only: the config layer (and so data/, `python -m data.prepare`) loads no torch

        if not torch.cuda.is_available():
            raise UserError(
                f"train.device={t.device} but this torch ({torch.__version__}) sees no CUDA device: "
                "use train.device=cpu, or install a CUDA build of torch (README, 'Training on a GPU')"
            )
    if t.dtype not in ("fp32", "bf16", "fp16"):
        raise UserError(f"train.dtype={t.dtype!r}: choose fp32, bf16 or fp16")


# ----------------------------------------------------------------------------- derived values

def to_container(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def check_launch(strategy: str) -> None:
    """dist=ddp / fsdp2 shard over torchrun's processes: refuse a plain single process in one line
    (torchrun sets WORLD_SIZE, even for --nproc_per_node=1)."""
    if strategy != "none" and "WORLD_SIZE" not in os.environ:
        raise UserError(f"dist={strategy} runs as one process here; launch with torchrun --nproc_per_node=N "
                        f"train.py dist={strategy} (or leave dist={strategy} out)")
