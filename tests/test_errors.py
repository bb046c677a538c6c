"""Every bad input gets one line that names the fix, and exit code 2 — never a traceback."""

from __future__ import annotations

import pytest

import assemble
import cli
from conftest import TINY, run_cli


def one_line_error(capsys, *overrides) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.guard(assemble.check_overrides)(list(overrides))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "overrides, fix",
    [
        (["model.widht=256"], "did you mean model.width?"),
        (["optim.learning_rate=1e-3"], "optim."),
        (["param=mupp"], "choose one of"),
        (["model.width=100"], "multiple of 32"),
        (["model.depth=0"], "model.depth=0 must be a positive integer"),
        (["optim.lr=0"], "optim.lr=0 must be a positive number"),
        (["optim.lr=-1e-3"], "must be a positive number"),
        (["train.batch_size=10", "train.grad_accum=4"], "pick a divisor"),
        (["train.device=cuda"], "train.device=cpu"),
        (["train.dtype=fp8"], "choose fp32, bf16 or fp16"),
        (["model.width=abc"], "positive integer"),
        (["optim.lr=[1,2"], "cannot parse override"),
    ],
)
def test_bad_config_gets_one_line_naming_the_fix(capsys, overrides, fix):
    assert fix in one_line_error(capsys, *overrides)


def test_multirun_values_are_checked_too(capsys):
    assert "did you mean model.width?" in one_line_error(capsys, "model.widht=128,256")


def test_missing_text_data_names_the_key_to_set(capsys, tmp_path):
    from train import run

    cfg = cli.compose([*TINY, "data=text", f"data.root={tmp_path}", f"data.paths=[{tmp_path}/nope.txt]"])
    with pytest.raises(SystemExit):
        cli.guard(run)(cfg, tmp_path / "run")
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "data.paths" in err and err.count("\n") == 1


def test_train_py_prints_one_line_and_exits_2(tmp_path):
    out = run_cli("train.py", "model.widht=256", f"hydra.run.dir={tmp_path}")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: unknown config key 'model.widht': did you mean model.width? (`python -m param --cfg` lists every key)"
    assert not (tmp_path / "metrics.jsonl").exists()


def test_hydra_full_error_shows_the_traceback(tmp_path):
    out = run_cli("train.py", "model.depth=0", env={"HYDRA_FULL_ERROR": "1"})
    assert out.returncode != 0 and "Traceback" in out.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["-sc", "install=bash"],  # shell completion: `install=bash` is the flag's value, not an override
        ["--shell-completion", "uninstall=bash"],
        ["--info", "defaults"],
        ["--hydra-help"],
    ],
)
def test_hydra_own_flags_pass_the_up_front_check(argv):
    assemble.check_overrides(argv)  # would raise UserError if `install=bash` were read as an override


def test_valued_hydra_flags_keep_the_check_on_the_overrides(capsys):
    assemble.check_overrides(["--cfg", "job", "train.steps=3"])
    assert "did you mean model.width?" in one_line_error(capsys, "--cfg", "job", "model.widht=1")


def test_shell_completion_script_is_printed(tmp_path):
    out = run_cli("train.py", "-sc", "install=bash")
    assert out.returncode == 0 and "complete" in out.stdout and "error" not in out.stderr
