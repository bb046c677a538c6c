"""Faults a run survives without losing what it wrote: a stop signal (Ctrl-C, SLURM's SIGTERM
before preemption) ends it at a step boundary with a checkpoint; a full disk ends it in one line
saying what was kept."""

from __future__ import annotations

import contextlib
import errno
import signal
import threading
from pathlib import Path

from errors import UserError
from records.checkpoint import latest_checkpoint
from records.files import MetricsLog
from records.resume import resume_command


class StopSignal:
    """SIGINT / SIGTERM (Ctrl-C, SLURM preemption): finish the step, save a checkpoint, write the
    summary, exit 130 / 143. The handler only sets a flag; the loop reads it once per step (a
    Python attribute: no device sync). A second signal quits at once; the checkpoints already
    complete stay (each is renamed into place whole)."""

    CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in self.CODES}
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise SystemExit(self.CODES[signum])
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def no_space_guard(path: Path, run_dir: Path, metrics: MetricsLog):
    """A full disk while writing `path`: one line saying what was kept and how to go on."""
    try:
        yield
    except Exception as e:  # OSError(ENOSPC); DCP wraps it in its own exception
        if not (getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(e)):
            raise
        kept = latest_checkpoint(run_dir / "checkpoints")
        ck = f"kept {kept.relative_to(run_dir)}" if kept is not None else "no checkpoint written yet"
        ms = f"metrics.jsonl up to step {metrics.last_step}" if metrics.last_step is not None else "no metrics yet"
        raise UserError(f"no space left on device while writing {path}: {ck}, {ms}; free space and resume with "
                            f"`{resume_command(run_dir)}`") from None
