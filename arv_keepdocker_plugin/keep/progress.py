"""Upload progress on stderr: bytes downloaded, read, uploaded and reused.

``--progress`` (default on a terminal) redraws one line:
``\\r<stored>M stored: <read>M read, <uploaded>M uploaded, <reused>M reused ``.
``--batch-progress`` prints lines that begin exactly as arv-put's
(``<argv0> <pid>: <written> written -1 total``: the total of a stream is
unknown, and arv-put says so with -1) so existing parsers keep working, followed by
``<read> read <uploaded> uploaded <reused> reused``. "written" counts bytes
of the stored tar, whether uploaded or reused from blocks already in Keep;
"read" counts bytes read from the source (stored layers of an archive on
disk are not read at all).

For a source that downloads (a registry), ``downloads=True`` adds the bytes
received over the network: ``... <reused> reused <downloaded> downloaded`` on
machine lines and ``, <downloaded>M downloaded`` on the human line. Lines
of the other sources are unchanged, so parsers written for them (anchored
at ``reused``) keep working; a parser for every source reads the
``<number> <word>`` pairs after ``total``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Optional


class Progress:
    """Counts bytes (from several threads) and reports at most every ``interval`` s."""

    def __init__(self, mode: Optional[str], stream=None, interval: float = 0.5,
                 downloads: bool = False):
        self.mode = mode  # None, "human" or "machine"
        self.stream = stream or sys.stderr
        self.interval = interval
        #: Whether lines show ``downloaded`` (the source downloads: a registry).
        self.downloads = downloads
        self.read = self.uploaded = self.reused = self.written = self.downloaded = 0
        self._lock = threading.Lock()
        self._last = 0.0

    def add(self, read: int = 0, uploaded: int = 0, reused: int = 0, written: int = 0,
            downloaded: int = 0) -> None:
        with self._lock:
            self.read += read
            self.uploaded += uploaded
            self.reused += reused
            self.written += written
            self.downloaded += downloaded
            now = time.monotonic()
            if self.mode and now - self._last >= self.interval:
                self._last = now
                self._emit()

    def finish(self) -> None:
        if self.mode:
            with self._lock:
                self._emit()
                if self.mode == "human":
                    self.stream.write("\n")
                self.stream.flush()

    def _emit(self) -> None:
        if self.mode == "machine":
            # The export is a stream: its total is unknown, -1 as arv-put says it.
            self.stream.write("{} {}: {} written -1 total {} read {} uploaded {} reused{}\n".format(
                sys.argv[0], os.getpid(), self.written, self.read, self.uploaded, self.reused,
                " {} downloaded".format(self.downloaded) if self.downloads else ""))
        else:
            self.stream.write("\r{}M stored: {}M read, {}M uploaded, {}M reused{} ".format(
                self.written >> 20, self.read >> 20, self.uploaded >> 20, self.reused >> 20,
                ", {}M downloaded".format(self.downloaded >> 20) if self.downloads else ""))
        self.stream.flush()


def mode_from_options(options) -> Optional[str]:
    """arv-put 3.2.1's rule: --progress, else --batch-progress; a terminal gets --progress."""
    progress = getattr(options, "progress", False)
    if not (getattr(options, "batch_progress", False) or getattr(options, "no_progress", False)
            or getattr(options, "silent", False)) and sys.stderr.isatty():
        progress = True
    if progress:
        return "human"
    if getattr(options, "batch_progress", False):
        return "machine"
    return None
