"""Exceptions raised by fuse_bench.

::

    FuseBenchError             base class; never raised itself
    ├── UsageError             a bad argument (unknown backend, mode or operation, a value out of range)
    └── RuntimeFailure         the workload or the mount could not be carried out
        └── FuseUnavailable    FUSE cannot be used here (the message says exactly why)

Every message is one line: what was wrong and what is allowed. A program embedding fuse_bench maps
them to its own errors (raybench: ``UsageError`` -> exit code 2, ``RuntimeFailure`` -> 3).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FuseBenchError(Exception):
    """Base class of every error fuse_bench raises on purpose."""


class UsageError(FuseBenchError, ValueError):
    """An argument that cannot be used as given."""


class RuntimeFailure(FuseBenchError):
    """The workload or the mount could not be carried out."""


class FuseUnavailable(RuntimeFailure):
    """FUSE cannot be used on this machine, or the mount failed; the message gives the reason."""


def nearest(word: str, allowed: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest allowed word, or an empty string."""
    match = difflib.get_close_matches(word, list(allowed), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""
