"""The name a ``DockerRequirement``'s image is looked up by in Arvados, and stored under.

arvados-cwl-runner 3.2.1 (``arv_docker_get_image`` in
``sdk/cwl/arvados_cwl/arvdocker.py`` in the Arvados repository) splits the
requirement's ``dockerImageId`` (else ``dockerPull``) at every ``:`` and
keeps the first two parts (:func:`.workflow_images.acr_split`), then looks for
a ``docker_image_repo+tag`` link named ``NAME:TAG`` and asks keepdocker to
store ``NAME TAG``. That is right for ``debian:12`` and wrong for three kinds
of names, which :func:`lookup_for` reads with this tool's own rules
(:mod:`..names`, Docker's grammar) instead:

* ``host:5000/img:1`` (a registry port): 3.2.1 asks for name ``host``, tag
  ``5000/img``; the lookup here is name ``host:5000/img``, tag ``1``, as
  arv-keepdocker 3.2.1 itself splits ``IMAGE`` (``rsplit`` at the last
  ``:``, which "accommodates myrepo.example:8888/repo/image:tag").
* ``sha256:<hex>`` (an image id): 3.2.1 asks for name ``sha256``, tag
  ``<hex>``, which matches every image (see docs/arvados-cwl-runner.md); the
  lookup here is that image id and nothing else.
* ``NAME@sha256:<hex>`` (a reference by digest): 3.2.1 splits inside the
  digest; the lookup here is the manifest digest, which the hash link of an
  image pulled by digest records.

Every other name is looked up exactly as 3.2.1 does (:attr:`ImageLookup.as_321`),
so what a-c-r records for it stays what it records with Arvados' keepdocker.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import BadReference, KeepdockerError
from ..names import checked_image_id, parse_image_name, split_name_tag
from .workflow_images import acr_split

Listed = list[tuple[str, dict[str, Any]]]


class AmbiguousImageId(KeepdockerError):
    """An image id prefix begins the ids of several stored images."""


#: A ``NAME:TAG`` looked up by its ``docker_image_repo+tag`` link.
BY_NAME = "name"
#: ``sha256:<hex>``: the image whose id (``docker_image_hash`` link) this is.
BY_IMAGE_ID = "image id"
#: ``NAME@sha256:<hex>``: the image whose manifest (or index) digest this is.
BY_DIGEST = "digest"


@dataclasses.dataclass(frozen=True)
class ImageLookup:
    """How one requirement's image is found in Arvados and named for keepdocker.

    :ivar text: the name as the workflow writes it.
    :ivar kind: :data:`BY_NAME`, :data:`BY_IMAGE_ID` or :data:`BY_DIGEST`.
    :ivar name: ``list_images_in_arv``'s ``image_name``: the repository, the
        image id or the digest.
    :ivar tag: ``list_images_in_arv``'s ``image_tag`` (None but for names).
    """

    text: str
    kind: str
    name: str
    tag: str | None = None

    @property
    def shown(self) -> str:
        """``NAME:TAG`` (the ``docker_image_repo+tag`` link's name), or the id or digest."""
        return f"{self.name}:{self.tag}" if self.kind == BY_NAME else self.name

    @property
    def upload(self) -> tuple[str, ...]:
        """keepdocker's ``IMAGE [TAG]`` for it (after any ``--project-uuid``): the
        name and tag, else the image id or the digest (this tool finds a stored
        image by either; one resolved in its registry is remembered under it)."""
        if self.kind == BY_NAME:
            return (self.name, self.tag or "latest")
        return (self.name,)

    @property
    def as_321(self) -> bool:
        """Whether arvados-cwl-runner 3.2.1 looks it up and stores it just so."""
        return self.kind == BY_NAME and acr_split(self.text) == (self.name, self.tag)

    def chosen(self, listed: Listed) -> Listed:
        """``listed`` (``list_images_in_arv``'s answer for this lookup) less any image
        it cannot be (:meth:`names_image`).

        :raises AmbiguousImageId: an image id prefix that begins several ids.
        """
        listed = [(uuid, info) for uuid, info in listed if self.names_image(info["dockerhash"])]
        if self.kind == BY_IMAGE_ID:
            ids = sorted({info["dockerhash"] for _, info in listed})
            if len(ids) > 1:
                raise AmbiguousImageId(
                    "Docker image id {} is ambiguous: it begins {} stored image ids ({}); "
                    "give the whole id".format(self.name, len(ids), ", ".join(ids[:3])))
        return listed

    def names_image(self, image_id: str) -> bool:
        """Whether ``image_id`` (a listed image's ``dockerhash``) can be this lookup's image.

        For an image id: the id itself, or one it is a prefix of. A listing
        by digest (:data:`BY_DIGEST`) matched the digest recorded on the hash
        link, and a name, its link: any id.
        """
        if self.kind == BY_IMAGE_ID:
            return image_id.startswith(self.name)
        return True


def image_digest(text: str) -> str | None:
    """The digest of a ``NAME[:TAG]@sha256:<hex>`` reference; None for anything else."""
    if "@" not in text:
        return None
    try:
        return parse_image_name(text).digest
    except BadReference:
        return None


def lookup_for(text: str) -> ImageLookup | None:
    """How the image ``text`` names is looked up, or None: 3.2.1's own way.

    None for what is no image name under this tool's rules (a
    ``TRANSPORT:DETAILS`` name, a name Docker refuses, a name starting with
    ``-``): a-c-r's own lookup handles those, and the workflow rule
    (:mod:`.workflow_images`) decides what reaches keepdocker.
    """
    if not isinstance(text, str) or not text or text.startswith("-"):
        return None
    if text.startswith("sha256:"):
        try:
            return ImageLookup(text, BY_IMAGE_ID, checked_image_prefix(text))
        except BadReference:
            return None
    digest = image_digest(text)
    if digest is not None:
        return ImageLookup(text, BY_DIGEST, digest)
    try:
        name, tag = split_name_tag(text, None)
    except BadReference:
        return None
    return ImageLookup(text, BY_NAME, name, tag)


def checked_image_prefix(text: str) -> str:
    """``sha256:`` and 1 to 64 lowercase hex digits (a whole id, or a prefix of one)."""
    hex_part = text[len("sha256:"):]
    if 0 < len(hex_part) < 64 and all(c in "0123456789abcdef" for c in hex_part):
        return text
    return checked_image_id(text)
