"""Streaming layer decompression: none, gzip (zlib) and zstd (``zstandard``).

zstd needs the optional ``zstandard`` package (``pip install
'arv-keepdocker-plugin[zstd]'``); :func:`zstd_available` says whether it is
there. :func:`decompress` turns an iterator of compressed chunks into one
of uncompressed chunks of at most :data:`OUTPUT_CHUNK` bytes, so memory
stays bounded whatever the compression ratio.
"""

from __future__ import annotations

import importlib.util
import io
import zlib
from typing import Callable, Iterable, Iterator, Optional

from .errors import DecompressionError

OUTPUT_CHUNK = 1024 * 1024
NONE, GZIP, ZSTD = "none", "gzip", "zstd"
ZSTD_INSTALL_HINT = "pip install 'arv-keepdocker-plugin[zstd]'"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

_BY_MEDIA_TYPE = {
    "application/vnd.oci.image.layer.v1.tar": NONE,
    "application/vnd.oci.image.layer.nondistributable.v1.tar": NONE,
    "application/vnd.oci.image.layer.v1.tar+gzip": GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": GZIP,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": GZIP,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": GZIP,
    "application/vnd.oci.image.layer.v1.tar+zstd": ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": ZSTD,
}


def zstd_available() -> bool:
    """Whether the ``zstandard`` package can be imported."""
    return importlib.util.find_spec("zstandard") is not None


def compression_of(media_type: str) -> str:
    """``none``, ``gzip`` or ``zstd`` for a layer media type.

    :raises DecompressionError: an unknown media type.
    """
    try:
        return _BY_MEDIA_TYPE[media_type]
    except KeyError:
        raise DecompressionError("unsupported layer media type %r" % media_type[:100]) from None


def sniff(head: bytes) -> str:
    """``gzip``, ``zstd`` or ``none`` from a blob's first bytes (magic numbers)."""
    if head.startswith(_GZIP_MAGIC):
        return GZIP
    if head.startswith(_ZSTD_MAGIC):
        return ZSTD
    return NONE


def decompress(chunks: Iterable[bytes], compression: str,
               what: str = "layer") -> Iterator[bytes]:
    """The uncompressed bytes of ``chunks``, in pieces of at most :data:`OUTPUT_CHUNK`.

    :param compression: ``none``, ``gzip`` or ``zstd`` (see :func:`compression_of`).
    :raises DecompressionError: corrupt data, or zstd without ``zstandard``.
    """
    if compression == NONE:
        return _plain(chunks)
    if compression == GZIP:
        return _gunzip(chunks, what)
    if compression == ZSTD:
        return _unzstd(chunks, what)
    raise DecompressionError("%s: unknown compression %r" % (what, compression))


def _plain(chunks: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        for start in range(0, len(chunk), OUTPUT_CHUNK):
            yield chunk[start:start + OUTPUT_CHUNK]


def _gunzip(chunks: Iterable[bytes], what: str) -> Iterator[bytes]:
    """gzip, including several concatenated members (as pigz may write)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    in_member = False
    members = 0
    try:
        for chunk in chunks:
            pending = chunk
            while pending or (in_member and not inflater.eof):
                in_member = True
                out = inflater.decompress(pending, OUTPUT_CHUNK)
                if out:
                    yield out
                if inflater.eof:
                    members += 1
                    in_member = False
                    pending = inflater.unused_data
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                elif inflater.unconsumed_tail:
                    pending = inflater.unconsumed_tail
                elif out:
                    pending = b""  # input used up; drain output held back by the bound
                else:
                    break  # needs more input
    except zlib.error as e:
        raise DecompressionError("%s: corrupt gzip data (%s)" % (what, e)) from None
    if in_member:
        raise DecompressionError("%s: the gzip stream is truncated" % what)
    if not members:
        raise DecompressionError("%s: empty gzip stream" % what)


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of chunks (for zstandard's stream reader).

    Every chunk read also goes to ``observe`` (the frame tracker).
    """

    def __init__(self, chunks: Iterable[bytes], observe: Callable[[bytes], None]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self._observe = observe

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # type: ignore[no-untyped-def]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
            self._observe(self._buffer)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class ZstdFrames:
    """Follows zstd frame boundaries in compressed bytes, without decoding.

    zstandard's stream reader stops quietly at a truncated frame; this
    tracker reads frame and block headers (RFC 8878) as the bytes pass and
    says at the end whether the input stopped exactly after a frame.
    """

    def __init__(self) -> None:
        self._header = b""  # bytes of the header being read
        self._need = 4      # bytes still needed for it
        self._state = "magic"
        self._skip = 0      # bytes of block content or skippable frame to pass
        self._checksum = False
        self.frames = 0

    def feed(self, data: bytes) -> None:
        """Consume ``data``; :class:`DecompressionError` if it is not zstd."""
        view = memoryview(data)
        while view:
            if self._skip:
                n = min(self._skip, len(view))
                self._skip -= n
                view = view[n:]
                if not self._skip and self._state == "end":
                    self._frame_done()
                continue
            n = min(self._need, len(view))
            self._header += bytes(view[:n])
            self._need -= n
            view = view[n:]
            if not self._need:
                header, self._header = self._header, b""
                self._advance(header)

    def _frame_done(self) -> None:
        self.frames += 1
        self._state, self._need = "magic", 4

    def _advance(self, header: bytes) -> None:
        state = self._state
        if state == "magic":
            magic = int.from_bytes(header, "little")
            if magic == 0xFD2FB528:
                self._state, self._need = "descriptor", 1
            elif magic & 0xFFFFFFF0 == 0x184D2A50:
                self._state, self._need = "skippable", 4
            else:
                raise DecompressionError("not a zstd frame (magic %08x)" % magic)
        elif state == "skippable":
            self._skip = int.from_bytes(header, "little")
            self._state = "end"
            if not self._skip:
                self._frame_done()
        elif state == "descriptor":
            descriptor = header[0]
            single_segment = bool(descriptor & 0x20)
            self._checksum = bool(descriptor & 0x04)
            content_size = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]
            rest = (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 3] + content_size
            self._state = "frame header"
            self._need = rest
            if not rest:
                self._state, self._need = "block", 3
        elif state == "frame header":
            self._state, self._need = "block", 3
        elif state == "block":
            value = int.from_bytes(header, "little")
            last, kind, size = value & 1, (value >> 1) & 3, value >> 3
            if kind == 3:
                raise DecompressionError("reserved zstd block type")
            self._skip = 1 if kind == 1 else size
            if not last:
                self._need = 3  # the next block header follows the content
            elif self._checksum:
                self._state, self._need = "checksum", 4
            else:
                self._state, self._need = "end", 0
                if not self._skip:
                    self._frame_done()
        elif state == "checksum":
            self._frame_done()

    def complete(self) -> bool:
        """Whether the bytes so far end exactly after a frame (at least one)."""
        return self._state == "magic" and self._need == 4 and not self._header and \
            self.frames > 0


def _unzstd(chunks: Iterable[bytes], what: str) -> Iterator[bytes]:
    try:
        import zstandard
    except ImportError:
        raise DecompressionError("%s is zstd-compressed and no zstd decompressor is installed "
                                 "(%s)" % (what, ZSTD_INSTALL_HINT)) from None
    frames = ZstdFrames()

    def observe(data: bytes) -> None:
        try:
            frames.feed(data)
        except DecompressionError as e:
            raise DecompressionError("%s: corrupt zstd data (%s)" % (what, e)) from None

    reader = zstandard.ZstdDecompressor().stream_reader(
        _ChunkReader(chunks, observe), read_size=OUTPUT_CHUNK, read_across_frames=True)
    try:
        while True:
            out = reader.read(OUTPUT_CHUNK)
            if not out:
                break
            yield out
    except zstandard.ZstdError as e:
        raise DecompressionError("%s: corrupt zstd data (%s)" % (what, e)) from None
    finally:
        reader.close()
    if not frames.complete():
        raise DecompressionError("%s: the zstd stream is truncated or empty" % what)


def layer_decompressor(media_type: str, chunks: Iterable[bytes],
                       what: Optional[str] = None) -> Iterator[bytes]:
    """:func:`decompress` with the compression named by ``media_type``."""
    return decompress(chunks, compression_of(media_type), what or media_type)
