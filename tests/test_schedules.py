"""LR schedules (issue 5) against docs/parameterizations.md §1 and §6.3.

Every expected value is written out here from the schedule's definition. Conventions (the papers
leave off-by-ones open; these are the ones checked): steps are 0-based optimizer steps t of T;
linear warmup over W steps gives (t+1)/W, so it never trains at LR 0 and reaches the peak on step
W-1; the decay runs over progress p = (t-W)/(T-W) from 1 at t = W to the floor min_lr_ratio at t = T
(the step after the last); wsd's decay starts at T - decay.

The extra warmups of Kosson et al. (docs/parameterizations.md §6.3), for hidden-matrix groups only:
  exponential  s_t = m^min(0, t/T_W - 1)                                    (Eq. 12)
  decay_away   s_t = (1 + (m^2 - 1) * prod_{tau<=t} (1 - eta_tau*lambda)^2)^(-1/2)   (our reading of Eq. 13 [I])
with eta_tau the hidden matrices' scheduled LR (peak x base factor) and lambda their torch weight decay.
"""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch

import assemble
import cli
from model import GPT, HIDDEN_ROLES
from optim import build_optimizer, lr_factor, make_schedule
from param import apply_init, build_table, model_config


@functools.lru_cache(maxsize=None)
def _hydra(choices: tuple[str, ...]):
    return cli.compose(list(choices))


def cfg_of(*overrides: str):
    """cli.compose(overrides) with Hydra run once per choice of config groups; value overrides are parsed
    with Hydra's grammar and set on a copy (unknown keys still fail: the config is in struct mode)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    cfg = copy.deepcopy(_hydra(tuple(o.input_line for o in parsed if "." not in o.key_or_group)))
    for o in parsed:
        if "." in o.key_or_group:
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
    return cfg


def test_cfg_of_equals_cli_compose():
    from omegaconf import OmegaConf

    ov = ("schedule=wsd", "schedule.decay=30", "schedule.decay_shape=cosine", "train.steps=100", "schedule.extra_warmup=exponential")
    assert OmegaConf.to_container(cfg_of(*ov)) == OmegaConf.to_container(cli.compose(list(ov)))


def sched(name, *overrides, steps=100):
    cfg = cfg_of(f"schedule={name}", f"train.steps={steps}", *(f"schedule.{o}" for o in overrides))
    return cfg.schedule


def factors(s, steps, at):
    return [lr_factor(t, steps, s) for t in at]


# ----------------------------------------------------------------------------- base schedules by hand

def test_cosine_warms_up_linearly_then_decays_by_a_half_cosine_to_min_lr():
    s = sched("cosine", "warmup=10", "min_lr_ratio=0.1", steps=100)
    # warmup: 1/10 at t=0, 5/10 at t=4, peak at t=9; decay p = (t-10)/90
    got = factors(s, 100, [0, 4, 9, 10, 55, 99, 100])
    want = [0.1, 0.5, 1.0, 1.0, 0.1 + 0.9 * 0.5,
            0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 89 / 90)), 0.1]
    assert got == pytest.approx(want, rel=1e-12)
    assert lr_factor(32, 100, s) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 22 / 90)), rel=1e-12)


def test_cosine_is_monotone_after_warmup_and_never_below_min_lr():
    s = sched("cosine", "warmup=10", "min_lr_ratio=0.1", steps=100)
    f = factors(s, 100, range(100))
    assert all(a >= b for a, b in zip(f[9:], f[10:])) and min(f) >= 0.1 - 1e-12 and f[0] > 0


def test_linear_decays_to_min_lr_along_a_straight_line():
    s = sched("linear", "warmup=20", "min_lr_ratio=0.0", steps=200)
    got = factors(s, 200, [0, 19, 20, 110, 155, 199, 200])
    assert got == pytest.approx([1 / 20, 1.0, 1.0, 0.5, 0.25, 1 / 180, 0.0], rel=1e-12, abs=1e-15)
    s = sched("linear", "warmup=20", "min_lr_ratio=0.2", steps=200)
    assert factors(s, 200, [110, 200]) == pytest.approx([0.2 + 0.8 * 0.5, 0.2], rel=1e-12)


def test_constant_is_warmup_then_the_peak():
    s = sched("constant", "warmup=5", steps=50)
    assert factors(s, 50, [0, 2, 4, 5, 25, 49]) == pytest.approx([0.2, 0.6, 1.0, 1.0, 1.0, 1.0], rel=1e-12)
    s = sched("constant", "warmup=0", steps=50)
    assert factors(s, 50, [0, 49]) == [1.0, 1.0]


@pytest.mark.parametrize("name", ["cosine", "linear", "wsd", "constant"])
def test_warmup_as_a_fraction_of_training(name):
    """warmup 0.25 of 40 steps = 10 steps, the same schedule as warmup=10."""
    frac, steps = sched(name, "warmup=0.25", steps=40), sched(name, "warmup=10", steps=40)
    assert factors(frac, 40, [0, 4, 9]) == pytest.approx([0.1, 0.5, 1.0], rel=1e-12)
    assert factors(frac, 40, range(41)) == factors(steps, 40, range(41))


def test_the_yaml_default_linear_warmup_is_ten_percent():
    """Kosson et al.'s recipe (docs/parameterizations.md §6.4): 10% linear warmup + linear decay."""
    s = sched("linear", steps=200)
    assert factors(s, 200, [0, 19, 20]) == pytest.approx([1 / 20, 1.0, 1.0], rel=1e-12)


def test_zero_warmup_starts_at_the_peak():
    s = sched("cosine", "warmup=0", "min_lr_ratio=0.0", steps=10)
    assert factors(s, 10, [0, 5, 10]) == pytest.approx([1.0, 0.5, 0.0], abs=1e-12)


WSD_SHAPES = {  # the decay curve at progress p, from 1 at p=0 to 0 at p=1
    "linear": lambda p: 1 - p,
    "cosine": lambda p: 0.5 * (1 + math.cos(math.pi * p)),
    "sqrt": lambda p: 1 - math.sqrt(p),
}


@pytest.mark.parametrize("shape", list(WSD_SHAPES))
def test_wsd_is_warmup_stable_then_a_final_decay_of_the_chosen_shape(shape):
    """T = 200, warmup 5% (10 steps), decay 20% (the last 40 steps, from t = 160), floor 0.1."""
    s = sched("wsd", "warmup=0.05", "decay=0.2", f"decay_shape={shape}", "min_lr_ratio=0.1", steps=200)
    curve = WSD_SHAPES[shape]
    at = [0, 9, 10, 100, 159, 160, 170, 180, 190, 200]
    want = [0.1, 1.0, 1.0, 1.0, 1.0, 1.0] + [0.1 + 0.9 * curve(p) for p in (0.25, 0.5, 0.75)] + [0.1]
    assert factors(s, 200, at) == pytest.approx(want, rel=1e-12)
    # the decay given in steps is the same schedule
    assert factors(sched("wsd", "warmup=10", "decay=40", f"decay_shape={shape}", "min_lr_ratio=0.1", steps=200), 200, at) == \
        pytest.approx(want, rel=1e-12)


def test_wsd_quarter_way_values_tell_the_shapes_apart():
    got = {shape: lr_factor(170, 200, sched("wsd", "warmup=10", "decay=40", f"decay_shape={shape}", "min_lr_ratio=0", steps=200))
           for shape in WSD_SHAPES}
    assert got == pytest.approx({"linear": 0.75, "cosine": 0.5 + 0.25 * math.sqrt(2), "sqrt": 0.5}, rel=1e-12)


# ----------------------------------------------------------------------------- with the table: groups and extra warmups

# a small model whose width is 4x its base (m = 4), so the extra warmups start at 1/4
SMALL = ("model.width=64", "model.depth=2", "model.head_dim=16", "model.context=16", "model.vocab_size=64",
         "param.base_width=16", "param.base_depth=1")


def build(*overrides, steps=100):
    cfg = cfg_of(*SMALL, f"train.steps={steps}", *overrides)
    t = build_table(cfg, assemble.vocab_size(cfg))
    torch.manual_seed(0)
    model = GPT(model_config(cfg.model, assemble.vocab_size(cfg)), t.scales())
    apply_init(model, t)
    return cfg, t, build_optimizer(cfg, model, t, "cpu"), make_schedule(cfg, t)


def is_hidden_group(group, table) -> bool:
    roles = {table.by_name()[n].role in HIDDEN_ROLES for n in group["names"]}
    assert len(roles) == 1, "a param group mixes hidden matrices with other tensors"
    return roles.pop()


def hidden_lr_wd(t):
    pairs = {(r.lr, r.weight_decay) for r in t.rows if r.role in HIDDEN_ROLES}
    assert len(pairs) == 1
    return pairs.pop()


def exponential_by_hand(m, tw, t):
    return m ** min(0.0, t / tw - 1.0)


def test_exponential_extra_warmup_by_hand():
    """Eq. 12 with m = 4, T_W = 50% of 100 steps: 1/4 at t=0, 4^-0.5 = 1/2 at t=25, 1 from t=50 on."""
    cfg, t, _, s = build("param=sp", "schedule=cosine", "schedule.warmup=10", "schedule.extra_warmup=exponential",
                         "schedule.extra_warmup_steps=0.5")
    assert t.globals["m"] == 4.0
    extra = [s.factors(i)[1] for i in (0, 10, 25, 49, 50, 75, 99)]
    assert extra == pytest.approx([0.25, 4 ** -0.8, 0.5, 4 ** (-1 / 50), 1.0, 1.0, 1.0], rel=1e-12)
    # it multiplies the base schedule, which is unchanged
    for i in range(100):
        assert s.factors(i) == pytest.approx((lr_factor(i, 100, cfg.schedule), exponential_by_hand(4.0, 50, i)), rel=1e-12)


def test_exponential_extra_warmup_length_in_steps():
    _, _, _, s = build("param=sp", "schedule=constant", "schedule.extra_warmup=exponential", "schedule.extra_warmup_steps=20")
    assert [s.factors(i)[1] for i in (0, 10, 20, 99)] == pytest.approx([0.25, 0.5, 1.0, 1.0], rel=1e-12)


@pytest.mark.parametrize("wd_mode", ["coupled", "independent"])
def test_decay_away_extra_warmup_by_hand_from_the_hidden_lr_and_wd(wd_mode):
    """s_t = (1 + (m^2-1) prod_{tau<=t}(1 - eta_tau*lambda)^2)^(-1/2), eta_tau = hidden peak LR x base factor."""
    lam = 0.5 if wd_mode == "coupled" else 0.02  # independent: lambda is the per-step decay at peak LR
    cfg, t, _, s = build("param=sp", "optim=adamw", "optim.lr=0.04", f"optim.weight_decay={lam}", f"optim.wd_mode={wd_mode}",
                         "schedule=cosine", "schedule.warmup=10", "schedule.extra_warmup=decay_away")
    eta, wd = hidden_lr_wd(t)
    assert eta * wd == pytest.approx(0.02, rel=1e-12)  # 0.04 x 0.5, or the independent per-step decay 0.02
    prod, m = 1.0, 4.0
    for i in range(100):
        prod *= (1.0 - eta * lr_factor(i, 100, cfg.schedule) * wd) ** 2
        want = (1.0 + (m * m - 1.0) * prod) ** -0.5
        assert s.factors(i)[1] == pytest.approx(want, rel=1e-10), i
    # it starts near 1/m (one factor already in the product at t=0) and rises towards 1 (timescale ~1/(2*eta*lambda))
    ex = [s.factors(i)[1] for i in range(100)]
    assert 0.25 < ex[0] < 0.26 and all(a < b for a, b in zip(ex, ex[1:])) and 0.5 < ex[-1] < 1


def test_decay_away_reads_the_hidden_lr_and_wd_of_the_table_under_mup():
    """Under muP the hidden (eta/m, m*lambda) has the same product as SP's (eta, lambda): same warmup factors."""
    common = ("optim.lr=0.04", "optim.weight_decay=0.5", "schedule=constant", "schedule.warmup=0",
              "schedule.extra_warmup=decay_away")
    _, t_sp, _, s_sp = build("param=sp", *common)
    _, t_mup, _, s_mup = build("param=mup", *common)
    assert hidden_lr_wd(t_mup)[0] == pytest.approx(hidden_lr_wd(t_sp)[0] / 4)
    assert [s_mup.factors(i)[1] for i in range(100)] == pytest.approx([s_sp.factors(i)[1] for i in range(100)], rel=1e-12)


EXTRA_CASES = [("exponential", "adamw"), ("decay_away", "adamw"), ("exponential", "muon_kimi"), ("decay_away", "lion")]


@pytest.mark.parametrize("extra, optim", EXTRA_CASES, ids=[f"{e} applies to hidden matrices only ({o})" for e, o in EXTRA_CASES])
def test_extra_warmup_applies_to_hidden_matrix_groups_only(extra, optim):
    cfg, t, opt, s = build("param=sp", f"optim={optim}", "optim.weight_decay=0.3", "schedule=cosine", "schedule.warmup=10",
                           f"schedule.extra_warmup={extra}", "schedule.extra_warmup_steps=40")
    flags = {is_hidden_group(g, t): g["extra_warmup"] for g in opt.param_groups}
    assert len(opt.param_groups) >= 2 and set(flags) == {True, False}
    for g in opt.param_groups:
        assert g["extra_warmup"] == is_hidden_group(g, t), g["names"][:1]
    for step in (0, 5, 20, 60, 99):
        base, ex = s.factors(step)
        assert base == pytest.approx(lr_factor(step, 100, cfg.schedule), rel=1e-12)
        if step < 20:
            assert ex < 1.0
        assert s.apply(opt, step) == base
        for g in opt.param_groups:
            want = g["peak_lr"] * base * (ex if is_hidden_group(g, t) else 1.0)
            assert g["lr"] == pytest.approx(want, rel=1e-12), (step, g["names"][:1])


@pytest.mark.parametrize("optim", ["adamw", "muon_kimi", "sgd"])
@pytest.mark.parametrize("name", ["cosine", "wsd"])
def test_the_schedule_multiplies_each_groups_own_peak_lr(name, optim):
    """muP gives the groups different peak LRs; with extra_warmup=none their ratios never change."""
    cfg, t, opt, s = build("param=mup", f"optim={optim}", f"schedule={name}", "schedule.warmup=10")
    rows = t.by_name()
    assert all(g["peak_lr"] == rows[g["names"][0]].lr for g in opt.param_groups)
    peaks = [g["peak_lr"] for g in opt.param_groups]
    assert len(set(peaks)) > 1
    for step in (0, 9, 30, 85, 99):
        base = s.apply(opt, step)
        assert base == pytest.approx(lr_factor(step, 100, cfg.schedule), rel=1e-12)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([p * base for p in peaks], rel=1e-12)


@pytest.mark.parametrize("optim", ["adamw", "lion", "muon_kimi"])
@pytest.mark.parametrize("schedule", [
    ("schedule=cosine", "schedule.warmup=10"),
    ("schedule=wsd",),
    ("schedule=linear", "schedule.extra_warmup=exponential"),
], ids=["cosine", "wsd", "linear+exponential"])
def test_independent_wd_stays_independent_of_the_peak_lr_whatever_the_schedule(schedule, optim):
    """docs/parameterizations.md §1: independent WD is torch weight_decay = lambda/eta_peak per group, so peak_lr x weight_decay (and the
    per-step decay lr_t x weight_decay at every step) is the same for two base LRs."""
    runs = []
    for lr in (1e-3, 4e-3):
        runs.append(build("param=mup", f"optim={optim}", f"optim.lr={lr}", "optim.weight_decay=1e-4", "optim.wd_mode=independent",
                          "optim.wd_on_vectors=true", *schedule))
    (_, _, a, sa), (_, _, b, sb) = runs
    assert [g["names"] for g in a.param_groups] == [g["names"] for g in b.param_groups]
    wd_a = [g["weight_decay"] for g in a.param_groups]
    for ga, gb in zip(a.param_groups, b.param_groups):
        assert gb["peak_lr"] == pytest.approx(4 * ga["peak_lr"], rel=1e-12)
        assert ga["weight_decay"] > 0
        assert ga["peak_lr"] * ga["weight_decay"] == pytest.approx(gb["peak_lr"] * gb["weight_decay"], rel=1e-12)
    for step in (0, 10, 50, 99):
        sa.apply(a, step)
        sb.apply(b, step)
        for ga, gb in zip(a.param_groups, b.param_groups):
            assert ga["lr"] * ga["weight_decay"] == pytest.approx(gb["lr"] * gb["weight_decay"], rel=1e-12)
    assert [g["weight_decay"] for g in a.param_groups] == wd_a  # the schedule never touches weight decay


# ----------------------------------------------------------------------------- mistakes: one-line UserErrors

def _one_line_error(fn, *needles):
    with pytest.raises(cli.UserError) as exc:
        fn()
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, msg
    return msg


def test_unknown_schedule_is_a_one_line_error_listing_the_choices():
    _one_line_error(lambda: cli.compose(["schedule=cosin"]), "schedule=cosin", "schedule=cosine", "wsd")
    cfg = cfg_of("schedule=cosine", "schedule.name=triangle")
    _one_line_error(lambda: make_schedule(cfg, build_table(cfg, assemble.vocab_size(cfg))), "triangle", "constant, cosine, linear, wsd")


BAD = [
    (("schedule.warmup=-5",), ("schedule.warmup=-5",)),
    (("schedule.warmup=-0.1",), ("schedule.warmup=-0.1",)),
    (("schedule.warmup=2.5",), ("schedule.warmup=2.5",)),
    (("schedule=wsd", "schedule.decay=-3"), ("schedule.decay=-3",)),
    (("schedule=wsd", "schedule.decay_shape=exp"), ("decay_shape", "sqrt")),
    (("schedule.extra_warmup=linear",), ("extra_warmup", "decay_away")),
    (("schedule.extra_warmup=exponential", "schedule.extra_warmup_steps=-10"), ("extra_warmup_steps",)),
    (("schedule.extra_warmup=decay_away", "optim.weight_decay=0"), ("decay_away", "optim.weight_decay")),
]


@pytest.mark.parametrize("overrides, needles", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_schedule_input_is_a_one_line_user_error(overrides, needles):
    cfg = cfg_of("model.vocab_size=64", *overrides)
    table = build_table(cfg, assemble.vocab_size(cfg))
    _one_line_error(lambda: make_schedule(cfg, table), *needles)


def test_a_bad_schedule_stops_train_run_with_a_user_error_before_any_step(tiny_cfg, tmp_path):
    from train import run

    with pytest.raises(cli.UserError, match=r"schedule\.warmup=-5"):
        run(tiny_cfg("schedule.warmup=-5"), tmp_path)
    assert not (tmp_path / "checkpoints").exists()
