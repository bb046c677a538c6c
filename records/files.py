"""metrics.jsonl and atomic JSON files."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def _clean(v):
    # JSON has no NaN/Infinity: write them as strings so every line stays valid JSON
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsLog:
    """Appends one JSON object per record to <run dir>/metrics.jsonl, flushed each time."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "metrics.jsonl"
        self._f = None

    def rewind(self, step: int) -> int:
        """On resume from a checkpoint at `step`: records after it (written by the run that
        was interrupted) move to metrics.superseded.jsonl, so metrics.jsonl holds one
        history and nothing is thrown away. Returns how many records moved."""
        records = read_jsonl(self.path)
        keep = [r for r in records if r.get("step", 0) <= step]
        later = [r for r in records if r.get("step", 0) > step]
        if later:
            with open(self.path.with_name("metrics.superseded.jsonl"), "a") as f:
                for r in later:
                    f.write(json.dumps(r) + "\n")
            tmp = self.path.with_name(".metrics.jsonl.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
            os.replace(tmp, self.path)
        return len(later)

    def write(self, record: dict) -> None:
        if self._f is None:
            self._f = open(self.path, "a")
        self._f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
