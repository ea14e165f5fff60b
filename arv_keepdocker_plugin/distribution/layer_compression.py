"""Layer compression as registries name it, onto :mod:`arv_keepdocker_plugin.archive.compression`.

A registry says how a layer is compressed in its media type (``...tar``,
``...tar+gzip``, ``...tar+zstd``); the decompressing itself, in bounded
pieces, is the one :class:`~arv_keepdocker_plugin.archive.compression.Decompressor`
every source uses, with bounded output whatever the ratio. zstd needs
Python 3.14's ``compression.zstd`` or the optional ``backports.zstd``
package (``pip install 'arv-keepdocker-plugin[zstd]'``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..archive import compression as core
from .registry_errors import DecompressionError

OUTPUT_CHUNK = core.OUT_CHUNK
NONE, GZIP, ZSTD = "none", "gzip", "zstd"
ZSTD_INSTALL_HINT = core.ZSTD_EXTRA

_BY_MEDIA_TYPE = {
    "application/vnd.oci.image.layer.v1.tar": NONE,
    "application/vnd.oci.image.layer.nondistributable.v1.tar": NONE,
    "application/vnd.docker.image.rootfs.diff.tar": NONE,
    "application/vnd.oci.image.layer.v1.tar+gzip": GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": GZIP,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": GZIP,
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": GZIP,
    "application/vnd.oci.image.layer.v1.tar+zstd": ZSTD,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": ZSTD,
}


def zstd_available() -> bool:
    """Whether a zstd decompressor can be imported (``compression.zstd``, ``backports.zstd``)."""
    return core.zstd_available()


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
    kind = core.sniff(head)
    return kind if kind in (GZIP, ZSTD) else NONE


def decompress(chunks: Iterable[bytes], compression: str,
               what: str = "layer") -> Iterator[bytes]:
    """The uncompressed bytes of ``chunks``, in pieces of at most :data:`OUTPUT_CHUNK`.

    :param compression: ``none``, ``gzip`` or ``zstd`` (see :func:`compression_of`).
    :raises DecompressionError: corrupt, truncated or empty data, or zstd
        without a zstd decompressor.
    """
    if compression == NONE:
        return _plain(chunks)
    if compression in (GZIP, ZSTD):
        return _decompressed(chunks, compression, what)
    raise DecompressionError("%s: unknown compression %r" % (what, compression))


def _plain(chunks: Iterable[bytes]) -> Iterator[bytes]:
    for chunk in chunks:
        for start in range(0, len(chunk), OUTPUT_CHUNK):
            yield chunk[start:start + OUTPUT_CHUNK]


def _decompressed(chunks: Iterable[bytes], kind: str, what: str) -> Iterator[bytes]:
    try:
        decompressor = core.Decompressor(kind)
    except core.CompressionError:
        raise DecompressionError("%s is zstd-compressed and no zstd decompressor is "
                                 "installed (%s)" % (what, ZSTD_INSTALL_HINT)) from None
    seen = False
    try:
        for chunk in chunks:
            seen = seen or bool(chunk)
            yield from decompressor.feed(chunk)
        if not seen:
            raise core.CompressionError(f"empty {kind} stream")
        decompressor.end()
    except core.CompressionError as error:
        raise DecompressionError("%s: %s" % (what, error)) from None


def layer_decompressor(media_type: str, chunks: Iterable[bytes],
                       what: str | None = None) -> Iterator[bytes]:
    """:func:`decompress` with the compression named by ``media_type``."""
    return decompress(chunks, compression_of(media_type), what or media_type)
