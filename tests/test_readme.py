"""The README cannot drift from the program: its cheap commands run as written.

The extraction rule, applied to README.md:
- a command is a line of a ```bash block (a trailing `\\` joins the next line; a ` # ` comment
  is dropped), or a `$ ` line of a plain ``` block, whose following lines up to a `...` are its
  expected output;
- it is cheap, and run here, when it is `make help`, or `python -m param` itself (the table: no
  training; its submodules checks.coord_check and checks.spectral_check train and are not), or
  carries `--help`, `--dry-run` or `--cfg`, or is a `$ ` example whose output is an `error:`;
- a command with a placeholder (`<...>`, `X.yaml`, `outputs/...`, `$VAR`) or one that writes
  files (`--write`, `--figure`, `--png`) is left out.
Each command runs from the repo root, `python` being this interpreter; it must exit 0 (2 for an
`error:` example) and print every expected line the README shows.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import REPO

README = REPO / "README.md"
PLACEHOLDER = re.compile(r"<[^>]*>|\bX\.yaml\b|outputs/\.\.\.|\$[A-Z{(]")
WRITES = ("--write", "--figure", "--png")


def commands(text: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for every command of the README's shell blocks."""
    found = []
    for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        if lang in ("bash", "sh"):
            for line in body.replace("\\\n", " ").splitlines():
                cmd = re.split(r"\s+#\s", line.strip(), maxsplit=1)[0].strip()
                if cmd and not cmd.startswith("#"):
                    found.append((cmd, []))
        elif lang == "" and body.startswith("$ "):
            first, *rest = body.rstrip("\n").splitlines()
            shown = []
            for line in rest:
                if line.strip() == "...":
                    break
                shown.append(line.rstrip())
            found.append((re.split(r"\s+#\s", first[2:].strip(), maxsplit=1)[0], shown))
    return found


def cheap(cmd: str, shown: list[str]) -> bool:
    if PLACEHOLDER.search(cmd) or any(w in cmd.split() for w in WRITES):
        return False
    words = cmd.split()
    is_param = words[:3] == ["python", "-m", "param"]
    return (cmd == "make help" or is_param or any(w in words for w in ("--help", "--dry-run", "--cfg"))
            or bool(shown and shown[0].startswith("error:")))


CHEAP = [(c, s) for c, s in commands(README.read_text()) if cheap(c, s)]


def run(cmd: str) -> subprocess.CompletedProcess:
    argv = shlex.split(cmd)
    if argv[0] == "python":
        argv[0] = sys.executable
    env = {**os.environ, "PYTHON": sys.executable, "COLUMNS": "200"}  # argparse wraps usage at the terminal width
    for key in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS"):  # under `make test`: a user's top-level make, not make[1]
        env.pop(key, None)
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_the_extraction_finds_the_commands_it_should():
    cmds = [c for c, _ in CHEAP]
    assert "make help" in cmds and "python -m param --help" in cmds and "python train.py --cfg job" in cmds
    assert any(c.startswith("python -m sweeptools.run") and "--dry-run" in c for c in cmds)
    assert any(c.startswith("python train.py model.widht") for c in cmds)  # the error example
    assert not any("coord_check" in c or c.startswith("python train.py param=") for c in cmds)  # those train
    assert len(cmds) >= 12


def test_every_cheap_readme_command_runs_as_written():
    """All of them, two at a time (each is a fresh interpreter: about 2 s of imports and Hydra)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda cs: (cs, run(cs[0])), CHEAP))
    failures = []
    for (cmd, shown), r in done:
        want = 2 if shown and shown[0].startswith("error:") else 0
        out = (r.stdout + r.stderr).splitlines()
        missing = [line for line in shown if line not in [o.rstrip() for o in out]]
        if r.returncode != want or missing:
            failures.append(f"{cmd}: exit {r.returncode} (want {want}); missing {missing[:2]}; {(r.stderr or r.stdout)[-300:]}")
    assert not failures, "\n".join(failures)


def test_make_help_lists_every_target_of_the_makefile():
    targets = re.findall(r"^([a-zA-Z_-]+):", (REPO / "Makefile").read_text(), flags=re.M)
    listed = [line.split()[0] for line in run("make help").stdout.splitlines() if line.strip()]
    assert listed == targets
    prose = README.read_text().split("`make help` lists every target:", 1)[1].split("Every tool", 1)[0]
    assert set(re.findall(r"`([a-z-]+)`", prose)) == set(targets) - {"help"}


def test_the_config_group_table_lists_every_option_once():
    table = README.read_text().split("### Config groups", 1)[1].split("\n\n", 2)[1]
    rows = [r.split("|")[1:3] for r in table.splitlines()[2:]]
    groups = [g.strip().strip("`") for g, _ in rows]
    assert len(groups) == len(set(groups))
    for group, options in rows:
        group = group.strip().strip("`")
        conf = REPO / "conf" / group
        if conf.is_dir():
            want = {p.stem for p in conf.glob("*.yaml")}
            assert want <= set(re.findall(r"`([a-z0-9_]+)`", options)), (group, want)
