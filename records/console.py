"""What a run prints: Python `logging` for every line, a tqdm bar only on a terminal.

Every message goes to the logger "hptransfer", so Hydra's job logging (conf/hydra/job_logging/
hptransfer.yaml) writes it to `<run dir>/train.log` as well as to the console. The console
handler is `ConsoleHandler`: while a progress bar is on screen it writes through `tqdm.write`
(so lines never break the bar) and skips the per-log-step lines, which the bar already shows.
When the console is not a terminal (SLURM, nohup, `make train > log`, CI) tqdm turns its bar off and
the per-log-step lines are printed instead, one per `train.log_interval`.
"""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm

LOGGER = "hptransfer"
log = logging.getLogger(LOGGER)

_bars: list = []  # the progress bars now on screen (one at most in practice)


class ConsoleHandler(logging.StreamHandler):
    """A stream handler that shares the terminal with a tqdm bar."""

    def emit(self, record: logging.LogRecord) -> None:
        shared = bool(_bars) and _isatty(self.stream)  # the bar is on this terminal too
        if not shared:
            return super().emit(record)  # a file or pipe: every line, the per-step ones too
        if getattr(record, "progress", False):
            return  # the bar shows it; the file handler still records it
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging must never kill a run
            self.handleError(record)


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def setup() -> logging.Logger:
    """Make sure the run's lines are seen when no logging is configured (a direct `run()` call,
    `python -c`): Hydra configures handlers for `python train.py`; elsewhere a plain console
    handler is added once. The logger's own level is INFO either way."""
    log.setLevel(logging.INFO)
    if not log.handlers and not logging.getLogger().handlers:
        h = ConsoleHandler(sys.stdout)
        h.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(h)
        log.propagate = False
    return log


class Progress:
    """The loop's progress: a tqdm bar where one is wanted and the output is a terminal, and a
    log line per logged step (printed only when there is no bar)."""

    def __init__(self, total: int, initial: int, enabled: bool, quiet: bool = False):
        self.quiet = quiet  # ranks other than 0: no bar, no lines
        # disable=None: tqdm decides, off when stderr (its stream) is not a terminal
        self.bar = tqdm(total=total, initial=initial, disable=None if enabled and not quiet else True,
                        dynamic_ncols=True, unit="step")
        self.total = total
        if not self.bar.disable:
            _bars.append(self.bar)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def step(self, step: int, loss: float, lr: float, tok_s: float, eta_s: float | None) -> None:
        self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s:,.0f}")
        if self.quiet:
            return
        eta = f"  eta {format_duration(eta_s)}" if eta_s is not None else ""
        log.info(f"step {step}/{self.total}  loss {loss:.4f}  lr {lr:.3g}  {tok_s:,.0f} tok/s{eta}",
                 extra={"progress": True})

    def postfix(self, **kw) -> None:
        self.bar.set_postfix(**kw)

    def close(self) -> None:
        if self.bar in _bars:
            _bars.remove(self.bar)
        self.bar.close()


def format_duration(seconds: float) -> str:
    s = int(round(max(seconds, 0)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"
