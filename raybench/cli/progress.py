"""Progress output of long commands: on a terminal the status line is rewritten in place; in a log
(not a terminal, e.g. CI) every status line is a plain line. Messages (start-up, violations) always
get their own line. Writes to stderr, so stdout keeps the results and the run folder's path.

The engine takes any ``Callable[[str], None]`` as ``progress``; a :class:`Printer` also has
``status`` for the periodic line, which the engine uses when it is there, and ``tty``: the run's
live view (:class:`raybench.engine.watch.ProgressLine`) refreshes every 2 s on a terminal and every
2 to 10 s in a log (about 20 lines a run), so a long run does not flood its log.
"""

from __future__ import annotations

import shutil
import sys
from typing import TextIO


class Printer:
    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._status_shown = False

    def __call__(self, line: str) -> None:
        """A message on its own line."""
        if self.quiet:
            return
        self._clear()
        self.stream.write(line + "\n")
        self.stream.flush()

    def status(self, line: str) -> None:
        """The periodic status line: rewritten in place on a terminal, a plain line elsewhere."""
        if self.quiet:
            return
        if not self.tty:
            self(line)
            return
        width = shutil.get_terminal_size((120, 20)).columns
        self.stream.write("\r\033[K" + line[: max(20, width - 1)])
        self.stream.flush()
        self._status_shown = True

    def close(self) -> None:
        """Leave the terminal on a fresh line."""
        self._clear()

    def _clear(self) -> None:
        if self.tty and self._status_shown:
            self.stream.write("\r\033[K")
            self._status_shown = False
