"""`python sample.py <run dir>`: text from a trained run's latest checkpoint, with the run's own
config, table and tokenizer; the same from a DCP checkpoint; one-line errors otherwise."""

from __future__ import annotations

import pytest
import torch

from conftest import run_cli
from records import latest_checkpoint, load_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_root):
    """A 20-step run of the tiny test GPT on char-level Shakespeare (checkpoints at 10 and 20)."""
    import cli
    from conftest import TINY
    from train import run

    run_dir = tmp_path_factory.mktemp("run")
    run(cli.compose([*TINY, f"data.root={data_root}", "optim.lr=1e-2", "model.vocab_multiple=64"]), run_dir)
    return run_dir


def char_vocab(data_root) -> set[str]:
    import data

    meta = data.load_meta(data_root / "shakespeare_char")
    return set(meta["itos"])


def test_sample_prints_the_prompt_and_n_tokens_of_the_char_vocabulary(trained, data_root):
    r = run_cli("sample.py", str(trained), "--prompt", "ROMEO:", "--tokens", "40", "--seed", "7")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert text.startswith("ROMEO:") and len(text) in (46, 47)  # char level: 40 tokens, 40 characters (+ a final \n)
    assert set(text) <= char_vocab(data_root)  # never a padding id of the 64-padded embedding


def test_the_same_seed_gives_the_same_text_and_another_seed_another(trained):
    from sample import sample

    a, b = sample(trained, tokens=60, seed=1), sample(trained, tokens=60, seed=1)
    assert a == b and a != sample(trained, tokens=60, seed=2)
    assert sample(trained, tokens=60, seed=1, ckpt="step_10") != a  # an earlier checkpoint, other weights


def test_a_long_sample_runs_past_the_context(trained):
    from sample import sample

    assert len(sample(trained, prompt="A", tokens=80, seed=0)) == 81  # model.context is 32: cropped, not refused


def test_a_dcp_checkpoint_samples_like_the_single_file_one(trained, tmp_path):
    """A torchrun run's checkpoint (DCP shards + meta.pt), written here by a one-rank gloo group."""
    import torch.distributed as dist
    from omegaconf import OmegaConf

    from records import is_distributed_checkpoint, save_distributed
    from sample import load_model, sample

    state = load_checkpoint(latest_checkpoint(trained / "checkpoints"))
    model, _ = load_model(latest_checkpoint(trained / "checkpoints"))
    opt = torch.optim.AdamW(model.parameters())
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        meta = {k: state[k] for k in ("step", "config", "param_table")}
        save_distributed(tmp_path / "dcp" / "checkpoints", 20, model, [opt], meta, {"torch": torch.get_rng_state()}, 2, 0)
    finally:
        dist.destroy_process_group()
    ckpt = latest_checkpoint(tmp_path / "dcp" / "checkpoints")
    assert is_distributed_checkpoint(ckpt)
    assert OmegaConf.create(state["config"]).model.width == 32
    assert sample(tmp_path / "dcp", tokens=50, seed=4) == sample(trained, tokens=50, seed=4)


def test_no_checkpoint_and_not_a_run_dir_are_one_line_errors(trained, tmp_path, capsys):
    import cli
    from sample import main

    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    for args, words in [((str(tmp_path),), "is not a run dir"), ((str(tmp_path / "empty"),), "no complete checkpoint"),
                        ((str(tmp_path / "nope"),), "no such directory"),
                        ((str(trained), "--ckpt", "7"), "this run has step_000010, step_000020"),
                        ((str(trained), "--temperature", "0"), "must be > 0")]:
        with pytest.raises(SystemExit) as e:
            cli.guard(main)(list(args))
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("error: ") and words in err and err.strip().count("\n") == 0, err


def test_a_damaged_checkpoint_is_one_line_naming_an_older_one(trained, tmp_path, capsys):
    import shutil

    import cli
    from sample import main

    run_dir = tmp_path / "copy"
    shutil.copytree(trained, run_dir)
    state = run_dir / "checkpoints" / "step_000020" / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])  # a kill mid-copy
    with pytest.raises(SystemExit) as e:
        cli.guard(main)([str(run_dir)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "step_000020 is damaged" in err and "--ckpt step_N" in err and err.count("\n") == 1
