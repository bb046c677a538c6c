"""Imports run one way, bottom to top: errors -> config (cli) -> data -> model -> param -> optim ->
parallel -> assemble -> records -> the loop (train.py) -> the checks -> the tools (sweeptools,
bench, sample, gpu_check, `python -m param`). The walk reads every import of every module of the
project, at module level and inside functions alike (an import moved into a function to dodge a
cycle is still an edge), and fails on an edge that points up or on any cycle between modules."""

from __future__ import annotations

import ast

from conftest import REPO

ORDER = ["errors", "cli", "data", "model", "param", "optim", "parallel", "assemble", "records", "train", "checks", "tools"]
# modules that sit in another layer than their package's (the most specific name wins)
PLACED = {
    "param.__main__": "tools", "sweeptools": "tools", "bench": "tools", "sample": "tools", "gpu_check": "tools",
}
PACKAGES = ["data", "model", "param", "optim", "parallel", "records", "checks", "sweeptools"]


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
