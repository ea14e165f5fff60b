"""A layer's digests, taken as its bytes stream by: what a loader will check.

``docker load`` (and crunch-run through it) accepts a layer only when the
sha256 of its *uncompressed* tar is the config's ``rootfs.diff_ids`` entry at
that position; a ``blobs/sha256/<hex>`` member must also hash to its name.
:class:`MemberDigest` takes both in one pass: the sha256 of the bytes as
stored and, when they are compressed (gzip, zstd, bzip2, xz: what
``docker load`` decompresses), the sha256 of what they decompress to.
"""

from __future__ import annotations

import dataclasses
import hashlib

from .compression import SNIFF_BYTES, CompressionError, Decompressor, sniff


@dataclasses.dataclass(frozen=True)
class Digests:
    """What a member's bytes hash to.

    :ivar raw: ``sha256:<hex>`` of the bytes as stored.
    :ivar diff_id: ``sha256:<hex>`` of the uncompressed layer (``raw`` for an
        uncompressed one); ``None`` when the bytes could not be decompressed.
    :ivar compression: ``None``, ``"gzip"``, ``"zstd"``, ``"bzip2"`` or ``"xz"``.
    :ivar problem: why ``diff_id`` is unknown, for messages.
    """

    raw: str
    diff_id: str | None
    compression: str | None = None
    problem: str | None = None


class MemberDigest:
    """Feed a member's data with :meth:`update`; :meth:`finish` gives its :class:`Digests`."""

    def __init__(self) -> None:
        self._raw = hashlib.sha256()
        self._head: list[bytes] = []
        self._head_size = 0
        self._decided = False
        self._kind: str | None = None
        self._decompressor: Decompressor | None = None
        self._plain: hashlib._Hash | None = None
        self._problem: str | None = None

    def update(self, chunk: bytes | memoryview) -> None:
        self._raw.update(chunk)
        if self._decided:
            self._inflate(chunk)
            return
        self._head.append(bytes(chunk))
        self._head_size += len(chunk)
        if self._head_size >= SNIFF_BYTES:
            self._decide()

    def _decide(self) -> None:
        head = b"".join(self._head)
        self._head = []
        self._decided = True
        self._kind = sniff(head)
        if self._kind is not None:
            try:
                self._decompressor = Decompressor(self._kind)
            except CompressionError as error:
                self._problem = str(error)
                return
            self._plain = hashlib.sha256()
            self._inflate(head)

    def _inflate(self, chunk: bytes | memoryview) -> None:
        if self._decompressor is None or self._plain is None:
            return
        try:
            for piece in self._decompressor.feed(chunk):
                self._plain.update(piece)
        except CompressionError as error:
            self._problem = str(error)
            self._decompressor = None

    def finish(self) -> Digests:
        if not self._decided:
            self._decide()
        raw = "sha256:" + self._raw.hexdigest()
        if self._kind is None:
            return Digests(raw, raw)
        if self._decompressor is not None:
            try:
                self._decompressor.end()
            except CompressionError as error:
                self._problem = str(error)
        if self._problem is not None or self._plain is None:
            return Digests(raw, None, self._kind, self._problem)
        return Digests(raw, "sha256:" + self._plain.hexdigest(), self._kind)
