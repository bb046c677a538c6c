"""Prepare a corpus into `<root>/<name>/`: train.bin, val.bin (uint16 token ids) and meta.json.

    python -m data.prepare data=shakespeare_char [data.root=/scratch/x] [data.name=...] [--force]

--force prepares the dir again even when one exists (a damaged one, say) and replaces it only
once the new one is complete. A prepared dir is verified at its first use (data/verify.py).

Layout of the bins: every document is followed by a separator, so documents never run together:
`<|endoftext|>` (50256) for gpt2, "\\n\\n" for char. Everything is written into
`<root>/.<name>.tmp-<pid>` and renamed into place at the end, so a dir named `<name>` is always
complete; a leftover temp dir (a killed prepare) is removed by the next prepare.
"""

from __future__ import annotations

import argparse
import datetime
import errno
import functools
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import cli
from cli import data_cache
from errors import UserError
from data import openwebtext, sources, tokenizer
from data.verify import again, seal, verify

FORMAT = 1  # bump when the layout of the bins changes: old dirs then fail the fingerprint check
SOURCES = ("shakespeare", "text", "openwebtext")
CHAR_SEPARATOR = "\n\n"  # after every document (char); "\n" is in the vocab anyway
RESERVED = {"raw", "tiktoken_cache"}  # other things that live in <root>


# ----------------------------------------------------------------------------- config

def data_root(dcfg) -> Path:
    root = dcfg.get("root")
    return (Path(str(root)).expanduser() if root else data_cache()).resolve()


def data_dir(dcfg) -> Path:
    return data_root(dcfg) / str(dcfg.name)


def _check(dcfg) -> None:
    name = str(dcfg.get("name") or "")
    if not name or name.startswith(".") or "/" in name or "\\" in name or name in RESERVED:
        raise UserError(f"data.name={name!r} must be a plain directory name (not {', '.join(sorted(RESERVED))})")
    if dcfg.get("source") not in SOURCES:
        raise UserError(f"data.source={dcfg.get('source')!r}: choose one of {', '.join(SOURCES)}")
    if dcfg.get("tokenizer") not in ("char", "gpt2"):
        raise UserError(f"data.tokenizer={dcfg.get('tokenizer')!r}: choose char or gpt2")
    if dcfg.source == "openwebtext" and dcfg.tokenizer != "gpt2":
        raise UserError("data=openwebtext supports only data.tokenizer=gpt2")
    vf = dcfg.get("val_fraction")
    if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0 < vf < 1:
        raise UserError(f"data.val_fraction={vf!r} must be a number in (0, 1)")
    seed = dcfg.get("split_seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"data.split_seed={seed!r} must be a non-negative integer")


def fingerprint(dcfg) -> tuple[str, dict]:
    """(hash, inputs): what defines the prepared data. Cheap: reads no corpus (text: stats files)."""
    _check(dcfg)
    inputs = {"format": FORMAT, "source": dcfg.source, "tokenizer": dcfg.tokenizer,
              "val_fraction": float(dcfg.val_fraction), "split_seed": int(dcfg.split_seed)}
    if dcfg.source == "text":
        stats = sources.text_stats(sources.text_files(dcfg))  # path, size, mtime of every file
        inputs["files"] = {"count": len(stats), "sha256": hashlib.sha256(json.dumps(stats).encode()).hexdigest()}
    if dcfg.source == "openwebtext":
        inputs["hf_dataset"] = str(dcfg.hf_dataset)
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    return digest, inputs


# ----------------------------------------------------------------------------- existing dirs

def load_meta(data_dir) -> dict:
    """meta.json of a prepared dir, plus `data_dir` (where it was read from; not in the file)."""
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise UserError(f"{data_dir} is not a prepared dataset (no meta.json): run `python -m data.prepare data=...`")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, OSError) as e:
        raise UserError(f"{path} is unreadable ({type(e).__name__}): delete {data_dir} and prepare it again") from None
    v = meta.get("vocab_size") if isinstance(meta, dict) else None
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 65536:
        what = "has no vocab_size" if not isinstance(meta, dict) or "vocab_size" not in meta else \
            f"has vocab_size={v!r}, not an integer in [1, 65536] (the ids are uint16)"
        raise UserError(f"{path} {what}: prepare it again with `{again(data_dir)}`")
    if isinstance(meta.get("itos"), list) and len(meta["itos"]) != v:
        raise UserError(f"{path} says vocab_size={v} but lists {len(meta['itos'])} characters (itos): "
                        f"prepare it again with `{again(data_dir)}`")
    meta["data_dir"] = str(Path(data_dir).resolve())
    return meta


def _existing(target: Path, digest: str, inputs: dict) -> bool:
    """True when `target` is complete with this fingerprint; UserError when it holds other data."""
    if not target.exists():
        return False
    if not (target / "meta.json").is_file():
        raise UserError(f"{target} exists but is not a prepared dataset (no meta.json): delete it or pick another data.name")
    meta = load_meta(target)
    if meta.get("fingerprint") != digest:
        old = meta.get("fingerprint_of", {})
        changed = [k for k in sorted(set(old) | set(inputs)) if old.get(k) != inputs.get(k)]
        raise UserError(
            f"{target} holds different data (changed: {', '.join(changed) or 'fingerprint'}): "
            f"pick another data.name (e.g. data.name={target.name}_2) or delete {target}"
        )
    for split in ("train", "val"):
        f = target / f"{split}.bin"
        if not f.is_file() or f.stat().st_size != 2 * meta.get(f"{split}_tokens", -1):
            raise UserError(f"{f} is missing or has the wrong size: prepare it again with `{again(target)}`")
    verify(target, meta)  # checksums and id range: read once, then cached by (size, mtime)
    return True


def _write_error(e: OSError, root: Path, target: Path) -> UserError:
    """A failed write while preparing, as one line: what happened, what was kept, the fix."""
    kept = f"; the prepared {target} is kept as it was" if target.exists() else "; nothing else was written"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        what = f" (writing {Path(e.filename).name})" if e.filename else ""
        return UserError(f"no space left on device while preparing {target}{what}: the partial files were "
                         f"removed{kept}; free some space or set data.root to a disk with room")
    where = Path(e.filename or root)
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and (where == root or root in where.parents):
        return UserError(f"data.root={root} is not writable ({e.strerror}: {where}){kept}: set data.root to a "
                         "directory you can write, or prepare the data there once with write access")
    return UserError(f"cannot prepare {target}: {e.strerror or e} ({where}){kept}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _clean_stale(root: Path, name: str) -> None:
    """Remove temp dirs of prepares that died (a live one may be another rank preparing too)."""
    for p in root.glob(f".{name}.tmp-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------- local corpora

def split_documents(names, texts, val_fraction: float, seed: int):
    """(train, val, info): lists of (name, text). A seeded permutation of the (sorted) documents;
    val takes documents from its front until val_fraction of the characters (at least one, and
    at least one stays in train). A single document is cut by position instead."""
    if len(texts) == 1:
        text = texts[0]
        cut = int(len(text) * (1 - val_fraction))
        nl = text.find("\n", cut)
        cut = nl + 1 if 0 <= nl < len(text) - 1 else cut  # at a line start when there is one
        if not 0 < cut < len(text):
            raise UserError(f"{names[0]} is too short to split into train and val")
        info = {"method": "by position: one document, its last characters from char "
                          f"{cut} of {len(text)} are val (val_fraction={val_fraction})"}
        return [(names[0], text[:cut])], [(names[0], text[cut:])], info
    order = np.random.default_rng(seed).permutation(len(texts))
    target, total, val = val_fraction * sum(map(len, texts)), 0, []
    for i in order[:-1]:
        if val and total >= target:
            break
        val.append(int(i))
        total += len(texts[i])
    train = [i for i in range(len(texts)) if i not in set(val)]
    info = {"method": f"by document: seeded permutation (split_seed={seed}), val until "
                      f"val_fraction={val_fraction} of the characters",
            "val_documents": [names[i] for i in sorted(val)]}
    return [(names[i], texts[i]) for i in train], [(names[i], texts[i]) for i in sorted(val)], info


def _gpt2_ids(enc, texts: list[str]) -> np.ndarray:
    # 16 MB/s with num_threads=2 on 2 cores vs 7.5 MB/s with 1 (docs/platform.md §2)
    ids = enc.encode_ordinary_batch(texts, num_threads=2)
    out = np.empty(sum(map(len, ids)) + len(ids), dtype=np.uint16)
    pos = 0
    for doc in ids:
        out[pos:pos + len(doc)] = doc
        out[pos + len(doc)] = tokenizer.GPT2_EOT
        pos += len(doc) + 1
    return out


def _load_local(dcfg, root: Path) -> tuple[dict, dict]:
    """({split: uint16 ids}, meta fields) for shakespeare / text, all in memory."""
    names, texts, detail = getattr(sources, dcfg.source)(dcfg, root)
    train, val, info = split_documents(names, texts, float(dcfg.val_fraction), int(dcfg.split_seed))
    meta = {}
    if dcfg.tokenizer == "char":
        itos = tokenizer.char_vocab("".join(texts) + CHAR_SEPARATOR)
        if len(itos) > 65535:
            raise UserError(f"the corpus has {len(itos)} distinct characters, more than uint16 holds: use data.tokenizer=gpt2")
        meta.update(vocab_size=len(itos), itos=itos, separator=CHAR_SEPARATOR)
        ids = {s: tokenizer.char_encode("".join(t + CHAR_SEPARATOR for _, t in docs), itos)
               for s, docs in (("train", train), ("val", val))}
    else:
        enc = tokenizer.gpt2_encoding(root / "tiktoken_cache")
        meta.update(vocab_size=tokenizer.GPT2_VOCAB, eot_token=tokenizer.GPT2_EOT)
        ids = {s: _gpt2_ids(enc, [t for _, t in docs]) for s, docs in (("train", train), ("val", val))}
    meta.update(documents={"train": len(train), "val": len(val)}, split=info, source_detail=detail)
    return ids, meta


def write_bin(path: Path, ids: np.ndarray) -> tuple[int, str]:
    """(tokens, sha256) after writing `ids` as raw uint16 (what np.memmap(dtype=uint16) reads)."""
    ids = np.ascontiguousarray(ids, dtype=np.uint16)
    with open(path, "wb") as f:
        f.write(ids.data)
        f.flush()
        os.fsync(f.fileno())
    return len(ids), hashlib.sha256(ids.data).hexdigest()


# ----------------------------------------------------------------------------- prepare

def prepare(dcfg, force: bool = False) -> Path:
    """Prepare `dcfg` (the `data` config node) unless already done (`force`: again, replacing the
    existing dir once the new one is complete); returns the data dir."""
    root, target = data_root(dcfg), data_dir(dcfg)
    new_root = not root.exists()
    try:
        return _prepare(dcfg, force, root, target)
    except OSError as e:  # full disk, read-only root: one line, the partial files gone
        if new_root and root.is_dir() and not any(root.iterdir()):
            root.rmdir()  # made by this prepare, empty again
        raise _write_error(e, root, target) from None


def _prepare(dcfg, force: bool, root: Path, target: Path) -> Path:
    t0 = time.time()
    digest, inputs = fingerprint(dcfg)
    if not force and _existing(target, digest, inputs):
        print(f"{target} is already prepared (same fingerprint): nothing to do")
        return target
    loader = functools.partial(openwebtext.load, target=target) if dcfg.source == "openwebtext" else _load_local
    splits, meta = loader(dcfg, root)  # fails (offline, missing sdist) before anything is created
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale(root, target.name)
    tmp = root / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        counts, sums, tops = {}, {}, {}
        for s in ("train", "val"):
            if isinstance(splits[s], np.ndarray):
                counts[s], sums[s] = write_bin(tmp / f"{s}.bin", splits[s])
                tops[s] = int(splits[s].max()) if len(splits[s]) else -1
            else:
                counts[s], sums[s], tops[s] = openwebtext.write_shards(tmp / f"{s}.bin", splits[s])
        meta = {"name": target.name, "source": dcfg.source, "tokenizer": dcfg.tokenizer, "dtype": "uint16",
                **meta, "train_tokens": counts["train"], "val_tokens": counts["val"],
                "checksums": {f"{s}.bin": sums[s] for s in ("train", "val")},
                "fingerprint": digest, "fingerprint_of": inputs,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "prepare_seconds": round(time.time() - t0, 2)}
        # key order: identity, vocab, sizes, provenance (json keeps insertion order)
        order = ["name", "source", "tokenizer", "vocab_size", "itos", "separator", "eot_token", "dtype",
                 "train_tokens", "val_tokens", "documents", "split", "source_detail", "checksums"]
        meta = {k: meta[k] for k in order if k in meta} | meta
        with open(tmp / "meta.json", "w") as f:
            json.dump(meta, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        seal(tmp, {f"{s}.bin": {"sha256": sums[s], "max_id": tops[s]} for s in ("train", "val")})  # measured here: no re-read at first use
        if force and target.exists():  # the old dir goes only now that the new one is complete
            old = root / f".{target.name}.tmp-old-{os.getpid()}"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, target)
            except OSError:  # another process (a second rank) finished first: fine if it is the same data
                if not _existing(target, digest, inputs):
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"prepared {target}: {counts['train']:,} train + {counts['val']:,} val tokens "
          f"({dcfg.tokenizer}, vocab {meta['vocab_size']:,}) in {time.time() - t0:.1f} s")
    return target


def ensure_prepared(dcfg) -> Path:
    """The data dir of `dcfg`, preparing it first when it does not exist yet."""
    target = data_dir(dcfg)
    try:
        digest, inputs = fingerprint(dcfg)
    except UserError as e:
        # a text corpus copied here without its source files: the prepared dir is all training needs
        if dcfg.get("source") == "text" and (target / "meta.json").is_file():
            print(f"note: {e}; using the prepared {target} as it is")
            verify(target, load_meta(target))
            return target
        raise
    if _existing(target, digest, inputs):
        return target
    print(f"data: {target} is not prepared yet; preparing it now (once)")
    return prepare(dcfg)


@cli.guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m data.prepare", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides: data=<corpus>, data.root=..., data.name=...")
    ap.add_argument("--force", action="store_true", help="prepare again even if the dir exists (replaced once complete)")
    args, unknown = ap.parse_known_intermixed_args(sys.argv[1:] if argv is None else list(argv))
    if unknown:  # one line naming the usage, as every bad input gets (argparse would print its usage block)
        raise UserError(f"unknown flag {unknown[0]}: python -m data.prepare data=... [--force]")
    prepare(cli.compose(args.overrides).data, force=args.force)


if __name__ == "__main__":
    main()
