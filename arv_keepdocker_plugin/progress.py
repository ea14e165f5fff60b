"""Upload progress on stderr, in arv-put's formats.

``--progress`` (default on a terminal): ``\\r<written>M / <total>M <pct> `` or,
when the total is unknown (a streamed export), ``\\r<written>M``.
``--batch-progress``: ``<argv0> <pid>: <written> written <total> total`` lines,
with ``-1`` for an unknown total, as arv-put prints them.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Optional


class Progress:
    """Counts bytes and reports at most every ``interval`` seconds."""

    def __init__(self, mode: Optional[str], stream=None, interval: float = 0.5):
        self.mode = mode  # None, "human" or "machine"
        self.stream = stream or sys.stderr
        self.interval = interval
        self.written = 0
        self.expected: Optional[int] = None
        self._last = 0.0

    def update(self, nbytes: int) -> None:
        self.written += nbytes
        now = time.monotonic()
        if self.mode and now - self._last >= self.interval:
            self._last = now
            self._emit()

    def finish(self) -> None:
        if self.mode:
            self._emit()
            if self.mode == "human":
                self.stream.write("\n")
            self.stream.flush()

    def _emit(self) -> None:
        if self.mode == "machine":
            self.stream.write("{} {}: {} written {} total\n".format(
                sys.argv[0], os.getpid(), self.written,
                -1 if self.expected is None else self.expected))
        elif self.expected:
            self.stream.write("\r{}M / {}M {:.1%} ".format(
                self.written >> 20, self.expected >> 20,
                self.written / self.expected))
        else:
            self.stream.write("\r{}M ".format(self.written >> 20))
        self.stream.flush()


def mode_from_options(options) -> Optional[str]:
    """3.2.1's rule: --batch-progress, --progress, else a terminal gets human output."""
    progress = getattr(options, "progress", False)
    if not (getattr(options, "batch_progress", False) or getattr(options, "no_progress", False)
            or getattr(options, "silent", False)) and sys.stderr.isatty():
        progress = True
    if progress:
        return "human"
    if getattr(options, "batch_progress", False):
        return "machine"
    return None
