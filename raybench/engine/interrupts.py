"""Ctrl-C and SIGTERM during a run, delivered only where the driver's state is consistent.

Python raises ``KeyboardInterrupt`` between any two bytecodes of the main thread. Raised in the
middle of judging a window (after the SLA monitor took window ``k``, before the driver noted that it
handed ``k`` over), the drain that follows would hand ``k`` over again. So while a run is being
watched, both signals go through :class:`Interrupts`: outside a :meth:`Interrupts.deferred` block
they raise ``KeyboardInterrupt`` at once; inside one they are remembered and raised when the block
ends. A second signal while one is pending raises at once (the user insists).

A process that inherited an ignored SIGINT (a script's background job) keeps ignoring it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class Interrupts:
    """Installs handlers for SIGINT (unless ignored) and SIGTERM; restore with :meth:`restore`."""

    def __init__(self) -> None:
        self._depth = 0
        self.pending: int | None = None  # the signal received inside a deferred block
        self._previous: dict[int, Any] = {}

    def install(self) -> Interrupts:
        for sig in (signal.SIGINT, signal.SIGTERM):
            current = signal.getsignal(sig)
            if sig == signal.SIGINT and current is signal.SIG_IGN:
                continue
            self._previous[sig] = current
            signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._depth > 0 and self.pending is None:
            self.pending = signum
            return
        self.pending = None
        raise KeyboardInterrupt

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """A block that a signal does not cut in two: it is raised when the block ends."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self.pending is not None:
                self.pending = None
                raise KeyboardInterrupt
