"""Every image-name rule: Docker's reference grammar, familiar names, transports.

One home for the rules, used by the archive readers, the registry client
(:mod:`.distribution.reference`) and the sources, following Docker's own
``github.com/distribution/reference`` (``normalize.go``, ``regexp.go``):

* **the grammar**: ``[DOMAIN/]PATH[:TAG][@DIGEST]``. The first component
  is a domain (a registry ``host[:port]`` or ``[ipv6]:port``) only when it
  holds a ``.`` or a ``:``, is ``localhost``, or has an upper-case letter;
  path components are lowercase ``[a-z0-9]`` runs joined by ``.``, ``_``,
  ``__`` or dashes; a tag is ``\\w[\\w.-]{0,127}``; a digest ``sha256:`` and
  64 hex digits.
* **normalized names**: no domain means Docker Hub (``docker.io``, also
  spelled ``index.docker.io`` and ``registry-1.docker.io``), where a
  one-component path lives in ``library/``.
* **familiar names**, as Docker prints them: ``docker.io/`` dropped, and
  ``library/`` too when one component follows it. So
  ``docker.io/library/debian:12`` is ``debian:12``, but
  ``docker.io/library/a/b:1`` is ``library/a/b:1``. Two names are the same
  image name when their familiar forms are equal (:func:`matching`).
* **arv-keepdocker 3.2.1's rules** for what the user types:
  ``NAME[:TAG]`` plus a separate tag argument (:func:`split_name_tag`,
  linked as typed), image ids kept whole, and transports.

``TRANSPORT:DETAILS`` is split at the first ``:`` when ``TRANSPORT`` is the
name of a loaded source (``docker-archive:/tmp/x.tar``), and
``TRANSPORT://DETAILS`` for a source typed with ``//`` (``docker://``,
whose ``docker:TAG`` stays an image name); anything else is a
bare ``NAME[:TAG]`` handled exactly as arv-keepdocker 3.2.1 does. A registry
host that happens to share a source's name would need an explicit
``docker-daemon:`` prefix: transports win, as in skopeo and podman.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from .errors import BadReference

# -- Docker's grammar (distribution/reference regexp.go) ----------------------------

#: A tag: a word character, then up to 127 word characters, dots and dashes.
TAG = r"\w[\w.-]{0,127}"
_TAG = re.compile("^" + TAG + "$")
#: arv-keepdocker 3.2.1: "image ends with :valid-tag".
_TAG_SUFFIX = re.compile(":" + TAG + "$")
_DOMAIN_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
#: A registry: ``host[:port]``, the host a dotted name or ``[ipv6]``.
_DOMAIN = re.compile(
    rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$")
_PATH_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
#: Docker's limit on the length of a repository name, registry included.
NAME_TOTAL_LENGTH_MAX = 255

DOCKER_HUB = "docker.io"
#: Where Docker Hub's registry API really is.
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", DOCKER_HUB_API})
#: Where Docker Hub keeps its official images.
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

#: arv-keepdocker's image id prefix: ``sha256:<hex>`` (full or prefix) or 12+ bare hex.
_IMAGE_ID = re.compile(r"^(sha256:[0-9a-f]{1,64}|[0-9a-f]{12,64})$")


def split_domain(name: str) -> tuple[str | None, str]:
    """Split ``NAME`` (no tag, no digest) into ``(domain or None, path)``, as Docker does:
    the first component is a domain when it has a ``.``, a ``:`` or an upper-case
    letter, or is ``localhost``."""
    first, slash, rest = name.partition("/")
    if slash and (any(c in first for c in ".:") or first == "localhost"
                  or first.lower() != first):
        return first, rest
    return None, name


def normalize_registry(registry: str) -> str:
    """``index.docker.io`` and ``registry-1.docker.io`` become ``docker.io``."""
    return DOCKER_HUB if registry.lower() in _HUB_ALIASES else registry


def valid_domain(domain: str) -> bool:
    return bool(_DOMAIN.match(domain))


def valid_path(path: str) -> bool:
    """``a/b/c``: lowercase components, none empty."""
    return all(_PATH_COMPONENT.match(component) for component in path.split("/"))


def valid_tag(tag: str) -> bool:
    return bool(_TAG.match(tag))


def _valid_name(name: str) -> bool:
    domain, path = split_domain(name)
    return (domain is None or valid_domain(domain)) and valid_path(path)


# -- normalized and familiar names (distribution/reference normalize.go) --------------


@dataclasses.dataclass(frozen=True)
class ImageName:
    """A normalized image name: ``docker.io/library/debian:12``.

    :ivar registry: ``host[:port]``; ``docker.io`` for Docker Hub.
    :ivar repository: the path in the registry, e.g. ``library/debian``.
    :ivar tag: the tag; ``latest`` when neither a tag nor a digest was given;
        ``None`` for a name with a digest alone.
    :ivar digest: ``sha256:<hex>`` or ``None``.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """The fully qualified repository name, ``docker.io/library/debian``."""
        return "%s/%s" % (self.registry, self.repository)

    @property
    def familiar_name(self) -> str:
        """The repository as Docker prints it: ``debian``, ``library/a/b``, ``host:5000/x``."""
        if self.registry != DOCKER_HUB:
            return self.name
        rest = self.repository[len(OFFICIAL_PREFIX):]
        if self.repository.startswith(OFFICIAL_PREFIX) and "/" not in rest:
            return rest
        return self.repository

    @property
    def familiar(self) -> str:
        """``familiar_name:tag`` (``debian:12``), or ``familiar_name@digest`` without tag."""
        if self.tag:
            return "%s:%s" % (self.familiar_name, self.tag)
        return "%s@%s" % (self.familiar_name, self.digest)

    def __str__(self) -> str:
        """The fully qualified name, ``docker.io/library/debian:12[@sha256:...]``."""
        text = self.name
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


def _bad(text: str, why: str) -> BadReference:
    return BadReference("invalid image reference %r: %s" % (text, why))


def parse_image_name(text: str) -> ImageName:
    """Parse and normalize ``[REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST]``.

    Raises :class:`BadReference` (one line) for anything Docker would refuse,
    for a first component whose upper case alone would make it a registry
    (skopeo refuses those), and for a scheme or transport left in place.
    There is no short-name search: no registry means Docker Hub.
    """
    if not isinstance(text, str) or not text:
        raise BadReference("invalid image reference: empty")
    if text != text.strip() or any(c.isspace() for c in text):
        raise _bad(text, "it contains white space")
    if "://" in text:
        raise _bad(text, "give NAME[:TAG] without a scheme or transport")
    remainder, at, after = text.partition("@")
    digest: str | None = after
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
        if not valid_tag(tag):
            raise _bad(text, "invalid tag %r" % tag)
    if not remainder:
        raise _bad(text, "no repository name")
    registry, path = split_domain(remainder)
    if registry is None:
        registry = DOCKER_HUB
    elif registry.lower() != registry and not any(c in registry for c in ".:"):
        # Docker would take "Upper/x" for a registry called Upper; skopeo's
        # docker:// (containers/image's copy of the rules) refuses it.
        raise _bad(text, "repository name must be lowercase")
    elif not valid_domain(registry):
        raise _bad(text, "invalid registry %r" % registry)
    registry = normalize_registry(registry)
    if registry == DOCKER_HUB and "/" not in path:
        path = OFFICIAL_PREFIX + path
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
    return ImageName(registry, path, tag, digest)


def familiar(text: str) -> str:
    """``text`` (a ``NAME:TAG`` as an archive or an engine records it) as Docker prints it.

    ``docker.io/library/x:1`` is ``x:1``, ``docker.io/library/a/b:1`` is
    ``library/a/b:1``, ``docker.io/user/app:1`` is ``user/app:1``; a name with
    another registry keeps it. A name Docker would refuse is returned as it is.
    """
    try:
        return parse_image_name(text).familiar
    except BadReference:
        return text


T = TypeVar("T")


def matching(wanted: str, items: Iterable[T], names_of: Callable[[T], Sequence[str]]
             ) -> list[T]:
    """The items one of whose names is ``wanted``, as a user would type it.

    Names are compared in their familiar forms: ``docker.io/library/x:1``
    matches ``x:1`` (and ``library/x:1``), but ``docker.io/library/a/b:1``
    matches ``library/a/b:1``, not ``a/b:1``. When nothing matches that way,
    podman's ``localhost/x:1`` does too (podman names local images so).
    """
    items = list(items)
    want = familiar(wanted)
    exact = [i for i in items if any(familiar(n) == want for n in names_of(i))]
    if exact:
        return exact
    return [i for i in items if any(familiar(n) == "localhost/" + want for n in names_of(i))]


# -- what users type: arv-keepdocker 3.2.1's rules and transports ---------------------


#: A whole image id, as stored: ``sha256:`` + 64 hex (v2) or 64 bare hex (v1).
_WHOLE_IMAGE_ID = re.compile(r"^(sha256:)?[0-9a-f]{64}$")


def checked_image_id(text: object) -> str:
    """``text`` if it is a whole image id, else a one-line :class:`BadReference`.

    Ids come from engines and from link names anyone can write; they become
    file names (locks, journals) only once they pass this check.
    """
    if not isinstance(text, str) or not _WHOLE_IMAGE_ID.match(text):
        raise BadReference(f"not an image id (sha256:<64 hex digits>): {text!r}")
    return text


def sha256_digest(text: object) -> bool:
    """Whether ``text`` is a whole ``sha256:<64 lowercase hex>`` digest."""
    return isinstance(text, str) and bool(_DIGEST.match(text))


def looks_like_image_id(text: str) -> bool:
    return bool(_IMAGE_ID.match(text))


def split_transport(raw: str, transports: Iterable[str] | Mapping[str, str]
                    ) -> tuple[str | None, str]:
    """Return ``(transport, details)``; ``transport`` is ``None`` for bare names.

    ``transports`` are the source names, or ``{name: prefix}`` when some are
    typed ``NAME://DETAILS`` (:attr:`~.image.ImageSource.prefix`): such a
    transport is split off only with its ``//``, so ``docker:dind`` stays a
    bare name while ``docker://debian:12`` is the ``docker`` transport.
    """
    prefixes = (dict(transports) if isinstance(transports, Mapping)
                else {name: name + ":" for name in transports})
    head, sep, rest = raw.partition(":")
    prefix = prefixes.get(head) if sep else None
    if prefix is not None and raw.startswith(prefix):
        return head, raw[len(prefix):]
    return None, raw


def split_path(details: str, transport: str) -> tuple[str, str | None]:
    """``PATH[:REST]`` -> ``(path, REST or None)`` for archive transports.

    As in skopeo, an archive path cannot contain ``:``. An empty path is
    refused.
    """
    path, sep, rest = details.partition(":")
    if not path:
        raise BadReference(f"{transport}:{details}: missing PATH")
    if "\0" in path:
        raise BadReference(f"{transport}:{details}: a path cannot contain a NUL byte")
    return path, (rest if sep else None)


def as_repo_tag(text: str | None) -> str | None:
    """``text`` as ``NAME:TAG`` when it has that form and a valid name, else None."""
    if not text or not _TAG_SUFFIX.search(text):
        return None
    try:
        name, tag = split_name_tag(text, None)
    except BadReference:
        return None
    return f"{name}:{tag}"


def split_name_tag(image: str, tag: str | None) -> tuple[str, str]:
    """Split ``repo[:tag]`` (plus a separate tag argument) as 3.2.1 does.

    Raises :class:`BadReference` for a tag given twice and for a name Docker
    would reject.
    """
    if _TAG_SUFFIX.search(image):
        if tag is not None:
            raise BadReference(
                "image %r already includes a tag, cannot add tag argument %r"
                % (image, tag))
        # rsplit() accommodates "myrepo.example:8888/repo/image:tag"
        image, tag = image.rsplit(":", 1)
    elif tag is None:
        tag = "latest"
    if "/" in image:
        hostport, path = image.split("/", 1)
        if hostport.endswith(":443"):
            # "docker pull host:443/x" lists the image as "host/x" afterwards.
            image = "/".join([hostport[:-4], path])
    if not _valid_name(image):
        raise BadReference("invalid image reference %r" % (image,))
    return image, tag


def parse_engine_reference(raw: str, details: str, tag: str | None,
                           transport: str | None = None):
    """Parse ``NAME[:TAG]`` or an image id for an engine store source.

    Used by the ``docker-daemon`` and ``containers-storage`` sources (and the
    bare form). An image id (``sha256:<hex>`` or a hex prefix of 12 or more
    digits) becomes ``Reference.image_id`` with no name: arv-keepdocker 3.2.1
    split ``sha256:<hex>`` into name ``sha256`` and tag ``<hex>`` and then
    failed at upload; we keep it whole.
    """
    from .image import Reference

    if looks_like_image_id(details) and tag is None:
        return Reference(raw=raw, transport=transport, image_id=details)
    name, tag = split_name_tag(details, tag)
    return Reference(raw=raw, transport=transport, name=name, tag=tag)
