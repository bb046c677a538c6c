"""metrics.jsonl and atomic JSON files.

JSON has no NaN or Infinity, so neither file ever holds them: a non-finite number is written
as `null`, and the record (or summary) gains `"nonfinite": {"<key>": "nan" | "inf" | "-inf"}`
naming what it was (nested keys dotted, e.g. `"config.lr"`). A record cut off by a kill in the
middle of its write (a last line without its newline that does not parse) is not a record:
readers skip it, and a resumed run sets it aside in metrics.jsonl.partial before appending.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

PARTIAL = "metrics.jsonl.partial"
SUPERSEDED = "metrics.superseded.jsonl"


def finite(obj: dict) -> dict:
    """A copy of `obj` with every non-finite float replaced by None and named under "nonfinite"."""
    found: dict[str, str] = {}

    def clean(v, key: str):
        if isinstance(v, float) and not math.isfinite(v):
            found[key] = str(v)
            return None
        if isinstance(v, dict):
            return {k: clean(x, f"{key}.{k}" if key else str(k)) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x, f"{key}.{i}") for i, x in enumerate(v)]
        return v

    out = clean(obj, "")
    if found:
        out["nonfinite"] = {**obj.get("nonfinite", {}), **found}
    return out


def _dumps(obj, **kw) -> str:
    return json.dumps(finite(obj) if isinstance(obj, dict) else obj, allow_nan=False, default=str, **kw)


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(_dumps(obj, indent=1) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_records(path: Path) -> tuple[list[dict], str | None]:
    """(records, the cut-off last line or None). A line that does not parse anywhere else is
    not a kill mid-write: ValueError naming the file and line."""
    path = Path(path)
    if not path.exists():
        return [], None
    text = path.read_text()
    lines = text.split("\n")
    records, partial = [], None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # no newline after it: the write was cut off
                partial = line
            else:
                raise ValueError(f"{path} line {i + 1} is not JSON: {line[:60]!r}") from None
    return records, partial


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSONL file; a cut-off last line (a kill mid-write) is skipped."""
    return read_records(path)[0]


class MetricsLog:
    """Appends one JSON object per record to <run dir>/metrics.jsonl, flushed each time."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "metrics.jsonl"
        self._f = None
        self.last_step: int | None = None  # of the last record written (for "kept up to step N")

    def rewind(self, step: int) -> tuple[int, str | None]:
        """On resume from a checkpoint at `step`: records after it (written by the run that
        was interrupted) move to metrics.superseded.jsonl, and a cut-off last line to
        metrics.jsonl.partial, so metrics.jsonl holds one history and nothing is thrown away.
        Returns (how many records moved, the cut-off line or None)."""
        records, partial = read_records(self.path)
        keep = [r for r in records if r.get("step", 0) <= step]
        later = [r for r in records if r.get("step", 0) > step]
        if later:
            with open(self.path.with_name(SUPERSEDED), "a") as f:
                f.write("".join(_dumps(r) + "\n" for r in later))
        if partial is not None:
            with open(self.path.with_name(PARTIAL), "a") as f:
                f.write(partial + "\n")
        if later or partial is not None:
            tmp = self.path.with_name(".metrics.jsonl.tmp")
            tmp.write_text("".join(_dumps(r) + "\n" for r in keep))
            os.replace(tmp, self.path)
        self.last_step = max((r.get("step", 0) for r in keep), default=None)
        return len(later), partial

    def write(self, record: dict) -> None:
        if self._f is None:
            self._f = open(self.path, "a")
        self._f.write(_dumps(record) + "\n")
        self._f.flush()
        self.last_step = record.get("step", self.last_step)

    def close(self) -> None:
        if self._f is not None:
            f, self._f = self._f, None
            try:
                f.close()
            except OSError:  # a full disk: every record that could be written was (flushed each time)
                pass
