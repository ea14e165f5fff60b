"""Writing a tar stream on the fly, and reading a chunk generator as a file.

Used to produce docker-archive streams (one image out of several, or an OCI
layout converted) without a temporary copy: headers are made here, data
comes from the source archive in chunks.
"""

from __future__ import annotations

import tarfile
from typing import Iterable, Iterator, Optional

BLOCK = 512
#: Two zero blocks end a tar archive.
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)


def header(name: str, size: int = 0, *, directory: bool = False,
           mtime: int = 0, mode: Optional[int] = None) -> bytes:
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


class ChunkReader:
    """A read-only, non-seekable file object over an iterator of byte chunks.

    ``read(n)`` returns at most ``n`` bytes (fewer only at the end), so callers
    that read fixed-size blocks get them. Exceptions raised by the iterator
    (for instance a digest mismatch) propagate from ``read``.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self._pos = 0
        self._done = False
        self.closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def _fill(self) -> bool:
        while not self._done:
            try:
                data = next(self._chunks)
            except StopIteration:
                self._done = True
                return False
            if data:
                self._buffer = data
                self._pos = 0
                return True
        return False

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [self._buffer[self._pos:]]
            self._buffer, self._pos = b"", 0
            while self._fill():
                parts.append(self._buffer)
                self._buffer = b""
            return b"".join(parts)
        parts = []
        while n > 0:
            if self._pos >= len(self._buffer) and not self._fill():
                break
            take = self._buffer[self._pos:self._pos + n]
            self._pos += len(take)
            n -= len(take)
            parts.append(take)
        return b"".join(parts)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.closed = True
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
