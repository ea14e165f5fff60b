"""Upload progress on stderr: how much of the image is stored, and how.

"Stored" counts bytes of the stored tar, whether uploaded or reused from
blocks already in Keep; "read" counts bytes read from the source (stored
layers of an archive on disk are not read at all); "downloaded" (a source
that downloads: a registry) the bytes received over the network.

``--progress`` (default on a terminal) redraws one line, with the total
when the source knows it (archives, OCI layouts, registries from their
manifests), the rate and the time left::

    128M / 572M stored (22.4%), 12.5M/s, 0:35 left: 264M read, 128M uploaded, 0M reused

An estimated total (an engine's reported image size) shows as ``~572M``, its
percentage whole and never above 99% until the end; with no total the line
says ``(total unknown)``. ``, 300M downloaded`` follows for a registry.

``--batch-progress`` prints lines that begin exactly as arv-put's
(``<argv0> <pid>: <stored> written <total> total``, the total ``-1`` only when
unknown, as arv-put says it) so existing parsers keep working, followed by
``<read> read <uploaded> uploaded <reused> reused`` and, for a source that
downloads, `` <downloaded> downloaded``; a parser for every source reads the
``<number> <word>`` pairs after ``total``. An estimated total is printed as
it is, but never below the bytes already written, and the last line's
total is what was written.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time

#: Seconds before a rate (and the time left) is shown: the first blocks say little.
RATE_AFTER = 1.0


def mebibytes(count: int) -> str:
    return f"{count >> 20}M"


def duration(seconds: float) -> str:
    """``M:SS`` or ``H:MM:SS``."""
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


class Progress:
    """Counts bytes (from several threads) and reports at most every ``interval`` s.

    :param total: the length of the stored tar when known before the upload
        (:attr:`~..image.Image.export_size`), else None.
    :param estimated: ``total`` is only an estimate.
    """

    def __init__(self, mode: str | None, stream=None, interval: float = 0.5,
                 downloads: bool = False, total: int | None = None,
                 estimated: bool = False, clock=time.monotonic):
        self.mode = mode  # None, "human" or "machine"
        self.stream = stream or sys.stderr
        self.interval = interval
        #: Whether lines show ``downloaded`` (the source downloads: a registry).
        self.downloads = downloads
        self.total = total
        self.estimated = estimated and total is not None
        self.read = self.uploaded = self.reused = self.written = self.downloaded = 0
        self.finished = False
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._last = 0.0
        self._width = 0

    def add(self, read: int = 0, uploaded: int = 0, reused: int = 0, written: int = 0,
            downloaded: int = 0) -> None:
        with self._lock:
            self.read += read
            self.uploaded += uploaded
            self.reused += reused
            self.written += written
            self.downloaded += downloaded
            now = self._clock()
            if self.mode and now - self._last >= self.interval:
                self._last = now
                self._emit()

    def finish(self) -> None:
        with self._lock:
            self.finished = True
            if self.mode:
                self._emit()
                if self.mode == "human":
                    self.stream.write("\n")
                self.stream.flush()

    # -- what the lines say ------------------------------------------------------

    def shown_total(self) -> int | None:
        """The total to show: an estimate never below what is written, and at the end
        exactly what was written."""
        if self.total is None:
            return None
        if self.estimated:
            return self.written if self.finished else max(self.total, self.written)
        return self.total

    def rate(self) -> float | None:
        """Bytes stored per second so far, once there is something to go by."""
        elapsed = self._clock() - self._start
        if elapsed < RATE_AFTER or self.written <= 0:
            return None
        return self.written / elapsed

    def machine_line(self) -> str:
        total = self.shown_total()
        return "{} {}: {} written {} total {} read {} uploaded {} reused{}\n".format(
            sys.argv[0], os.getpid(), self.written, -1 if total is None else total,
            self.read, self.uploaded, self.reused,
            f" {self.downloaded} downloaded" if self.downloads else "")

    def human_line(self) -> str:
        total = self.shown_total()
        rate = None if self.finished else self.rate()
        if total is None:
            head = f"{mebibytes(self.written)} stored (total unknown)"
        else:
            head = "{} / {}{} stored ({})".format(
                mebibytes(self.written), "~" if self.estimated and not self.finished else "",
                mebibytes(total), self._percent(total))
        if rate is not None:
            head += f", {rate / (1 << 20):.1f}M/s"
            if total is not None and total > self.written:
                head += ", {}{} left".format("~" if self.estimated else "",
                                             duration((total - self.written) / rate))
        return "{}: {} read, {} uploaded, {} reused{}".format(
            head, mebibytes(self.read), mebibytes(self.uploaded), mebibytes(self.reused),
            f", {mebibytes(self.downloaded)} downloaded" if self.downloads else "")

    def _percent(self, total: int) -> str:
        if total <= 0:
            return "100.0%"
        fraction = min(self.written / total, 1.0)
        if not self.estimated or self.finished:
            return f"{fraction:.1%}"
        return f"{min(int(fraction * 100), 99)}%"

    def _emit(self) -> None:
        if self.mode == "machine":
            self.stream.write(self.machine_line())
        else:
            line = self.human_line()
            if _isatty(self.stream):
                # A line that wraps cannot be redrawn: the totals first, the rest cut.
                line = line[:shutil.get_terminal_size().columns - 2]
            # Blank what a longer line before left behind.
            self.stream.write("\r{}{} ".format(line, " " * max(self._width - len(line), 0)))
            self._width = len(line)
        self.stream.flush()


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def mode_from_options(options) -> str | None:
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
