"""Registry image references: ``[REGISTRY[:PORT]/]NAME[:TAG|@sha256:DIGEST]``.

The rules are those of skopeo's ``docker://`` transport (the caller strips
``docker://``), which are Docker's:

* the first path component is a registry only when it contains ``.`` or
  ``:`` or is ``localhost``; otherwise the registry is ``docker.io``;
* ``docker.io``, ``index.docker.io`` and ``registry-1.docker.io`` are one
  registry, named ``docker.io``, whose API is at ``registry-1.docker.io``;
  a single-component name there lives in ``library/``;
* no tag and no digest means tag ``latest``; ``NAME:TAG@DIGEST`` is allowed
  (the digest selects the image, the tag is kept for naming);
* names follow Docker's reference grammar (lowercase path components,
  tags ``\\w[\\w.-]{0,127}``, digests ``sha256:`` and 64 hex digits);
  there is no short-name search.

Every refusal is a :class:`~arv_keepdocker_plugin.errors.BadReference`
with a one-line message.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Optional

from ..errors import BadReference

DOCKER_HUB = "docker.io"
#: Where Docker Hub's registry API really is.
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", DOCKER_HUB_API})
DEFAULT_TAG = "latest"
#: Docker's limit on the length of a repository name, registry included.
NAME_TOTAL_LENGTH_MAX = 255

_DOMAIN_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = re.compile(r"^(?:%s(?:\.%s)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$"
                     % (_DOMAIN_COMPONENT, _DOMAIN_COMPONENT))
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^\w[\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class RegistryReference:
    """A parsed, normalized registry reference.

    :ivar registry: ``host[:port]``; ``docker.io`` for Docker Hub.
    :ivar repository: the path in the registry, e.g. ``library/debian``.
    :ivar tag: the tag; ``latest`` when neither a tag nor a digest was given;
        ``None`` for a reference by digest alone.
    :ivar digest: ``sha256:<hex>`` or ``None``.
    """

    registry: str
    repository: str
    tag: Optional[str] = None
    digest: Optional[str] = None

    @property
    def name(self) -> str:
        """The fully qualified repository name, ``docker.io/library/debian``."""
        return "%s/%s" % (self.registry, self.repository)

    @property
    def api_host(self) -> str:
        """The host serving the registry API (``registry-1.docker.io`` for Hub)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def manifest_reference(self) -> str:
        """What to ask ``/v2/NAME/manifests/`` for: the digest, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def familiar_name(self) -> str:
        """The repository as Docker prints it: ``debian``, ``user/app``, ``host:5000/x``."""
        if self.registry == DOCKER_HUB:
            if self.repository.startswith("library/") and self.repository.count("/") == 1:
                return self.repository[len("library/"):]
            return self.repository
        return self.name

    @property
    def familiar(self) -> str:
        """``familiar_name:tag`` (``debian:12``), or ``familiar_name@digest`` without tag."""
        if self.tag:
            return "%s:%s" % (self.familiar_name, self.tag)
        return "%s@%s" % (self.familiar_name, self.digest)

    def __str__(self) -> str:
        """The fully qualified reference, ``docker.io/library/debian:12[@sha256:...]``."""
        text = self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text

    def with_location(self, registry: str, repository: str) -> "RegistryReference":
        """The same tag and digest in another registry and repository."""
        return dataclasses.replace(self, registry=registry, repository=repository)


def _bad(text: str, why: str) -> BadReference:
    return BadReference("invalid image reference %r: %s" % (text, why))


def split_registry(name: str) -> "tuple[Optional[str], str]":
    """Split ``NAME`` (no tag, no digest) into ``(registry or None, path)``."""
    first, slash, rest = name.partition("/")
    if slash and (("." in first) or (":" in first) or first == "localhost"):
        return first, rest
    return None, name


def normalize_registry(registry: str) -> str:
    """``index.docker.io`` and ``registry-1.docker.io`` become ``docker.io``."""
    return DOCKER_HUB if registry.lower() in _HUB_ALIASES else registry


def parse_reference(text: str) -> RegistryReference:
    """Parse ``[REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST]``.

    Raises :class:`BadReference` (one line) for anything Docker would refuse,
    and for a ``docker://`` prefix left in place or a transport-like prefix.
    """
    if not isinstance(text, str) or not text:
        raise BadReference("invalid image reference: empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise _bad(text, "it contains white space")
    if "://" in text:
        raise _bad(text, "give NAME[:TAG] without a scheme or transport")
    remainder, at, after = text.partition("@")
    digest: Optional[str] = after
    if at:
        if not _DIGEST.match(after):
            if after.startswith("sha256:"):
                raise _bad(text, "a digest is sha256: and 64 lowercase hex digits")
            raise _bad(text, "only sha256 digests are supported")
    else:
        digest = None
    tag = None
    # A tag follows the last ':' unless that ':' belongs to a registry port
    # (then a '/' follows it).
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG.match(tag):
            raise _bad(text, "invalid tag %r" % tag)
    if not remainder:
        raise _bad(text, "no repository name")
    registry, path = split_registry(remainder)
    if registry is None:
        registry = DOCKER_HUB
    elif not _DOMAIN.match(registry):
        raise _bad(text, "invalid registry %r" % registry)
    registry = normalize_registry(registry)
    if registry == DOCKER_HUB and "/" not in path:
        path = "library/" + path
    for component in path.split("/"):
        if not component:
            raise _bad(text, "empty path component")
        if not _PATH_COMPONENT.match(component):
            if component.lower() != component and _PATH_COMPONENT.match(component.lower()):
                raise _bad(text, "repository name must be lowercase")
            raise _bad(text, "invalid repository path component %r" % component)
    if len(registry) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise _bad(text, "repository name longer than %d characters" % NAME_TOTAL_LENGTH_MAX)
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return RegistryReference(registry, path, tag, digest)
