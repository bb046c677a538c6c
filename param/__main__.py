"""Print the parameterization table of a config without training.

    python -m param param=sp optim=adamw model.width=512 model.depth=8
    python -m param ... --json              # {"globals": {...}, "tensors": [{...}, ...]}
    python -m param ... --diff param=sp     # two tables side by side (the second with the extra override)
    python -m param ... --cfg               # the composed config (every key you can override)
    python -m param --markdown [--write README.md]   # the rules of every parameterization, as a table
"""

from __future__ import annotations

import sys

import cli


def _table(overrides):
    from param.table import build_table

    cfg = cli.compose(overrides)
    cli.check_run(cfg)
    return cfg, build_table(cfg, cli.vocab_size(cfg))


def _diff(a, b) -> str:
    cols = ("init_std", "multiplier", "lr", "weight_decay", "eps")
    rb = b.by_name()
    lines = [f"{'name':<28} " + " ".join(f"{c:>25}" for c in cols)]
    for ra in a.rows:
        other = rb.get(ra.name)
        cells = []
        for c in cols:
            x, y = getattr(ra, c), getattr(other, c) if other else float("nan")
            cells.append(f"{x:>11.4g} {'|' if x == y else '≠'} {y:<11.4g}")
        lines.append(f"{ra.name:<28} " + " ".join(cells))
    ga, gb = a.globals, b.globals
    changed = [f"{k}: {ga[k]} -> {gb.get(k)}" for k in ga if ga[k] != gb.get(k)]
    return "\n".join(lines) + ("\nglobals changed:\n  " + "\n  ".join(changed) if changed else "\nglobals: identical")


@cli.guard
def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--") and not a.endswith(".md")]
    flags = [a for a in argv if a.startswith("--")]
    if "--cfg" in flags:
        from omegaconf import OmegaConf

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
        from pathlib import Path

        from param.markdown import markdown_table, write_readme

        if "--write" in flags:
            i = argv.index("--write")
            target = Path(argv[i + 1]) if i + 1 < len(argv) else cli.REPO / "README.md"
            print(f"{target}: {'updated' if write_readme(target) else 'already up to date'}")
        else:
            print(markdown_table())
        return
    unknown = [f for f in flags if f not in ("--json",)]
    if unknown:
        raise cli.UserError(f"unknown flag {unknown[0]}: use --json, --diff <overrides>, --cfg or --markdown")
    _, table = _table(args)
    print(table.to_json() if "--json" in flags else table.format())


if __name__ == "__main__":
    main(sys.argv[1:])
