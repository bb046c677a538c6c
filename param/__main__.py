"""Print the parameterization table of a config without training.

usage: python -m param [overrides ...] [--json | --by-role | --cfg | --diff <overrides ...>]
       python -m param --markdown [--write README.md]

    python -m param param=sp optim=adamw model.width=512 model.depth=8
    python -m param ... --by-role           # one row per role and block kind, identical blocks collapsed (xN)
    python -m param ... --json              # {"globals": {...}, "tensors": [{...}, ...]}
    python -m param ... --diff param=sp     # two tables side by side (the second with the extra overrides)
    python -m param ... --cfg               # the composed config (every key you can override)
    python -m param --markdown [--write README.md]   # the rules of every parameterization, as a table

Overrides are Hydra's key=value (the same as train.py's). The full table is the default.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from omegaconf import OmegaConf

import assemble
import cli
from param.markdown import markdown_table, write_readme
from param.table import _g, build_table

FLAGS = ("--json", "--by-role", "--cfg", "--diff", "--markdown", "--write", "--help", "-h")
CELLS = ("init_std", "multiplier", "lr", "weight_decay", "eps")


def _table(overrides):
    cfg = cli.compose(overrides)
    assemble.check_run(cfg)
    return cfg, build_table(cfg, assemble.vocab_size(cfg))


def _init(row) -> str:
    """The init column as the plain table shows it: the std of a normal init, else ones / zeros."""
    return _g(row.init_std) if row.init.startswith("normal") else row.init


def _diff(a, b) -> str:
    rb = b.by_name()
    lines = [f"{'name':<28} " + " ".join(f"{c:>25}" for c in CELLS)]
    for ra in a.rows:
        other = rb.get(ra.name)
        cells = []
        for c in CELLS:
            if c == "init_std":
                x, y = _init(ra), _init(other) if other else "-"
                same = other is not None and (ra.init, ra.init_std) == (other.init, other.init_std)
                cells.append(f"{x:>11} {'|' if same else '≠'} {y:<11}")
                continue
            x, y = getattr(ra, c), getattr(other, c) if other else float("nan")
            cells.append(f"{_num(x):>11} {'|' if x == y else '≠'} {_num(y):<11}")
        lines.append(f"{ra.name:<28} " + " ".join(cells))
    ga, gb = a.globals, b.globals
    changed = [f"{k}: {ga[k]} -> {gb.get(k)}" for k in ga if ga[k] != gb.get(k)]
    return "\n".join(lines) + ("\nglobals changed:\n  " + "\n  ".join(changed) if changed else "\nglobals: identical")


def _num(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def by_role(table) -> str:
    """The table with one row per tensor kind: `blocks.3.attn.qkv.weight` and its siblings in
    the other blocks become `blocks.[0-15].attn.qkv.weight` with a count, as long as their
    rows are identical; blocks whose rows differ stay in separate runs (`[0-3]`, `[4-15]`)."""
    runs: list[list] = []  # [pattern, first block, last block, count, cells]
    for r in table.rows:
        pattern = re.sub(r"^blocks\.\d+\.", "blocks.{}.", r.name)
        cells = ["x".join(map(str, r.shape)), r.role, str(r.fan_in), str(r.fan_out), _init(r),
                 _g(r.multiplier), _g(r.lr), _g(r.weight_decay), _g(r.eps)]
        same = [run for run in runs if run[0] == pattern and run[4] == cells and run[2] == (r.block or 0) - 1]
        if r.block is not None and same:
            same[0][2], same[0][3] = r.block, same[0][3] + 1
        else:
            runs.append([pattern, r.block, r.block, 1, cells])
    header = ["name", "count", "shape", "role", "fan_in", "fan_out", "init_std", "multiplier", "lr", "weight_decay", "eps"]
    rows = [header]
    for pattern, first, last, count, cells in runs:
        where = f"[{first}]" if first == last else f"[{first}-{last}]"
        rows.append([pattern.format(where) if first is not None else pattern, str(count), *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    body = "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
    full = table.format()
    head, rest = full.split("\n", 2)[:2], full[full.index("\nglobal factors:"):]
    return "\n".join(head) + "\n" + body + rest


def _usage() -> str:
    return __doc__.split("\n\n", 1)[1].rstrip()


@cli.guard
def main(argv: list[str]) -> None:
    if "--help" in argv or "-h" in argv:
        print(_usage())
        return
    args = [a for a in argv if not a.startswith("--") and not a.endswith(".md")]
    flags = [a for a in argv if a.startswith("--")]
    if "--cfg" in flags:
        print(OmegaConf.to_yaml(cli.compose(args)))
        return
    if "--diff" in flags:
        i = argv.index("--diff")
        extra = argv[i + 1 :]
        if not extra:
            raise cli.UserError("--diff needs overrides after it, e.g. --diff param=sp")
        base = argv[:i]
        _, a = _table(base)
        _, b = _table(base + extra)
        print(f"left: {' '.join(base) or '(defaults)'}   right: + {' '.join(extra)}")
        print(_diff(a, b))
        return
    if "--markdown" in flags:
        if "--write" in flags:
            i = argv.index("--write")
            target = Path(argv[i + 1]) if i + 1 < len(argv) else cli.REPO / "README.md"
            print(f"{target}: {'updated' if write_readme(target) else 'already up to date'}")
        else:
            print(markdown_table())
        return
    unknown = [f for f in flags if f not in ("--json", "--by-role")]
    if unknown:
        raise cli.UserError(f"unknown flag {unknown[0]}: use --json, --by-role, --diff <overrides>, --cfg or --markdown "
                            "(`python -m param --help`)")
    if "--json" in flags and "--by-role" in flags:
        raise cli.UserError("--json and --by-role: pick one (--json always lists every tensor)")
    _, table = _table(args)
    print(table.to_json() if "--json" in flags else by_role(table) if "--by-role" in flags else table.format())


if __name__ == "__main__":
    main(sys.argv[1:])
