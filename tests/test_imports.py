"""Imports run one way, bottom to top: errors -> config (cli) -> data -> model -> param -> optim ->
parallel -> assemble -> records -> the loop (train.py) -> the checks -> the tools (sweeptools,
bench, sample, gpu_check, `python -m param`). The walk reads every import of every module of the
project, at module level and inside functions alike (an import moved into a function to dodge a
cycle is still an edge), and fails on an edge that points up or on any cycle between modules.

Imports sit at the top of their module. Inside a function only an optional heavy library may be
imported (LAZY, each with its reason); never a module of the project."""

from __future__ import annotations

import ast

from conftest import REPO

ORDER = ["errors", "cli", "data", "model", "param", "optim", "parallel", "assemble", "records", "train", "checks", "tools"]
# modules that sit in another layer than their package's (the most specific name wins)
PLACED = {
    "param.__main__": "tools", "sweeptools": "tools", "bench": "tools", "sample": "tools", "gpu_check": "tools",
}
PACKAGES = ["data", "model", "param", "optim", "parallel", "records", "checks", "sweeptools"]

# libraries a function may import, where the import happens (a module name and what is under it),
# each needed on one path only; import times measured on a 2-core CPU machine
LAZY = {
    "wandb": "logger=wandb and W&B sweep paths only: ~1 s to import",
    "datasets": "openwebtext only (python -m data.prepare data=openwebtext): ~1.5 s to import",
    "pyarrow": "datasets' tables, openwebtext only",
    "matplotlib": "figures only: ~0.5 s to import (pyplot ~0.8 s), and the Agg backend is chosen before pyplot",
    "tiktoken": "GPT-2 BPE only: char-level data never builds that tokenizer (data/__init__.py)",
    "tiktoken_ext": "tiktoken's GPT-2 pattern, with tiktoken",
    "submitit": "the SLURM launcher only (python -m sweeptools.run --launcher slurm)",
    "sweeps": "W&B's sweep engine, random and bayes sweeps only: ~0.6 s to import, and a missing or shadowed "
              "install is reported as one UserError (sweeptools/engine.py)",
    "torch.distributed.checkpoint": "DCP checkpoints (torchrun runs) only: ~1.5 s to import with torch loaded",
    "torch.distributed.fsdp": "dist=fsdp2 only: ~1.3 s to import with torch loaded",
    "torch.distributed.tensor": "sharded (FSDP2) parameters only: ~1.3 s to import with torch loaded",
}
# torch itself, below the model layer only: the config (cli) and the data package stay torch-free,
# so that `import data` and `python -m data.prepare` load no torch (tests/test_data.py)
TORCH_FREE_BELOW = "model"


def modules() -> dict[str, object]:
    """module name -> its file, for every module of the project."""
    out = {}
    for path in REPO.glob("*.py"):
        out[path.stem] = path
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def layer(name: str) -> int:
    for key in sorted(PLACED, key=len, reverse=True):
        if name == key or name.startswith(key + "."):
            return ORDER.index(PLACED[key])
    return ORDER.index(name.split(".")[0])


def edges(mods: dict) -> dict[str, set[str]]:
    """importer -> the project modules it imports (the longest module name an import resolves to)."""
    def resolve(text: str) -> str | None:
        parts = text.split(".")
        for n in range(len(parts), 0, -1):
            if ".".join(parts[:n]) in mods:
                return ".".join(parts[:n])
        return None

    out: dict[str, set[str]] = {}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                texts = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                texts = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for text in texts:
                target = resolve(text)
                # `from param.table import X` inside param/ also names the package `param`: not an edge to itself
                if target and target != name and not (name.startswith(target + ".") and "." not in target):
                    out.setdefault(name, set()).add(target)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_has_a_layer():
    mods = modules()
    assert {"errors", "cli", "assemble", "train", "param.table", "optim.build", "parallel.runtime", "sweeptools.run"} <= set(mods)
    for name in mods:
        layer(name)  # ValueError for a top-level name outside ORDER: give it a layer


def test_imports_point_down_the_layers():
    graph = edges(modules())
    assert "errors" in graph["cli"] and "param.table" in graph["assemble"]  # the walk sees imports
    up = [f"{a} ({ORDER[layer(a)]}) imports {b} ({ORDER[layer(b)]})" for a in sorted(graph) for b in sorted(graph[a])
          if layer(b) > layer(a)]
    assert not up, "imports that point up the layers:\n" + "\n".join(up)


def test_no_import_cycles():
    found = cycles(edges(modules()))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_the_walk_finds_an_upward_edge_and_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("cli") < layer("param.table") < layer("train") < layer("checks.coord_check") < layer("sweeptools.run")


def function_imports(path) -> list[tuple[int, str]]:
    """(line, imported module) of every import inside a function (methods and nested functions too);
    a relative import is written with its dots."""
    out: list[tuple[int, str]] = []

    def visit(node, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, ast.Import):
                out.extend((child.lineno, a.name) for a in child.names)
            elif in_function and isinstance(child, ast.ImportFrom):
                out.append((child.lineno, "." * child.level + (child.module or "")))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return out


def lazy_import_problem(importer: str, module: str, project: set[str]) -> str | None:
    """Why `importer` may not import `module` inside a function (None: it may)."""
    top = module.split(".")[0]
    if module.startswith(".") or top in project:
        return "a project module: import it at the top (restructure where that would point up or close a cycle)"
    if any(module == lib or module.startswith(lib + ".") for lib in LAZY):
        return None
    if top == "torch" and layer(importer) < ORDER.index(TORCH_FREE_BELOW):
        return None
    return "not an optional heavy library (LAZY): import it at the top"


def lazy_imports(mods: dict) -> list[str]:
    project = {name.split(".")[0] for name in mods}
    found = []
    for name, path in sorted(mods.items()):
        for line, module in function_imports(path):
            why = lazy_import_problem(name, module, project)
            if why:
                found.append(f"{path.relative_to(REPO)}:{line} imports {module} inside a function: {why}")
    return found


def test_functions_import_only_optional_heavy_libraries():
    found = lazy_imports(modules())
    assert not found, "imports inside functions:\n" + "\n".join(found)


def test_the_walk_finds_an_import_inside_a_function(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import os\n\nclass A:\n    def f(self):\n        def g():\n            from param.table import Table\n"
                   "        import yaml\n        import matplotlib.pyplot\n        from . import x\n")
    assert function_imports(src) == [(6, "param.table"), (7, "yaml"), (8, "matplotlib.pyplot"), (9, ".")]
    project = {"param", "cli", "data"}
    assert lazy_import_problem("param.table", "param.table", project).startswith("a project module")
    assert lazy_import_problem("sweeptools.run", ".", project).startswith("a project module")
    assert lazy_import_problem("sweeptools.run", "yaml", project).startswith("not an optional")
    assert lazy_import_problem("sweeptools.plot", "matplotlib.pyplot", project) is None
    assert lazy_import_problem("records.export", "torch.distributed.checkpoint.format_utils", project) is None
    assert lazy_import_problem("data.loader", "torch", project) is None  # below the model layer: torch-free
    assert lazy_import_problem("sample", "torch", project).startswith("not an optional")
