"""Does a prepared dir hold what its meta.json says? Checksums and the token-id range, checked once.

`python -m data.prepare` records the sha256 of train.bin and val.bin in meta.json. Reading a
multi-GB bin to hash it costs seconds, so what was measured (sha256, largest token id) is cached
in `<dir>/.verified.json`, keyed by each file's (size, mtime_ns): a run then pays one stat() per
file, and a rewritten file (new mtime) is read again. The cache holds measurements, not a
verdict: every use compares them with meta.json as it is now, so an edited vocab_size is caught
too. A dir that cannot be written (a shared, read-only data root) is simply verified every time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from cli import CONF_DIR, data_cache
from errors import UserError

SIDECAR = ".verified.json"
CHUNK = 1 << 24  # bytes read at a time: 16 MiB


def again(target: Path) -> str:
    """The command that prepares `target` afresh (what every message here names as the fix)."""
    target = Path(target)
    name, root = target.name, target.parent
    root_arg = "" if root.resolve() == data_cache().resolve() else f" data.root={root}"
    if (CONF_DIR / "data" / f"{name}.yaml").is_file():
        return f"python -m data.prepare data={name}{root_arg} --force"
    return f"python -m data.prepare data=<the data=... you prepared it with> data.name={name}{root_arg} --force"


def measure(path: Path) -> dict:
    """sha256 and largest token id of a uint16 bin, read in chunks."""
    h, top = hashlib.sha256(), -1
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            ids = np.frombuffer(chunk, dtype=np.uint16, count=len(chunk) // 2)
            if ids.size:
                top = max(top, int(ids.max()))
    return {"sha256": h.hexdigest(), "max_id": top}


def _cached(target: Path) -> dict:
    try:
        data = json.loads((target / SIDECAR).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def verify(target: Path, meta: dict) -> None:
    """UserError naming `python -m data.prepare ... --force` when a bin's content does not match
    meta.json's checksum, or holds an id >= vocab_size. Costs a stat() per file once cached."""
    target = Path(target)
    cache, fresh = _cached(target), False
    for split in ("train", "val"):
        f = target / f"{split}.bin"
        st = f.stat()
        key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        seen = cache.get(f.name) if isinstance(cache.get(f.name), dict) else {}
        if {k: seen.get(k) for k in key} != key or not {"sha256", "max_id"} <= set(seen):
            # meta.json of an older prepare may lack checksums: then the first measurement is the reference
            reference = seen.get("sha256")
            seen = {**key, **measure(f)}
            fresh = True
            if not (meta.get("checksums") or {}).get(f.name) and reference and reference != seen["sha256"]:
                raise UserError(f"{f} changed since it was first verified (same name, other content): "
                                f"prepare it again with `{again(target)}`")
            cache[f.name] = seen
        want = (meta.get("checksums") or {}).get(f.name)
        if want and seen["sha256"] != want:
            raise UserError(f"{f} does not match the sha256 in meta.json (damaged or overwritten since it was "
                            f"prepared): prepare it again with `{again(target)}`")
        if seen["max_id"] >= meta["vocab_size"]:
            raise UserError(f"{f} holds token id {seen['max_id']} but meta.json says vocab_size={meta['vocab_size']} "
                            f"(ids must be below it): prepare it again with `{again(target)}`")
    if fresh:  # only a dir that passed: a failed check leaves nothing behind
        _write(target, cache)


def seal(target: Path, measured: dict) -> None:
    """Record what `python -m data.prepare` measured while writing the bins ({file: {sha256,
    max_id}}), so the first use does not read them again."""
    _write(target, {name: {"size": (target / name).stat().st_size, "mtime_ns": (target / name).stat().st_mtime_ns, **m}
                    for name, m in measured.items()})


def _write(target: Path, cache: dict) -> None:
    tmp = target / f"{SIDECAR}.tmp-{os.getpid()}"
    try:
        tmp.write_text(json.dumps(cache, indent=1) + "\n")
        os.replace(tmp, target / SIDECAR)
    except OSError:  # read-only data root: verified again next time
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
