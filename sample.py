"""Sample text from a trained run: the latest checkpoint of a run dir, with the run's own
config, parameterization table and tokenizer.

    python sample.py outputs/2026-11-25/07-28-14
    python sample.py outputs/... --prompt "ROMEO:" --tokens 300 --temperature 0.8 --top-k 40 --seed 1
    python sample.py outputs/... --ckpt step_001000           # a given checkpoint of the run

A run dir holds checkpoints/step_N/ with either state.pt (one process) or a DCP checkpoint
(torchrun); both load here into one process, through records/export.py's `load_full`. The model
is rebuilt from the checkpoint's own config and table (its multipliers are part of the forward
pass, so the table is needed, not only the weights). The context is cropped to model.context tokens as the text grows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

import cli
import data
from data.tokenizer import GPT2Tokenizer
from errors import UserError
from model import GPT
from param import model_config
from param.table import Table
from records import latest_checkpoint
from records.export import load_full


def find_checkpoint(run_dir: Path, ckpt: str | None) -> Path:
    """The checkpoint dir to sample from: the latest complete one, or the one `ckpt` names
    (step_N, N, or a path)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such directory: give the run dir train.py printed (outputs/<date>/<time>)")
    if (run_dir / "state.pt").is_file() or (run_dir / "meta.pt").is_file():  # a checkpoint dir itself
        return run_dir
    root = run_dir / "checkpoints"
    if not root.is_dir():
        raise UserError(f"{run_dir} is not a run dir (no checkpoints/ in it): give the run dir train.py printed "
                        "(outputs/<date>/<time>) or a checkpoints/step_N dir")
    if ckpt is None:
        found = latest_checkpoint(root)
        if found is None:
            raise UserError(f"{run_dir} has no complete checkpoint yet: let the run reach train.ckpt_interval or its end")
        return found
    path = Path(ckpt)
    if not path.is_dir():
        name = ckpt if ckpt.startswith("step_") else f"step_{int(ckpt):06d}" if ckpt.isdigit() else ckpt
        path = root / (f"step_{int(name[5:]):06d}" if name[5:].isdigit() else name)
    if not ((path / "state.pt").is_file() or (path / "meta.pt").is_file()):
        have = ", ".join(sorted(p.name for p in root.glob("step_*"))) or "none"
        raise UserError(f"--ckpt {ckpt}: no checkpoint {path}: this run has {have}")
    return path


def load_model(path: Path, device: str = "cpu"):
    """(model in eval mode, the run's config) from a checkpoint dir of either kind."""
    full = load_full(path, hint="delete it or sample another checkpoint (--ckpt step_N)",
                     damaged="pick an older one with --ckpt step_N")
    cfg = OmegaConf.create(full["config"])
    table = Table.from_dict(full["param_table"])
    model = GPT(model_config(cfg.model, int(table.globals["vocab_size"])), table.scales())
    model.load_state_dict(full["model"])
    return model.to(device).eval(), cfg


def tokenizer_of(cfg):
    """The run's tokenizer: GPT-2 BPE needs no files; the char vocabulary is the prepared data's."""
    if cfg.data.tokenizer == "gpt2":
        return GPT2Tokenizer(data.data_dir(cfg.data).parent / "tiktoken_cache")
    where = data.data_dir(cfg.data)
    if not (where / "meta.json").is_file():
        raise UserError(f"the run's char vocabulary is in {where}/meta.json, which is not here: "
                        f"prepare it with `python -m data.prepare data={cfg.data.name} data.root=...`")
    return data.get_tokenizer(data.load_meta(where))


def sample(run_dir: Path, prompt: str | None = None, tokens: int = 500, temperature: float = 0.8,
           top_k: int | None = 200, seed: int = 1337, ckpt: str | None = None, device: str = "cpu") -> str:
    """The prompt followed by `tokens` sampled tokens, decoded."""
    if not isinstance(tokens, int) or tokens < 1:
        raise UserError(f"--tokens {tokens}: give a positive number of tokens to sample")
    if not temperature > 0:
        raise UserError(f"--temperature {temperature}: must be > 0 (lower is more conservative, e.g. 0.8)")
    if top_k is not None and top_k < 1:
        raise UserError(f"--top-k {top_k}: must be at least 1 (or leave it out to sample from every token)")
    model, cfg = load_model(find_checkpoint(run_dir, ckpt), device)
    tok = tokenizer_of(cfg)
    if prompt is None:
        prompt = "<|endoftext|>" if cfg.data.tokenizer == "gpt2" else "\n"  # a document boundary / a new line
    ids = tok.encode(prompt)
    if not ids:
        raise UserError("--prompt is empty: give at least one character (the default is a new line)")
    torch.manual_seed(seed)
    x = torch.tensor([ids], dtype=torch.long, device=device)
    return tok.decode(generate(model, x, tokens, temperature, top_k, tok.vocab_size)[0].tolist())


def generate(model, idx, tokens: int, temperature: float, top_k: int | None, vocab: int):
    """nanoGPT's sampling loop: the last model.context tokens in, one token out, `tokens` times.
    Only the tokenizer's `vocab` ids can be drawn: the embedding is padded to
    model.vocab_multiple, and a padding id has no text."""
    for _ in range(tokens):
        with torch.no_grad():
            logits, _ = model(idx[:, -model.cfg.context:])
        logits = logits[:, -1, :vocab] / temperature
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, vocab)).values[:, [-1]]
            logits = logits.masked_fill(logits < kth, -float("inf"))
        idx = torch.cat([idx, torch.multinomial(F.softmax(logits, dim=-1), 1)], dim=1)
    return idx


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python sample.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="a run dir (outputs/<date>/<time>) or one of its checkpoints/step_N dirs")
    ap.add_argument("--prompt", help="text to continue (default: a new line; GPT-2 BPE runs: <|endoftext|>)")
    ap.add_argument("--tokens", type=int, default=500, help="tokens to sample (default 500)")
    ap.add_argument("--temperature", type=float, default=0.8, help="softmax temperature (default 0.8)")
    ap.add_argument("--top-k", type=int, default=200, help="sample among the k likeliest tokens (default 200; 0: all)")
    ap.add_argument("--seed", type=int, default=1337, help="seed of the sampling (same seed, same text)")
    ap.add_argument("--ckpt", help="checkpoint to load: step_N or N (default: the latest)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")
    args = ap.parse_args(argv)
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: this torch sees no CUDA device: use --device cpu")
    text = sample(Path(args.run_dir), args.prompt, args.tokens, args.temperature, args.top_k or None, args.seed,
                  args.ckpt, args.device)
    sys.stdout.write(text + ("" if text.endswith("\n") else "\n"))


if __name__ == "__main__":
    cli.guard(main)()
