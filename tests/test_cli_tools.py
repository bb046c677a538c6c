"""The small tools around a run: `python -m param` (help, --by-role, --diff), and the sweep
readers (a Hydra multirun dir, a W&B sweep id) behind `sweeptools.plot` and `sweeptools.best`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO

import cli
from errors import UserError
from param import registry
from param.__main__ import by_role, main as param_main
from param.table import build_table
from sweeptools import best, plot, results, spec
from sweeptools import run as runner


def table(*overrides):
    cfg = cli.compose(["model.vocab_size=64", *overrides])
    return build_table(cfg, 64)


# ----------------------------------------------------------------------------- python -m param

def test_param_help_prints_the_usage(capsys):
    param_main(["--help"])  # returns: exit 0 (tests/test_readme.py runs `python -m param --help` itself)
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m param") and "--by-role" in out and "--diff" in out


@pytest.mark.parametrize("argv, error", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--json", "--by-role"], "argument --by-role: not allowed with argument --json"),
    (["model.width=256", "--diff"], "argument --diff: expected at least one argument"),
])
def test_param_flags_are_parsed_by_argparse(capsys, argv, error):
    with pytest.raises(SystemExit) as e:
        param_main(argv)
    err = capsys.readouterr().err.splitlines()
    assert e.value.code == 2 and err[0].startswith("usage: python -m param") and err[-1] == f"python -m param: error: {error}"


def test_by_role_collapses_identical_blocks_with_their_count():
    t = table("model.depth=16", "param=mup")
    text = by_role(t)
    lines = text.splitlines()
    assert lines[0] == t.format().splitlines()[0]  # the same header
    rows = [l for l in lines if l.startswith(("wte", "wpe", "blocks", "ln_f"))]
    qkv = [l for l in rows if ".attn.qkv.weight" in l]
    assert qkv == [l for l in rows if l.startswith("blocks.[0-15].attn.qkv.weight")] and qkv[0].split()[1] == "16"
    per_block = {r.name.split(".", 2)[2] for r in t.rows if r.block is not None}
    assert len(rows) == len(per_block) + 4  # one row per kind of block tensor, plus wte, wpe, ln_f.weight/bias
    assert "per-tensor factors" in text  # the formulas stay


def test_by_role_keeps_blocks_whose_rows_differ_apart():
    t = table("model.depth=4")
    t.rows[[r.name for r in t.rows].index("blocks.3.attn.qkv.weight")].lr *= 2  # one block unlike the others
    rows = [l.split()[:2] for l in by_role(t).splitlines() if ".attn.qkv.weight" in l]
    assert rows == [["blocks.[0-2].attn.qkv.weight", "3"], ["blocks.[3].attn.qkv.weight", "1"]]


def test_diff_shows_layernorm_init_as_ones_and_zeros(capsys):
    param_main(["--diff", "param=mup"])
    out = capsys.readouterr().out
    gain = next(l for l in out.splitlines() if l.startswith("blocks.0.ln_attn.weight"))
    bias = next(l for l in out.splitlines() if l.startswith("blocks.0.ln_attn.bias"))
    assert gain.split()[1:4] == ["ones", "|", "ones"] and bias.split()[1:4] == ["zeros", "|", "zeros"]
    qkv = next(l for l in out.splitlines() if l.startswith("blocks.0.attn.qkv.weight"))
    assert "≠" not in qkv  # at the base shape (the default model) muP gives SP's init, lr, wd and eps
    param_main(["model.width=512", "--diff", "param=mup"])
    qkv = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("blocks.0.attn.qkv.weight"))
    assert qkv.split()[1:4] == ["0.02", "≠", "0.01"]  # sigma/sqrt(m), m = 4


def test_the_default_model_is_the_base_shape_of_every_parameterization():
    for param in registry.names():  # untied: abc needs it, and m and r do not depend on it
        g = table(f"param={param}", "model.tie_embeddings=false").globals
        assert (g["m"], g["r"]) == (1.0, 1.0), param
# ----------------------------------------------------------------------------- sweep readers

def multirun_dir(root: Path) -> Path:
    """What `python train.py -m param=sp,mup optim.lr=...` leaves, written by hand (no training):
    numbered job dirs with .hydra/overrides.yaml and summary.json, one job that never finished."""
    sweep = root / "multirun" / "2026-11-25" / "07-28-14"
    losses = {("sp", 2.0 ** -8): 2.3, ("sp", 2.0 ** -7): 2.1, ("sp", 2.0 ** -6): 2.2,
              ("mup", 2.0 ** -8): 2.4, ("mup", 2.0 ** -7): 2.25, ("mup", 2.0 ** -6): 2.05}
    for n, ((param, lr), loss) in enumerate(losses.items()):
        job = sweep / str(n)
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- train.steps=20\n- param={param}\n- optim.lr={lr}\n")
        (job / "summary.json").write_text(json.dumps(
            {"final_val_loss": loss, "best_val_loss": loss, "diverged": False, "tokens": 100, "wall_time_s": 1.5}))
    job = sweep / "6"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- train.steps=20\n- param=mup\n- optim.lr=0.03125\n")
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    return sweep


def test_a_hydra_multirun_dir_reads_as_results_rows(tmp_path):
    rows = results.read([str(multirun_dir(tmp_path))])
    assert len(rows) == 7 and rows[0]["param"] == "sp" and rows[0]["optim.lr"] == 2.0 ** -8 and rows[0]["train.steps"] == 20
    assert [r["status"] for r in rows] == ["done"] * 6 + ["failed"]  # no summary.json: failed or unfinished
    assert rows[5]["final_val_loss"] == 2.05 and rows[5]["run_dir"].endswith("07-28-14/5")


def test_plot_and_best_read_a_multirun_dir(tmp_path, capsys):
    sweep = multirun_dir(tmp_path)
    plot.main([str(sweep), "--json"])
    v = json.loads(capsys.readouterr().out)
    assert v["x"] == "optim.lr" and v["panel"] == ["param"] and v["failed_trials"] == 1
    assert v["panels"]["param=sp"]["sizes"]["null"]["optimum"] == 2.0 ** -7
    assert v["panels"]["param=mup"]["sizes"]["null"]["optimum"] == 2.0 ** -6
    assert Path(v["png"]) == sweep / "transfer.png" and (sweep / "transfer.png").exists()
    best.main([str(sweep)])
    assert capsys.readouterr().out.strip() == "train.steps=20 param=mup optim.lr=0.015625"


@pytest.mark.parametrize("text", ["someone/hptransfer/abcd1234", "my-team/proj.v2/Ab3", "me/p/sweeps/x1y2z3w4q5",
                                  "https://wandb.ai/me/p/sweeps/k0k0k0k0"])
def test_any_wandb_sweep_id_offline_says_it_needs_the_network(text, monkeypatch):
    import socket

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    with pytest.raises(UserError, match="needs the network") as e:
        plot.main([text])
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="needs the network"):
        best.main([text])


def test_a_local_path_is_never_taken_for_a_wandb_sweep(tmp_path):
    assert results.wandb_sweep_path("a/b/results.csv") is None  # a file name, not an id
    (tmp_path / "e" / "p").mkdir(parents=True)
    (tmp_path / "e" / "p" / "abc").mkdir()
    assert results.wandb_sweep_path(str(tmp_path / "e" / "p" / "abc")) is None  # it exists here


def test_octave_ticks_are_whole_octaves():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    plot.octave_ticks(ax, -10.5, -3)
    ticks = list(ax.get_xticks())
    assert ticks == list(range(-11, -2)) and all(float(k).is_integer() for k in ticks)
    assert ax.xaxis.get_major_formatter()(-7, 0) == "$2^{-7}$"
    plot.octave_ticks(ax, -20, 0)  # a wide axis: every 3rd octave, still whole ones
    assert all(k % 3 == 0 for k in ax.get_xticks())
    plt.close(fig)


# ----------------------------------------------------------------------------- sweeptools.run --wandb

def test_wandb_logger_overrides_pass_the_check_under_wandb_and_name_the_fix_without(tmp_path, capsys):
    from test_sweeps import write_sweep

    file = write_sweep(tmp_path / "s.yaml", {"optim.lr": [0.01, 0.02]}, ["train.steps=5"])
    runner.main([str(file), "--wandb", "logger.mode=offline", "--dry-run", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "logger=wandb" in out and "logger.mode=offline" in out and "2 trials checked" in out
    with pytest.raises(UserError, match="add --wandb"):
        runner.main([str(file), "logger.mode=offline", "--dry-run", "--out", str(tmp_path)])
