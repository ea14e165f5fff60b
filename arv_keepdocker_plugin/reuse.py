"""The "already in Arvados" check: is this image id stored where the user can read it?

arv-keepdocker 3.2.1's rule (``sdk/python/arvados/commands/keepdocker.py``,
``main``): readable ``docker_image_hash`` links named after the image id,
whose collections are readable. The copy the user (or ``--project-uuid``)
owns is preferred; :meth:`~.records.Recorder.link_existing` makes what is
missing.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

from .hooktypes import HASH_LINK, REPO_TAG_LINK
from .listing import docker_links


@dataclasses.dataclass
class StoredImage:
    """An image id's readable collections and their links, best first."""

    collections: List[Dict[str, Any]]
    hash_links: List[Dict[str, Any]]
    tag_links: List[Dict[str, Any]]


def find_stored_image(api, retries: int, image_id: str,
                      repo_tag: Optional[str]) -> Optional[StoredImage]:
    """The stored copies of ``image_id``, or None when there is none the user can read."""
    hash_links = docker_links(api, retries, [
        ["link_class", "=", HASH_LINK], ["name", "=", image_id]])
    if not hash_links:
        return None
    # A plain list, as 3.2.1's (its default order picks among several copies).
    collections = api.collections().list(
        filters=[["uuid", "in", [link["head_uuid"] for link in hash_links]]],
        select=["uuid", "owner_uuid", "name", "manifest_text"],
    ).execute(num_retries=retries)["items"]
    if not collections:
        return None
    tag_links = []
    if repo_tag:
        tag_links = docker_links(api, retries, [
            ["link_class", "=", REPO_TAG_LINK], ["name", "=", repo_tag],
            ["head_uuid", "in", [c["uuid"] for c in collections]]])
    return StoredImage(collections, hash_links, tag_links)
