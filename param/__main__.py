"""Print the parameterization table of a config without training.

    python -m param param=sp optim=adamw model.width=512 model.depth=8
    python -m param ... --by-role           # one row per role and block kind, identical blocks collapsed (xN)
    python -m param ... --json              # {"globals": {...}, "tensors": [{...}, ...]}
    python -m param ... --diff param=sp     # two tables side by side (the second with the extra overrides)
    python -m param ... --cfg               # the composed config (every key you can override)
    python -m param --markdown [--write README.md]   # the rules of every parameterization, as a table

Overrides are Hydra's key=value (the same as train.py's). The full table is the default.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from omegaconf import OmegaConf

import assemble
import cli
from param.markdown import markdown_table, write_readme
from param.table import _g, build_table

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


def parser() -> argparse.ArgumentParser:
    summary, examples = __doc__.split("\n\n", 1)
    ap = argparse.ArgumentParser(prog="python -m param", description=summary, epilog="examples:\n" + examples.rstrip(),
                                 formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    ap.add_argument("-h", "--help", action="store_true", help="show this help message and exit")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="Hydra overrides, as train.py takes them")
    show = ap.add_mutually_exclusive_group()  # what to print instead of the full table
    show.add_argument("--json", action="store_true", help='the table as JSON: {"globals": {...}, "tensors": [...]}')
    show.add_argument("--by-role", action="store_true", help="one row per role and block kind, identical blocks collapsed")
    show.add_argument("--cfg", action="store_true", help="the composed config (every key you can override)")
    show.add_argument("--diff", nargs="+", metavar="key=value",
                      help="a second table with these overrides added, side by side (every argument after it)")
    show.add_argument("--markdown", action="store_true", help="the rules of every parameterization, as a table")
    ap.add_argument("--write", nargs="?", const=str(cli.REPO / "README.md"), metavar="README.md",
                    help="with --markdown: rewrite that file's table section (default: the repository's README.md)")
    return ap


@cli.guard
def main(argv: list[str]) -> None:
    ap = parser()
    args = ap.parse_intermixed_args(argv)
    if args.help:  # printed here rather than by argparse's exit, so that main returns
        print(ap.format_help(), end="")
        return
    if args.write and not args.markdown:
        raise cli.UserError("--write rewrites the --markdown table in a file: add --markdown")
    if args.cfg:
        print(OmegaConf.to_yaml(cli.compose(args.overrides)))
        return
    if args.diff:
        base, extra = args.overrides, args.diff
        _, a = _table(base)
        _, b = _table(base + extra)
        print(f"left: {' '.join(base) or '(defaults)'}   right: + {' '.join(extra)}")
        print(_diff(a, b))
        return
    if args.markdown:
        if args.write:
            target = Path(args.write)
            print(f"{target}: {'updated' if write_readme(target) else 'already up to date'}")
        else:
            print(markdown_table())
        return
    _, table = _table(args.overrides)
    print(table.to_json() if args.json else by_role(table) if args.by_role else table.format())


if __name__ == "__main__":
    main(sys.argv[1:])
