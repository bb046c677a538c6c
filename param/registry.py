"""The parameterizations the project ships: one YAML file each, conf/param/<name>.yaml (its
`name:` is the file's stem). The docs, the checks and the tests list them from here, so a new
parameterization that fits the existing rule kinds is one YAML file.

What a file says about itself, beside its rules (docs/parameterizations.md §2):
- `claim:` the claim its checks judge (read by checks/core.py from the composed config);
- `untied_only:` why it needs model.tie_embeddings=false (abc: Everett's model), else null;
- `docs:` its columns in the README's rules table (`python -m param --markdown`, `make docs`):
  `order` places the file among the others, each column has a `title` and the `overrides` that
  make it (beyond `param=<name>`, e.g. spectral's `param.block_depth=1`); `docs: null` gives no
  column. `docs:` is read from the file itself, not inherited through its `defaults:`.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import OmegaConf

from cli import CONF_DIR, options
from errors import UserError

PARAM_DIR = CONF_DIR / "param"


@dataclass(frozen=True)
class Column:
    """One column of the rules table: its title and the overrides that compose it."""

    title: str
    overrides: tuple[str, ...]  # param=<name> first


def names() -> list[str]:
    """Every shipped parameterization, sorted by name (abc, completep, depth_mup, mup, sp, spectral)."""
    return options("param")


def _docs(name: str) -> tuple[float, list[Column]] | None:
    """(order, columns) of conf/param/<name>.yaml's own `docs:`; None where it has none."""
    path = PARAM_DIR / f"{name}.yaml"
    docs = OmegaConf.load(path).get("docs")
    if docs is None:
        return None
    where = f"{path.relative_to(CONF_DIR.parent)}: docs"
    order, columns = docs.get("order"), docs.get("columns")
    if isinstance(order, bool) or not isinstance(order, (int, float)):
        raise UserError(f"{where}.order={order!r} must be a number (the place of its columns in the table)")
    if not columns:
        raise UserError(f"{where}.columns is empty: give one column, e.g. [{{title: {name}}}], or write docs: null")
    out = []
    for i, col in enumerate(columns):
        title, extra = col.get("title"), list(col.get("overrides") or [])
        if not isinstance(title, str) or not title:
            raise UserError(f"{where}.columns[{i}] has no title")
        if not all(isinstance(o, str) and "=" in o for o in extra):
            raise UserError(f"{where}.columns[{i}].overrides={extra} must be key=value overrides")
        out.append(Column(title, (f"param={name}", *extra)))
    return order, out


def columns() -> list[Column]:
    """The columns of the rules table: every file's `docs:` columns, the files by `docs.order`."""
    placed = sorted((docs[0], name, docs[1]) for name in names() if (docs := _docs(name)) is not None)
    out = [c for _, _, cols in placed for c in cols]
    titles = [c.title for c in out]
    twice = sorted({t for t in titles if titles.count(t) > 1})
    if twice:
        raise UserError(f"conf/param/*.yaml: the docs column {twice[0]!r} is named twice: give each column its own title")
    return out


def variants() -> list[tuple[str, ...]]:
    """Every shipped parameterization as the overrides that select it: its docs columns' (spectral
    twice, k=1 and k≥2), then param=<name> alone for each file without columns (abc)."""
    cols = columns()
    shown = {c.overrides[0] for c in cols}
    return [c.overrides for c in cols] + [(f"param={n}",) for n in names() if f"param={n}" not in shown]
