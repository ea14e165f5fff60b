"""The typed values that hooks return: the contracts third-party plugins fill in.

Everything here is importable from the package root
(``from arv_keepdocker_plugin import FormatVerdict, LinkSpec, LayerRecord``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, TypedDict

#: Link classes arv-keepdocker 3.2.1 makes; their links are the core's, never a plugin's
#: to remove or rename (``services/api/app/models/collection.rb``,
#: ``find_all_for_docker_image``, looks images up by them).
HASH_LINK = "docker_image_hash"
REPO_TAG_LINK = "docker_image_repo+tag"
#: Our layer index's link class (see :mod:`arv_keepdocker_plugin.keep.layer_links`).
LAYER_LINK = "docker_image_layer"
#: Hash-link property holding an image's manifest digest (registries and
#: Docker's containerd store name images by it), so either digest finds it.
MANIFEST_DIGEST_PROPERTY = "image_manifest_digest"
#: Hash-link property holding the digest of the image index (multi-platform
#: image) the image was chosen from, which Docker's containerd store and
#: ``docker pull`` name a multi-platform image by.
INDEX_DIGEST_PROPERTY = "image_index_digest"


class FormatVerdict(NamedTuple):
    """A ``keepdocker_check_format`` answer.

    ``ok`` false refuses the image (only ``--force-image-format`` overrides a
    refusal); ``message`` is logged either way when set.
    """

    ok: bool
    message: str | None = None


class _LinkSpecRequired(TypedDict):
    link_class: str
    name: str
    properties: dict[str, Any]


class LinkSpec(_LinkSpecRequired, total=False):
    """A link a ``keepdocker_links`` implementation asks for.

    The pipeline fills in ``head_uuid`` (the image collection) and
    ``owner_uuid`` (``--project-uuid`` when given, else the caller).
    ``tail_uuid`` is optional, as in the Arvados link model.
    """

    tail_uuid: str


@dataclasses.dataclass(frozen=True)
class LayerRecord:
    """Where a layer may already be stored: one answer of ``keepdocker_stored_layers``.

    A record only says where to look. The core decides what to do with it
    (docs/trust.md): it reads the link ``link_uuid`` names and the collection
    itself, and lets the blocks stand in for the layer's bytes unread only when
    that link, as the core read it, was last written by the uploading user and
    holds the portable data hash the collection still has. What a record says
    about its owner or about being checked is never believed; every other
    record's blocks are reused only where the local bytes have the same md5.

    :ivar digest: the sha256 of the layer's bytes as stored there (a blob
        digest, or the diff id of an uncompressed layer).
    :ivar collection_uuid: the collection whose ``<id>.tar`` holds the layer.
    :ivar offset: where the layer's bytes start in that tar.
    :ivar size: how many bytes the layer has there.
    :ivar owner_uuid: who owns the record (the index link). Informational:
        the core does not trust by owner.
    :ivar checked: the record says its bytes were checked against the layer's
        digests when it was made. Informational: the core reads the link.
    :ivar diff_id: the layer's diff id (sha256 of its uncompressed data), as
        recorded.
    :ivar link_uuid: the UUID of the link this record was read from, the one
        thing the core takes from a record for the trust rule (added with the
        writer rule; a record without it only feeds the md5 comparison).
    """

    digest: str
    collection_uuid: str
    offset: int
    size: int
    owner_uuid: str
    checked: bool = False
    diff_id: str | None = None
    link_uuid: str | None = None
