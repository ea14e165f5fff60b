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


def cache_dir() -> str:
    """``<Arvados cache dir>/docker``, created with mode 0700."""
    try:
        from arvados._internal.basedirs import BaseDirectories
        base = BaseDirectories("CACHE").storage_path()
    except (ImportError, OSError):
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "arvados"
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = Path(base) / "docker"
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)


@contextlib.contextmanager
def image_lock(image_id: str) -> Iterator[str]:
    """Hold the exclusive lock for ``image_id`` (blocking) and yield its path."""
    path = os.path.join(cache_dir(), "{}.tar.lock".format(image_id))
    with open(path, "w+") as lockfile:
        fcntl.flock(lockfile, fcntl.LOCK_EX)
        yield path
