"""Export a checkpoint (single-file or DCP, any world size) as one plain state dict, or in the
Hugging Face GPT-2 layout where the parameterization allows it.

    python -m records.export outputs/2026-11-25/07-31-02                 # latest checkpoint -> <run dir>/export/model.pt
    python -m records.export outputs/.../checkpoints/step_002000 --out gpt.pt
    python -m records.export outputs/... --hf hf_gpt2/                   # pytorch_model.bin + config.json

model.pt holds {"model": state_dict, "config": the run's config, "param_table": the table}, plain
containers and tensors only, so it loads with `torch.load(path, weights_only=True)`. The
multipliers are part of the model: rebuild it from the table, e.g.

    from omegaconf import OmegaConf
    from model import GPT
    from param.table import Table, model_config
    full = torch.load("model.pt", weights_only=True)
    t = full["param_table"]
    table = Table.from_dict(t)
    gpt = GPT(model_config(OmegaConf.create(full["config"]["model"]), t["globals"]["vocab_size"]), table.scales())
    gpt.load_state_dict(full["model"])
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import torch

import cli
from records.checkpoint import DamagedCheckpoint, is_distributed_checkpoint, latest_checkpoint, load_checkpoint

HINT = "delete it or export another checkpoint"


def load_full(path: Path, hint: str = HINT, damaged: str = "export another checkpoints/step_N") -> dict:
    """{"model": full state dict, "config", "param_table"} from a checkpoint dir or a run dir, of
    either kind (a DCP checkpoint is gathered into one process). `hint` ends the refusal of a
    foreign pickle, `damaged` names the fix for a damaged file (both one line)."""
    path = Path(path)
    if not (path / "state.pt").exists() and not (path / "meta.pt").exists():
        found = latest_checkpoint(path / "checkpoints") or latest_checkpoint(path)
        if found is None:
            raise cli.UserError(f"{path} holds no checkpoint: give a run dir or a checkpoints/step_N dir")
        path = found
    try:
        meta = load_checkpoint(path, hint=hint)  # state.pt, or a DCP checkpoint's meta.pt
    except DamagedCheckpoint as e:
        raise cli.UserError(f"{path} is damaged ({e}): {damaged}") from None
    if is_distributed_checkpoint(path):
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save  # DCP only: slow to import

        with tempfile.TemporaryDirectory() as tmp:
            dcp_to_torch_save(str(path), f"{tmp}/full.pt")
            model = torch.load(f"{tmp}/full.pt", weights_only=True)["model"]
    else:
        model = meta["model"]
    model = {k: v.detach().cpu() for k, v in model.items()}
    if meta.get("param_table") is None:
        raise cli.UserError(f"{path} was written before checkpoints carried the param table: re-train, or load its state.pt directly")
    return {"model": model, "config": meta["config"], "param_table": meta["param_table"], "source": str(path)}


HF_NAMES = [  # ours -> Hugging Face GPT2LMHeadModel; (name, transpose: HF's Conv1D stores (in, out))
    ("ln_attn", "ln_1", False), ("attn.qkv", "attn.c_attn", True), ("attn.out", "attn.c_proj", True),
    ("ln_mlp", "ln_2", False), ("mlp.fc", "mlp.c_fc", True), ("mlp.proj", "mlp.c_proj", True),
]


def to_hf(full: dict) -> tuple[dict, dict]:
    """(state dict, config.json) in the HF GPT-2 layout; UserError when the model is not one."""
    g, m = full["param_table"]["globals"], full["config"]["model"]
    problems = [f"{k}={g[k]:g}" for k in ("emb_multiplier", "readout_multiplier", "branch_multiplier") if g[k] != 1.0]
    problems += [f"{t['name']} multiplier {t['multiplier']:g}" for t in full["param_table"]["tensors"] if t["multiplier"] != 1.0][:1]
    if not math.isclose(g["attn_scale"], 1 / math.sqrt(g["head_dim"])):
        problems.append(f"attn_scale={g['attn_scale']:g} (HF GPT-2 uses 1/sqrt(head_dim))")
    if not (m["bias"] and m["layernorm"] and m["tie_embeddings"]) or m.get("dropout", 0) < 0:
        problems.append("GPT-2 has biases, LayerNorms and tied embeddings")
    if problems:
        raise cli.UserError("the HF GPT-2 layout has no multipliers or other attention scale, and this model has "
                            f"{', '.join(problems)}: export the plain state dict (drop --hf)")
    sd = {"transformer.wte.weight": full["model"]["wte.weight"], "transformer.wpe.weight": full["model"]["wpe.weight"],
          "transformer.ln_f.weight": full["model"]["ln_f.weight"], "transformer.ln_f.bias": full["model"]["ln_f.bias"],
          "lm_head.weight": full["model"]["wte.weight"]}
    for i in range(g["depth"]):
        for ours, theirs, transpose in HF_NAMES:
            for leaf in ("weight", "bias"):
                t = full["model"][f"blocks.{i}.{ours}.{leaf}"]
                sd[f"transformer.h.{i}.{theirs}.{leaf}"] = t.t().contiguous() if transpose and leaf == "weight" else t
    config = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": g["vocab_size"],
              "n_positions": m["context"], "n_embd": g["width"], "n_layer": g["depth"], "n_head": g["width"] // g["head_dim"],
              "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
              "attn_pdrop": 0.0, "tie_word_embeddings": True}
    return sd, config


@cli.guard
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", help="a run dir (its latest checkpoint) or a checkpoints/step_N dir")
    ap.add_argument("--out", help="output file (default <run dir>/export/model.pt)")
    ap.add_argument("--hf", metavar="DIR", help="write pytorch_model.bin + config.json in the HF GPT-2 layout instead")
    args = ap.parse_args()
    full = load_full(Path(args.path))
    if args.hf:
        sd, config = to_hf(full)
        out = Path(args.hf)
        out.mkdir(parents=True, exist_ok=True)
        torch.save(sd, out / "pytorch_model.bin")
        (out / "config.json").write_text(json.dumps(config, indent=1) + "\n")
        print(f"wrote {out}/pytorch_model.bin and config.json (GPT2LMHeadModel) from {full['source']}")
        return
    out = Path(args.out) if args.out else Path(full["source"]).parents[1] / "export" / "model.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: full[k] for k in ("model", "config", "param_table")}, out)
    print(f"wrote {out} ({sum(v.numel() for v in full['model'].values()):,} parameters) from {full['source']}")


if __name__ == "__main__":
    main()
