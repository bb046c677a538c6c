"""An optimizer's scaling map (beside the table, as the parameterization's rules it applies): how the parameterization's per-role factors become the lr,
weight decay and eps handed to torch, per tensor.

Each optimizer belongs to a family whose rules the parameterization YAML states
(docs/parameterizations.md §2.2: AdamW, Adam, Lion share the `adam` rules; §2.3: `sgd`).
Weight decay modes (docs/parameterizations.md §1):
- coupled (PyTorch): weight_decay = λ · wd_factor; the per-step decay lr_t·wd follows the LR.
- independent: weight_decay = λ · wd_factor / η, so lr_group·wd_group = λ · lr_factor · wd_factor
  no longer depends on the base LR η (u-μP's `weight_decay /= lr`), and is width-invariant
  wherever the coupled columns make η·λ so (§2.2). λ is then the per-step decay at peak LR
  (e.g. 1e-4).
"""

from __future__ import annotations

from dataclasses import dataclass

import math

from omegaconf import OmegaConf

from cli import CONF_DIR, options
from errors import UserError
from model import HIDDEN_ROLES, MATRIX_ROLES
from param.expr import evaluate


WD_MODES = ("coupled", "independent")


@dataclass(frozen=True)
class OptSpec:
    """Which of the parameterization's rule families an optimizer reads (docs/parameterizations.md §2.2-§2.4).
    Hybrids apply `hidden` to hidden matrices and `family` to every other tensor."""

    family: str  # adam | sgd: every tensor (the non-hidden ones in a hybrid)
    eps: bool  # whether that part has an epsilon
    hidden: str | None = None  # muon | muon_kimi: the family of the hidden matrices in a hybrid
    derived: str | None = None  # adafactor: LR derived from the adam rules and the init (Everett)


@dataclass
class Hparams:
    lr: float
    weight_decay: float
    eps: float | None
    formulas: dict[str, str]


# what an optimizer YAML adds to its hyperparameters: how it is built (optim/build.py) and which
# rules it reads (here); a config saved before these fields existed gets them from the shipped file
REGISTRY_KEYS = ("_target_", "args", "speed", "rules")


def spec_config(o):
    """optim with the registry fields (REGISTRY_KEYS) of conf/optim/<name>.yaml wherever it lacks them."""
    if all(k in o for k in REGISTRY_KEYS):
        return o
    path = CONF_DIR / "optim" / f"{o.name}.yaml"
    if not path.is_file():
        raise UserError(f"optim={o.name!r} is unknown: choose one of {', '.join(options('optim'))} (or give optim._target_, "
                        "optim.args, optim.speed and optim.rules)")
    shipped = OmegaConf.load(path)
    return OmegaConf.merge({k: shipped[k] for k in REGISTRY_KEYS if k in shipped}, o)


def spec_of(o) -> OptSpec:
    """The rule families optim.rules names (conf/optim/<name>.yaml)."""
    r = spec_config(o).rules
    return OptSpec(str(r.family), eps=bool(r.eps), hidden=r.get("hidden"), derived=r.get("derived"))


def wd_on_vectors(o, p) -> bool:
    """optim.wd_on_vectors, or the parameterization's default when null (nanoGPT: no decay on
    biases and LayerNorm gains; the spectral paper decays them with λ)."""
    flag = o.get("wd_on_vectors")
    return bool(p.get("wd_on_vectors", False) if flag is None else flag)


def check(o, rules) -> None:
    spec = spec_of(o)
    for family in filter(None, (spec.family, spec.hidden)):
        if not rules.has_family(family):
            raise UserError(
                f"param={rules.name} has no scaling map for optim={o.name} (its YAML has no `{family}:` section; "
                "docs/parameterizations.md has no rule for this pair): choose another optimizer or add the section"
            )
    mode = o.get("wd_mode", "coupled")
    if mode not in WD_MODES:
        raise UserError(f"optim.wd_mode={mode!r}: choose coupled (PyTorch) or independent (η·λ fixed per tensor)")


def tensor_hparams(o, p, rules, role: str, vector: bool) -> Hparams:
    """lr, weight decay (the value torch gets) and eps of one tensor with lookup role `role`."""
    spec = spec_of(o)
    env = rules.env
    hidden = spec.hidden is not None and role in HIDDEN_ROLES
    family, has_eps = (spec.hidden, False) if hidden else (spec.family, spec.eps)
    base_lr = float(o.lr)
    lr_f = rules.optim(family, "lr", role)
    formulas = {"lr": lr_f.shown("η", env)}
    lr = base_lr * lr_f.value
    if spec.hidden is not None and not hidden and o.get("adamw_lr_ratio", 1.0) != 1.0:
        lr *= float(o.adamw_lr_ratio)  # the AdamW half of a hybrid (spectral paper: 1/10 for plain Muon)
        formulas["lr"] += f" x optim.adamw_lr_ratio={o.adamw_lr_ratio:g}"
    width_init = 1.0
    if spec.derived == "adafactor" and role in MATRIX_ROLES:  # the roles with an init std
        # Everett et al. 2024 (docs/parameterizations.md §2.4, §4 [I]): Adafactor scales its step by RMS(W) ∝ m^-b, so
        # c_Adafactor = c_Adam - b: divide the Adam factor by the width part m^-b of the init std
        # (its value over its value at m = 1: constants and depth factors such as 1/sqrt(2L) stay out).
        init_f = rules.init(role)
        at_base = evaluate(init_f.formula, {**env, "m": 1.0}, f"param={rules.name} init ({role})")
        if init_f.value == 0 or at_base == 0:
            raise UserError(f"param={rules.name} init ({role}): {init_f.formula!r} is 0, so optim=adafactor has no "
                            "init width factor to divide its LR by: give the init a nonzero formula or pick another optimizer")
        width_init = init_f.value / at_base
        lr /= width_init
        formulas["lr"] += f" / m^{math.log(width_init, env['m']) if env['m'] != 1 else 0:+.3g} (init's width factor)  [Everett: c = c_Adam - b]"
    wd = 0.0
    if not vector or wd_on_vectors(o, p):
        wd_f = rules.optim(family, "wd", role) if o.get("wd_scaling", True) else None
        # torch's Adafactor decays by lr·wd per step: keep lr·wd as the adam rules make it [I]
        factor = (wd_f.value if wd_f else 1.0) * width_init
        shown = wd_f.shown("λ", env) if wd_f else "λ (optim.wd_scaling=false)"
        if o.get("wd_mode", "coupled") == "independent":
            wd = float(o.weight_decay) * factor / float(o.lr)
            formulas["weight_decay"] = f"{shown} / η  (independent: lr·wd = λ·lr_factor·wd_factor)"
        else:
            wd = float(o.weight_decay) * factor
            formulas["weight_decay"] = shown
    else:
        formulas["weight_decay"] = "0 (vector; optim.wd_on_vectors=false)"
    eps = None
    if has_eps:
        if o.get("eps_scaling", True):
            eps_f = rules.optim(family, "eps", role)
            eps, formulas["eps"] = float(o.eps) * eps_f.value, eps_f.shown("ε", env)
        else:
            eps, formulas["eps"] = float(o.eps), "ε (optim.eps_scaling=false)"
    return Hparams(lr=lr, weight_decay=wd, eps=eps, formulas=formulas)
