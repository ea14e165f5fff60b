"""``docker://[REGISTRY[:PORT]/]NAME[:TAG|@sha256:DIGEST]`` - an image in a registry.

Pulled with no daemon and no copy on disk: the manifest and config are
fetched when the image is resolved (so the image id, the config digest, is
known before anything is stored, and an image already in Arvados costs
nothing more), and each layer blob is streamed from the registry into Keep
as the upload reaches it (:mod:`.registry_export`). Layers already stored
(a record the core trusts, or this user's resume journal) are not even
downloaded.

References follow skopeo's ``docker://`` rules
(:func:`~..distribution.parse_reference`): ``debian:12`` is Docker Hub's
``docker.io/library/debian:12``, the first component is a registry only
when it has a ``.`` or ``:`` or is ``localhost``, no tag means ``latest``.
Only the literal prefix ``docker://`` selects this source (``--source
docker`` too); ``docker:dind`` stays the Docker engine's image ``docker``
with tag ``dind``, as in arv-keepdocker 3.2.1. registries.conf (mirrors,
``location`` rewrites, blocked and insecure registries), certs.d, the usual
auth files and the site's trust policy (policy.json,
:mod:`..distribution.policy`) apply as for podman and skopeo; the options
are skopeo's (:mod:`.registry_options`).

Linked (``docker_image_repo+tag``) under the name a user would pull it by:
``registry:port/name:tag``, and Docker Hub images as Docker names them
(``debian:12``, ``user/app:1``). An image given by digest alone gets only
its ``docker_image_hash`` link, as an image given by id does. The hash link
records the registry's manifest digest (and the index digest of a
multi-platform image); the collection property ``docker-image-reference``
holds the fully qualified reference by digest (the digest typed, else the
manifest digest), e.g. ``docker.io/library/debian@sha256:...``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import hookimpl
from ..distribution import RegistryReference, parse_reference
from ..errors import BadReference
from ..image import Image, ImageSource, Reference
from . import registry_options

NAME = "docker"
PREFIX = NAME + "://"
#: The collection property holding the image's reference by digest.
REFERENCE_PROPERTY = "docker-image-reference"


def with_tag(details: str, tag: str | None) -> str:
    """``details`` with the separate TAG argument (3.2.1's ``IMAGE TAG`` form).

    :raises BadReference: a tag given twice, or with a digest.
    """
    if tag is None:
        return details
    name = details.partition("@")[0]
    if "@" in details or ":" in name.rsplit("/", 1)[-1]:
        raise BadReference(f"image {PREFIX + details!r} already includes a tag or digest, cannot "
                           "add tag "
                           f"argument {tag!r}")
    return f"{details}:{tag}"


def requested(options: argparse.Namespace) -> RegistryReference | None:
    """The registry reference this run's command line asks for, if it is ours."""
    raw = getattr(options, "image", None) or ""
    source = getattr(options, "source", None)
    if raw.startswith(PREFIX) and source in (None, NAME):
        details = raw[len(PREFIX):]
    elif source == NAME:
        details = raw
    else:
        return None
    try:
        return parse_reference(with_tag(details, getattr(options, "tag", None)))
    except BadReference:
        return None


def by_digest(reference: RegistryReference, manifest_digest: str | None) -> str | None:
    """``REGISTRY/REPOSITORY@DIGEST``: the digest typed, else the manifest's."""
    digest = reference.digest or manifest_digest
    return f"{reference.name}@{digest}" if digest else None


class RegistrySource(ImageSource):
    """The ``docker://`` transport."""

    name = NAME
    description = "an image in a registry, downloaded without an engine"
    syntax = "[REGISTRY[:PORT]/]NAME[:TAG|@DIGEST]"
    double_slash = True
    honours_platform = True

    def parse(self, details: str, tag: str | None) -> Reference:
        """``[REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST]`` (after ``docker://``).

        ``ref`` is the fully qualified reference; ``name`` and ``tag`` are
        what will be linked, none for a reference by digest alone.
        """
        ref = parse_reference(with_tag(details, tag))
        return Reference(raw=PREFIX + details, transport=NAME,
                         name=ref.familiar_name if ref.tag else None, tag=ref.tag,
                         ref=str(ref))

    def resolve(self, reference: Reference, options: argparse.Namespace) -> Image:
        """Fetch the manifest (the platform's, from an index) and the config.

        The site's trust policy is applied first (before any request).

        :raises PolicyError: the trust policy refuses the image, or is invalid.
        :raises RegistryError: one line: unreachable, refused, unknown,
            blocked, a digest mismatch, schema 1, zstd without a decompressor...
        """
        if reference.ref is None:
            raise BadReference(f"{reference.raw}: no image reference")
        policy = registry_options.trust_policy(options)
        if policy is not None:
            policy.check(parse_reference(reference.ref))
        # The HTTP client and the export are imported here, on first use: every run
        # registers this source, few use it (see ..registry's _ON_FIRST_USE).
        from ..distribution import RegistrySession
        from .registry_export import RegistryExport
        pull = registry_options.pull_options(options)
        with RegistrySession(pull) as session:
            resolved = session.resolve(reference.ref)
            received = session.bytes_received
        repo_tag = resolved.familiar if resolved.tag else None
        export = RegistryExport(pull, resolved, repo_tag, received)
        return Image(image_id=resolved.image_id, source=self.name, repo_tag=repo_tag,
                     config=resolved.config, manifest_digest=resolved.manifest_digest,
                     index_digest=resolved.index_digest, layers=export.layers,
                     export=export.export, export_pieces=export.export_pieces,
                     downloaded=export.downloaded, export_size=export.size(),
                     export_size_estimated=export.size_estimated())


@hookimpl
def keepdocker_register_sources(register):
    register(RegistrySource())


@hookimpl
def keepdocker_add_arguments(parser: argparse.ArgumentParser) -> None:
    registry_options.add_arguments(parser)


@hookimpl
def keepdocker_collection_properties(image: Image,
                                     options: argparse.Namespace) -> dict[str, Any] | None:
    if image.source != NAME:
        return None
    reference = requested(options)
    value = by_digest(reference, image.manifest_digest) if reference is not None else None
    return {REFERENCE_PROPERTY: value} if value else None
