"""Exceptions raised by raybench.

::

    RaybenchError                 base class; never raised itself
    ├── UsageError                bad input from the user -> CLI exit code 2, one line, no traceback
    │   ├── ScenarioError         a scenario key or value is wrong (names the key and what is allowed)
    │   ├── ThresholdError        an SLA expression does not parse (names the position)
    │   └── ResultsError          a results folder is missing, unreadable or of an unknown schema
    └── RuntimeFailure            the run could not be carried out -> CLI exit code 3
        ├── RayFailure            Ray could not be started or reached, or an actor died for good
        └── FuseUnavailable       FUSE cannot be used here (the message says exactly why)

Every message is meant to be printed as a single line: what was wrong and what is allowed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RaybenchError(Exception):
    """Base class of every error raybench raises on purpose."""


class UsageError(RaybenchError):
    """The user asked for something that cannot be done as asked (exit code 2)."""


class ScenarioError(UsageError):
    """A scenario (TOML, preset or override) is invalid."""


class ThresholdError(UsageError):
    """An SLA threshold expression is malformed."""


class ResultsError(UsageError):
    """A results folder or file cannot be read (missing, corrupt, unknown schema version)."""


class RuntimeFailure(RaybenchError):
    """The benchmark could not be carried out (exit code 3)."""


class RayFailure(RuntimeFailure):
    """Ray could not be started or reached, or a required actor is gone."""


class FuseUnavailable(RuntimeFailure):
    """FUSE cannot be used on this machine; the message gives the precise reason."""


def nearest(word: str, allowed: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest allowed word, or an empty string."""
    match = difflib.get_close_matches(word, list(allowed), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""
