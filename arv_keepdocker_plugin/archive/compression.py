"""Recognising and decompressing layer (and archive) streams, in bounded memory.

Layers travel gzip-compressed (``docker save`` of Docker's containerd store,
OCI layouts, registries), sometimes zstd; whole archives travel as
``docker save | gzip``, bzip2 or xz. Every decompressor here is fed chunks
and hands out at most :data:`OUT_CHUNK` bytes at a time, so a small input
that inflates hugely never sits in memory whole.

gzip, bzip2 and xz come with Python (zlib, bz2, lzma); zstd needs the
``zstandard`` package (``pip install 'arv-keepdocker-plugin[zstd]'``).
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from typing import Iterator, Optional

from ..errors import KeepdockerError

#: Largest piece a decompressor returns at once.
OUT_CHUNK = 1 << 20

GZIP_MAGIC = b"\x1f\x8b"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: How many leading bytes :func:`sniff` needs.
SNIFF_BYTES = 6

ZSTD_EXTRA = "pip install 'arv-keepdocker-plugin[zstd]'"


class CompressionError(KeepdockerError):
    """A stream is not what its magic says, or cannot be decompressed here."""


def sniff(head: bytes) -> Optional[str]:
    """``"gzip"``, ``"bzip2"``, ``"xz"``, ``"zstd"`` or ``None`` from a stream's first bytes."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(BZIP2_MAGIC) and len(head) >= 4 and head[3:4].isdigit():
        return "bzip2"
    return None


def zstd_available() -> bool:
    """Whether the well-kept zstd decompressor (``zstandard``) is installed."""
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


class _Bounded:
    """A zlib, bz2 or lzma object asked for at most :data:`OUT_CHUNK` bytes a call.

    After each call it is drained with :meth:`_pending` (what to pass next)
    until it has ended or wants new input.
    """

    def __init__(self, decompressor) -> None:
        self._d = decompressor

    def _pending(self) -> Optional[bytes]:
        raise NotImplementedError

    def feed(self, data: bytes) -> Iterator[bytes]:
        out = self._d.decompress(data, OUT_CHUNK)
        while True:
            if out:
                yield out
            pending = None if self._d.eof else self._pending()
            if pending is None:
                return
            out = self._d.decompress(pending, OUT_CHUNK)

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused(self) -> bytes:
        # At the end of a member zlib leaves what follows in unused_data (and,
        # when the output was bounded, a copy of it in unconsumed_tail).
        return self._d.unused_data


class _Zlib(_Bounded):
    """gzip: zlib keeps the input it has not read yet in ``unconsumed_tail``."""

    def __init__(self) -> None:
        super().__init__(zlib.decompressobj(16 + zlib.MAX_WBITS))

    def _pending(self) -> Optional[bytes]:
        return self._d.unconsumed_tail or None


class _Buffered(_Bounded):
    """bz2 and lzma buffer their input and say when they need more."""

    def _pending(self) -> Optional[bytes]:
        return None if self._d.needs_input else b""


class _Zstd:
    """zstandard's decompression object, fed in small pieces to bound its output."""

    IN_PIECE = 32 * 1024

    def __init__(self, zstandard) -> None:
        self._d = zstandard.ZstdDecompressor().decompressobj()
        self._error = zstandard.ZstdError
        #: Input after the piece in which the frame ended (never fed).
        self._tail = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), self.IN_PIECE):
            if self.eof:
                # The frame ended in an earlier piece: the rest belongs to
                # whatever follows it (another frame, a skippable frame).
                self._tail = data[start:]
                return
            try:
                out = self._d.decompress(data[start:start + self.IN_PIECE])
            except self._error as error:
                raise ValueError(str(error)) from None
            for at in range(0, len(out), OUT_CHUNK):
                yield out[at:at + OUT_CHUNK]

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    @property
    def unused(self) -> bytes:
        return bytes(self._d.unused_data) + self._tail


class Decompressor:
    """Feed compressed chunks, get decompressed pieces; :meth:`end` checks completeness.

    Streams of several members (concatenated ``.gz`` files) are read whole, as
    ``gzip -d`` and ``docker load`` read them; zero bytes after the last
    member (tape padding) are ignored, anything else there is refused.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._new = self._factory(kind)
        self._d = self._new()

    @staticmethod
    def _factory(kind: str):
        if kind == "gzip":
            return _Zlib
        if kind == "bzip2":
            return lambda: _Buffered(bz2.BZ2Decompressor())
        if kind == "xz":
            return lambda: _Buffered(lzma.LZMADecompressor())
        if kind == "zstd":
            try:
                import zstandard
            except ImportError:
                raise CompressionError("zstd-compressed data needs the zstandard package: "
                                       + ZSTD_EXTRA) from None
            return lambda: _Zstd(zstandard)
        raise CompressionError("unknown compression {!r}".format(kind))

    def feed(self, data: "bytes | memoryview") -> Iterator[bytes]:
        """Decompress ``data``, yielding pieces of at most :data:`OUT_CHUNK` bytes."""
        data = bytes(data)
        while data:
            if self._d.eof:
                if not data.strip(b"\0"):
                    return  # padding after the last member
                self._d = self._new()  # another member follows
            try:
                yield from self._d.feed(data)
            except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError) as error:
                raise CompressionError("corrupt {} data ({})".format(self.kind, error)) from None
            data = self._d.unused if self._d.eof else b""

    def end(self) -> None:
        """The compressed input has ended: refuse a truncated stream."""
        if not self._d.eof:
            raise CompressionError("truncated {} data".format(self.kind))
