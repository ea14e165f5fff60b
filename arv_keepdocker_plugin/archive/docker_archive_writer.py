"""Writing a docker-archive stream: the one writer every source shares.

``docker load`` and crunch-run take a docker-archive; sources that hold an
image otherwise write one on the fly, never as a temporary copy:

* :func:`to_docker_archive` writes a Docker 25-style archive (layers, config
  and manifest as ``blobs/sha256/<hex>``, ``index.json``, ``manifest.json``,
  ``oci-layout``, ``repositories``) for any source that has an image's
  manifest and config and can open its layers' data: an OCI layout
  (:mod:`.oci_layout_reader`), a registry
  (:mod:`~..sources.registry_export`). Each layer is a :class:`PlannedLayer`,
  and a :data:`LayerData` callable opens its verified data. A layer may be
  written otherwise than its descriptor says (a zstd layer stored
  decompressed, under its diff id); the manifest in the archive is then
  rewritten to describe what it holds (:func:`rewritten_manifest`), with the
  config, hence the image id, unchanged.
* :func:`documents_and_end` is that archive's tail alone, for a reader that
  writes the layers itself (a compressed layout read in stream order).
* :func:`one_image_tail` ends a classic docker-archive holding one image out
  of several (:mod:`.docker_archive_reader`): its ``manifest.json`` and
  ``repositories``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

from ..errors import BadArchive
from ..image import LayerSizes, Piece, StoredData
from . import safety, tarwrite
from .platforms import Platform
from .safety import bad

#: The OCI annotation holding an image's tag (``1``) or, in a layout, its name.
REF_NAME = "org.opencontainers.image.ref.name"
#: containerd's (and Docker 25's) annotation holding the whole ``name:tag``.
IMAGE_NAME = "io.containerd.image.name"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_NOTHING: LayerSizes = MappingProxyType({})


def blob_name(archive: str, desc: Mapping[str, Any], what: str) -> str:
    """``blobs/sha256/<hex>`` for a descriptor; :class:`BadArchive` for a bad digest."""
    digest = desc.get("digest") if isinstance(desc, Mapping) else None
    m = _DIGEST.match(digest or "")
    if not m:
        raise bad(archive, f"{what} has an unsupported or malformed digest {digest!r}")
    return "blobs/sha256/" + m.group(1)


@dataclasses.dataclass(frozen=True)
class PlannedLayer:
    """One layer of an image as the docker-archive will hold it.

    :ivar digest: ``sha256:<hex>`` of the member's data: the blob's digest,
        or the diff id of a layer stored decompressed. The member is
        ``blobs/sha256/<hex>``; this is the digest a skip set names.
    :ivar size: the member's size, when known before its data is read
        (``None`` for a layer stored decompressed: a skipped one's size then
        comes from the skip mapping, see :data:`~..image.LayerSizes`).
    :ivar media_type: the member's media type.
    :ivar descriptor: the image manifest's descriptor of the layer, as
        served; when ``digest``, ``size`` or ``media_type`` differ from it,
        the manifest written into the archive describes the member instead.
    """

    digest: str
    size: int | None
    media_type: str
    descriptor: Mapping[str, Any]

    @classmethod
    def as_served(cls, descriptor: Mapping[str, Any]) -> PlannedLayer:
        """A layer written exactly as its descriptor says."""
        return cls(descriptor["digest"], descriptor["size"], descriptor.get("mediaType") or "",
                   descriptor)

    @property
    def converted(self) -> bool:
        """Whether the member differs from the blob the descriptor names."""
        d = self.descriptor
        return (self.digest, self.size, self.media_type) != (
            d.get("digest"), d.get("size"), d.get("mediaType") or "")


#: Opens a layer's data: ``(size, chunks)``, the chunks checked as they pass
#: (raising before the chunk that would complete wrong data).
LayerData = Callable[[PlannedLayer], tuple[int, Iterable[bytes]]]


class DocumentDigests:
    """An image's id and manifest digest, from its config and manifest bytes."""

    config_bytes: bytes
    manifest_bytes: bytes

    @property
    def image_id(self) -> str:
        """The config digest: the id ``docker load`` gives the converted image."""
        return "sha256:" + hashlib.sha256(self.config_bytes).hexdigest()

    @property
    def manifest_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest_bytes).hexdigest()


class ImageDocuments(Protocol):
    """What :func:`to_docker_archive` writes besides layers: config and manifest.

    ``path`` names the image in messages (a path, a registry reference).
    """

    @property
    def path(self) -> str: ...

    @property
    def config(self) -> dict[str, Any]: ...

    @property
    def config_bytes(self) -> bytes: ...

    @property
    def manifest_bytes(self) -> bytes: ...

    @property
    def manifest_media_type(self) -> str: ...

    @property
    def image_id(self) -> str: ...

    @property
    def manifest_digest(self) -> str: ...


def to_docker_archive(image: ImageDocuments, layers: Sequence[PlannedLayer],
                      layer_data: LayerData, repo_tag: str | None = None,
                      skip: LayerSizes = _NOTHING) -> Generator[Piece, None, None]:
    """The tar bytes of a Docker 25-style docker-archive of ``image``.

    ``layers`` are the manifest's layers, in order, as they will be written;
    ``layer_data(layer)`` opens each one's data when it is needed (once per
    distinct digest). The data of a layer whose digest is in ``skip`` is a
    :class:`StoredData` of that digest and the member's size (the planned
    size, else the stored size ``skip`` gives). Config, manifest and
    metadata follow the layers; the manifest is the image's own bytes unless
    a layer is written otherwise than its descriptor says (see
    :func:`rewritten_manifest`).
    """
    yield tarwrite.header("blobs", directory=True)
    yield tarwrite.header("blobs/sha256", directory=True)
    written: set[str] = set()
    layer_names = []
    sizes: dict[str, int] = {}
    for layer in layers:
        name = blob_name(image.path, {"digest": layer.digest}, "layer")
        layer_names.append(name)
        if name in written:
            continue
        written.add(name)
        size = layer.size if layer.size is not None else skip.get(layer.digest)
        if layer.digest in skip and size is not None:
            yield from tarwrite.streamed_member(name, size, [StoredData(layer.digest, size)])
        else:
            size, chunks = layer_data(layer)
            yield from tarwrite.streamed_member(name, size, chunks)
        sizes[layer.digest] = size
    manifest = image.manifest_bytes
    if any(layer.converted or layer.size is None for layer in layers):
        manifest = rewritten_manifest(image.path, manifest, layers, sizes)
    yield from documents_and_end(image, manifest, layer_names, written, repo_tag)


#: Layer annotations that describe the compressed blob (zstd:chunked's table of
#: contents): dropped when the layer is stored decompressed.
BLOB_ANNOTATION_PREFIXES = ("io.github.containers.zstd-chunked.",
                            "io.containers.zstd-chunked.")


def export_length(image: ImageDocuments, layers: Sequence[PlannedLayer],
                  repo_tag: str | None = None) -> int | None:
    """The length of :func:`to_docker_archive`'s stream, counted without reading a layer.

    Every layer is passed as skipped, so its data counts by its planned size
    (the pieces add up to the stream: see :attr:`~..image.Image.export_pieces`).
    None when a layer's size is not known before it is read, or when the
    documents are broken (the export itself then says how).
    """
    sizes = {layer.digest: layer.size for layer in layers if layer.size is not None}
    if len(sizes) != len({layer.digest for layer in layers}):
        return None

    def unread(layer: PlannedLayer) -> tuple[int, Iterable[bytes]]:
        raise AssertionError("every layer is skipped")

    try:
        return sum(piece.size if isinstance(piece, StoredData) else len(piece)
                   for piece in to_docker_archive(image, layers, unread, repo_tag,
                                                  MappingProxyType(sizes)))
    except BadArchive:
        return None


def rewritten_manifest(archive: str, manifest_bytes: bytes, layers: Sequence[PlannedLayer],
                       sizes: Mapping[str, int]) -> bytes:
    """The image manifest describing the layers as written, config untouched.

    Each converted layer's descriptor gets the member's digest, size and
    media type, and loses the annotations about the blob it was made from;
    everything else keeps its order and value. Compact JSON, so the same
    input always gives the same bytes.
    """
    manifest = safety.parse_json(archive, "manifest", manifest_bytes)
    descriptors = manifest.get("layers") if isinstance(manifest, dict) else None
    if not isinstance(descriptors, list) or len(descriptors) != len(layers):
        raise bad(archive, "the manifest's layers do not match the layers written")
    rewritten = []
    for desc, layer in zip(descriptors, layers, strict=True):
        if not (layer.converted or layer.size is None):
            rewritten.append(desc)
            continue
        new = {k: v for k, v in desc.items() if k != "annotations"}
        new.update(mediaType=layer.media_type, digest=layer.digest, size=sizes[layer.digest])
        kept = {k: v for k, v in (desc.get("annotations") or {}).items()
                if not k.startswith(BLOB_ANNOTATION_PREFIXES)}
        if kept:
            new["annotations"] = kept
        rewritten.append(new)
    manifest["layers"] = rewritten
    return json.dumps(manifest, separators=(",", ":")).encode()


def documents_and_end(image: ImageDocuments, manifest: bytes, layer_names: list[str],
                              written: set[str], repo_tag: str | None) -> Iterator[bytes]:
    """Config and manifest blobs, ``index.json``, ``manifest.json``, ``oci-layout``,
    ``repositories`` and the end of the archive. ``manifest`` is the image
    manifest as the archive holds it."""
    config_name = "blobs/sha256/" + image.image_id.split(":", 1)[1]
    if config_name not in written:
        written.add(config_name)
        yield from tarwrite.file_member(config_name, image.config_bytes)
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    manifest_name = "blobs/sha256/" + manifest_digest.split(":", 1)[1]
    if manifest_name not in written:
        yield from tarwrite.file_member(manifest_name, manifest)
    descriptor: dict[str, Any] = {"mediaType": image.manifest_media_type,
                                  "digest": manifest_digest, "size": len(manifest)}
    plat = Platform.from_descriptor(image.config)
    if plat:
        descriptor["platform"] = {k: v for k, v in (("architecture", plat.architecture),
                                                    ("os", plat.os),
                                                    ("variant", plat.variant)) if v}
    if repo_tag:
        descriptor["annotations"] = {IMAGE_NAME: repo_tag,
                                     REF_NAME: repo_tag.rpartition(":")[2]}
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor]}
    yield from tarwrite.file_member("index.json", json.dumps(index).encode())
    repo_tags = [repo_tag] if repo_tag else []
    yield from _manifest_json(config_name, repo_tags, layer_names)
    yield from tarwrite.file_member("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    if layer_names:
        yield from _repositories(repo_tags, layer_names[-1].rpartition("/")[2])
    yield tarwrite.END_OF_ARCHIVE


def one_image_tail(config_name: str, repo_tags: Sequence[str], layer_names: Sequence[str],
                   layer_sources: Mapping[str, Any], top: str) -> Iterator[bytes]:
    """``manifest.json`` (and ``repositories``) of a classic docker-archive holding
    one image, and the end of the archive. ``top`` names the top layer in
    ``repositories`` (its directory, or its blob's hex)."""
    yield from _manifest_json(config_name, repo_tags, layer_names, layer_sources)
    yield from _repositories(repo_tags, top)
    yield tarwrite.END_OF_ARCHIVE


def _manifest_json(config_name: str, repo_tags: Sequence[str], layer_names: Sequence[str],
                   layer_sources: Mapping[str, Any] | None = None) -> Iterator[bytes]:
    """The one-entry ``manifest.json`` every ``docker load`` reads."""
    entry: dict[str, Any] = {"Config": config_name, "RepoTags": list(repo_tags) or None,
                             "Layers": list(layer_names)}
    if layer_sources:
        entry["LayerSources"] = dict(layer_sources)
    yield from tarwrite.file_member("manifest.json", json.dumps([entry]).encode())


def _repositories(repo_tags: Sequence[str], top: str) -> Iterator[bytes]:
    """The legacy ``repositories`` file: ``{name: {tag: top layer}}``, when tagged."""
    repos: dict[str, dict[str, str]] = {}
    for repo_tag in repo_tags:
        name, _, tag = repo_tag.rpartition(":")
        repos.setdefault(name, {})[tag] = top
    if repos:
        yield from tarwrite.file_member("repositories", json.dumps(repos).encode())
