"""Writing a tar stream on the fly.

Used to produce docker-archive streams (one image out of several, or an OCI
layout converted) without a temporary copy: headers are made here, data
comes from the source archive in chunks (:class:`.streams.ChunkReader`
reads such a generator as a file).
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator

BLOCK = 512
#: Two zero blocks end a tar archive.
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)


def header(name: str, size: int = 0, *, directory: bool = False,
           mtime: int = 0, mode: int | None = None) -> bytes:
    """The header block(s) of a regular file or directory member.

    PAX format, so long names are fine; owner root, fixed ``mtime`` so that
    the same input always gives the same bytes.
    """
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = mode if mode is not None else (0o755 if directory else 0o644)
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def padding(size: int) -> bytes:
    """Zero bytes that bring member data of ``size`` bytes to a block boundary."""
    return b"\0" * (-size % BLOCK)


def file_member(name: str, data: bytes, mtime: int = 0) -> Iterator[bytes]:
    """A whole small member: header, data, padding."""
    yield header(name, len(data), mtime=mtime)
    yield data
    yield padding(len(data))


def streamed_member(name: str, size: int, chunks: Iterable,
                    mtime: int = 0) -> Iterator:
    """A member whose ``size`` is known and whose data arrives in ``chunks``.

    The chunks are passed through as they are: bytes, or a placeholder
    standing for the data (see :class:`~..image.StoredData`).
    """
    yield header(name, size, mtime=mtime)
    yield from chunks
    yield padding(size)
