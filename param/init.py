"""Initialise a model's tensors from the table's init column, by name (the model's own: init
comes before any wrapper, assemble.build)."""

from __future__ import annotations

import torch

from model import GPT
from param.table import build_table, model_config


@torch.no_grad()
def apply_init(model: torch.nn.Module, table, generator: torch.Generator | None = None) -> None:
    rows = table.by_name()
    for name, t in model.named_parameters():
        row = rows[name]
        if row.init.startswith("normal"):
            t.normal_(0.0, row.init_std, generator=generator)
            if row.init == "normal_zero_query":  # W_qkv is (3·width, width): Q is the first third of the rows
                t[: t.shape[0] // 3].zero_()
        elif row.init == "zeros":
            t.zero_()
        elif row.init == "ones":
            t.fill_(1.0)
        else:
            raise ValueError(f"unknown init {row.init!r} for {name}")


def init_model(cfg, vocab_size: int, device, seed: int):
    """The table and the model it initialises, on `device`: the table comes from names (before
    any wrapper), the weights from the table's stds, drawn after `torch.manual_seed(seed)`.
    Returns (table, model); sharding, compile and the optimizer are the caller's."""
    table = build_table(cfg, vocab_size)
    torch.manual_seed(seed)
    model = GPT(model_config(cfg.model, vocab_size), table.scales())
    apply_init(model, table)
    return table, model.to(device)
