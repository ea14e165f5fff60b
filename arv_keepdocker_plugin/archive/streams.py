"""Byte streams both ways: chunks read as a file, a file read as chunks.

Sources hand over file objects (``docker save``'s stdout, an archive) or
generators of chunks (an archive converted on the fly); each stage takes
whichever it needs through these two adapters.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..image import ByteStream

#: How much to read from a source stream per call.
CHUNK = 8 << 20


class ReadOnlyStream:
    """The file-object surface of a read-only, non-seekable stream.

    Subclasses supply ``read`` (and ``readinto``); this gives them the rest of
    what ``tarfile``, ``shutil`` and the Keep writer ask of a file object.
    """

    closed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ChunkReader(ReadOnlyStream):
    """A read-only, non-seekable file object over an iterator of byte chunks.

    ``read(n)`` returns at most ``n`` bytes (fewer only at the end), so callers
    that read fixed-size blocks get them. Exceptions raised by the iterator
    (for instance a digest mismatch) propagate from ``read``.

    With ``short_reads``, ``read(n)`` returns as soon as it has some bytes
    (at most ``n``, from one chunk), as a pipe does: for chunks that arrive
    slowly (a download), so that what has arrived is passed on at once
    instead of waiting for ``n`` bytes.
    """

    def __init__(self, chunks: Iterable[bytes], short_reads: bool = False) -> None:
        self._chunks = iter(chunks)
        self._short = short_reads
        self._buffer = b""
        self._pos = 0
        self._done = False

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
            if self._pos >= len(self._buffer) and (parts and self._short or not self._fill()):
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
        super().close()
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def chunks_of(stream: ByteStream, chunk: int = CHUNK) -> Iterator[bytes]:
    """A file object as an iterator of chunks of at most ``chunk`` bytes."""
    while True:
        data = stream.read(chunk)
        if not data:
            return
        yield data
