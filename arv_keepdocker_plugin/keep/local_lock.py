"""One lock per image id on this machine, shared with arv-keepdocker 3.2.1.

The lock file is ``<cache>/docker/<image id>.tar.lock``
(:mod:`.cache_paths`), the very file 3.2.1 locks, so our tool and Arvados'
own serialise against each other: concurrent runs upload once and the later
ones find the image already stored.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator

from ..errors import LocalError
from .cache_paths import cache_file


@contextlib.contextmanager
def image_lock(image_id: str) -> Iterator[str]:
    """Hold the exclusive lock for ``image_id`` (blocking) and yield its path."""
    path = cache_file(image_id, ".tar.lock")
    try:
        lockfile = open(path, "w+")
    except OSError as error:
        raise LocalError(f"cannot open the lock file {path}: {error.strerror or error}") from None
    with lockfile:
        fcntl.flock(lockfile, fcntl.LOCK_EX)
        yield path
