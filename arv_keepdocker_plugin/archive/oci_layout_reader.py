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

The stream is written by the one docker-archive writer,
:mod:`.docker_archive_writer`, which the registry source shares.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import cast

from ..errors import BadReference, ImageNotFound
from ..image import ByteStream, Layer, LayerSizes, Piece
from ..names import matching as names_matching
from . import safety, tarwrite
from .docker_archive_writer import (
    OCI_INDEX,
    REF_NAME,
    DocumentDigests,
    LayerData,
    PlannedLayer,
    blob_name,
    documents_and_end,
    to_docker_archive,
)
from .members import DirectoryMembers, OwnsMembers, verified
from .platforms import Platform, host_platform
from .safety import bad
from .streamed import ArchiveMembers, PassedMembers, decompressed, open_archive, walk
from .streams import ChunkReader
from .tap import SeveralImages

MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
INDEX_TYPES = (OCI_INDEX,
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


@dataclasses.dataclass
class Candidate:
    """An image manifest reachable from ``index.json``."""

    ref: str | None
    descriptor: dict
    platform: Platform | None
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
    ref: str | None
    annotations: dict
    manifest: dict
    manifest_bytes: bytes
    manifest_media_type: str
    config: dict
    config_bytes: bytes
    layer_descriptors: list[dict]
    #: The layout tar's compression (read in order, whole), or None.
    compression: str | None = None

    @property
    def layers(self) -> list[Layer]:
        return [Layer(d.get("digest"), d.get("size")) for d in self.layer_descriptors]

    @property
    def planned_layers(self) -> list[PlannedLayer]:
        """Every layer blob goes into the archive as it is in the layout."""
        for desc in self.layer_descriptors:
            blob_name(self.path, desc, "layer")
        return [PlannedLayer.as_served(d) for d in self.layer_descriptors]

    @contextlib.contextmanager
    def export(self, repo_tag: str | None = None) -> Iterator[ByteStream]:
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
    def export_pieces(self, skip: LayerSizes, repo_tag: str | None = None
                      ) -> Iterator[Generator[Piece, None, None]]:
        """:meth:`export` as pieces: bytes, and a :class:`StoredData` for the data
        of each layer blob whose digest is in ``skip``. Not for a compressed
        layout tar, which is read in order, whole."""
        if self.compression is not None:
            raise bad(self.path, f"a {self.compression} layout is read whole; no layer can be "
                                 "skipped")
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

    def __init__(self, path: str, directory: bool = False,
                 members: ArchiveMembers | None = None) -> None:
        self.path = path
        self.directory = directory
        self.members = members if members is not None else open_members(path, directory)
        try:
            if self.members.find("index.json") is None:
                hint = ""
                if self.members.find("manifest.json") is not None:
                    hint = f" (this is a docker-archive: use docker-archive:{path})"
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
        name = blob_name(self.path, desc, what)
        member = self.members.find(name)
        if member is None:
            raise bad(self.path, "{} blob {} is missing".format(what, desc.get("digest")))
        safety.check_size(self.path, what, member.size)
        size = desc.get("size")
        if isinstance(size, int) and size != member.size:
            raise bad(self.path, "{} blob {} is {} bytes, its descriptor says {}".format(
                what, desc["digest"], member.size, size))
        return b"".join(verified(self.path, f"{what} blob", self.members.chunks(member),
                                 desc["digest"], None))

    def _walk(self, index: dict, ref: str | None, annotations: dict,
              depth: int) -> list[Candidate]:
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

    def platform_of(self, cand: Candidate) -> Platform | None:
        """The candidate's platform, from its descriptor or else its config."""
        if cand.platform is None:
            image = self.load(cand)
            cand.platform = Platform.from_descriptor(image.config)
        return cand.platform

    # -- selection -----------------------------------------------------------

    def refs(self) -> str:
        return ", ".join(c.label() for c in self.candidates) or "nothing"

    def select(self, ref: str | None = None, platform: str | None = None,
               transport: str = "oci-archive") -> OciImage:
        """Choose one image by ``ref`` and/or platform (``os/arch[/variant]``).

        With no platform given and several images left, this machine's
        platform decides. Unknown choices raise :class:`ImageNotFound`,
        ambiguous ones :class:`BadReference`, listing what the layout holds.
        """
        cands = self.candidates
        if not cands:
            raise ImageNotFound(f"{self.path}: the layout holds no image")
        if ref is not None:
            cands = ([c for c in cands if c.ref == ref]
                     or names_matching(ref, cands, lambda c: [c.ref] if c.ref else []))
            if not cands:
                raise ImageNotFound(f"{self.path}: no image with reference {ref!r}; it holds: "
                                    f"{self.refs()}")
        wanted = Platform.parse(platform) if platform else None
        if wanted is None and len(cands) == 1:
            return self.load(cands[0])
        want = wanted or host_platform()
        matching = [c for c in cands if want.matches(self.platform_of(c))]
        if not matching:
            what = f"for platform {want}" if wanted else \
                f"for this machine's platform {want}; choose one with --platform"
            raise ImageNotFound("{}: no image {}; it holds: {}".format(
                self.path, what, ", ".join(c.label() for c in cands)))
        if len(matching) > 1:
            raise BadReference("{}: several images match{}; choose one with {}{} ({})".format(
                self.path, f" {want}",
                "--platform OS/ARCH/VARIANT or " if len({c.platform for c in matching}) > 1
                else "", f"{transport}:{self.path}:REF",
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
        name = blob_name(self.path, desc, "layer")
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
    def open_layer(layer: PlannedLayer) -> tuple[int, Iterable[bytes]]:
        member = members.find(blob_name(archive, dict(layer.descriptor), "layer"))
        if member is None:
            raise bad(archive, f"layer blob {layer.digest} is missing")
        if member.size != layer.size:
            raise bad(archive, f"layer blob {layer.digest} is {member.size} bytes, its descriptor "
                               f"says {layer.size}")
        return member.size, verified(archive, f"layer blob {layer.digest}",
                                     members.chunks(member), layer.digest, member.size)
    return open_layer


def _stream_to_docker_archive(stream: ByteStream, image: OciImage,
                              repo_tag: str | None) -> Iterator[bytes]:
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
        name = blob_name(archive, desc, "layer")
        layer_names.append(name)
        sizes[name] = desc["size"]
    written: set[str] = set()
    for walked, data in walk(stream, archive, safety.MemberChecker(archive)):
        if walked.name not in sizes or walked.name in written:
            continue
        if walked.size != sizes[walked.name]:
            raise bad(archive, f"layer blob {walked.name} is {walked.size} bytes, its descriptor "
                               f"says {sizes[walked.name]}")
        written.add(walked.name)
        yield from tarwrite.streamed_member(walked.name, walked.size, data)
    missing = set(sizes) - written
    if missing:
        raise bad(archive, f"layer blob {sorted(missing)[0]} is missing")
    yield from documents_and_end(image, image.manifest_bytes, layer_names, written,
                                         repo_tag)


def read_once_docker_archive(stream: ByteStream, path: str, kind: str,
                             select: Callable[[OciLayout], OciImage],
                             name_of: Callable[[OciImage], str | None]) -> Iterator[bytes]:
    """A compressed layout tar as a docker-archive in one pass, learning the layout as it goes.

    Every blob that is not a small JSON document (layers, as far as the
    stream can tell before ``index.json`` names them) is written as it
    passes; documents are kept. At the end the image is chosen
    (``select(layout)``, named by ``name_of(image)``) and its config,
    manifest and metadata end the stream, as :func:`_stream_to_docker_archive`
    writes them after a first pass. A blob written that is not one of the
    image's layers (a layout of several images or platforms) raises
    :class:`~.tap.SeveralImages`: such a layout is read twice.
    """
    yield tarwrite.header("blobs", directory=True)
    yield tarwrite.header("blobs/sha256", directory=True)
    members = PassedMembers(path, kind)
    written: set[str] = set()
    for walked, data in walk(stream, path, members.checker):
        passed = members.note(walked, data)
        if passed is None or walked.name is None:
            continue
        if walked.name.startswith("blobs/sha256/") and walked.name not in written:
            written.add(walked.name)
            yield from tarwrite.streamed_member(walked.name, walked.size, passed)
    if not members.members:
        raise bad(path, f"empty {kind} stream, not a tar archive")
    image = select(OciLayout(path, members=members))
    layer_names = [blob_name(path, desc, "layer") for desc in image.layer_descriptors]
    extra = written - set(layer_names)
    if extra:
        raise SeveralImages(path, f"blob {sorted(extra)[0]} is not a layer of the image chosen")
    missing = set(layer_names) - written
    if missing:
        raise bad(path, f"layer blob {sorted(missing)[0]} is missing")
    yield from documents_and_end(image, image.manifest_bytes, layer_names, written,
                                 name_of(image))
