"""`pip install .` gives a working package: the wheel holds every module train.py imports (all the
way down) and every Hydra config, and the installed copy composes configs from its own conf/ and
keeps its data out of site-packages. (The sweep files stay in the checkout: installed, a folder
`sweeps/` would land inside W&B's engine, whose import name is `sweeps`.)"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO


def tracked() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()


def local_module(name: str) -> Path | None:
    """The repository file of an absolute import name, or None (a third-party or stdlib module)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        base = REPO.joinpath(*parts[:n])
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
    return None


def imported_by(path: Path) -> set[Path]:
    """Repository files imported by `path` (module-level and function-level imports alike)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            f = local_module(name)
            if f is not None and f != path:
                out.add(f)
    return out


def closure(start: Path) -> set[Path]:
    seen, todo = set(), [start]
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo += imported_by(f)
    return seen


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from the tracked files only (what a clean clone holds)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in tracked():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
                       cwd=src, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = out.glob("hptransfer-*.whl")
    return whl


def test_the_wheel_holds_every_module_train_py_imports_and_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = {str(f.relative_to(REPO)) for f in closure(REPO / "train.py")}
    assert {"train.py", "cli.py", "parallel/__init__.py", "param/table.py", "optim/build.py"} <= needed  # the walk works
    for tool in ("sample.py", "bench.py", "gpu_check.py", "sweeptools/run.py", "sweeptools/transfer.py", "checks/coord_check.py",
                 "checks/spectral_check.py", "param/__main__.py"):
        needed |= {str(f.relative_to(REPO)) for f in closure(REPO / tool)}
    assert not needed - names, f"modules missing from the wheel: {sorted(needed - names)}"
    configs = {n for n in tracked() if n.startswith("conf/") and n.endswith(".yaml")}
    assert len(configs) > 30 and not configs - names, f"configs missing from the wheel: {sorted(configs - names)}"
    assert not any(n.startswith("sweeps/") for n in names)  # W&B's engine owns site-packages/sweeps


def test_the_installed_copy_composes_from_its_own_conf_and_caches_data_outside_site_packages(wheel, tmp_path):
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("HPTRANSFER_DATA", None)
    probe = ("import cli, train, data.prepare, sweeptools.run; "
             "print(cli.__file__, cli.CONF_DIR, cli.CHECKOUT, data.prepare.data_root({'root': None}), sep='\\n')")
    r = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    module, conf, checkout, cache = r.stdout.split("\n")[:4]
    assert Path(module).parent == site and Path(conf) == site / "conf" and checkout == "False"
    assert Path(cache) == (tmp_path / "cache" / "hptransfer" / "data").resolve() and site not in Path(cache).parents
    r = subprocess.run([sys.executable, "-m", "param", "experiment=cpu_transfer", "param=mup", "model.width=128",
                        "model.vocab_size=64"], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "param=mup" in r.stdout and "(base 64x2)" in r.stdout  # conf/experiment/cpu_transfer.yaml, from the wheel
