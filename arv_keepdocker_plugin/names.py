"""Image reference parsing: arv-keepdocker 3.2.1's rules plus transports.

``TRANSPORT:DETAILS`` is split at the first ``:`` when ``TRANSPORT`` is the
name of a loaded source (``docker-archive:/tmp/x.tar``), and
``TRANSPORT://DETAILS`` for a source typed with ``//`` (``docker://``,
whose ``docker:TAG`` stays an image name); anything else is a
bare ``NAME[:TAG]`` handled exactly as arv-keepdocker 3.2.1 does. A registry
host that happens to share a source's name would need an explicit
``docker-daemon:`` prefix: transports win, as in skopeo and podman.
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Optional, Tuple, Union

from .errors import BadReference

#: arv-keepdocker 3.2.1: "image ends with :valid-tag".
_TAG_SUFFIX = re.compile(r":\w[-.\w]{0,127}$")
#: An image id: ``sha256:<hex>`` (full or prefix) or a bare hex prefix of 12+.
_IMAGE_ID = re.compile(r"^(sha256:[0-9a-f]{1,64}|[0-9a-f]{12,64})$")
#: Docker's reference grammar: a registry host[:port] or [ipv6]:port ...
_DOMAIN = re.compile(r"^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
                     r"(?::[0-9]+)?$")
#: ... then lowercase path components.
_PATH = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                   r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


def _valid_name(name: str) -> bool:
    first, slash, rest = name.partition("/")
    # Docker's rule: the first component is a registry when it has a dot, a
    # colon or an upper-case letter, or is "localhost".
    if slash and (any(c in first for c in ".:[") or first == "localhost"
                  or first.lower() != first):
        return bool(_DOMAIN.match(first)) and bool(_PATH.match(rest))
    return bool(_PATH.match(name))


#: A whole image id, as stored: ``sha256:`` + 64 hex (v2) or 64 bare hex (v1).
_WHOLE_IMAGE_ID = re.compile(r"^(sha256:)?[0-9a-f]{64}$")


def checked_image_id(text: object) -> str:
    """``text`` if it is a whole image id, else a one-line :class:`BadReference`.

    Ids come from engines and from link names anyone can write; they become
    file names (locks, journals) only once they pass this check.
    """
    if not isinstance(text, str) or not _WHOLE_IMAGE_ID.match(text):
        raise BadReference("not an image id (sha256:<64 hex digits>): {!r}".format(text))
    return text


def looks_like_image_id(text: str) -> bool:
    return bool(_IMAGE_ID.match(text))


def split_transport(raw: str, transports: Union[Iterable[str], Mapping[str, str]]
                    ) -> Tuple[Optional[str], str]:
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


def split_path(details: str, transport: str) -> Tuple[str, Optional[str]]:
    """``PATH[:REST]`` -> ``(path, REST or None)`` for archive transports.

    As in skopeo, an archive path cannot contain ``:``. An empty path is
    refused.
    """
    path, sep, rest = details.partition(":")
    if not path:
        raise BadReference("{}:{}: missing PATH".format(transport, details))
    if "\0" in path:
        raise BadReference("{}:{}: a path cannot contain a NUL byte".format(transport, details))
    return path, (rest if sep else None)


def as_repo_tag(text: Optional[str]) -> Optional[str]:
    """``text`` as ``NAME:TAG`` when it has that form and a valid name, else None."""
    if not text or not _TAG_SUFFIX.search(text):
        return None
    try:
        name, tag = split_name_tag(text, None)
    except BadReference:
        return None
    return "{}:{}".format(name, tag)


def split_name_tag(image: str, tag: Optional[str]) -> Tuple[str, str]:
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


def parse_engine_reference(raw: str, details: str, tag: Optional[str],
                           transport: Optional[str] = None):
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
