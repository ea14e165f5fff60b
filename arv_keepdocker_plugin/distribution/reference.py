"""Registry image references: ``[REGISTRY[:PORT]/]NAME[:TAG|@sha256:DIGEST]``.

The rules are those of skopeo's ``docker://`` transport (the caller strips
``docker://``), which are Docker's, and live with every other image-name
rule in :mod:`arv_keepdocker_plugin.names`: no registry means Docker Hub
(``docker.io``, whose API is at ``registry-1.docker.io``), a one-component
name there lives in ``library/``, no tag and no digest means ``latest``,
``NAME:TAG@DIGEST`` is allowed (the digest selects the image, the tag is
kept for naming), and there is no short-name search.

This module adds what only a registry client needs: the host that serves
the API, what to ask ``/v2/NAME/manifests/`` for, and the same reference
in another location (a mirror). Every refusal is a
:class:`~arv_keepdocker_plugin.errors.BadReference` with a one-line message.
"""

from __future__ import annotations

import dataclasses

from ..names import (
    DEFAULT_TAG,
    DOCKER_HUB,
    DOCKER_HUB_API,
    ImageName,
    normalize_registry,
    parse_image_name,
)

__all__ = ["DEFAULT_TAG", "DOCKER_HUB", "DOCKER_HUB_API", "RegistryReference",
           "normalize_registry", "parse_reference"]


@dataclasses.dataclass(frozen=True)
class RegistryReference(ImageName):
    """A parsed, normalized registry reference (see :class:`~..names.ImageName`)."""

    @property
    def api_host(self) -> str:
        """The host serving the registry API (``registry-1.docker.io`` for Hub)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def manifest_reference(self) -> str:
        """What to ask ``/v2/NAME/manifests/`` for: the digest, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_location(self, registry: str, repository: str) -> RegistryReference:
        """The same tag and digest in another registry and repository."""
        return dataclasses.replace(self, registry=registry, repository=repository)


def parse_reference(text: str) -> RegistryReference:
    """Parse ``[REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST]`` (see
    :func:`~..names.parse_image_name`)."""
    name = parse_image_name(text)
    return RegistryReference(name.registry, name.repository, name.tag, name.digest)
