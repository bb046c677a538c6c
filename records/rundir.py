"""The run directory: checked before anything is written in it, and held by one process at a time.

`check_dir_usable` answers "can a run live here?" in one line (a path under a regular file, a
directory this user cannot write). `RunLock` is `<run dir>/.lock`: an `fcntl.flock` on it (the
kernel drops the lock when its process dies, however it dies) plus the holder's pid and host
written inside, so a refused second process can say who holds it. A `.lock` file whose lock is
not held (its process was killed) is stale and is taken over with a note.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

from errors import UserError

LOCK = ".lock"


def _deepest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_dir_usable(path: Path, key: str = "hydra.run.dir") -> None:
    """UserError unless `path` is (or can be created as) a directory this process can write."""
    path = Path(path)
    base = _deepest_existing(path.absolute())
    if not base.is_dir():
        raise UserError(f"{key}={path}: {base} is a file, not a directory: choose another {key}")
    if not os.access(base, os.W_OK | os.X_OK):
        where = "" if base == path.absolute() else f" (to create {path} in)"
        raise UserError(f"{key}={path}: cannot write in {base}{where}: permission denied; choose another {key} "
                        "or make it writable")


def static_prefix(text: str) -> str:
    """The part of a Hydra dir setting before its first interpolation, quotes removed
    (`outputs/${now:%Y-%m-%d}/...` -> `outputs/`), for a check before Hydra resolves it."""
    text = text.strip().strip("'\"")
    return text.split("${", 1)[0] or "."


def make_run_dir(run_dir: Path) -> None:
    """mkdir -p, with the reasons it fails said in one line."""
    check_dir_usable(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"hydra.run.dir={run_dir}: a file is in the way: choose another hydra.run.dir") from None
    except PermissionError:
        raise UserError(f"hydra.run.dir={run_dir}: permission denied: choose another hydra.run.dir or make it writable") from None


class RunLock:
    """An exclusive hold on a run dir for the life of one process (rank 0 under torchrun)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None
        self.note: str | None = None  # set when a stale lock was taken over

    def acquire(self) -> "RunLock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except PermissionError:
                raise UserError(f"cannot write in {self.path.parent}: permission denied; choose another hydra.run.dir "
                                "or make it writable") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = os.pread(fd, 200, 0).decode(errors="replace").split()
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                who = f"pid {holder[0]} on {holder[1]}" if len(holder) >= 2 else "another process"
                raise UserError(f"{self.path.parent} is in use by {who} (it holds {self.path}): wait for that run "
                                "to end, or choose another hydra.run.dir") from None
            try:  # the file we locked may have been removed by its releasing holder meanwhile: retry
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            old = os.pread(fd, 200, 0).decode(errors="replace").split()
            if old:
                self.note = f"took over the stale lock {self.path} of pid {old[0]}" + (f" on {old[1]}" if len(old) > 1 else "") + \
                            " (that process is gone)"
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
            self.fd = fd
            return self

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()  # before unlocking: a waiter that opened this file re-checks the inode
        except FileNotFoundError:
            pass
        os.close(self.fd)  # drops the flock
        self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
