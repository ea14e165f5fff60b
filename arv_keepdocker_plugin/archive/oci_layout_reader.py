"""Reading an OCI image layout (a tar or a directory) and converting it on the fly.

An OCI layout has ``oci-layout``, ``index.json`` (which may point at nested
image indexes, one manifest per platform) and ``blobs/sha256/*``. It has no
``manifest.json``, which ``docker load`` and crunch-run need, so the selected
image is turned into a docker-archive stream that Docker 25 would write:

* the layer, config and manifest blobs byte for byte (so the image id, the
  config digest, and the manifest digest do not change);
* ``manifest.json`` (``Config``/``Layers`` as ``blobs/sha256/<hex>``, and
  ``RepoTags``) for every ``docker load``;
* ``index.json`` and ``oci-layout`` for loaders that read the OCI side.

Every blob is checked against its descriptor's sha256 and size as it passes;
the stream fails before its end on a mismatch. zstd layers are refused up
front: Docker 20.10's ``docker load`` cannot read them.

:meth:`OciImage.export_pieces` gives the same stream as pieces, a
:class:`~..image.StoredData` standing for the data of each layer blob
already stored: that blob is neither opened nor read.

:func:`to_docker_archive` is the one writer of that stream, for any source
that has an image's manifest and config and can open its layers' data (a
layout here, a registry in :mod:`~..sources.registry_export`): each layer is
a :class:`PlannedLayer`, and a callable opens its verified data. A layer may
be written otherwise than its descriptor says (a zstd layer stored
decompressed, under its diff id); the manifest in the archive is then
rewritten to describe what it holds, with the config, hence the image id,
unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
from typing import (
    AbstractSet,
    Any,
    Callable,
    Dict,
    Generator,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
    cast,
)

from ..errors import BadArchive, BadReference, ImageNotFound
from ..image import ByteStream, Layer, Piece, SkippedLayers, StoredData, skipped_size
from . import safety, tarwrite
from .docker_archive_reader import matching as names_matching
from .members import DirectoryMembers, OwnsMembers, verified
from .platforms import Platform, host_platform
from .safety import bad
from .streamed import ArchiveMembers, decompressed, open_archive, walk
from .streams import ChunkReader

REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
#: Layer media types ``docker load`` reads (it decompresses gzip itself).
LOADABLE_LAYERS = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
MAX_INDEX_DEPTH = 4
_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")


def _blob_name(archive: str, desc: dict, what: str) -> str:
    digest = desc.get("digest") if isinstance(desc, dict) else None
    m = _DIGEST.match(digest or "")
    if not m:
        raise bad(archive, "{} has an unsupported or malformed digest {!r}".format(what, digest))
    return "blobs/sha256/" + m.group(1)


@dataclasses.dataclass(frozen=True)
class PlannedLayer:
    """One layer of an image as the docker-archive will hold it.

    :ivar digest: ``sha256:<hex>`` of the member's data: the blob's digest,
        or the diff id of a layer stored decompressed. The member is
        ``blobs/sha256/<hex>``; this is the digest a skip set names.
    :ivar size: the member's size, when known before its data is read
        (``None`` for a layer stored decompressed: a skipped one's size then
        comes from the skip set, see :func:`~..image.skipped_size`).
    :ivar media_type: the member's media type.
    :ivar descriptor: the image manifest's descriptor of the layer, as
        served; when ``digest``, ``size`` or ``media_type`` differ from it,
        the manifest written into the archive describes the member instead.
    """

    digest: str
    size: Optional[int]
    media_type: str
    descriptor: Mapping[str, Any]

    @classmethod
    def as_served(cls, descriptor: Mapping[str, Any]) -> "PlannedLayer":
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
LayerData = Callable[[PlannedLayer], Tuple[int, Iterable[bytes]]]


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
    def config(self) -> Dict[str, Any]: ...

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


@dataclasses.dataclass
class Candidate:
    """An image manifest reachable from ``index.json``."""

    ref: Optional[str]
    descriptor: dict
    platform: Optional[Platform]
    annotations: dict

    def label(self) -> str:
        bits = [self.ref or "no ref"]
        if self.platform:
            bits.append(str(self.platform))
        return " ".join(bits)


@dataclasses.dataclass
class OciImage(DocumentDigests):
    """The selected image: its manifest and config (read and verified)."""

    path: str
    directory: bool
    ref: Optional[str]
    annotations: dict
    manifest: dict
    manifest_bytes: bytes
    manifest_media_type: str
    config: dict
    config_bytes: bytes
    layer_descriptors: List[dict]
    #: The layout tar's compression (read in order, whole), or None.
    compression: Optional[str] = None

    @property
    def layers(self) -> List[Layer]:
        return [Layer(d.get("digest"), d.get("size")) for d in self.layer_descriptors]

    @property
    def planned_layers(self) -> List[PlannedLayer]:
        """Every layer blob goes into the archive as it is in the layout."""
        for desc in self.layer_descriptors:
            _blob_name(self.path, desc, "layer")
        return [PlannedLayer.as_served(d) for d in self.layer_descriptors]

    @contextlib.contextmanager
    def export(self, repo_tag: Optional[str] = None) -> Iterator[ByteStream]:
        """A docker-archive stream of this image (reopens the layout)."""
        if self.compression is not None:
            with decompressed(self.path, self.compression) as stream:
                with ChunkReader(_stream_to_docker_archive(stream, self, repo_tag)) as reader:
                    yield reader
            return
        members = open_members(self.path, self.directory)
        # With no layer skipped, every piece is bytes.
        with members, ChunkReader(cast(Iterator[bytes], to_docker_archive(
                self, self.planned_layers, layout_layer_data(members, self.path),
                repo_tag))) as reader:
            yield reader

    @contextlib.contextmanager
    def export_pieces(self, skip: AbstractSet[str], repo_tag: Optional[str] = None
                      ) -> Iterator[Generator[Piece, None, None]]:
        """:meth:`export` as pieces: bytes, and a :class:`StoredData` for the data
        of each layer blob whose digest is in ``skip``. Not for a compressed
        layout tar, which is read in order, whole."""
        if self.compression is not None:
            raise bad(self.path, "a {} layout is read whole; no layer can be skipped".format(
                self.compression))
        members = open_members(self.path, self.directory)
        pieces = to_docker_archive(self, self.planned_layers,
                                   layout_layer_data(members, self.path), repo_tag, skip)
        try:
            yield pieces
        finally:
            pieces.close()
            members.close()


def open_members(path: str, directory: bool) -> ArchiveMembers:
    """The layout's files: a directory, a tar (no links allowed), or a compressed tar."""
    return DirectoryMembers(path) if directory else open_archive(path, allow_symlinks=False)


class OciLayout(OwnsMembers):
    """An OCI image layout: ``directory=False`` for a tar (``oci-archive``).

    :raises BadArchive: unreadable, unsafe, no or malformed ``index.json``.
    """

    members: ArchiveMembers

    def __init__(self, path: str, directory: bool = False) -> None:
        self.path = path
        self.directory = directory
        self.members = open_members(path, directory)
        try:
            if self.members.find("index.json") is None:
                hint = ""
                if self.members.find("manifest.json") is not None:
                    hint = " (this is a docker-archive: use docker-archive:{})".format(path)
                raise bad(path, "no index.json: not an OCI image layout" + hint)
            self.index = self.members.read_json("index.json")
            if not isinstance(self.index, dict) or not isinstance(
                    self.index.get("manifests"), list):
                raise bad(path, "index.json has no manifests list")
            self.candidates = self._walk(self.index, None, {}, 0)
        except BaseException:
            self.members.close()
            raise

    # -- reading blobs -------------------------------------------------------

    def read_blob(self, desc: dict, what: str) -> bytes:
        """A small blob (manifest, index, config), checked against ``desc``."""
        name = _blob_name(self.path, desc, what)
        member = self.members.find(name)
        if member is None:
            raise bad(self.path, "{} blob {} is missing".format(what, desc.get("digest")))
        safety.check_size(self.path, what, member.size)
        size = desc.get("size")
        if isinstance(size, int) and size != member.size:
            raise bad(self.path, "{} blob {} is {} bytes, its descriptor says {}".format(
                what, desc["digest"], member.size, size))
        return b"".join(verified(self.path, "{} blob".format(what), self.members.chunks(member),
                                 desc["digest"], None))

    def _walk(self, index: dict, ref: Optional[str], annotations: dict,
              depth: int) -> List[Candidate]:
        if depth > MAX_INDEX_DEPTH:
            raise bad(self.path, "image indexes nested too deeply")
        out = []
        for desc in index.get("manifests") or []:
            if not isinstance(desc, dict):
                raise bad(self.path, "index has a malformed descriptor")
            ann = dict(annotations)
            ann.update(desc.get("annotations") or {})
            dref = (desc.get("annotations") or {}).get(REF_NAME) or ref
            media = desc.get("mediaType")
            if media in INDEX_TYPES:
                nested = safety.parse_json(self.path, "image index",
                                           self.read_blob(desc, "image index"))
                if not isinstance(nested, dict):
                    raise bad(self.path, "image index is not a JSON object")
                out.extend(self._walk(nested, dref, ann, depth + 1))
            elif media in MANIFEST_TYPES or media is None:
                plat = Platform.from_descriptor(desc.get("platform"))
                if ann.get("vnd.docker.reference.type") or (plat and plat.os == "unknown"):
                    continue  # build attestations, not images
                out.append(Candidate(dref, desc, plat, ann))
        return out

    def platform_of(self, cand: Candidate) -> Optional[Platform]:
        """The candidate's platform, from its descriptor or else its config."""
        if cand.platform is None:
            image = self.load(cand)
            cand.platform = Platform.from_descriptor(image.config)
        return cand.platform

    # -- selection -----------------------------------------------------------

    def refs(self) -> str:
        return ", ".join(c.label() for c in self.candidates) or "nothing"

    def select(self, ref: Optional[str] = None, platform: Optional[str] = None,
               transport: str = "oci-archive") -> OciImage:
        """Choose one image by ``ref`` and/or platform (``os/arch[/variant]``).

        With no platform given and several images left, this machine's
        platform decides. Unknown choices raise :class:`ImageNotFound`,
        ambiguous ones :class:`BadReference`, listing what the layout holds.
        """
        cands = self.candidates
        if not cands:
            raise ImageNotFound("{}: the layout holds no image".format(self.path))
        if ref is not None:
            cands = ([c for c in cands if c.ref == ref]
                     or names_matching(ref, cands, lambda c: [c.ref] if c.ref else []))
            if not cands:
                raise ImageNotFound("{}: no image with reference {!r}; it holds: {}".format(
                    self.path, ref, self.refs()))
        wanted = Platform.parse(platform) if platform else None
        if wanted is None and len(cands) == 1:
            return self.load(cands[0])
        want = wanted or host_platform()
        matching = [c for c in cands if want.matches(self.platform_of(c))]
        if not matching:
            what = "for platform {}".format(want) if wanted else \
                "for this machine's platform {}; choose one with --platform".format(want)
            raise ImageNotFound("{}: no image {}; it holds: {}".format(
                self.path, what, ", ".join(c.label() for c in cands)))
        if len(matching) > 1:
            raise BadReference("{}: several images match{}; choose one with {}{} ({})".format(
                self.path, " {}".format(want),
                "--platform OS/ARCH/VARIANT or " if len({c.platform for c in matching}) > 1
                else "", "{}:{}:REF".format(transport, self.path),
                ", ".join(c.label() for c in matching)))
        return self.load(matching[0])

    def load(self, cand: Candidate) -> OciImage:
        """Read and check a candidate's manifest, config and layer descriptors."""
        data = self.read_blob(cand.descriptor, "manifest")
        manifest = safety.parse_json(self.path, "manifest", data)
        if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict) \
                or not isinstance(manifest.get("layers"), list):
            raise bad(self.path, "manifest {} is not an image manifest".format(
                cand.descriptor.get("digest")))
        config_bytes = self.read_blob(manifest["config"], "config")
        config = safety.parse_json(self.path, "image config", config_bytes)
        if not isinstance(config, dict):
            raise bad(self.path, "image config is not a JSON object")
        layers = manifest["layers"]
        for desc in layers:
            self._check_layer(desc)
        media = manifest.get("mediaType") or cand.descriptor.get("mediaType") or MANIFEST_TYPES[0]
        return OciImage(self.path, self.directory, cand.ref, cand.annotations, manifest,
                        data, media, config, config_bytes, layers,
                        getattr(self.members, "compression", None))

    def _check_layer(self, desc: dict) -> None:
        name = _blob_name(self.path, desc, "layer")
        media = desc.get("mediaType") or ""
        member = self.members.find(name)
        if member is None:
            raise bad(self.path, "layer blob {} is missing".format(desc.get("digest")))
        if "zstd" in media or self.members.head(member, len(ZSTD_MAGIC)) == ZSTD_MAGIC:
            raise bad(self.path, "layer {} is zstd-compressed; zstd-compressed layers cannot "
                      "be loaded by docker load; convert the image first, e.g. with "
                      "skopeo copy --dest-compress-format gzip".format(desc.get("digest")))
        if media not in LOADABLE_LAYERS:
            raise bad(self.path, "layer {} has media type {!r}, which docker load cannot "
                      "read".format(desc.get("digest"), media))
        if desc.get("size") != member.size:
            raise bad(self.path, "layer blob {} is {} bytes, its descriptor says {}".format(
                desc.get("digest"), member.size, desc.get("size")))


def layout_layer_data(members: ArchiveMembers, archive: str) -> LayerData:
    """Layer data from a layout's blobs, checked against the descriptor's digest and size."""
    def open_layer(layer: PlannedLayer) -> Tuple[int, Iterable[bytes]]:
        member = members.find(_blob_name(archive, dict(layer.descriptor), "layer"))
        if member is None:
            raise bad(archive, "layer blob {} is missing".format(layer.digest))
        if member.size != layer.size:
            raise bad(archive, "layer blob {} is {} bytes, its descriptor says {}".format(
                layer.digest, member.size, layer.size))
        return member.size, verified(archive, "layer blob {}".format(layer.digest),
                                     members.chunks(member), layer.digest, member.size)
    return open_layer


def to_docker_archive(image: ImageDocuments, layers: Sequence[PlannedLayer],
                      layer_data: LayerData, repo_tag: Optional[str] = None,
                      skip: AbstractSet[str] = frozenset()) -> Generator[Piece, None, None]:
    """The tar bytes of a Docker 25-style docker-archive of ``image``.

    ``layers`` are the manifest's layers, in order, as they will be written;
    ``layer_data(layer)`` opens each one's data when it is needed (once per
    distinct digest). The data of a layer whose digest is in ``skip`` is a
    :class:`StoredData` of that digest and the member's size (the planned
    size, else the skip set's: see :func:`~..image.skipped_size`; a skipped
    layer of unknown size is opened after all). Config, manifest and
    metadata follow the layers; the manifest is the image's own bytes unless
    a layer is written otherwise than its descriptor says (see
    :func:`rewritten_manifest`).
    """
    yield tarwrite.header("blobs", directory=True)
    yield tarwrite.header("blobs/sha256", directory=True)
    written: Set[str] = set()
    layer_names = []
    sizes: Dict[str, int] = {}
    for layer in layers:
        name = _blob_name(image.path, {"digest": layer.digest}, "layer")
        layer_names.append(name)
        if name in written:
            continue
        written.add(name)
        size = layer.size if layer.size is not None else skipped_size(skip, layer.digest)
        if layer.digest in skip and size is not None:
            yield from tarwrite.streamed_member(name, size, [StoredData(layer.digest, size)])
        else:
            size, chunks = layer_data(layer)
            yield from tarwrite.streamed_member(name, size, chunks)
        sizes[layer.digest] = size
    manifest = image.manifest_bytes
    if any(layer.converted or layer.size is None for layer in layers):
        manifest = rewritten_manifest(image.path, manifest, layers, sizes)
    yield from _small_blobs_and_metadata(image, manifest, layer_names, written, repo_tag)


def export_length(image: ImageDocuments, layers: Sequence[PlannedLayer],
                  repo_tag: Optional[str] = None) -> Optional[int]:
    """The length of :func:`to_docker_archive`'s stream, counted without reading a layer.

    Every layer is passed as skipped, so its data counts by its planned size
    (the pieces add up to the stream: see :attr:`~..image.Image.export_pieces`).
    None when a layer's size is not known before it is read, or when the
    documents are broken (the export itself then says how).
    """
    if any(layer.size is None for layer in layers):
        return None
    skip = SkippedLayers({layer.digest: layer.size for layer in layers
                          if layer.size is not None})

    def unread(layer: PlannedLayer) -> Tuple[int, Iterable[bytes]]:
        raise AssertionError("every layer is skipped")

    try:
        return sum(piece.size if isinstance(piece, StoredData) else len(piece)
                   for piece in to_docker_archive(image, layers, unread, repo_tag, skip))
    except BadArchive:
        return None


#: Layer annotations that describe the compressed blob (zstd:chunked's table of
#: contents): dropped when the layer is stored decompressed.
BLOB_ANNOTATION_PREFIXES = ("io.github.containers.zstd-chunked.",
                            "io.containers.zstd-chunked.")


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


def _stream_to_docker_archive(stream: ByteStream, image: OciImage,
                              repo_tag: Optional[str]) -> Iterator[bytes]:
    """:func:`to_docker_archive` from a compressed layout tar, read in stream order.

    Each layer blob the image needs is written as it passes (the order of
    members does not matter to a loader: ``manifest.json`` names them), its
    size checked against its descriptor (the digest is checked by the tap
    that stores the stream); then config, manifest and metadata.
    """
    archive = image.path
    yield tarwrite.header("blobs", directory=True)
    yield tarwrite.header("blobs/sha256", directory=True)
    sizes = {}
    layer_names = []
    for desc in image.layer_descriptors:
        name = _blob_name(archive, desc, "layer")
        layer_names.append(name)
        sizes[name] = desc["size"]
    written: Set[str] = set()
    for walked, data in walk(stream, archive, safety.MemberChecker(archive)):
        if walked.name not in sizes or walked.name in written:
            continue
        if walked.size != sizes[walked.name]:
            raise bad(archive, "layer blob {} is {} bytes, its descriptor says {}".format(
                walked.name, walked.size, sizes[walked.name]))
        written.add(walked.name)
        yield from tarwrite.streamed_member(walked.name, walked.size, data)
    missing = set(sizes) - written
    if missing:
        raise bad(archive, "layer blob {} is missing".format(sorted(missing)[0]))
    yield from _small_blobs_and_metadata(image, image.manifest_bytes, layer_names, written,
                                         repo_tag)


def _small_blobs_and_metadata(image: ImageDocuments, manifest: bytes, layer_names: List[str],
                              written: Set[str], repo_tag: Optional[str]) -> Iterator[bytes]:
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
    descriptor: Dict[str, Any] = {"mediaType": image.manifest_media_type,
                                  "digest": manifest_digest, "size": len(manifest)}
    plat = Platform.from_descriptor(image.config)
    if plat:
        descriptor["platform"] = {k: v for k, v in (("architecture", plat.architecture),
                                                    ("os", plat.os),
                                                    ("variant", plat.variant)) if v}
    if repo_tag:
        descriptor["annotations"] = {IMAGE_NAME: repo_tag,
                                     REF_NAME: repo_tag.rpartition(":")[2]}
    index = {"schemaVersion": 2, "mediaType": INDEX_TYPES[0], "manifests": [descriptor]}
    yield from tarwrite.file_member("index.json", json.dumps(index).encode())
    entry = {"Config": config_name, "RepoTags": [repo_tag] if repo_tag else None,
             "Layers": layer_names}
    yield from tarwrite.file_member("manifest.json", json.dumps([entry]).encode())
    yield from tarwrite.file_member("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
    if repo_tag and layer_names:
        name, _, tag = repo_tag.rpartition(":")
        repos = {name: {tag: layer_names[-1].rpartition("/")[2]}}
        yield from tarwrite.file_member("repositories", json.dumps(repos).encode())
    yield tarwrite.END_OF_ARCHIVE
