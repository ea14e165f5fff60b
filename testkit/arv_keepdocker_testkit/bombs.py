"""Decompression bombs: a few kilobytes that inflate to gigabytes of zeros.

Made with the real compressors (zlib; zstd from ``compression.zstd`` or
``backports.zstd``) fed 1 MiB at a time, so building a 4 GiB bomb needs no
4 GiB of memory. zstd squeezes zeros about 30,000 to 1 (4 GiB into about
130 KiB), gzip about 1,000 to 1.

Typical use::

    from arv_keepdocker_testkit import bombs, imagebuild as ib

    blob = bombs.compressed_zeros("zstd", 4 << 30)            # 4 GiB of zeros
    layer = bombs.bomb_layer("gzip", 1 << 30)                 # a LayerBlob for ib.build_image
    archive = bombs.tar_bomb("zstd", 4 << 30)                 # a .tar.zst: one huge member
"""

from __future__ import annotations

import hashlib
import importlib
import tarfile
import zlib
from collections.abc import Iterator

from .imagebuild import MT_LAYER, LayerBlob

PIECE = 1 << 20
#: The diff id bomb layers claim: not what they decompress to, so every
#: check refuses them, after decompressing them whole.
WRONG_DIFF_ID = "sha256:" + hashlib.sha256(b"not what the layer holds").hexdigest()


def zeros(size: int) -> Iterator[bytes]:
    """``size`` zero bytes, in pieces of at most 1 MiB."""
    piece = bytes(PIECE)
    while size > 0:
        yield piece[:size] if size < PIECE else piece
        size -= PIECE


def _zstd():
    for name in ("compression.zstd", "backports.zstd"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("a zstd compressor is needed: pip install backports.zstd")


def _gzip(head: bytes, size: int, tail: bytes) -> bytes:
    """One gzip member of ``head``, ``size`` zeros and ``tail``.

    Deflate blocks after a full flush do not refer back, so the blocks of
    1 MiB of zeros are made once and repeated: a 4 GiB bomb takes a second.
    """
    def segment(data: bytes) -> bytes:
        deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
        return deflate.compress(data) + deflate.flush(zlib.Z_FULL_FLUSH)

    whole, rest = divmod(size, PIECE)
    zero_piece = bytes(PIECE)
    crc = zlib.crc32(head)
    for _ in range(whole):
        crc = zlib.crc32(zero_piece, crc)
    crc = zlib.crc32(tail, zlib.crc32(bytes(rest), crc))
    last = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = [segment(head), segment(zero_piece) * whole, segment(bytes(rest)),
            last.compress(tail) + last.flush()]
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # no name, mtime 0
    length = (len(head) + size + len(tail)) & 0xFFFFFFFF
    return header + b"".join(body) + crc.to_bytes(4, "little") + length.to_bytes(4, "little")


def _zstd_compressor(window_log: int | None = None):
    """Level 1 (on zeros as small as level 19, far faster), with ``window_log`` if given:
    the window (history) a decoder must hold is ``2 ** window_log`` bytes."""
    zstd = _zstd()
    options = {zstd.CompressionParameter.compression_level: 1}
    if window_log is not None:
        options[zstd.CompressionParameter.window_log] = window_log
    return zstd.ZstdCompressor(options=options)


def _zstd_frame(head: bytes, size: int, tail: bytes, window_log: int | None = None) -> bytes:
    zstd = _zstd()
    compressor = _zstd_compressor(window_log)
    out = [compressor.compress(head)]
    out.extend(compressor.compress(p) for p in zeros(size))
    out.append(compressor.compress(tail))
    return b"".join(out) + compressor.flush(zstd.ZstdCompressor.FLUSH_FRAME)


def compressed_zeros(kind: str, size: int, head: bytes = b"", tail: bytes = b"",
                     window_log: int | None = None) -> bytes:
    """``head``, ``size`` zero bytes and ``tail`` as one ``gzip`` member or ``zstd`` frame
    (whose decoder must hold ``2 ** window_log`` bytes, if given)."""
    if kind == "gzip":
        return _gzip(head, size, tail)
    if kind == "zstd":
        return _zstd_frame(head, size, tail, window_log)
    raise ValueError("kind must be gzip or zstd")


def zstd_file(source: str, dest: str, window_log: int | None = None) -> None:
    """Compress the file ``source`` into one zstd frame in ``dest``, 1 MiB at a time."""
    compressor = _zstd_compressor(window_log)
    with open(source, "rb") as f, open(dest, "wb") as out:
        for piece in iter(lambda: f.read(PIECE), b""):
            out.write(compressor.compress(piece))
        out.write(compressor.flush(_zstd().ZstdCompressor.FLUSH_FRAME))


def bomb_layer(kind: str, size: int, window_log: int | None = None) -> LayerBlob:
    """A layer blob of ``size`` compressed zeros (an empty tar, padded), claiming
    :data:`WRONG_DIFF_ID`; its media type says ``kind``."""
    data = compressed_zeros(kind, size, window_log=window_log)
    return LayerBlob("sha256:" + hashlib.sha256(data).hexdigest(), len(data), WRONG_DIFF_ID,
                     MT_LAYER[kind], data=data)


def tar_bomb(kind: str, size: int, name: str = "junk.bin") -> bytes:
    """A ``kind``-compressed tar holding one member ``name`` of ``size`` zeros."""
    info = tarfile.TarInfo(name)
    info.size = size
    padding = -size % tarfile.BLOCKSIZE
    return compressed_zeros(kind, size + padding, head=info.tobuf(tarfile.GNU_FORMAT),
                            tail=bytes(2 * tarfile.BLOCKSIZE))
