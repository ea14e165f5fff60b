"""The "already in Arvados" step: is this image id stored where the user can read it?

arv-keepdocker 3.2.1's rule (``sdk/python/arvados/commands/keepdocker.py``,
``main``): readable ``docker_image_hash`` links named after the image id,
whose collections are readable. Among those copies we prefer, in order, one
the destination owns, one the user owns, and only then someone else's, which
is first read back and checked (:mod:`.verify`): a link or collection anyone
can plant never becomes the user's image unchecked. Writes (a copy, missing
links, finishing an earlier run's pending collection) happen under the
image's :class:`~..keep.arvados_lock.ArvadosLock`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import (
    Any,
    Callable,
    ContextManager,
    Dict,
    List,
    Mapping,
    Optional,
    Set,
    Tuple,
)

import arvados.util

from ..errors import BadReference
from ..hooktypes import HASH_LINK, INDEX_DIGEST_PROPERTY, MANIFEST_DIGEST_PROPERTY, REPO_TAG_LINK
from ..image import Image
from ..keep.locators import unescape_name
from ..names import checked_image_id
from .context import RunContext
from .listing import docker_links
from .record import PENDING_PROPERTY, Recorder
from .verify import loadable

#: The collection name for a copy of ``image`` (3.2.1's default, or ``--name``).
NameFor = Callable[[Image], str]


@dataclasses.dataclass
class ImageCopies:
    """An image id's readable collections and their links, best first."""

    collections: List[Dict[str, Any]]
    hash_links: List[Dict[str, Any]]
    tag_links: List[Dict[str, Any]]


def find_image_copies(api, retries: int, image_id: str,
                      repo_tag: Optional[str]) -> Optional[ImageCopies]:
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
    return ImageCopies(collections, hash_links, tag_links)


class Reuser:
    """Finds a copy of the image to reuse and makes it usable by ``parent``.

    :param ctx: the run: its user and destination (``ctx.owner_uuid``, the
        parent of what is reused), whose copies are trusted.
    :param lock: ``lock(image_id)`` opens that image's Arvados lock (writes
        happen under it).
    """

    def __init__(self, ctx: RunContext, recorder: Recorder,
                 lock: Callable[[str], ContextManager[Any]]):
        self.api = ctx.api
        self.recorder = recorder
        self.retries = ctx.retries
        self.parent = ctx.owner_uuid
        self.owners = ctx.trusted_owners
        self.lock = lock
        self._checked: Set[Tuple[str, Optional[str]]] = set()

    def reuse(self, image: Image, repo_tag: Optional[str], name: NameFor,
              locked: bool = False) -> Optional[Dict[str, Any]]:
        """The record to hand back, made complete; None when no usable copy exists.

        ``name(image)`` gives the collection name for a copy. An image with a
        provisional id (a manifest or index digest) is looked up by the
        digests recorded on hash links instead: see :meth:`reuse_named_by`.
        """
        if image.provisional_id:
            return self.reuse_named_by(image, repo_tag, name, locked)
        return self._reuse(image, repo_tag, name, locked, None)

    def reuse_named_by(self, image: Image, repo_tag: Optional[str], name: NameFor,
                       locked: bool) -> Optional[Dict[str, Any]]:
        """Find the config digest a manifest or index digest stands for, then reuse.

        A hash link recording that digest (``image_manifest_digest`` or
        ``image_index_digest``) names the image it stands for. A link the
        user or the destination owns is believed; anyone else's claim is
        checked in the tar itself before its image is reused.
        """
        digest = image.image_id
        links = _links_recording(self.api, self.retries, digest)
        for image_id in dict.fromkeys(l["name"] for l in links):
            try:
                checked_image_id(image_id)
            except BadReference:
                continue
            believed = any(l["owner_uuid"] in self.owners for l in links if l["name"] == image_id)
            found = dataclasses.replace(image, image_id=image_id, provisional_id=False)
            record = self._reuse(found, repo_tag, name, locked, None if believed else digest)
            if record is not None:
                return record
        return None

    def _reuse(self, image: Image, repo_tag: Optional[str], name: NameFor, locked: bool,
               named_by: Optional[str]) -> Optional[Dict[str, Any]]:
        stored = find_image_copies(self.api, self.retries, image.image_id, repo_tag)
        if stored is None:
            return None
        chosen = self.choose(stored, image.image_id, named_by)
        if chosen is None:
            return None
        plan = self.recorder.plan_existing(image, repo_tag, name(image), self.parent, chosen,
                                           stored.hash_links, stored.tag_links)
        if not plan.writes:
            self.recorder.notify(image, chosen, [])
            return dict(chosen)
        if not locked:
            with self.lock(image.image_id):
                return self._reuse(image, repo_tag, name, True, named_by)
        return self.recorder.apply(image, plan)

    def choose(self, stored: ImageCopies, image_id: str,
               named_by: Optional[str] = None) -> Optional[Mapping[str, Any]]:
        """The destination's copy, else the user's, else someone else's that checks out.

        Only a collection holding exactly ``<image_id>.tar`` can be the image
        (arv-keepdocker 3.2.1 on Docker's containerd store named the tar after
        the manifest digest; such a copy is never handed back). With
        ``named_by`` (an unbelieved claim), even the user's copy is checked.
        """
        def rank(collection: Mapping[str, Any]) -> int:
            if collection["owner_uuid"] == self.parent:
                return 0
            return 1 if collection["owner_uuid"] in self.owners else 2

        for collection in sorted(stored.collections, key=rank):  # stable: 3.2.1's order
            if tar_name(collection.get("manifest_text") or "") != image_id + ".tar":
                continue
            trusted = rank(collection) < 2 and named_by is None
            if trusted or (collection["uuid"], named_by) in self._checked:
                return collection
            if loadable(self.api, collection, image_id, self.retries, named_by):
                self._checked.add((collection["uuid"], named_by))
                return collection
        return None


def _links_recording(api, retries: int, digest: str) -> List[Dict[str, Any]]:
    """Hash links recording ``digest`` as the image's manifest or index digest, best first."""
    found: Dict[str, Dict[str, Any]] = {}
    for prop in (MANIFEST_DIGEST_PROPERTY, INDEX_DIGEST_PROPERTY):
        for link in docker_links(api, retries, [["link_class", "=", HASH_LINK],
                                                ["properties." + prop, "=", digest]]):
            found.setdefault(link["uuid"], link)
    return sorted(found.values(), key=lambda link: link["_sort_key"], reverse=True)


_FILE_TOKEN = re.compile(r"^[0-9]+:[0-9]+:")


def tar_name(manifest_text: str) -> Optional[str]:
    """The one file of a one-stream manifest (unescaped), or None."""
    lines = [line for line in manifest_text.splitlines() if line]
    if len(lines) != 1:
        return None
    files = [token for token in lines[0].split(" ")[1:] if _FILE_TOKEN.match(token)]
    if len(files) != 1:
        return None
    return unescape_name(files[0].split(":", 2)[2])


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
