"""The checks of a parameterization are claims, and each can fail: coordinate checks in width and
depth (TP5; the spectral paper, arXiv 2603.00541, Fig. 1a,b), spectral norms of weights and first
updates (its Cond. 3.1), and the training diagnostics (Kosson et al., arXiv 2510.19093; Everett et al.'s ε).

Shapes are tiny (width 32..128 at depth 2, or depth 2..8 at width 32; 3-4 steps; 2 seeds), so
the slopes are noisier than the tool's defaults (width 64..512, 10 steps, 3 seeds: μP's worst
|slope| there is 0.07). Tolerances, in log2-log2 slope:
- flatness: 0.2 (check.tolerance's default). The μP/CompleteP slopes below stay within ±0.12;
  the rules broken on purpose miss by 0.3 or more (SP LR: +1; no 1/m on the logits: +0.5).
- growth: >= 0.25 (check.grow_min). SP's h_L grows at +1.0 or more in width and +0.5 in depth here.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import cli
from conftest import TINY, run_cli
from checks import runner as check_cli, core as checks, coord_check, spectral_check
from param import registry
from records import read_jsonl
from train import run

WIDTH = ["check.sizes=[32,64,128]", "param.base_width=32", "model.depth=2"]
DEPTH = ["check.axis=depth", "check.sizes=[2,4,8]", "model.width=32", "param.base_depth=2"]
FAST = ["check.seeds=[1,2]", "train.steps=4", "model.context=32", "train.threads=1"]


@pytest.fixture
def check(data_root):
    """check(tool, *overrides) -> (sweep, verdict) of a sweep on the session's data."""

    def make(tool, *overrides):
        _, sweep, verdict, _ = check_cli.check_one(tool, [f"data.root={data_root}", *FAST, *overrides], "test")
        return sweep, verdict

    return make


def claim(verdict, quantity: str) -> dict:
    return next(r for r in verdict["claims"] if r["quantity"] == quantity)


# ----------------------------------------------------------------------------- coordinate checks

def test_mup_activations_stay_flat_in_width(check):
    sweep, verdict = check(coord_check, "param=mup", *WIDTH)
    assert verdict["status"] == "PASS", check_cli.format_verdict(sweep, verdict, coord_check.QUANTITIES)
    judged = {r["quantity"] for r in verdict["claims"]}
    assert judged == set(coord_check.QUANTITIES)  # every quantity, at every step (see claims())
    for q in ("embedding", "attn", "mlp", "h_L"):
        assert all(abs(checks.slope(sweep, q, t)) <= 0.2 for t in sweep.steps), q


def test_sp_logits_grow_with_width_under_adam(check):
    sweep, verdict = check(coord_check, "param=sp", *WIDTH)
    assert verdict["status"] == "GROWS"
    assert claim(verdict, "logits")["slope"] >= 0.25
    assert checks.slope(sweep, "h_L", -1) > 0.8  # the residual stream blows up faster still


@pytest.mark.parametrize("param", [["param=completep"], ["param=spectral"]], ids=["completep", "spectral k=2"])
def test_completep_and_spectral_k2_residual_stream_stays_flat_in_depth(check, param):
    sweep, verdict = check(coord_check, *param, *DEPTH)
    assert claim(verdict, "h_L")["status"] == "PASS"
    assert verdict["status"] == "PASS", check_cli.format_verdict(sweep, verdict, coord_check.QUANTITIES)


def test_sp_without_branch_scaling_grows_in_depth(check):
    sweep, verdict = check(coord_check, "param=sp", *DEPTH)
    assert verdict["status"] == "GROWS"
    assert checks.slope(sweep, "h_L", -1) >= 0.25


def test_k1_and_k2_rules_each_flatten_their_own_per_block_quantity(check):
    """docs/parameterizations.md §8.5: at init √L·‖α F‖_R is flat for k=1 and L·‖α F‖_R for k>=2; the first update
    L·‖α ΔF‖_R is flat for both. Each model fails the other's init claim."""
    per_block = ["check.quantities=[attn,mlp,attn_update,mlp_update]", "param=spectral"]
    k1, v1 = check(coord_check, *per_block, "param.block_depth=1", *DEPTH)
    k2, v2 = check(coord_check, *per_block, "param.block_depth=2", *DEPTH)
    assert v1["status"] == "PASS" and v2["status"] == "PASS"
    for b in ("attn", "mlp"):
        assert abs(checks.slope(k1, b, 0) + 0.5) <= 0.2 and abs(checks.slope(k2, b, 0) + 1.0) <= 0.2
        assert abs(checks.slope(k1, b, 0) + 1.0) > 0.2 and abs(checks.slope(k2, b, 0) + 0.5) > 0.2
        assert abs(checks.slope(k1, f"{b}_update", 1) + 1.0) <= 0.2 and abs(checks.slope(k2, f"{b}_update", 1) + 1.0) <= 0.2


def test_dropping_the_readout_multiplier_fails_the_width_check(check):
    """μP with `param.forward.readout=1` (no 1/m on the logits): the logits grow and the check says FAIL."""
    sweep, verdict = check(coord_check, "param=mup", "param.forward.readout=1", "check.quantities=[logits,h_L]", *WIDTH)
    assert verdict["status"] == "FAIL"
    assert claim(verdict, "logits")["status"] == "FAIL" and checks.slope(sweep, "logits", -1) > 0.3


@pytest.mark.parametrize("tied", ["true", "false"], ids=["tied", "untied"])
def test_the_sp_hidden_learning_rate_on_mup_fails_the_width_coordinate_check(check, tied):
    """μP with Adam's hidden LR left at η (param.adam.lr.hidden=1, not η/m): every hidden update
    grows ∝ m, and the branches and h_L slopes reach +1.5 or more. The judged steps and the seed
    band that let a correct untied μP pass do not let this one through."""
    sweep, verdict = check(coord_check, "param=mup", "param.adam.lr.hidden=1", f"model.tie_embeddings={tied}", *WIDTH)
    assert verdict["status"] == "FAIL"
    for q in ("attn", "mlp", "h_L", "mlp_update"):
        assert claim(verdict, q)["status"] == "FAIL" and checks.slope(sweep, q, -1) > 1.0, q


def test_untied_mup_passes_once_its_readout_transient_is_over(check):
    """Untied μP in TP5's Table-8 form (readout init σ, multiplier 1/m): at step 1 the logits still
    carry the random readout's init term, a sum of n random products that shrinks as m^-1/2,
    next to the first update's term, which does not (microsoft/mup's coord-check notes: the output
    may shrink at init, 'transient, after a few steps roughly flat'). Judging every step from 1
    on (the old protocol) FAILs on it; judging step 0 and the second half (the default) passes."""
    untied = ["param=mup", "model.tie_embeddings=false", "train.steps=6", *WIDTH]
    strict, v_strict = check(coord_check, *untied, "check.judge_from=1", "check.seed_band=0")
    assert checks.slope(strict, "logits", 1) < -0.2 and claim(v_strict, "logits")["status"] == "FAIL"
    sweep, verdict = check(coord_check, *untied)
    assert verdict["status"] == "PASS", check_cli.format_verdict(sweep, verdict, coord_check.QUANTITIES)
    assert claim(verdict, "logits")["steps"] == "3-6" and claim(verdict, "h_L")["steps"] == "0,3-6"


def test_a_zero_readout_is_flat_even_where_its_values_are_exactly_zero(check):
    """param.zero_readout=true (TP5's recommendation): the logits are 0 at init and the branches do
    not move in step 1 (no gradient passes a zero readout). Zero at every width is flat, not NaN."""
    sweep, verdict = check(coord_check, "param=mup", "model.tie_embeddings=false", "param.zero_readout=true", *WIDTH)
    assert (sweep.mean["logits"][0] == 0).all() and (sweep.mean["attn_update"][1] == 0).all()
    assert checks.slope(sweep, "logits", 0) == 0.0
    assert verdict["status"] == "PASS", check_cli.format_verdict(sweep, verdict, coord_check.QUANTITIES)
    # in depth too: the step-1 updates are 0 at every depth, which says nothing against L·‖α ΔF‖_R flat:
    # the claim is judged on the later steps (its verdict there, PASS or FAIL at 4 steps and 2 seeds, is
    # the measurement's, and sits near the tolerance at this size: slope -1.28 against -1 ± 0.2 + band)
    s_depth, v_depth = check(coord_check, "param=completep", "model.tie_embeddings=false", "param.zero_readout=true",
                             "check.quantities=[attn_update]", *DEPTH)
    assert (s_depth.mean["attn_update"][1] == 0).all()
    r = claim(v_depth, "attn_update")
    assert r["status"] in ("PASS", "FAIL") and r["step"] != 1 and math.isfinite(r["slope"])


def test_the_seed_band_widens_a_flat_claim_by_the_slopes_standard_error(check):
    sweep, verdict = check(coord_check, "param=mup", "check.quantities=[h_L]", *WIDTH)
    r = claim(verdict, "h_L")
    se = checks.slope_se(sweep, "h_L", r["step"])
    runs = sweep.runs["h_L"][:, sweep.steps.index(r["step"])]
    per_seed = [checks.fit_slope(sweep.sizes, v) for v in runs]
    assert se == pytest.approx(np.std(per_seed, ddof=1) / math.sqrt(2)) and se > 0
    assert r["band"] == pytest.approx(2.0 * se)  # check.seed_band = 2
    one, v_one = check(coord_check, "param=mup", "check.quantities=[h_L]", "check.seeds=1", *WIDTH)
    assert one.seeds == [1] and claim(v_one, "h_L")["band"] == 0.0  # one seed: no spread, no band


def _synthetic(exponent: float, spikes: dict) -> checks.Sweep:
    """Two seeds at widths 64..512, steps 0..4: h_L = (1 + t/10)·(m)^(exponent·t/4) and a probe loss
    falling by 0.3 nats a step, except the (size, seed, step) cells of `spikes`, where the loss jumps
    by 3 nats and h_L drops 16-fold, as a measured spike does (docs/coord_check.md)."""
    sizes, seeds, steps = [64, 128, 256, 512], [1, 2], list(range(5))
    h = np.array([[[(1 + t / 10) * (w / 64) ** (exponent * t / 4) for w in sizes] for t in steps] for _ in seeds])
    loss = np.array([[[4.8 - 0.3 * t for _ in sizes] for t in steps] for _ in seeds])
    for size, seed, step in spikes:
        k, t, j = seeds.index(seed), steps.index(step), sizes.index(size)
        h[k, t, j] /= 16
        loss[k, t, j] += 3.0
    runs = {"h_L": h, "loss": loss}
    mask = checks.spikes(loss, 1.0)
    return checks.Sweep("width", sizes, steps, seeds, {q: a.mean(0) for q, a in runs.items()},
                        {q: a.std(0) for q, a in runs.items()}, "synthetic", runs, mask)


FLAT_H = [checks.flat("h_L", 0.0, 0.2, "flat", (0, 1, 2, 3, 4))]


def test_a_probe_loss_spike_marks_only_its_own_cell():
    loss = np.array([[[4.8], [4.0], [3.5], [6.0], [3.4], [3.9]]])  # (seed, step, size): +2.5 at step 3, +0.5 at 5
    assert checks.spikes(loss, 1.0)[0, :, 0].tolist() == [False, False, False, True, False, False]
    assert not checks.spikes(loss, 3.0).any()


def test_a_spiked_seed_is_left_out_of_the_slope_and_named():
    """Seed 2 spikes at step 3 at widths 256 and 512: with those cells in the mean, the h_L slope at
    step 3 is -0.36 and the flatness claim FAILs; without them it is 0, and the verdict names them."""
    sweep = _synthetic(0.0, {(256, 2, 3), (512, 2, 3)})
    v = checks.judge(sweep, FLAT_H)
    assert v["status"] == "PASS" and v["spiked"] == [[256, 2, 3], [512, 2, 3]]
    assert checks.slope(sweep, "h_L", 3) == pytest.approx(0.0, abs=1e-9)
    sweep.spiked = None  # check.spike=0: every cell counts
    v_all = checks.judge(sweep, FLAT_H)
    assert v_all["status"] == "FAIL" and claim(v_all, "h_L")["step"] == 3 and claim(v_all, "h_L")["slope"] < -0.3


def test_leaving_spikes_out_does_not_hide_a_wrong_width_exponent():
    """h_L growing as m^0.5 by step 4 (a missing 1/m under Adam grows with the steps) still FAILs
    with the same spikes left out, and the hidden exponent is what the verdict reports."""
    v = checks.judge(_synthetic(0.5, {(256, 2, 3), (512, 2, 3)}), FLAT_H)
    assert v["status"] == "FAIL" and claim(v, "h_L")["slope"] == pytest.approx(0.5) and claim(v, "h_L")["step"] == 4


def test_a_claim_whose_trained_steps_all_spiked_is_undecided_not_passed():
    """Both seeds spike at width 512 at every trained step: no step keeps a seed there, and a claim
    judged at init alone says nothing about training, so the claim (and the check) is UNDECIDED."""
    sweep = _synthetic(0.0, {(512, seed, t) for seed in (1, 2) for t in (1, 2, 3, 4)})
    sweep.runs["loss"][:, 1:, 3] = [[8.0, 9.5, 11.0, 12.5]] * 2  # each step 1.5 nats above the last
    sweep.spiked = checks.spikes(sweep.runs["loss"], 1.0)
    v = checks.judge(sweep, FLAT_H)
    assert v["status"] == "UNDECIDED" and claim(v, "h_L")["status"] == "UNDECIDED"
    assert v["skipped_steps"] == [1, 2, 3, 4]
    assert "UNDECIDED" in check_cli.format_verdict(sweep, v, ["h_L"])
    # a failure that shows at a step that can be judged is still a FAIL
    bad = _synthetic(0.5, {(512, seed, t) for seed in (1, 2) for t in (1, 2, 3)})
    assert checks.judge(bad, FLAT_H)["status"] == "FAIL"


def test_clipping_ordinary_steps_is_counted_per_size_and_warned_about():
    sweep = _synthetic(0.0, {(512, 2, 3)})
    norms = np.full((2, 5, 4), 0.5)
    norms[:, 0] = np.nan  # no step before step 1
    norms[:, 1:3, 0] = 3.0  # width 64: its first two steps above the clip
    norms[1, 4, 3] = 40.0  # width 512 seed 2: the step after its spike (the spike's own gradient)
    sweep.runs["grad_norm"], sweep.clip = norms, 1.0
    assert checks.clipped(sweep) == {64: (4, 8), 128: (0, 8), 256: (0, 8), 512: (0, 7)}
    text = check_cli.format_verdict(sweep, checks.judge(sweep, FLAT_H), ["h_L"])
    assert "warning: train.grad_clip=1 clipped ordinary steps" in text and "64: 4 of 8" in text
    sweep.clip = 5.0
    assert "warning" not in check_cli.format_verdict(sweep, checks.judge(sweep, FLAT_H), ["h_L"])


def test_matrix_rows_are_picked_by_words():
    rows = check_cli.matrix_rows("completep untied depth,mup tied width")
    assert [(r[0], r[1], "model.tie_embeddings=true" in r[2]) for r in rows] == [
        ("mup", "width", True), ("completep", "depth", False)]
    assert len(check_cli.matrix_rows("untied width")) == 9
    with pytest.raises(cli.UserError, match="matches no row"):
        check_cli.matrix_rows("nothing")


def test_completep_without_branch_scaling_fails_the_depth_check(check):
    """CompleteP with the 1/L branch multiplier removed (param.forward.branch=1) fails its depth claims."""
    _, verdict = check(coord_check, "param=completep", "param.forward.branch=1", *DEPTH)
    assert verdict["status"] == "FAIL"
    assert claim(verdict, "attn")["status"] == "FAIL"


# ----------------------------------------------------------------------------- spectral norms

def test_power_iteration_finds_the_largest_singular_value():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(96, 32, generator=g)
    exact = torch.linalg.svdvals(a)[0].item()
    assert spectral_check.sigma_max(a, 50, torch.Generator().manual_seed(1)) == pytest.approx(exact, rel=5e-3)
    assert spectral_check.rms_norm(a, 32, 96, 50, torch.Generator().manual_seed(1)) == pytest.approx(math.sqrt(32 / 96) * exact, rel=5e-3)


def test_weight_and_update_norms_are_flat_in_width_under_mup_and_grow_under_sp(check):
    mup, v_mup = check(spectral_check, "param=mup", *WIDTH)
    sp, v_sp = check(spectral_check, "param=sp", *WIDTH)
    assert v_mup["status"] == "PASS" and v_sp["status"] == "GROWS"
    for role in ("attn_qkv", "attn_out", "mlp_in", "mlp_out"):
        assert abs(checks.slope(mup, f"W.{role}")) <= 0.2 and abs(checks.slope(mup, f"dW.{role}")) <= 0.2
        assert checks.slope(sp, f"W.{role}") == pytest.approx(0.5, abs=0.2)  # σ fixed: ‖W‖_R ∝ √n
        assert checks.slope(sp, f"dW.{role}") == pytest.approx(1.0, abs=0.2)  # sign-like update: ∝ n


def test_muon_kimi_update_norm_is_0_2_lr_sqrt_max_fan_so_flat_under_mup_and_sqrt_width_under_sp(check):
    """Muon-Kimi: ‖ΔW‖_2 = 0.2·η_l·√max(n_in, n_out) (the spectral paper's Eq. 9), so ‖ΔW‖_R ∝ √n under SP (η) and
    flat under μP (η/√m, its Table 4 with r = 1)."""
    mup, v_mup = check(spectral_check, "param=mup", "optim=muon_kimi", "optim.weight_decay=0", *WIDTH)
    sp, v_sp = check(spectral_check, "param=sp", "optim=muon_kimi", "optim.weight_decay=0", *WIDTH)
    assert v_mup["status"] == "PASS" and v_sp["status"] == "GROWS"
    for role in ("attn_qkv", "attn_out", "mlp_in", "mlp_out"):
        assert abs(checks.slope(mup, f"dW.{role}")) <= 0.1
        assert checks.slope(sp, f"dW.{role}") == pytest.approx(0.5, abs=0.1)


def test_the_sp_learning_rate_on_mup_fails_the_update_check(check):
    """μP with Adam's hidden LR left at η (param.adam.lr.hidden=1): ‖ΔW‖_R grows ∝ m, FAIL."""
    _, verdict = check(spectral_check, "param=mup", "param.adam.lr.hidden=1", *WIDTH)
    assert verdict["status"] == "FAIL"
    assert claim(verdict, "dW.mlp_in")["status"] == "FAIL" and claim(verdict, "W.mlp_in")["status"] == "PASS"


def test_spectral_k2_update_norms_follow_the_depth_rules(check):
    sweep, verdict = check(spectral_check, "param=spectral", *DEPTH)
    assert verdict["status"] == "PASS"
    assert checks.slope(sweep, "dW.attn_out") == pytest.approx(-1.0, abs=0.2)  # r·α·‖ΔW‖_R flat


# ----------------------------------------------------------------------------- command line and files

def test_coord_check_writes_csv_json_and_one_png_per_quantity(data_root, tmp_path, capsys):
    args = [f"data.root={data_root}", *FAST, "param=mup", *WIDTH, "check.seeds=[1]", "--out", str(tmp_path)]
    assert check_cli.main(coord_check, "coord_check", args) == 0
    printed = capsys.readouterr().out
    assert "overall: PASS" in printed
    assert {p.name for p in tmp_path.glob("*.png")} == {f"{q}.png" for q in coord_check.QUANTITIES}
    doc = json.loads((tmp_path / "check.json").read_text())
    assert doc["verdict"]["status"] == "PASS" and set(doc["slopes"]) == set(coord_check.QUANTITIES)
    rows = (tmp_path / "values.csv").read_text().splitlines()
    assert rows[0] == "axis,size,step,quantity,mean,std,seeds" and any(",attn.1," in r for r in rows)
    # each seed's values, and the diagnostics the spike rule and docs/coord_check.md read
    runs = doc["runs"]
    assert {"loss", "train_loss", "grad_norm", "blocks_sum", "embedding_update"} <= set(runs)
    assert len(runs["loss"]) == 1 and len(runs["loss"][0]) == 5 and len(runs["loss"][0][0]) == 3  # seeds, steps 0-4, sizes
    assert runs["grad_norm"][0][0] == [None] * 3 and all(g > 0 for g in runs["grad_norm"][0][1])  # no step before step 1
    assert doc["verdict"]["spiked"] == [] and set(doc["clipped"]) == {"32", "64", "128"}


def test_help_prints_the_protocol_and_the_flags(capsys):
    assert check_cli.main(coord_check, "coord_check", ["--help"]) == 0
    out = capsys.readouterr().out
    assert "Coordinate check" in out and "--matrix" in out and "check.seeds" in out
    with pytest.raises(SystemExit) as e:
        check_cli.main(coord_check, "coord_check", ["param=mup", "--out"])
    err = capsys.readouterr().err.splitlines()
    assert e.value.code == 2 and err[-1] == "python -m checks.coord_check: error: argument --out: expected one argument"


def test_json_flag_prints_slopes_and_verdict(data_root, tmp_path):
    proc = run_cli("-m", "checks.spectral_check", f"data.root={data_root}", *FAST, "check.seeds=[1]", "param=mup", *WIDTH,
                   "--json", "--no-plot", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdict"]["status"] == "PASS" and math.isfinite(doc["slopes"]["dW.mlp_in"])


def test_sizes_below_the_base_width_and_a_one_head_model_are_named(data_root, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_warned", set())
    checks.compose([f"data.root={data_root}", "check.sizes=[16,32,64]", "param.base_width=32"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("warning: ") for line in err)
    assert "param.base_width=32 (m = 0.5 < 1)" in err[0]
    assert "1 attention head" in err[1] and "width 16" in err[1]
    checks.compose([f"data.root={data_root}", "check.sizes=[64,128,256]"])
    assert capsys.readouterr().err == ""  # m >= 1 and 4 heads: nothing to say


def test_verdict_matrix_runs_each_configuration_and_prints_a_markdown_table(data_root):
    matrix = [("mup", "width", ["param=mup", "model.tie_embeddings=false", "check.axis=width", *WIDTH]),
              ("abc", "width", ["param=abc", "model.tie_embeddings=true", "check.axis=width", *WIDTH])]
    rows = check_cli.run_matrix(coord_check, "test", [f"data.root={data_root}", *FAST], matrix)
    assert [(r["param"], r["embeddings"], r["status"]) for r in rows] == [("mup", "untied", "PASS"), ("abc", "tied", "not run")]
    assert "tie_embeddings=false" in rows[1]["worst"]  # why it was not run: abc needs an untied readout
    table = check_cli.matrix_table(rows, markdown=True).splitlines()
    assert table[0].startswith("| param | embeddings | axis |") and len(table) == 4
    assert table[2].startswith("| mup | untied | width | 32,64,128 | 2 | PASS |")


def test_the_verdict_matrix_has_every_parameterization_of_conf_param():
    rows = {(label, axis, "model.tie_embeddings=true" in o) for label, axis, o in check_cli.MATRIX}
    selected = {(o[0], axis, "model.tie_embeddings=true" in o) for _, axis, o in check_cli.MATRIX}  # o[0]: param=<name>
    for name in registry.names():  # every parameterization, tied and untied
        assert {(f"param={name}", "width", True), (f"param={name}", "width", False)} <= selected, name
    for label, overrides, in_depth, ties in check_cli.PARAMS:  # and in depth where it makes a depth claim
        assert in_depth == check_cli.claims_depth(overrides), label
        assert in_depth == all((label, "depth", tied) in rows for tied in ties), label
    # a parameterization no row names gets its own rows, labelled by its overrides
    added = check_cli.shipped_rows(check_cli.PARAMS[:2])[2:]
    assert [(label, in_depth) for label, _, in_depth, _ in added] == [
        ("depth_mup", True), ("completep", True), ("spectral param.block_depth=1", True), ("spectral", True), ("abc", False)]


@pytest.mark.parametrize("overrides, message", [
    (["check.sizes=[64,128]"], "a slope needs at least 3"),
    (["check.seeds=abc"], "check.seeds=abc must be a non-empty list"),
    (["check.seed_band=-1"], "check.seed_band=-1"),
    (["check.spike=-1"], "check.spike=-1"),
    (["--rows", "completep"], "--rows picks rows of the --matrix table"),
    (["check.judge_from=11"], "check.judge_from=11"),
    (["check.batches=same"], "check.batches='same'"),
    (["check.quantities=[h_l]"], "unknown quantity 'h_l'"),
    (["check.axis=height"], "choose width or depth"),
    (["check.sizes=[40,80,160]"], "check.sizes: at model.width=40"),
    (["check.expect=maybe"], "check.expect='maybe'"),
])
def test_bad_check_settings_get_one_line(data_root, capsys, overrides, message):
    with pytest.raises(SystemExit) as exc:
        cli.guard(check_cli.main)(coord_check, "coord_check", [f"data.root={data_root}", *overrides, "--no-plot"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.startswith("error: ") and "\n" not in err and message in err


# ----------------------------------------------------------------------------- training diagnostics

def test_diagnostics_log_the_weight_decay_quantities_and_change_nothing(tiny_cfg, tmp_path):
    on = run(tiny_cfg("++diagnostics.interval=5", "++diagnostics.per_layer=true", "optim.weight_decay=0.1"), tmp_path / "on")
    off = run(tiny_cfg("optim.weight_decay=0.1"), tmp_path / "off")
    rec_on, rec_off = read_jsonl(tmp_path / "on" / "metrics.jsonl"), read_jsonl(tmp_path / "off" / "metrics.jsonl")
    assert not any(k.startswith("diag/") for r in rec_off for k in r)
    diag = [r for r in rec_on if any(k.startswith("diag/") for k in r)]
    assert [r["step"] for r in diag] == [5, 10, 15, 20]
    for r in diag:
        for role in ("attn_qkv", "attn_out", "mlp_in", "mlp_out"):
            m = {k.rsplit("/", 1)[1]: v for k, v in r.items() if k.startswith(f"diag/{role}/")}
            assert set(m) == {"rel_update", "rel_update_eq", "weight_rms", "rrc", "align_ratio", "eps_frac"}
            assert all(isinstance(v, float) and math.isfinite(v) for v in m.values()), m
            assert 0 < m["rel_update"] < 1 and 0 < m["rrc"] < 1 and 0 < m["weight_rms"] < 1
            assert 0.1 < m["align_ratio"] < 50  # α_ΔW/α_W: ≈ √C early in training (Kosson et al.), C = 32 or 128 here
            assert 0 <= m["eps_frac"] <= 1
        layer = {k.rsplit("/", 1)[1]: v for k, v in r.items() if k.startswith("diag/blocks.1.mlp.fc.weight/")}
        assert layer["align_ratio"] == pytest.approx(layer["rrc"] / layer["rel_update"])  # Kosson et al.'s definition
    # √(2·η_t·λ) from the step's LR (cosine schedule) and λ = 0.1 (hidden wd under SP)
    lr10 = next(r["lr"] for r in rec_on if r["step"] == 10 and "lr" in r)
    assert diag[1]["diag/mlp_in/rel_update_eq"] == pytest.approx(math.sqrt(2 * lr10 * 0.1))
    loss = lambda recs: [r["train_loss"] for r in recs if "train_loss" in r and r["step"] % 5 == 0]  # noqa: E731
    assert loss(rec_on) == loss(rec_off)  # the diagnostics leave the trajectory untouched
    assert on["final_val_loss"] == off["final_val_loss"]


def test_diagnostics_interval_must_be_a_non_negative_integer(tiny_cfg, tmp_path):
    with pytest.raises(cli.UserError, match="diagnostics.interval=-1"):
        run(tiny_cfg("++diagnostics.interval=-1", "train.steps=1"), tmp_path)


def test_eps_fraction_counts_entries_whose_root_second_moment_is_below_eps():
    from optim.diagnostics import eps_counts

    w = torch.nn.Parameter(torch.zeros(4, 4))
    opt = torch.optim.AdamW([w], lr=1e-3, eps=1e-3, betas=(0.9, 0.99), weight_decay=0.0)
    w.grad = torch.tensor([[1e-6] * 4, [1.0] * 4, [1.0] * 4, [1.0] * 4])
    opt.step()
    assert eps_counts([("w", w)], opt) == {"w": (4, 16)}  # v̂ = g² after one step: √v̂ = 1e-6 < ε on row 0
    assert eps_counts([("w", w)], torch.optim.SGD([w], lr=1.0)) == {}  # no second moment, no count
