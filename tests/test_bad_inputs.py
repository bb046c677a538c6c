"""Every bad input gets ONE line that names the fix, exit code 2, and nothing written.

One table, one row per bad input. To add a case, add a row to CASES:

    (id, how, code, message, nothing_written)

- id: a short name (the pytest id).
- how: what the user does, one of
    * a list of overrides: checked in-process exactly as `python train.py <overrides>`
      checks them before Hydra starts (`assemble.check_overrides`); `{tmp}` and `{data}` are replaced
      by the case's temp dir and the session's prepared data root;
    * `sub("train.py", ...)` / `sub("-m", "param", ...)`: a real `python ...` subprocess in the
      repo (each costs seconds of imports: use only when the exit code or the entry point itself
      is what is tested); `{tmp}` / `{data}` as above;
    * a function `setup(tmp, data) -> action`: prepares files under `tmp`, returns a callable
      run in-process under `cli.guard` (so a UserError becomes `error: ...` and exit 2).
- code: the expected exit code (2 for a refusal; 0 for a warning, where the user may mean it).
- message: the first words of the stderr line after `error: ` (or `warning: ` when code is 0).
- nothing_written: True checks that no file under `tmp` was created, changed or removed by the
  action (the setup's own files are snapshotted first).
Wrap a row in `slow(...)` when it takes seconds (a real training or check run).
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import assemble
import cli
from conftest import TINY, run_cli


def sub(*args, env=None):
    """A subprocess case: `python <args>` run in the repo."""
    return ("subprocess", args, env or {})


def slow(row):
    """A row that takes seconds (a real run): left out of the default `make test`."""
    return pytest.param(row, marks=pytest.mark.slow, id=row[0])


# ----------------------------------------------------------------------------- setups

def prepared_copy(tmp: Path, data: Path) -> Path:
    """A private copy of the session's char Shakespeare (so a case may damage it)."""
    root = tmp / "data"
    shutil.copytree(data / "shakespeare_char", root / "shakespeare_char")
    return root


def ensure(root: Path):
    import data as datamod

    return lambda: datamod.ensure_prepared(cli.compose(["data=shakespeare_char", f"data.root={root}"]).data)


def garbage_train_bin(tmp, data):
    root = prepared_copy(tmp, data)
    f = root / "shakespeare_char" / "train.bin"
    f.write_bytes(np.random.default_rng(0).integers(0, 84, f.stat().st_size // 2, dtype=np.uint16).tobytes())
    return ensure(root)


def out_of_range_ids(tmp, data):
    """A bin whose ids exceed the vocabulary, with a checksum that matches (a buggy tokenizer)."""
    import hashlib

    root = prepared_copy(tmp, data)
    d = root / "shakespeare_char"
    ids = np.fromfile(d / "val.bin", dtype=np.uint16)
    ids[7] = 500
    ids.tofile(d / "val.bin")
    meta = json.loads((d / "meta.json").read_text())
    meta["checksums"]["val.bin"] = hashlib.sha256(ids.tobytes()).hexdigest()
    (d / "meta.json").write_text(json.dumps(meta))
    return ensure(root)


def meta_edit(**change):
    def setup(tmp, data):
        root = prepared_copy(tmp, data)
        path = root / "shakespeare_char" / "meta.json"
        meta = json.loads(path.read_text())
        for k, v in change.items():
            if v is None:
                meta.pop(k)
            else:
                meta[k] = v
        path.write_text(json.dumps(meta))
        return ensure(root)

    return setup


def read_only_root(tmp, data, monkeypatch):
    import os

    root = tmp / "ro"
    root.mkdir()
    root.chmod(0o555)
    if os.geteuid() == 0:  # root writes through a chmod: make the directory refuse as a read-only mount does
        real = Path.mkdir

        def mkdir(self, *args, **kwargs):
            if root in self.parents:
                raise PermissionError(errno.EROFS, "Read-only file system", str(self))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    return ensure(root)


def full_disk(tmp, data, monkeypatch):
    """data.prepare on a disk that fills up while writing val.bin."""
    from data import prepare as P

    real = P.write_bin

    def write_bin(path, ids):
        if path.name == "val.bin":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, ids)

    monkeypatch.setattr(P, "write_bin", write_bin)
    root = tmp / "d"
    return lambda: P.main(["data=shakespeare_char", f"data.root={root}"])


def prepare_main(*argv):
    """`python -m data.prepare <argv>`, in-process."""

    def setup(tmp, data):
        from data import prepare as P

        return lambda: P.main(_fill(argv, tmp, data))

    return setup


def vocab_10(tmp, data):
    cfg = cli.compose([*TINY, f"data.root={data}", "model.vocab_size=10"])
    return lambda: assemble.vocab_size(cfg, 84)


# run dirs and checkpoints (the fault cases, kills, signals and full disks, are in tests/test_faults.py)
class CreatesAFile:
    """A pickle payload: unpickling it creates the file (so "nothing written" shows it never ran)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def train_in(run_dir, data, *overrides):
    from train import run

    cfg = cli.compose([*TINY, f"data.root={data}", *overrides])
    return lambda: run(cfg, run_dir)


def crafted_state_pt(tmp, data):
    import torch

    step = tmp / "run" / "checkpoints" / "step_000010"
    step.mkdir(parents=True)
    torch.save({"step": 10, "model": CreatesAFile(tmp / "marker")}, step / "state.pt")
    return train_in(tmp / "run", data, "train.resume=auto")


def run_dir_under_a_file(tmp, data):
    (tmp / "f").write_text("")
    return train_in(tmp / "f" / "run", data)


def used_run_dir(tmp, data):
    from records import save_checkpoint

    save_checkpoint(tmp / "run" / "checkpoints", 10, {"step": 10}, keep=2)
    return train_in(tmp / "run", data)  # a fresh run (no train.resume) over a run's checkpoints


def locked_run_dir(tmp, data):
    import os

    from records.rundir import RunLock

    (tmp / "run").mkdir()
    lock = RunLock(tmp / "run").acquire()  # as another run holding the dir would
    action = train_in(tmp / "run", data)

    def run_while_held():
        try:
            action()
        finally:
            os.close(lock.fd)  # drop the hold, leave its file (so the snapshot compares)

    return run_while_held


CASES = [
    # (id, how, code, message, nothing_written)
    # --- loop settings
    ("eval_interval=0", ["train.eval_interval=0"], 2, "train.eval_interval=0 must be a positive integer", True),
    ("log_interval=0", ["train.log_interval=0"], 2, "train.log_interval=0 must be a positive integer", True),
    ("eval_iters=0", ["train.eval_iters=0"], 2, "train.eval_iters=0 must be a positive integer", True),
    ("steps float", ["train.steps=1e9"], 2, "train.steps=1000000000.0 must be a positive integer", True),
    ("steps absurd", ["train.steps=100000000000000"], 2, "train.steps=100000000000000 is more than", True),
    ("width absurd", ["model.width=1048576"], 2, "model.width=1048576 is more than", True),
    ("threads=-1", ["train.threads=-1"], 2, "train.threads=-1 must be", True),
    ("seed=abc", ["seed=abc"], 2, "seed='abc' must be a non-negative integer", True),
    ("seed=-1", ["seed=-1"], 2, "seed=-1 must be a non-negative integer", True),
    ("ckpt_interval<0", ["train.ckpt_interval=-1"], 2, "train.ckpt_interval=-1 must be", True),
    ("ckpt_keep<0", ["train.ckpt_keep=-1"], 2, "train.ckpt_keep=-1 must be", True),
    ("diverge_factor<0", ["train.diverge_factor=-1"], 2, "train.diverge_factor=-1 must be", True),
    ("grad_clip<0", ["train.grad_clip=-1"], 2, "train.grad_clip=-1 must be", True),
    ("compile=maybe", ["train.compile=maybe"], 2, "train.compile='maybe' must be true or false", True),
    ("progress=1", ["train.progress=1"], 2, "train.progress=1 must be true or false", True),
    ("bias=yes", ["model.bias=yes"], 2, "model.bias='yes' must be true or false", True),
    ("nesterov=0", ["optim=sgd", "optim.nesterov=0"], 2, "optim.nesterov=0 must be true or false", True),
    ("interpolation", ["model.width=${oops}"], 2, "model.width=${oops}: cannot resolve", True),
    ("interpolation in a list", ["optim.betas=[${oops},0.95]"], 2, "optim.betas=['${oops}', 0.95]: cannot resolve", True),
    # --- optimizer
    ("betas>1", ["optim.betas=[2.0,0.95]"], 2, "optim.betas=[2.0, 0.95] must be two numbers in [0, 1)", True),
    ("betas one", ["optim.betas=[0.9]"], 2, "optim.betas=[0.9] must be two numbers in [0, 1)", True),
    ("eps<0", ["optim.eps=-1"], 2, "optim.eps=-1 must be", True),
    ("momentum<0", ["optim=sgd", "optim.momentum=-1"], 2, "optim.momentum=-1 must be a number in [0, 1)", True),
    ("lr=inf", ["optim.lr=inf"], 2, "optim.lr=inf must be a positive number", True),
    ("lr=nan", ["optim.lr=nan"], 2, "optim.lr=nan must be a positive number", True),
    ("weight_decay<0", ["optim.weight_decay=-0.1"], 2, "optim.weight_decay=-0.1 must be", True),
    # --- schedule
    ("min_lr_ratio>1", ["schedule.min_lr_ratio=2"], 2, "schedule.min_lr_ratio=2 must be a number in [0, 1]", True),
    ("min_lr_ratio<0", ["schedule.min_lr_ratio=-0.5"], 2, "schedule.min_lr_ratio=-0.5 must be a number in [0, 1]", True),
    # a user may mean a warmup as long as a smoke test: warned, not refused
    ("warmup>=steps", ["train.steps=50"], 0, "schedule.warmup=100 is not below train.steps=50", True),
    # --- parameterization formulas (a user gives one as a quoted override of conf/param/*.yaml)
    ("formula 10^10^10", ["param.init.out_proj='10^10^10'"], 2, "param=sp init.out_proj: '10^10^10'", True),
    ("formula 1/0", ["param=mup", "param.adam.lr.hidden='1/0'"], 2, "param=mup adam.lr.hidden: '1/0'", True),
    ("formula m^-1000", ["param=mup", "param.init.hidden='m^-1000'", "model.width=64"], 2, "param=mup init.hidden: 'm^-1000'", True),
    ("formula sqrt(-1)", ["param=mup", "param.init.hidden='sqrt(-1)'"], 2, "param=mup init.hidden: 'sqrt(-1)'", True),
    # --- distribution: one process unless torchrun started us
    ("fsdp2 no torchrun", ["dist=fsdp2"], 2, "dist=fsdp2 runs as one process here", True),
    ("ddp no torchrun", ["dist=ddp"], 2, "dist=ddp runs as one process here", True),
    # --- vocabulary and prepared data
    ("vocab_size=10", ["model.vocab_size=10", "data.root={data}"], 2,
     "model.vocab_size=10 is smaller than the data's vocabulary (84)", True),
    ("vocab_size=10 in the run", vocab_10, 2, "model.vocab_size=10 is smaller than the data's vocabulary (84)", True),
    ("garbage train.bin", garbage_train_bin, 2, "{tmp}/data/shakespeare_char/train.bin does not match the sha256", True),
    ("ids out of range", out_of_range_ids, 2, "{tmp}/data/shakespeare_char/val.bin holds token id 500", True),
    ("meta vocab missing", meta_edit(vocab_size=None), 2, "{tmp}/data/shakespeare_char/meta.json has no vocab_size", True),
    ("meta vocab wrong", meta_edit(vocab_size=10), 2, "{tmp}/data/shakespeare_char/meta.json says vocab_size=10", True),
    ("meta vocab a string", meta_edit(vocab_size="many"), 2, "{tmp}/data/shakespeare_char/meta.json has vocab_size='many'", True),
    ("read-only data root", read_only_root, 2, "data.root={tmp}/ro is not writable", True),
    ("full disk in data.prepare", full_disk, 2, "no space left on device", True),
    ("data.prepare bad flag", prepare_main("--forse"), 2, "unknown flag --forse", True),
    # --- run dirs and checkpoints
    ("state.pt not a checkpoint", crafted_state_pt, 2,
     "{tmp}/run/checkpoints/step_000010/state.pt is not a checkpoint this program wrote", True),
    ("run dir under a file", run_dir_under_a_file, 2, "hydra.run.dir={tmp}/f/run: {tmp}/f is a file, not a directory", True),
    ("fresh run in a used dir", used_run_dir, 2, "{tmp}/run already holds checkpoints of a run (latest step_000010)", True),
    ("run dir in use", locked_run_dir, 2, "{tmp}/run is in use by pid", True),
    # --- entry points (subprocesses: the exit code is the point)
    ("train.py steps float", sub("train.py", "train.steps=1e9", "hydra.run.dir={tmp}/run"), 2, "train.steps=1000000000.0", True),
    ("train.py fsdp2", sub("train.py", "dist=fsdp2", "hydra.run.dir={tmp}/run"), 2, "dist=fsdp2 runs as one process here", True),
    # owned by the `python -m param` helper (issue 14) and the coordinate-check helper
    ("param --help", sub("-m", "param", "--help"), 0, "", True),
    slow(("coord_check seeds scalar", sub("-m", "checks.coord_check", "check.seeds=1", "check.sizes=[16,32,64]",
                                          "model.head_dim=16", "param.base_width=16", "train.steps=2", "check.expect=none",
                                          "--out", "{tmp}/coord", "--no-plot"), 0, "", False)),
    slow(("coord_check sizes below base", sub("-m", "checks.coord_check", "check.sizes=[16,32,64]", "check.seeds=[1]",
                                              "model.head_dim=16", "train.steps=2", "check.expect=none",
                                              "--out", "{tmp}/coord", "--no-plot"), 0, "check.sizes", False)),
]


def _fill(args, tmp: Path, data: Path) -> list[str]:
    return [str(a).replace("{tmp}", str(tmp)).replace("{data}", str(data)) for a in args]


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_a_bad_input_is_one_line_naming_the_fix(case, tmp_path, data_root, capsys, monkeypatch):
    name, how, code, message, nothing_written = case
    tmp = tmp_path / "case"
    tmp.mkdir()
    if isinstance(how, tuple) and how[0] == "subprocess":
        before = _snapshot(tmp)
        out = run_cli(*_fill(how[1], tmp, data_root), env=how[2])
        got, err = out.returncode, out.stderr
    else:
        if isinstance(how, list):
            argv = _fill(how, tmp, data_root)
            action = lambda: assemble.check_overrides(argv)  # noqa: E731
        else:
            params = how.__code__.co_varnames[:how.__code__.co_argcount]
            action = how(tmp, data_root, monkeypatch) if "monkeypatch" in params else how(tmp, data_root)
        before = _snapshot(tmp)
        capsys.readouterr()
        try:
            cli.guard(action)()
            got = 0
        except SystemExit as e:
            got = e.code
        finally:
            for p in tmp.rglob("*"):  # a read-only case dir must still be removable
                if p.is_dir():
                    p.chmod(0o755)
        err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert got == code, f"{name}: exit {got}, stderr:\n{err}"
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
        assert lines[0][len("error: "):].startswith(_fill([message], tmp, data_root)[0]), lines[0]
    elif message:
        warnings = [line for line in lines if line.startswith("warning: ")]
        assert warnings and warnings[0][len("warning: "):].startswith(message), err
    if nothing_written:
        assert _snapshot(tmp) == before, "files changed"


# ----------------------------------------------------------------------------- prepared data, checked once

def test_prepared_data_is_read_once_then_trusted_by_size_and_mtime(tmp_path, data_root, monkeypatch):
    from data import verify

    root = prepared_copy(tmp_path, data_root)
    d = root / "shakespeare_char"
    ensure(root)()  # first use: hashed and range-checked
    cached = json.loads((d / verify.SIDECAR).read_text())
    assert cached["train.bin"]["max_id"] < 84 and cached["train.bin"]["size"] == (d / "train.bin").stat().st_size
    read, real = [], verify.measure
    monkeypatch.setattr(verify, "measure", lambda path: read.append(path.name) or real(path))
    ensure(root)()
    assert read == []  # a second use reads no bin
    (d / "val.bin").write_bytes((d / "val.bin").read_bytes())  # same content, new mtime: read again, passes
    ensure(root)()
    assert read == ["val.bin"]


def test_force_prepares_a_damaged_dir_again(tmp_path, data_root, capsys, monkeypatch):
    from data import prepare as P
    from data import verify

    root = prepared_copy(tmp_path, data_root)
    f = root / "shakespeare_char" / "train.bin"
    f.write_bytes(bytes(f.stat().st_size))  # same size, all zeros
    with pytest.raises(SystemExit):
        cli.guard(ensure(root))()
    assert "--force" in capsys.readouterr().err
    P.main(["data=shakespeare_char", f"data.root={root}", "--force"])
    assert f.read_bytes() == (data_root / "shakespeare_char" / "train.bin").read_bytes()
    monkeypatch.setattr(verify, "measure", lambda path: pytest.fail(f"{path} read again"))
    ensure(root)()  # verified from what the prepare measured while writing: no bin is read again
    assert not list(root.glob(".shakespeare_char.tmp-*"))


def test_booleans_must_be_booleans_for_every_boolean_key_of_the_config():
    """`train.compile=maybe` was read as true: every key the shipped configs give a bool refuses a word."""
    import re

    bools = sorted(k for k, types in cli.shipped_types().items() if types - {"NoneType"} == {"bool"})
    assert {"train.compile", "train.progress", "model.bias", "model.layernorm", "optim.nesterov",
            "dist.activation_checkpointing", "param.zero_readout", "diagnostics.per_layer"} <= set(bools)
    for key in bools:
        with pytest.raises(cli.UserError, match=f"^{re.escape(key)}='maybe' must be true or false"):
            cli.check_value(key, "maybe", cli.rule_of(key))
    for key in ("train.compile", "model.bias", "dist.activation_checkpointing"):  # the whole path of an override
        with pytest.raises(cli.UserError, match="must be true or false"):
            cli.check_config(cli.compose([f"{key}=maybe"]))
        cli.check_config(cli.compose([f"{key}=false"]))
