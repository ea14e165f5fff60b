"""Where this tool keeps files on this machine: Arvados' cache directory.

``<cache>/docker`` under Arvados' cache directory (``~/.cache/arvados/docker``),
the directory arv-keepdocker 3.2.1 uses for its lock files and image tars
(``sdk/python/arvados/commands/keepdocker.py``, ``prep_image_file``): our lock
files are its lock files, and our resume journals sit beside them.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import LocalError
from ..names import checked_image_id


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
        raise LocalError(f"cannot create the cache directory {path}: "
                         f"{error.strerror or error}") from None
    return str(path)


def cache_file(image_id: str, suffix: str) -> str:
    """``<cache>/docker/<image id><suffix>``, for a checked image id only."""
    return os.path.join(cache_dir(), checked_image_id(image_id) + suffix)
