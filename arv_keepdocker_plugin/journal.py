"""The resume journal: blocks an interrupted upload already stored.

``<Arvados cache>/docker/<image id>.tar.journal`` gets one signed locator per
line as each block reaches Keep. Running the same upload again feeds them to
the Keep writer as known blocks, so only what is missing is uploaded (the
stream is cut into the same blocks every time). The journal is checked like
arv-put's resume cache (a HEAD of one block); expired or refused signatures
make it be ignored. ``--no-resume`` starts over, ``--no-cache`` keeps no
journal, and a finished upload removes it.
"""

from __future__ import annotations

import os
import threading
import time
from typing import IO, Dict, Optional

from .locators import block_key, signature_expiry
from .locking import cache_file

#: Only locators valid for at least this long are trusted.
MARGIN = 3600


def journal_path(image_id: str) -> str:
    return cache_file(image_id, ".tar.journal")


class Journal:
    def __init__(self, image_id: str, enabled: bool = True):
        self.path = journal_path(image_id)
        self.enabled = enabled
        self._lock = threading.Lock()
        self._file: Optional[IO[str]] = None

    def load(self, keep) -> Dict[str, str]:
        """Known blocks from an earlier run, ``{"<md5>+<size>": locator}``."""
        try:
            with open(self.path) as f:
                lines = [line.strip() for line in f if line.strip()]
        except OSError:
            return {}
        now = time.time()
        known = {}
        for locator in lines:
            expiry = signature_expiry(locator)
            if expiry is not None and expiry > now + MARGIN:
                known[block_key(locator)] = locator
        if known:
            try:
                keep.head(next(iter(known.values())), num_retries=0)
            except Exception:
                return {}
        return known

    def discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def record(self, locator: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            if self._file is None:
                self._file = open(self.path, "a")
            self._file.write(locator + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
