"""The README's table of rules (parameterization x optimizer family x role -> factor), generated
from the YAML so the docs and the code cannot disagree: the columns are the parameterizations'
`docs:` fields (param/registry.py), the cells their rules.

    python -m param --markdown            # print it
    make docs                             # rewrite the README section between the markers
"""

from __future__ import annotations

from pathlib import Path

import cli
from param.scaling import wd_on_vectors
from param.expr import render
from param.registry import columns
from param.rules import rules_for

ROLES = [  # (label, lookup role)
    ("embedding (wte, wpe)", "embedding"),
    ("hidden (W_qkv, W_fc)", "attn_qkv"),
    ("out-projections (W_O, W_proj)", "attn_out"),
    ("readout (untied lm_head)", "readout"),
    ("hidden biases", "bias"),
    ("pre-LN gains/biases", "block_norm"),
    ("final LN", "final_norm"),
]
START, END = "<!-- param-table:start -->", "<!-- param-table:end -->"


def _rules(overrides):
    cfg = cli.compose(["model.vocab_size=64", *overrides])
    return cfg, rules_for(cfg.param, cfg.model.width, cfg.model.depth)


def _cell(factor, base: str, env) -> str:
    return render(factor.formula, env, base) + (" [I]" if factor.source.startswith("[I]") else "")


def markdown_table() -> str:
    cols = [(c.title, *_rules(c.overrides)) for c in columns()]  # each parameterization's docs: (conf/param/*.yaml)
    lines = ["| quantity | tensor | " + " | ".join(h for h, _, _ in cols) + " |", "|---|---|" + "---|" * len(cols)]

    def row(quantity, label, cells):
        lines.append(f"| {quantity} | {label} | " + " | ".join(cells) + " |")

    for label, role in ROLES[:4]:
        row("init std", label, [_cell(r.init(role), "σ", r.env) for _, _, r in cols])
    row("multiplier", "embedding output", [_cell(r.forward("embedding"), "α_in", r.env) for _, _, r in cols])
    row("multiplier", "logits", [_cell(r.forward("readout"), "α_out", r.env) for _, _, r in cols])
    row("multiplier", "residual branch", [_cell(r.forward("branch"), "α_res", r.env) for _, _, r in cols])
    shown = {"linear": "1/d_head", "sqrt": "1/√d_head", "anchored": "√d_b/d_head"}
    row("attention scale", "q·k", [shown.get(c.param.attn_scale, c.param.attn_scale) for _, c, _ in cols])
    for family, optims in (("adam", "AdamW, Adam"), ("sgd", "SGD")):
        for quantity, base in (("lr", "η"), ("wd", "λ"), ("eps", "ε")):
            if family == "sgd" and quantity == "eps":
                continue
            for label, role in ROLES:
                cells = []
                for _, c, r in cols:
                    vector = role in ("bias", "block_norm", "final_norm")
                    if quantity == "wd" and vector and not wd_on_vectors(c.optim, c.param):
                        cells.append("0")
                    else:
                        cells.append(_cell(r.optim(family, quantity, role), base, r.env))
                row(f"{optims} {quantity}", label, cells)
    for family, name in (("muon_kimi", "Muon-Kimi"), ("muon", "Muon")):
        for quantity, base in (("lr", "η"), ("wd", "λ")):
            cells = [_cell(r.optim(family, quantity, "attn_qkv"), base, r.env) if r.has_family(family) else "— (error)"
                     for _, _, r in cols]
            row(f"{name} {quantity}", "hidden matrices", cells)
    notes = (
        "\nm = width/base_width, r = depth/base_depth, L = depth. Lion and Adam-atan2 take the AdamW rows "
        "(Adam-atan2 and Lion have no ε); Adafactor takes the AdamW LR divided by the init-std factor "
        "(Everett et al.: c = c_Adam − b). The Muon hybrids use their rows for hidden matrices and the AdamW rows "
        "for everything else; '— (error)' marks a pair docs/parameterizations.md has no rule for. WD is the value handed to torch with "
        "`optim.wd_mode=coupled` (with `independent` it is divided by η). Vectors get WD 0 unless "
        "`optim.wd_on_vectors` (default: the parameterization's, true for spectral). With tied embeddings the "
        "readout matrix is `wte` and takes the embedding rows; its output still gets the logits multiplier. "
        "[I] marks a choice the papers leave open (docs/parameterizations.md §9); the source of every cell is in `python -m param`."
    )
    return "\n".join(lines) + "\n" + notes + "\n"


def write_readme(path: Path) -> bool:
    """Replace the section between the markers; True when the file changed."""
    text = path.read_text()
    if START not in text or END not in text:
        raise cli.UserError(f"{path} has no {START} ... {END} section to fill")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{markdown_table()}{END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text
