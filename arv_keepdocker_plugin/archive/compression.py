"""Recognising and decompressing layer (and archive) streams, in bounded memory.

Layers travel gzip-compressed (``docker save`` of Docker's containerd store,
OCI layouts, registries), sometimes zstd; whole archives travel as
``docker save | gzip``, bzip2 or xz. Every decompressor here is fed chunks
and hands out at most :data:`OUT_CHUNK` bytes at a time: each is asked for
at most that much per call (zlib, bz2, lzma and zstd all take an output
limit), so a small input that inflates hugely (a decompression bomb) never
sits in memory, whatever its ratio. The total is not capped: a layer may
legitimately be many gigabytes, and no format says its size beforehand, so
a bomb costs time (decompressing is checked all the way), not memory.

A decoder also holds the history the stream refers back to, whose size the
stream chooses: a zstd window of up to 2 GiB, an xz dictionary of up to
1.5 GiB. Each decoder may hold :data:`DECODER_MEMORY`: zstd windows up to
32 MiB (zstd:chunked layers from containers/storage have 32 MiB windows; the
zstd command uses 8 MiB up to level 19, 32 MiB at ``--ultra -20``) and xz up
to ``xz -8`` (``-6``, the default, needs 9 MiB). A stream needing more
(``zstd --long``, ``xz -9``) is refused in one line, so that an archive and
a layer in it decompressed at once, on top of the upload's own buffers, stay
under the 300 MiB a run may use (246 MiB measured; with 64 MiB windows, 279).

gzip, bzip2 and xz come with Python (zlib, bz2, lzma); zstd is Python
3.14's ``compression.zstd``, or its backport ``backports.zstd`` before that
(``pip install 'arv-keepdocker-plugin[zstd]'``). The ``zstandard`` package
is not used: its decompression object takes no output limit.
"""

from __future__ import annotations

import bz2
import importlib
import lzma
import zlib
from collections.abc import Iterator
from typing import Any

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
#: Where a zstd decompressor with an output limit is found, in order.
ZSTD_MODULES = ("compression.zstd", "backports.zstd")
#: What a decoder may hold (zstd window, xz dictionary and its tables).
DECODER_MEMORY = 40 << 20


class CompressionError(KeepdockerError):
    """A stream is not what its magic says, or cannot be decompressed here."""


def sniff(head: bytes) -> str | None:
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


def zstd_module() -> Any | None:
    """``compression.zstd`` (Python 3.14) or ``backports.zstd``; ``None`` if neither."""
    for name in ZSTD_MODULES:
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def zstd_available() -> bool:
    """Whether a zstd decompressor is installed (see :func:`zstd_module`)."""
    return zstd_module() is not None


def too_much_memory(kind: str) -> str:
    """The one line for a stream whose decoder would need more than :data:`DECODER_MEMORY`."""
    return (f"{kind} data that needs more than {DECODER_MEMORY >> 20} MiB to decompress, "
            "which is not accepted here: compress it at a lower level")


class _Bounded:
    """A zlib, bz2, lzma or zstd object asked for at most :data:`OUT_CHUNK` bytes a call.

    After each call it is drained with :meth:`_pending` (what to pass next)
    until it has ended or wants new input.
    """

    def __init__(self, decompressor) -> None:
        self._d = decompressor

    def _pending(self) -> bytes | None:
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

    def _pending(self) -> bytes | None:
        return self._d.unconsumed_tail or None


class _Buffered(_Bounded):
    """bz2, lzma and zstd buffer their input and say when they need more."""

    def _pending(self) -> bytes | None:
        return None if self._d.needs_input else b""


class Decompressor:
    """Feed compressed chunks, get decompressed pieces; :meth:`end` checks completeness.

    Streams of several members (concatenated ``.gz`` files) are read whole, as
    ``gzip -d`` and ``docker load`` read them; zero bytes after the last
    member (tape padding) are ignored, anything else there is refused.
    """

    #: What the decompressors raise on bad data.
    ERRORS = (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError)

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._errors: tuple = self.ERRORS
        self._new = self._factory(kind)
        self._d = self._new()

    def _factory(self, kind: str):
        if kind == "gzip":
            return _Zlib
        if kind == "bzip2":
            return lambda: _Buffered(bz2.BZ2Decompressor())
        if kind == "xz":
            return lambda: _Buffered(lzma.LZMADecompressor(memlimit=DECODER_MEMORY))
        if kind == "zstd":
            zstd = zstd_module()
            if zstd is None:
                raise CompressionError("zstd-compressed data needs a zstd decompressor: "
                                       + ZSTD_EXTRA)
            self._errors = self.ERRORS + (zstd.ZstdError,)
            window_log = DECODER_MEMORY.bit_length() - 1  # 2**25: 32 MiB
            options = {zstd.DecompressionParameter.window_log_max: window_log}
            return lambda: _Buffered(zstd.ZstdDecompressor(options=options))
        raise CompressionError(f"unknown compression {kind!r}")

    def feed(self, data: bytes | memoryview) -> Iterator[bytes]:
        """Decompress ``data``, yielding pieces of at most :data:`OUT_CHUNK` bytes."""
        data = bytes(data)
        while data:
            if self._d.eof:
                if not data.strip(b"\0"):
                    return  # padding after the last member
                self._d = self._new()  # another member follows
            try:
                yield from self._d.feed(data)
            except self._errors as error:
                if "memory" in str(error).lower():  # zstd's and liblzma's words for it
                    raise CompressionError(too_much_memory(self.kind)) from None
                raise CompressionError(f"corrupt {self.kind} data ({error})") from None
            data = self._d.unused if self._d.eof else b""

    def end(self) -> None:
        """The compressed input has ended: refuse a truncated stream."""
        if not self._d.eof:
            raise CompressionError(f"truncated {self.kind} data")
