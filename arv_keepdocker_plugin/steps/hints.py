"""A hint for a mistyped transport: ``oci-arcive:app.tar`` is an image name, but ...

Resolution does not change: ``NAME:TAG`` is an image name whenever ``NAME``
is no registered transport (``docker:24-dind`` and ``ci:latest`` stay image
names). Only when such a name is found nowhere (or cannot be an image name at
all) does the one-line error end with ``(did you mean oci-archive:app.tar?)``:

* when ``NAME`` is within :data:`MAX_DISTANCE` edits (a letter added, dropped,
  changed, or two swapped) of a registered source name of at least
  :data:`MIN_LENGTH` letters other than ``docker`` (whose ``docker:TAG`` is
  a common image name), or
* when ``TAG`` names an existing file (an archive) or directory (an OCI layout).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from ..errors import BadReference, KeepdockerError, SourceError

MAX_DISTANCE = 2
MIN_LENGTH = 4
#: Source names never suggested: ``docker:TAG`` is an image called docker.
NOT_SUGGESTED = frozenset({"docker"})

T = TypeVar("T")


def distance(a: str, b: str) -> int:
    """Edits from ``a`` to ``b``: insertions, deletions, substitutions and swaps of
    two neighbouring letters (optimal string alignment)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def suggestion(raw: str, sources) -> str | None:
    """What the user may have meant by ``raw`` (``NAME:TAG``), or None."""
    head, sep, rest = raw.partition(":")
    if not sep or not rest or head in sources:
        return None
    close = sorted((distance(head, name), name) for name in sources.names()
                   if len(name) >= MIN_LENGTH and name not in NOT_SUGGESTED)
    close = [(d, name) for d, name in close if d <= MAX_DISTANCE]
    if close:
        return sources[close[0][1]].prefix + rest
    path = rest.split(":", 1)[0]
    if os.path.isdir(path):
        return "oci:" + rest
    if os.path.isfile(path):
        return f"docker-archive:{rest} or oci-archive:{rest}"
    return None


def with_hint(step: Callable[[], T], sources, raw: str, chosen_by_default: bool = True) -> T:
    """``step()``; an image it finds nowhere (or a name it refuses) gets the hint."""
    try:
        return step()
    except (SourceError, BadReference) as error:
        hint = suggestion(raw, sources) if chosen_by_default else None
        if hint is None:
            raise
        message = f"{error} (did you mean {hint}?)"
        try:
            hinted: KeepdockerError = type(error)(message)
        except TypeError:  # an error class that takes other arguments
            hinted = KeepdockerError(message)
        raise hinted from None
