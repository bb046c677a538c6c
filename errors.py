"""The one exception a user can fix, and the wrapper that prints it in one line. The bottom of the
import graph: every layer may raise a UserError, and this module imports nothing of the project."""

from __future__ import annotations

import functools
import os
import sys
from typing import Callable


class UserError(Exception):
    """A mistake the user can fix; printed as one line, never as a traceback."""


def full_errors() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def guard(fn: Callable) -> Callable:
    """Run `fn`; print a UserError as `error: ...` and exit 2 (exit 1 for other failures
    keeps their traceback: those are bugs, not user mistakes)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            if full_errors():
                raise
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except BrokenPipeError:  # `python -m param ... | head`: the reader left, nothing is wrong
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)

    return wrapper
