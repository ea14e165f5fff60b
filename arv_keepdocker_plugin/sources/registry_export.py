"""A registry image as the docker-archive stream ``docker load`` takes, blobs streamed.

:class:`RegistryExport` gives an image resolved from a registry
(:class:`~..distribution.ResolvedImage`) the ``export`` and ``export_pieces`` of
an :class:`~..image.Image`, through the one docker-archive writer
(:func:`~..archive.docker_archive_writer.to_docker_archive`, as for OCI layouts):

* config and manifest go in as the registry served them, so the image id is
  the config digest (what ``docker pull`` gives in Docker's classic store);
* each layer blob is downloaded as the stream reaches it, its sha256 and
  size checked as it streams (:class:`~..distribution.BlobStream`); nothing is
  written to disk and memory stays bounded (1 MiB chunks);
* a skipped layer (in Keep already, from a record the core trusts or from
  this user's resume journal) is not downloaded at all;
* gzip and uncompressed layers pass through; a zstd (or zstd:chunked)
  layer, which ``docker load`` cannot read, is stored decompressed, named
  after its diff id, and the manifest in the archive says so. The tar
  header needs the member's size first, so such a layer is downloaded
  twice: once to learn its size (and check its diff id), then to store it.
  Without a zstd decompressor (``backports.zstd`` before Python 3.14) such
  a layer is refused in one line
  when it has to be downloaded (not when it is stored already).

Each ``export``/``export_pieces`` opens its own
:class:`~..distribution.RegistrySession` and closes it when the stream is
closed; :meth:`RegistryExport.downloaded` counts every byte received since
the image was resolved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Generator, Iterable, Iterator
from typing import Any, cast

from ..archive.docker_archive_writer import (
    DocumentDigests,
    LayerData,
    PlannedLayer,
    export_length,
    to_docker_archive,
)
from ..archive.streams import ChunkReader
from ..distribution import (
    Descriptor,
    DigestMismatch,
    PullOptions,
    RegistrySession,
    ResolvedImage,
    compression_of,
    decompress,
    zstd_available,
)
from ..distribution.layer_compression import ZSTD, ZSTD_INSTALL_HINT
from ..distribution.registry_errors import DecompressionError, ManifestRefused
from ..image import ByteStream, Layer, LayerSizes, Piece


@dataclasses.dataclass(frozen=True)
class RegistryDocuments(DocumentDigests):
    """Config and manifest bytes as served (what the archive writer needs)."""

    path: str
    config: dict[str, Any]
    config_bytes: bytes
    manifest_bytes: bytes
    manifest_media_type: str


def uncompressed_media_type(media_type: str) -> str:
    """The media type of a zstd layer once decompressed (``...tar+zstd`` -> ``...tar``)."""
    return media_type[:-len("+zstd")] if media_type.endswith("+zstd") else media_type


def diff_ids_of(image: ResolvedImage) -> list[str]:
    """The config's ``rootfs.diff_ids``, one per manifest layer (refused otherwise).

    Checked before anything is downloaded: a registry also holds artifacts
    (Helm charts, signatures) that are not container images.
    """
    rootfs = image.config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise ManifestRefused("%s: the image config has no rootfs.diff_ids list (not a "
                              "container image?)" % image.reference)
    if len(diff_ids) != len(image.layers):
        raise ManifestRefused("%s: the manifest lists %d layers but the config has %d diff ids"
                              % (image.reference, len(image.layers), len(diff_ids)))
    return list(diff_ids)


def plan_layers(image: ResolvedImage) -> list[PlannedLayer]:
    """How each layer goes into the archive: as served, or (zstd) decompressed.

    :raises DecompressionError: an unknown layer media type.
    """
    planned = []
    for desc, diff_id in zip(image.layers, diff_ids_of(image), strict=True):
        served = {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}
        if compression_of(desc.media_type) != ZSTD:
            planned.append(PlannedLayer.as_served(served))
        else:
            planned.append(PlannedLayer(diff_id, None, uncompressed_media_type(desc.media_type),
                                        served))
    return planned


def zstd_refused(image: ResolvedImage, digest: str) -> DecompressionError:
    """The one line for a zstd layer to download without a zstd decompressor installed."""
    return DecompressionError(
        "%s: layer %s is zstd-compressed, which docker load cannot read, and no zstd "
        "decompressor is installed to store it uncompressed (%s)"
        % (image.reference, digest, ZSTD_INSTALL_HINT))


class RegistryExport:
    """The export of one resolved image.

    :param options: the pull options (a session is opened per export).
    :param image: the resolved image (manifest, config, layer descriptors).
    :param repo_tag: the name written into ``manifest.json``/``index.json``
        (``None`` for an image given by digest alone).
    :param received: bytes already received resolving the image.
    """

    def __init__(self, options: PullOptions, image: ResolvedImage,
                 repo_tag: str | None, received: int = 0) -> None:
        self.options = options
        self.image = image
        self.repo_tag = repo_tag
        self.plans = plan_layers(image)
        self.documents = RegistryDocuments(str(image.reference), image.config,
                                           image.config_bytes, image.manifest_bytes,
                                           image.manifest_media_type)
        self._received = received
        self._session: RegistrySession | None = None
        self._descriptors = {d.digest: d for d in image.layers}

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The image's layers as the archive holds them (digest, size when known)."""
        return tuple(Layer(plan.digest, plan.size) for plan in self.plans)

    def size(self) -> int | None:
        """The export's length from the manifest's layer sizes; for a zstd layer,
        stored decompressed, its compressed size stands in (see :meth:`size_estimated`)."""
        return export_length(self.documents, [
            plan if plan.size is not None else dataclasses.replace(
                plan, size=int(plan.descriptor["size"])) for plan in self.plans],
            self.repo_tag)

    def size_estimated(self) -> bool:
        """Whether :meth:`size` is an estimate (a layer is stored decompressed)."""
        return any(plan.size is None for plan in self.plans)

    def downloaded(self) -> int:
        """Bytes received from the registry so far (resolving included)."""
        session = self._session
        return self._received + (session.bytes_received if session is not None else 0)

    @contextlib.contextmanager
    def export_pieces(self, skip: LayerSizes) -> Iterator[Generator[Piece, None, None]]:
        """The docker-archive stream as pieces; layers in ``skip`` are neither
        downloaded nor read (see :meth:`~..image.Image.export_pieces`)."""
        with RegistrySession(self.options) as session:
            self._session = session
            pieces = to_docker_archive(self.documents, self.plans, self._layer_data(session),
                                       self.repo_tag, skip)
            try:
                yield pieces
            finally:
                pieces.close()
                self._received += session.bytes_received
                self._session = None

    @contextlib.contextmanager
    def export(self) -> Iterator[ByteStream]:
        """The docker-archive stream, every layer downloaded."""
        with self.export_pieces({}) as pieces:
            # With no layer skipped, every piece is bytes. Short reads: each
            # chunk goes on as it arrives, so finished layers reach Keep (and
            # the journal) while the next one downloads.
            reader = ChunkReader(cast(Iterator[bytes], pieces), short_reads=True)
            try:
                yield reader
            finally:
                reader.close()

    # -- layer data ------------------------------------------------------------

    def _layer_data(self, session: RegistrySession) -> LayerData:
        def open_layer(plan: PlannedLayer) -> tuple[int, Iterable[bytes]]:
            desc = self._descriptors[str(plan.descriptor["digest"])]
            if not plan.converted and plan.size is not None:
                return desc.size, self._blob(session, desc)
            if not zstd_available():
                raise zstd_refused(self.image, desc.digest)
            size = self._measure(session, desc, plan.digest)
            return size, _exactly(size, self._decompressed(session, desc), plan.digest)
        return open_layer

    def _blob(self, session: RegistrySession, desc: Descriptor) -> Iterator[bytes]:
        """The blob's bytes, checked as they stream (opened when first read)."""
        with session.blob(self.image, desc) as stream:
            yield from stream

    def _decompressed(self, session: RegistrySession, desc: Descriptor) -> Iterator[bytes]:
        what = "layer %s of %s" % (desc.digest, self.image.reference)
        return decompress(self._blob(session, desc), compression_of(desc.media_type), what)

    def _measure(self, session: RegistrySession, desc: Descriptor, diff_id: str) -> int:
        """First pass over a layer stored decompressed: its size, its diff id checked."""
        size, digest = 0, hashlib.sha256()
        for piece in self._decompressed(session, desc):
            size += len(piece)
            digest.update(piece)
        if "sha256:" + digest.hexdigest() != diff_id:
            raise DigestMismatch("%s: layer %s decompresses to sha256:%s, but the image config "
                                 "says its diff id is %s" % (self.image.reference, desc.digest,
                                                            digest.hexdigest(), diff_id))
        return size


def _exactly(size: int, chunks: Iterable[bytes], digest: str) -> Iterator[bytes]:
    """``chunks``, which must add up to ``size`` bytes (a second pass over a layer)."""
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > size:
            break
        yield chunk
    if seen != size:
        raise DigestMismatch("layer %s decompressed to %d bytes, then to %d: the registry "
                             "served other bytes the second time" % (digest, size, seen))


__all__ = ["RegistryDocuments", "RegistryExport", "diff_ids_of", "plan_layers",
           "uncompressed_media_type", "zstd_refused"]
