"""The "already in Arvados" step: is this image id stored where the user can read it?

arv-keepdocker 3.2.1's rule (``sdk/python/arvados/commands/keepdocker.py``,
``main``): readable ``docker_image_hash`` links named after the image id,
whose collections are readable. Among those copies we take one the user's
own records vouch for (:mod:`.image_trust`; the destination's first), and
only when there is none, another copy (the destination's first), which is
first read back and checked (:mod:`.verify`): a link or collection anyone
can plant, a collaborator in a shared project included, never becomes the
user's image unchecked. Writes (a copy, missing links, finishing an earlier
run's pending collection) happen under the image's
:class:`~..keep.arvados_lock.ArvadosLock`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from ..errors import BadReference
from ..hooktypes import HASH_LINK, INDEX_DIGEST_PROPERTY, MANIFEST_DIGEST_PROPERTY, REPO_TAG_LINK
from ..image import Image
from ..keep.api_lists import list_all
from ..keep.locators import unescape_name
from ..keep.trust_records import CHECKED_LINK, CONTENT_PROPERTY, WriterRule
from ..names import checked_image_id
from .context import RunContext
from .image_trust import remember_checked, vouched_for
from .listing import docker_links
from .record import PENDING_PROPERTY, Recorder
from .verify import loadable

logger = logging.getLogger("arvados.keepdocker")

#: The collection name for a copy of ``image`` (3.2.1's default, or ``--name``).
NameFor = Callable[[Image], str]


@dataclasses.dataclass
class ImageCopies:
    """An image id's readable collections and their links, best first."""

    collections: list[dict[str, Any]]
    hash_links: list[dict[str, Any]]
    tag_links: list[dict[str, Any]]
    #: ``docker_image_checked`` links named after the image id (only their
    #: writers' own count: :mod:`.image_trust`).
    checked_links: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def find_image_copies(api, retries: int, image_id: str,
                      repo_tag: str | None) -> ImageCopies | None:
    """The stored copies of ``image_id``, or None when there is none the user can read.

    Two requests: the hash, checked and repo+tag links by name in one list
    (3.2.1 asks for the hash links, then for the tag links on their
    collections; a tag link on another collection is dropped here), then
    the collections.
    """
    classes, names = [HASH_LINK, CHECKED_LINK], [image_id]
    if repo_tag:
        classes.append(REPO_TAG_LINK)
        names.append(repo_tag)
    links = docker_links(api, retries, [["link_class", "in", classes], ["name", "in", names]])

    def of(link_class: str, name: str | None) -> list[dict[str, Any]]:
        return [l for l in links if l["link_class"] == link_class and l["name"] == name]

    hash_links = of(HASH_LINK, image_id)
    if not hash_links:
        return None
    # A plain list, as 3.2.1's (its default order picks among several copies).
    collections = api.collections().list(
        filters=[["uuid", "in", [link["head_uuid"] for link in hash_links]]],
        select=["uuid", "owner_uuid", "name", "manifest_text", "properties",
                "portable_data_hash"],
    ).execute(num_retries=retries)["items"]
    if not collections:
        return None
    heads = {c["uuid"] for c in collections}
    tag_links = [l for l in of(REPO_TAG_LINK, repo_tag) if l["head_uuid"] in heads]
    return ImageCopies(collections, hash_links, tag_links, of(CHECKED_LINK, image_id))


class Reuser:
    """Finds a copy of the image to reuse and makes it usable by ``parent``.

    :param ctx: the run: its user (whose own records are trusted) and
        destination (``ctx.owner_uuid``, the parent of what is reused).
    :param lock: ``lock(image_id)`` opens that image's Arvados lock (writes
        happen under it).
    """

    def __init__(self, ctx: RunContext, recorder: Recorder,
                 lock: Callable[[str], AbstractContextManager[Any]]):
        self.api = ctx.api
        self.recorder = recorder
        self.retries = ctx.retries
        self.parent = ctx.owner_uuid
        self.rule = ctx.writer_rule
        self.lock = lock
        self._checked: set[tuple[str, str | None]] = set()

    def reuse(self, image: Image, repo_tag: str | None, name: NameFor,
              locked: bool = False) -> dict[str, Any] | None:
        """The record to hand back, made complete; None when no usable copy exists.

        ``name(image)`` gives the collection name for a copy. An image with a
        provisional id (a manifest or index digest) is looked up by the
        digests recorded on hash links instead: see :meth:`reuse_named_by`.
        """
        if image.provisional_id:
            return self.reuse_named_by(image, repo_tag, name, locked)
        return self._reuse(image, repo_tag, name, locked, None)

    def reuse_named_by(self, image: Image, repo_tag: str | None, name: NameFor,
                       locked: bool) -> dict[str, Any] | None:
        """Find the config digest a manifest or index digest stands for, then reuse.

        A hash link recording that digest (``image_manifest_digest`` or
        ``image_index_digest``) names the image it stands for. A link the
        writer rule trusts (this user wrote it, for the content its collection
        still holds) is believed; anyone else's claim is checked in the tar
        itself before its image is reused.
        """
        digest = image.image_id
        links = _links_recording(self.api, self.retries, digest)
        mine = [l for l in links if self.rule.wrote(l)]
        believed_heads = vouched_for(self.rule, _contents(
            self.api, self.retries, {l["head_uuid"] for l in mine}), mine)
        for image_id in dict.fromkeys(l["name"] for l in links):
            try:
                checked_image_id(image_id)
            except BadReference:
                continue
            believed = any(l["head_uuid"] in believed_heads for l in mine
                           if l["name"] == image_id)
            found = dataclasses.replace(image, image_id=image_id, provisional_id=False)
            record = self._reuse(found, repo_tag, name, locked, None if believed else digest)
            if record is not None:
                return record
        return None

    def _reuse(self, image: Image, repo_tag: str | None, name: NameFor, locked: bool,
               named_by: str | None) -> dict[str, Any] | None:
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
               named_by: str | None = None) -> Mapping[str, Any] | None:
        """A copy the user's records vouch for, else another copy that checks out.

        The destination's copy comes first in each group, and no copy is
        read back while one the user's records vouch for exists. Only a
        collection holding exactly ``<image_id>.tar`` can be the image
        (arv-keepdocker 3.2.1 on Docker's containerd store named the tar after
        the manifest digest; such a copy is never handed back). With
        ``named_by`` (an unbelieved claim), even a vouched-for copy is checked.
        A copy that checks out gets a record of this user's
        (:func:`~.image_trust.remember_checked`), so the next run trusts it.
        """
        # The user's own hash and checked links came with the copies (the
        # same records image_trust.trusted_copies would ask for).
        vouched = vouched_for(self.rule, stored.collections,
                              stored.hash_links + stored.checked_links)

        def rank(collection: Mapping[str, Any]) -> tuple[bool, bool]:
            return collection["uuid"] not in vouched, collection["owner_uuid"] != self.parent

        for collection in sorted(stored.collections, key=rank):  # stable: 3.2.1's order
            if tar_name(collection.get("manifest_text") or "") != image_id + ".tar":
                continue
            if named_by is None and collection["uuid"] in vouched:
                return collection
            if (collection["uuid"], named_by) in self._checked:
                return collection
            if loadable(self.api, collection, image_id, self.retries, named_by):
                self._checked.add((collection["uuid"], named_by))
                if collection["uuid"] not in vouched:
                    remember_checked(self.api, self.retries, self.rule, image_id, collection)
                return collection
        return None


def _contents(api, retries: int, uuids: set[str]) -> list[dict[str, Any]]:
    """``[{uuid, portable_data_hash}]`` of the readable collections ``uuids``."""
    if not uuids:
        return []
    return list(list_all(
        api.collections().list, num_retries=retries, filters=[["uuid", "in", sorted(uuids)]],
        select=["uuid", "portable_data_hash"]))


def _links_recording(api, retries: int, digest: str) -> list[dict[str, Any]]:
    """Hash links recording ``digest`` as the image's manifest or index digest, best first."""
    found: dict[str, dict[str, Any]] = {}
    for prop in (MANIFEST_DIGEST_PROPERTY, INDEX_DIGEST_PROPERTY):
        for link in docker_links(api, retries, [["link_class", "=", HASH_LINK],
                                                ["properties." + prop, "=", digest]]):
            found.setdefault(link["uuid"], link)
    return sorted(found.values(), key=lambda link: link["_sort_key"], reverse=True)


_FILE_TOKEN = re.compile(r"^[0-9]+:[0-9]+:")


def tar_name(manifest_text: str) -> str | None:
    """The one file of a one-stream manifest (unescaped), or None."""
    lines = [line for line in manifest_text.splitlines() if line]
    if len(lines) != 1:
        return None
    files = [token for token in lines[0].split(" ")[1:] if _FILE_TOKEN.match(token)]
    if len(files) != 1:
        return None
    return unescape_name(files[0].split(":", 2)[2])


def sweep_pending(api, owner: str, image_id: str, retries: int, rule: WriterRule) -> None:
    """Remove what this user's earlier, interrupted runs left pending for this image and owner.

    Call it under the image's lock. A collection carrying the pending marker
    for ``image_id`` is removed only when it is such a run's unfinished one:
    last modified by this user, still due for the trash, holding exactly
    ``<image_id>.tar``, and holding the content this user's records on it
    recorded. It is trashed (if Arvados has not already), and the links of
    ``owner`` or the user pointing at it are deleted, so no link of theirs is
    left to a trashed collection. Anything else carrying the marker (a
    collaborator can put it on any collection of a shared project) is left
    alone, with a warning.
    """
    for collection in list_all(
            api.collections().list, num_retries=retries, include_trash=True,
            filters=[["owner_uuid", "=", owner],
                     ["properties." + PENDING_PROPERTY, "=", image_id]],
            select=["uuid", "is_trashed", "trash_at", "modified_by_user_uuid", "manifest_text",
                    "portable_data_hash"]):
        links = list(list_all(
            api.links().list, num_retries=retries,
            filters=[["head_uuid", "=", collection["uuid"]],
                     ["link_class", "!=", "permission"]],
            select=["uuid", "owner_uuid", "modified_by_user_uuid", "properties"]))
        problem = _not_left_by_this_user(rule, collection, image_id, links)
        if problem is not None:
            logger.warning("leaving collection %s alone: it is marked as a pending upload of "
                           "%s, but %s", collection["uuid"], image_id, problem)
            continue
        for link in links:
            if link["owner_uuid"] in (owner, rule.user_uuid):
                api.links().delete(uuid=link["uuid"]).execute(num_retries=retries)
        if not collection.get("is_trashed"):
            api.collections().delete(uuid=collection["uuid"]).execute(num_retries=retries)


def _not_left_by_this_user(rule: WriterRule, collection: Mapping[str, Any], image_id: str,
                           links: list[dict[str, Any]]) -> str | None:
    """Why ``collection`` is not this user's unfinished upload of ``image_id``, or None."""
    if not rule.wrote(collection):
        return "it was last modified by {}".format(collection.get("modified_by_user_uuid"))
    if not collection.get("trash_at"):
        return "it is not due for the trash"
    if tar_name(collection.get("manifest_text") or "") != image_id + ".tar":
        return f"it does not hold exactly {image_id}.tar"
    recorded = {(l.get("properties") or {}).get(CONTENT_PROPERTY) for l in links
                if rule.wrote(l)} - {None}
    if recorded and recorded != {collection.get("portable_data_hash")}:
        return "it no longer holds what its records say ({})".format(", ".join(sorted(
            str(r) for r in recorded)))
    return None
