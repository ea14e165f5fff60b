"""The "already in Arvados" step: is this image id stored where the user can read it?

arv-keepdocker 3.2.1's rule (``sdk/python/arvados/commands/keepdocker.py``,
``main``): readable ``docker_image_hash`` links named after the image id,
whose collections are readable. Among those copies we prefer, in order, one
the destination owns, one the user owns, and only then someone else's, which
is first read back and checked (:mod:`.verify`): a link or collection anyone
can plant never becomes the user's image unchecked. Writes (a copy, missing
links, finishing an earlier run's pending collection) happen under the
image's :class:`~.arvlock.ArvadosLock`.
"""

from __future__ import annotations

import dataclasses
from typing import (Any, Callable, ContextManager, Dict, FrozenSet, List, Mapping, Optional,
                    Set)

import arvados.util

from .hooktypes import HASH_LINK, REPO_TAG_LINK
from .image import Image
from .listing import docker_links
from .records import PENDING_PROPERTY, Recorder
from .verify import loadable


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
        select=["uuid", "owner_uuid", "name", "manifest_text", "properties"],
    ).execute(num_retries=retries)["items"]
    if not collections:
        return None
    tag_links = []
    if repo_tag:
        tag_links = docker_links(api, retries, [
            ["link_class", "=", REPO_TAG_LINK], ["name", "=", repo_tag],
            ["head_uuid", "in", [c["uuid"] for c in collections]]])
    return StoredImage(collections, hash_links, tag_links)


class Reuser:
    """Finds a copy of the image to reuse and makes it usable by ``parent``.

    :param owners: the user and the destination, whose copies are trusted.
    :param lock: opens the image's Arvados lock (writes happen under it).
    """

    def __init__(self, api, recorder: Recorder, retries: int, parent: str,
                 owners: FrozenSet[str], lock: Callable[[], ContextManager[Any]]):
        self.api = api
        self.recorder = recorder
        self.retries = retries
        self.parent = parent
        self.owners = owners
        self.lock = lock
        self._checked: Set[str] = set()

    def reuse(self, image: Image, repo_tag: Optional[str], name: str,
              locked: bool = False) -> Optional[Dict[str, Any]]:
        """The record to hand back, made complete; None when no usable copy exists."""
        stored = find_stored_image(self.api, self.retries, image.image_id, repo_tag)
        if stored is None:
            return None
        chosen = self.choose(stored, image.image_id)
        if chosen is None:
            return None
        plan = self.recorder.plan_existing(image, repo_tag, name, self.parent, chosen,
                                           stored.hash_links, stored.tag_links)
        if not plan.writes:
            self.recorder.notify(image, chosen, [])
            return dict(chosen)
        if not locked:
            with self.lock():
                return self.reuse(image, repo_tag, name, locked=True)
        return self.recorder.apply(image, plan)

    def choose(self, stored: StoredImage, image_id: str) -> Optional[Mapping[str, Any]]:
        """The destination's copy, else the user's, else someone else's that checks out."""
        def rank(collection: Mapping[str, Any]) -> int:
            if collection["owner_uuid"] == self.parent:
                return 0
            return 1 if collection["owner_uuid"] in self.owners else 2

        for collection in sorted(stored.collections, key=rank):  # stable: 3.2.1's order
            if rank(collection) < 2 or collection["uuid"] in self._checked:
                return collection
            if loadable(self.api, collection, image_id, self.retries):
                self._checked.add(collection["uuid"])
                return collection
        return None


def sweep_pending(api, owner: str, image_id: str, retries: int) -> None:
    """Remove what earlier, interrupted runs left pending for this image and owner.

    Call it under the image's lock. A pending collection whose links were
    never all made is trashed (if Arvados has not already), and the links
    pointing at it are deleted, so no link is left to a trashed collection.
    """
    for collection in arvados.util.keyset_list_all(
            api.collections().list, num_retries=retries, include_trash=True,
            filters=[["owner_uuid", "=", owner],
                     ["properties." + PENDING_PROPERTY, "=", image_id]],
            select=["uuid", "is_trashed"]):
        for link in arvados.util.keyset_list_all(
                api.links().list, num_retries=retries,
                filters=[["head_uuid", "=", collection["uuid"]],
                         ["link_class", "!=", "permission"]],
                select=["uuid"]):
            api.links().delete(uuid=link["uuid"]).execute(num_retries=retries)
        if not collection.get("is_trashed"):
            api.collections().delete(uuid=collection["uuid"]).execute(num_retries=retries)
