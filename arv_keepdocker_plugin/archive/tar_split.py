"""A layer tar put back together from its tar-split record and its files, as the engine does.

When Docker (classic image store) or containers/storage unpacks a layer, it
keeps the tar's own bytes apart from its files' contents: a gzipped stream of
JSON entries (the format of github.com/vbatts/tar-split, ``tar/storage``),
one per line, each either a *segment* (``"type": 2``: raw bytes of the tar,
headers and padding, base64 in ``payload``) or a *file* (``"type": 1``: a
member's ``name``, or ``name_raw`` when not UTF-8, and ``size``: that many
bytes of the file's contents on disk). Writing the segments and, in their
place, the named files' contents gives back the very tar the layer was made
of, whose sha256 is its diff id. ``docker save`` rebuilds layers this way
(``layer/layer_store.go`` ``assembleTarTo`` in moby), and so does this module.

Nothing here is trusted: the caller checks the rebuilt tar against the diff
id as it passes, and a file is opened only beneath the layer's directory,
never through a symbolic link (:func:`open_beneath`).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import os
import stat
from collections.abc import Iterator

#: A tar-split entry holding a member's contents, read from disk.
FILE = 1
#: A tar-split entry holding raw tar bytes.
SEGMENT = 2
#: Bytes read from a file at once.
READ = 1 << 20
#: The largest tar-split record read (it holds headers, not contents).
RECORD_LIMIT = 1 << 30


class TarSplitError(Exception):
    """The record or the files do not make a layer (the caller falls back or fails)."""


def entries(path: str) -> Iterator[dict]:
    """The entries of a ``tar-split.json.gz``, in order."""
    try:
        with gzip.open(path, "rb") as f:
            read = 0
            for line in f:
                read += len(line)
                if read > RECORD_LIMIT:
                    raise TarSplitError(f"{path}: more than {RECORD_LIMIT} bytes of tar-split")
                if line.strip():
                    entry = json.loads(line)
                    if not isinstance(entry, dict) or entry.get("type") not in (FILE, SEGMENT):
                        raise TarSplitError(f"{path}: an entry that is no file or segment")
                    yield entry
    except (OSError, EOFError, ValueError) as error:
        raise TarSplitError(f"{path}: {error}") from None


def _payload(entry: dict) -> bytes:
    try:
        return base64.b64decode(entry.get("payload") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise TarSplitError("a segment whose payload is not base64") from None


def _size(entry: dict) -> int:
    size = entry.get("size", 0)
    if type(size) is not int or size < 0:
        raise TarSplitError(f"a file entry with size {size!r}")
    return size


def _name(entry: dict) -> bytes:
    raw = entry.get("name_raw")
    if raw is not None:
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise TarSplitError("a name_raw that is not base64") from None
    name = entry.get("name")
    if not isinstance(name, str):
        raise TarSplitError("a file entry without a name")
    return name.encode("utf-8", "surrogateescape")


def tar_length(path: str) -> int:
    """The length of the tar the record at ``path`` rebuilds."""
    return sum(len(_payload(e)) if e["type"] == SEGMENT else _size(e) for e in entries(path))


def open_beneath(root_fd: int, name: bytes) -> int:
    """A descriptor of the regular file ``name`` beneath the directory ``root_fd``.

    Every component is opened with ``O_NOFOLLOW`` relative to the one before,
    so no symbolic link (in the name or planted in the layer) leads outside.
    """
    parts = [p for p in name.split(b"/") if p not in (b"", b".")]
    if not parts or b".." in parts:
        raise TarSplitError(f"a file entry named {name!r}")
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    except OSError as error:
        raise TarSplitError(f"cannot open {name!r} in the layer: {error.strerror}") from None
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise TarSplitError(f"{name!r} in the layer is not a regular file")
    os.set_blocking(file_fd, True)
    return file_fd


def assemble(path: str, layer_dir: str) -> Iterator[bytes]:
    """The layer's tar, rebuilt from the record at ``path`` and the files in ``layer_dir``."""
    try:
        root_fd = os.open(layer_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise TarSplitError(f"cannot open the layer directory {layer_dir}: "
                            f"{error.strerror}") from None
    try:
        for entry in entries(path):
            if entry["type"] == SEGMENT:
                data = _payload(entry)
                if data:
                    yield data
                continue
            size = _size(entry)
            if not size:
                continue
            yield from _contents(root_fd, _name(entry), size)
    finally:
        os.close(root_fd)


def _contents(root_fd: int, name: bytes, size: int) -> Iterator[bytes]:
    fd = open_beneath(root_fd, name)
    try:
        left = size
        while left:
            data = os.read(fd, min(READ, left))
            if not data:
                raise TarSplitError(f"{name!r} in the layer is shorter than its tar member")
            left -= len(data)
            yield data
    finally:
        os.close(fd)
