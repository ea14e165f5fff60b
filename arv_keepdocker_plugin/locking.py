"""One lock per image id, shared with arv-keepdocker 3.2.1.

The lock file is ``<cache>/docker/<image id>.tar.lock`` under Arvados' cache
directory (``~/.cache/arvados/docker``), the very file 3.2.1 locks, so our
tool and Arvados' own serialise against each other: concurrent runs upload
once and the later ones find the image already stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from .errors import LocalError
from .reference import checked_image_id


def cache_dir() -> str:
    """``<Arvados cache dir>/docker``, created with mode 0700."""
    try:
        from arvados._internal.basedirs import BaseDirectories
        base = BaseDirectories("CACHE").storage_path()
    except (ImportError, OSError):
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "arvados"
    path = Path(base) / "docker"
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise LocalError("cannot create the cache directory {}: {}".format(
            path, error.strerror or error)) from None
    return str(path)


def cache_file(image_id: str, suffix: str) -> str:
    """``<cache>/docker/<image id><suffix>``, for a checked image id only."""
    return os.path.join(cache_dir(), checked_image_id(image_id) + suffix)


@contextlib.contextmanager
def image_lock(image_id: str) -> Iterator[str]:
    """Hold the exclusive lock for ``image_id`` (blocking) and yield its path."""
    path = cache_file(image_id, ".tar.lock")
    try:
        lockfile = open(path, "w+")
    except OSError as error:
        raise LocalError("cannot open the lock file {}: {}".format(
            path, error.strerror or error)) from None
    with lockfile:
        fcntl.flock(lockfile, fcntl.LOCK_EX)
        yield path
