"""OpenWebText for data/prepare.py: nanoGPT's recipe through `datasets` (load from the Hugging Face
Hub, hold out val_fraction of the documents, tokenize with GPT-2 BPE in num_proc workers), then the
splits streamed into uint16 bins in contiguous shards. The local corpora (Shakespeare, a text
file) are read whole in memory instead (data/sources.py).
"""

from __future__ import annotations

import hashlib
import inspect
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data import tokenizer
from errors import UserError

_NETWORK_ERRORS = {"ConnectionError", "OfflineModeIsEnabled", "LocalEntryNotFoundError", "TimeoutError",
                   "Timeout", "TimeoutException", "TransportError", "NetworkError", "ConnectError"}


class _EncodeBatch:
    """Picklable `datasets.map` function: each worker rebuilds the encoding once (per process)."""

    def __init__(self, cache_dir: str):
        self.cache_dir = cache_dir

    def __call__(self, batch):
        enc = tokenizer.gpt2_encoding(self.cache_dir)
        ids = [enc.encode_ordinary(t) + [tokenizer.GPT2_EOT] for t in batch["text"]]
        return {"ids": ids, "len": [len(x) for x in ids]}


def load(dcfg, root: Path, target: Path) -> tuple[dict, dict]:
    """nanoGPT's recipe: load, hold out val_fraction of the documents, tokenize with num_proc workers
    (`target`: the data dir it will become, for the message when the Hub is out of reach)."""
    import datasets  # 1 s to import; only this source needs it

    kwargs = {"num_proc": int(dcfg.num_proc)}
    if "trust_remote_code" in inspect.signature(datasets.load_dataset).parameters:
        kwargs["trust_remote_code"] = True  # datasets < 4 runs the Hub's openwebtext.py only with it
    try:
        ds = datasets.load_dataset(str(dcfg.hf_dataset), **kwargs)
    except Exception as e:  # offline: ConnectionError (OfflineModeIsEnabled / LocalEntryNotFoundError)
        kind = f"{type(e).__name__}: {str(e).splitlines()[0]}" if str(e) else type(e).__name__
        rename = "" if dcfg.name == "openwebtext" else f" data.name={dcfg.name}"
        if {c.__name__ for c in type(e).__mro__} & _NETWORK_ERRORS:
            raise UserError(
                f"openwebtext needs the Hugging Face Hub, which this machine cannot reach ({kind}): "
                "use data=shakespeare (GPT-2 BPE, offline) or data=shakespeare_char, or run "
                f"`python -m data.prepare data=openwebtext{rename}` on a machine with access and copy "
                f"{target} here (or point data.root at it)") from None
        # datasets >= 4 refuses Hub datasets that still need a loading script (nanoGPT issue #633)
        hint = (": this datasets version runs no loading scripts; point data.hf_dataset at a copy stored as "
                "parquet, or prepare it with `pip install 'datasets<4'`") if "scripts are no longer" in kind else ""
        raise UserError(f"could not load the Hugging Face dataset data.hf_dataset={dcfg.hf_dataset} ({kind}){hint}") from None
    if "train" not in ds or "text" not in ds["train"].column_names:
        raise UserError(f"data.hf_dataset={dcfg.hf_dataset} has no train split with a `text` column")
    split = ds["train"].train_test_split(test_size=float(dcfg.val_fraction), seed=int(dcfg.split_seed), shuffle=True)
    split = {"train": split["train"], "val": split["test"]}
    encode = _EncodeBatch(str(root / "tiktoken_cache"))
    tokenized = {s: d.map(encode, batched=True, remove_columns=d.column_names, num_proc=int(dcfg.num_proc),
                          desc=f"tokenizing {s}") for s, d in split.items()}
    meta = {"vocab_size": tokenizer.GPT2_VOCAB, "eot_token": tokenizer.GPT2_EOT,
            "documents": {s: len(d) for s, d in split.items()},
            "split": {"method": f"random documents: datasets train_test_split(test_size={dcfg.val_fraction}, "
                                f"seed={dcfg.split_seed}, shuffle=True)"},
            "source_detail": {"hf_dataset": str(dcfg.hf_dataset), "datasets": datasets.__version__}}
    return tokenized, meta


def write_shards(path: Path, dset) -> tuple[int, str, int]:
    """Stream a tokenized Dataset into a uint16 memmap, in contiguous shards, hashing as it goes;
    returns (tokens, sha256, largest id)."""
    import pyarrow.compute as pc  # comes with datasets: openwebtext only

    n = int(np.sum(dset.with_format("numpy")["len"][:]))
    if n == 0:
        raise UserError(f"{path.name}: the split has no tokens")
    out = np.memmap(path, dtype=np.uint16, mode="w+", shape=(n,))
    h, pos, shards, top = hashlib.sha256(), 0, max(1, min(1024, len(dset))), -1
    for i in tqdm(range(shards), desc=f"writing {path.name}"):
        rows = dset.shard(num_shards=shards, index=i, contiguous=True).with_format("arrow")[:]
        ids = pc.list_flatten(rows.column("ids")).to_numpy().astype(np.uint16)
        out[pos:pos + len(ids)] = ids
        h.update(ids.data)
        pos += len(ids)
        top = max(top, int(ids.max())) if len(ids) else top
    out.flush()
    del out
    return n, h.hexdigest(), top
