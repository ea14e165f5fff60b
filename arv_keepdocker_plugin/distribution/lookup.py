"""From a reference to a resolved image: manifest, config and layer list.

:func:`resolve_image` asks one endpoint for the reference's manifest (with
the four accepted types in ``Accept``), checks its digest (against
``@DIGEST`` when given, and against ``Docker-Content-Digest`` when the
registry sends one), picks the platform's manifest from an index, then
fetches the image config and checks it against its descriptor.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ..archive.platforms import Platform
from .blobs import BlobStream
from .client import RegistryClient
from .config import PullSource
from .digests import is_digest, sha256_digest
from .manifests import (
    MANIFEST_ACCEPT,
    MANIFEST_SIZE_LIMIT,
    Descriptor,
    Manifest,
    describe_platform,
    parse_document,
    parse_manifest,
    refuse_schema1,
    select_platform,
)
from .reference import RegistryReference
from .registry_errors import DigestMismatch, ManifestRefused, ManifestUnknown

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ResolvedImage:
    """Everything about an image but its layers' bytes.

    :ivar reference: the reference asked for (the image's logical name).
    :ivar source: the endpoint that served it (mirror or primary, rewritten).
    :ivar index_digest: the digest of the index it was picked from, if any.
    :ivar manifest_digest: ``sha256:`` of ``manifest_bytes``.
    :ivar config: the parsed image config (a JSON object).
    :ivar layers: layer descriptors (digest, size, media type), bottom first.
    :ivar platform: the config's ``os/architecture[/variant]``, if it says.
    """

    reference: RegistryReference
    source: PullSource
    index_digest: str | None
    manifest_digest: str
    manifest_media_type: str
    manifest_bytes: bytes
    config_descriptor: Descriptor
    config_bytes: bytes
    config: dict[str, Any] = dataclasses.field(hash=False, compare=False)
    layers: tuple[Descriptor, ...] = ()
    platform: Platform | None = None

    @property
    def registry(self) -> str:
        """The registry of the reference (``docker.io``), not of a mirror."""
        return self.reference.registry

    @property
    def repository(self) -> str:
        return self.reference.repository

    @property
    def tag(self) -> str | None:
        return self.reference.tag

    @property
    def familiar(self) -> str:
        """``debian:12``, ``user/app:1``, ``host:5000/x:1``: the name to link."""
        return self.reference.familiar

    @property
    def image_id(self) -> str:
        """The config's digest, which Docker shows as the image id."""
        return self.config_descriptor.digest

    @property
    def digest_reference(self) -> str:
        """``REGISTRY/REPOSITORY@MANIFEST_DIGEST``: this exact image."""
        return "%s@%s" % (self.reference.name, self.manifest_digest)

    @property
    def endpoint(self) -> str:
        """Where it came from, ``mirror HOST/REPO`` or ``HOST/REPO``."""
        return self.source.describe()


def fetch_manifest(client: RegistryClient, repository: str, reference: str, *,
                   expected: Descriptor | None = None, what: str = "") -> Manifest:
    """GET ``/v2/REPOSITORY/manifests/REFERENCE`` and parse it.

    :param reference: a tag or a digest; a digest is checked against the
        bytes, as is ``expected`` (digest and size) when given.
    :raises ManifestUnknown: 404 (no such repository, tag or digest).
    """
    what = what or "%s/%s%s%s" % (client.registry, repository,
                                  "@" if is_digest(reference) else ":", reference)
    response = client.request(
        "GET", "/v2/%s/manifests/%s" % (repository, reference), repository=repository,
        headers={"Accept": MANIFEST_ACCEPT}, what="GET manifest " + what,
        not_found=lambda detail: client.fail(
            ManifestUnknown, "%s: manifest unknown%s" % (what, " (%s)" % detail
                                                         if detail else "")))
    with response:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > MANIFEST_SIZE_LIMIT:
            raise ManifestRefused("%s: manifest of %s bytes is larger than %d; refusing it"
                                  % (what, declared, MANIFEST_SIZE_LIMIT))
        raw = response.raw.read(MANIFEST_SIZE_LIMIT + 1, decode_content=True)
        client.bytes_received += len(raw)
        content_type = response.headers.get("Content-Type")
        header_digest = response.headers.get("Docker-Content-Digest", "").strip()
    if len(raw) > MANIFEST_SIZE_LIMIT:
        raise ManifestRefused("%s: manifest larger than %d bytes; refusing it"
                              % (what, MANIFEST_SIZE_LIMIT))
    refuse_schema1(content_type, what)  # its digest header is not over these bytes
    digest = sha256_digest(raw)
    # Digests first: a damaged manifest is reported as damaged, not as malformed.
    if is_digest(reference) and digest != reference:
        raise client.fail(DigestMismatch, "%s: the registry sent a manifest with digest %s"
                          % (what, digest))
    if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
        raise client.fail(DigestMismatch, "%s: Docker-Content-Digest %s does not match the "
                          "manifest's digest %s" % (what, header_digest[:80], digest))
    if expected is not None and (digest != expected.digest or len(raw) != expected.size):
        raise client.fail(DigestMismatch, "%s: got %d bytes with digest %s, the index says "
                          "%d bytes with digest %s" % (what, len(raw), digest, expected.size,
                                                      expected.digest))
    manifest = parse_manifest(raw, content_type, what)
    return manifest


def fetch_config(client: RegistryClient, repository: str, descriptor: Descriptor,
                 what: str) -> tuple[bytes, dict[str, Any]]:
    """The image config's bytes (checked) and its JSON object."""
    if descriptor.size > MANIFEST_SIZE_LIMIT:
        raise ManifestRefused("%s: image config of %d bytes is larger than %d; refusing it"
                              % (what, descriptor.size, MANIFEST_SIZE_LIMIT))
    with BlobStream(client, repository, descriptor) as stream:
        raw = stream.read_all(MANIFEST_SIZE_LIMIT)
    config = parse_document(raw, "%s: the image config" % what)
    if not isinstance(config, dict):
        raise ManifestRefused("%s: the image config is not a JSON object" % what)
    return raw, config


def resolve_image(client: RegistryClient, source: PullSource, requested: RegistryReference,
                  platform: Platform) -> ResolvedImage:
    """Resolve ``requested`` at ``source`` (whose reference ``client`` serves).

    :param platform: the platform to pick from an index.
    :raises RegistryError: one line, for anything missing, refused or wrong.
    """
    at = source.reference
    what = str(at) if not source.mirror else "%s (mirror of %s)" % (at, requested.name)
    top = fetch_manifest(client, at.repository, at.manifest_reference, what=what)
    index_digest = None
    manifest = top
    if top.is_index:
        index_digest = top.digest
        chosen = select_platform(top, platform, what)
        log.debug("%s: picked %s (%s) from index %s", what, chosen.digest, chosen.platform,
                  top.digest)
        manifest = fetch_manifest(client, at.repository, chosen.digest, expected=chosen,
                                  what="%s@%s" % (at.name, chosen.digest))
        if manifest.is_index:
            raise ManifestRefused("%s: index entry %s is itself an index; nested indexes are "
                                  "not supported" % (what, chosen.digest))
    assert manifest.config is not None
    config_bytes, config = fetch_config(client, at.repository, manifest.config, what)
    image_platform = Platform.from_descriptor(config)
    if image_platform is not None and not platform.matches(image_platform) and not top.is_index:
        log.warning("%s: the image is for %s, not %s", what, describe_platform(image_platform),
                    platform)
    return ResolvedImage(reference=requested, source=source, index_digest=index_digest,
                         manifest_digest=manifest.digest,
                         manifest_media_type=manifest.media_type,
                         manifest_bytes=manifest.raw, config_descriptor=manifest.config,
                         config_bytes=config_bytes, config=config, layers=manifest.layers,
                         platform=image_platform)
