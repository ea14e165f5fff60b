"""Image manifests and indexes: media types, parsing, platform choice.

Accepted: OCI image manifest and index, Docker schema 2 manifest and
manifest list. Docker schema 1 (``...manifest.v1+json``, ``+prettyjws``
or ``schemaVersion: 1``) is refused with one line. Documents larger than
:data:`MANIFEST_SIZE_LIMIT` are refused before being parsed.
Pure functions: fetching is :mod:`.lookup`'s business.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..archive.platforms import Platform
from ..archive.safety import JSON_SIZE_LIMIT, JSONRefused, load_json
from .digests import require_digest, sha256_digest
from .registry_errors import QUOTE_LIMIT, ManifestRefused, PlatformNotFound, one_line

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

IMAGE_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEXES = (OCI_INDEX, DOCKER_LIST)
SCHEMA1 = (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED)
#: The ``Accept`` header of manifest requests: the four types we read.
MANIFEST_ACCEPT = ", ".join(IMAGE_MANIFESTS + INDEXES)
#: Largest manifest, index or image config we read (as for archives).
MANIFEST_SIZE_LIMIT = JSON_SIZE_LIMIT
#: How many of an index's platforms a message names (then how many more).
PLATFORMS_SHOWN = 10


@dataclasses.dataclass(frozen=True)
class Descriptor:
    """A content descriptor: what a manifest says about a blob or a manifest."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Any, what: str) -> Descriptor:
        """A descriptor from JSON; :class:`ManifestRefused` if malformed."""
        if not isinstance(raw, dict):
            raise ManifestRefused("%s is not a JSON object" % what)
        size = raw.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestRefused("%s has no valid size" % what)
        media_type = raw.get("mediaType", "")
        if not isinstance(media_type, str):
            raise ManifestRefused("%s has an invalid mediaType" % what)
        urls = raw.get("urls") or ()
        if not isinstance(urls, (list, tuple)) or not all(isinstance(u, str) for u in urls):
            raise ManifestRefused("%s has invalid urls" % what)
        return cls(media_type, require_digest(raw.get("digest"), what), size,
                   Platform.from_descriptor(raw.get("platform")), tuple(urls))


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A parsed manifest or index and the exact bytes it was read from.

    :ivar digest: ``sha256:`` of ``raw``, which is what names it.
    :ivar config: the image config's descriptor (``None`` for an index).
    :ivar layers: layer descriptors, bottom first (empty for an index).
    :ivar manifests: the index's entries (empty for an image manifest).
    """

    media_type: str
    raw: bytes
    digest: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEXES


def _media_type_of(document: dict[str, Any], content_type: str | None) -> str:
    """The document's type: its ``mediaType``, the header's, or a guess."""
    declared = document.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    header = (content_type or "").split(";")[0].strip().lower()
    if header in IMAGE_MANIFESTS + INDEXES:
        return header
    # OCI allows documents without mediaType: tell them apart by content.
    if "manifests" in document:
        return OCI_INDEX
    if "config" in document and "layers" in document:
        return OCI_MANIFEST
    return header or "unknown"


def parse_manifest(raw: bytes, content_type: str | None, what: str) -> Manifest:
    """Parse a manifest or index; refuse schema 1, oversize and malformed ones.

    :param content_type: the HTTP ``Content-Type`` (may be ``None``).
    :param what: names the document in messages (``HOST/REPO:TAG``...).
    """
    refuse_schema1(content_type, what)
    if len(raw) > MANIFEST_SIZE_LIMIT:
        raise ManifestRefused("%s: manifest larger than %d bytes; refusing it"
                              % (what, MANIFEST_SIZE_LIMIT))
    document = parse_document(raw, "%s: the manifest" % what)
    if not isinstance(document, dict):
        raise ManifestRefused("%s: the manifest is not a JSON object" % what)
    version = document.get("schemaVersion")
    media_type = _media_type_of(document, content_type)
    if version == 1 or media_type in SCHEMA1:
        raise _schema1(what)
    if version != 2:
        raise ManifestRefused("%s: unsupported manifest schemaVersion %s"
                              % (what, one_line(repr(version), 40)))
    digest = sha256_digest(raw)
    if media_type in INDEXES:
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise ManifestRefused("%s: the index has no manifests list" % what)
        manifests = tuple(Descriptor.parse(e, "%s: index entry %d" % (what, n))
                          for n, e in enumerate(entries))
        return Manifest(media_type, raw, digest, manifests=manifests)
    if media_type in IMAGE_MANIFESTS:
        config = Descriptor.parse(document.get("config"), "%s: config descriptor" % what)
        layers = document.get("layers")
        if not isinstance(layers, list):
            raise ManifestRefused("%s: the manifest has no layers list" % what)
        return Manifest(media_type, raw, digest, config=config,
                        layers=tuple(Descriptor.parse(l, "%s: layer %d" % (what, n))
                                     for n, l in enumerate(layers)))
    raise ManifestRefused("%s: unsupported manifest type %r" % (what, media_type[:100]))


def parse_document(raw: bytes, what: str) -> Any:
    """A registry's JSON document (manifest, index, config) of any size and depth,
    or one line: ``what`` starts the message (``"HOST/REPO:TAG: the manifest"``)."""
    try:
        return load_json(raw, MANIFEST_SIZE_LIMIT)
    except JSONRefused as e:
        raise ManifestRefused("%s %s" % (what, one_line(str(e), QUOTE_LIMIT))) from None


def describe_platform(platform: Platform | None) -> str:
    """A registry's platform name for a message (bounded: it is the registry's text)."""
    return one_line(str(platform), 60) if platform is not None else "(no platform)"


def refuse_schema1(content_type: str | None, what: str) -> None:
    """Refuse a response whose ``Content-Type`` is a Docker schema 1 manifest."""
    if (content_type or "").split(";")[0].strip().lower() in SCHEMA1:
        raise _schema1(what)


def _schema1(what: str) -> ManifestRefused:
    return ManifestRefused("%s: Docker schema 1 manifests are not supported (the image is "
                           "too old: push it again with a current Docker or skopeo)" % what)


def select_platform(index: Manifest, wanted: Platform, what: str) -> Descriptor:
    """The index entry for ``wanted``; exact variant first, then index order.

    :raises PlatformNotFound: naming, on one line, the first
        :data:`PLATFORMS_SHOWN` platforms the index holds and how many more.
    """
    candidates: list[Descriptor] = [
        d for d in index.manifests
        if d.platform is not None and wanted.matches(d.platform)]
    exact = [d for d in candidates if d.platform == wanted]
    if exact or candidates:
        return (exact or candidates)[0]
    held: dict[str, None] = {}
    for d in index.manifests:
        held.setdefault(describe_platform(d.platform))
    names = list(held)
    shown = ", ".join(names[:PLATFORMS_SHOWN]) or "no images"
    if len(names) > PLATFORMS_SHOWN:
        shown += " and %d more (%d images in all)" % (len(names) - PLATFORMS_SHOWN,
                                                       len(index.manifests))
    raise PlatformNotFound("%s: no image for platform %s; the index holds %s"
                           % (what, wanted, shown))
