"""The record step: the collection, its properties and its links, through the hooks.

Both ways a run ends well go through here, with the same hook calls:

* :meth:`Recorder.create` saves a freshly stored tar as a collection and
  links it;
* :meth:`Recorder.plan_existing` and :meth:`Recorder.apply` make the links
  (and, for another project, the copy) of an image already in Arvados.

The essential ``links`` plugin's answers are arv-keepdocker 3.2.1's links and
property; other plugins add to them and cannot change or drop them. Every
write is undone together if one fails (:class:`~.rollback.Rollback`).

The core stamps the records that vouch for the bytes (the hash link, and
layer links that say their bytes were checked) with the portable data hash
it computed for the collection (:func:`~..keep.trust_records.stamp`), and
only for bytes checked in this run or taken from a record the writer rule
trusts; a collection whose content changes while this run records it (a
collaborator with ``can_write`` rewriting it) fails the run, undone.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import arvados.collection

from ..errors import KeepdockerError
from ..hooktypes import HASH_LINK, LAYER_LINK, REPO_TAG_LINK, LinkSpec
from ..image import Image
from ..keep.locators import portable_data_hash
from ..keep.trust_records import CHECKED_MARKER, CHECKED_PROPERTY, stamp, unstamped
from .context import RunContext
from .rollback import Rollback

logger = logging.getLogger("arvados.keepdocker")

#: Link classes only the essential plugin may ask for.
CORE_LINK_CLASSES = (HASH_LINK, REPO_TAG_LINK)
#: Marks a collection whose links are not all made yet; its value is the image id.
PENDING_PROPERTY = "arv_keepdocker_pending"
#: How long a pending collection lives if its run dies (seconds).
PENDING_LEASE = 3600


def pending_until() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
        seconds=PENDING_LEASE)


@dataclasses.dataclass
class ExistingPlan:
    """The writes that make an image already in Arvados usable by ``parent``.

    :ivar chosen: the collection reused (owned by ``parent``) or copied.
    :ivar copy: whether a copy owned by ``parent`` is made.
    :ivar links: link specs to create on the record (owner and head filled in).
    :ivar finish: whether the record is an earlier run's pending one to finish.
    :ivar properties: the copy's properties.
    :ivar content: the portable data hash of ``chosen`` as this run read (and
        trusted or checked) it: the hash link's stamp, and what the record
        must still hold.
    """

    chosen: Mapping[str, Any]
    copy: bool
    name: str
    parent: str
    links: list[dict[str, Any]]
    finish: bool
    properties: dict[str, Any]
    content: str

    @property
    def writes(self) -> bool:
        return self.copy or bool(self.links) or self.finish


def stamped(spec: Mapping[str, Any], content: str) -> dict[str, Any]:
    """``spec`` stamped with ``content`` when it vouches for the bytes; else as it is.

    The hash link always vouches (its properties copied from another user's
    link lose any stamp first); a layer link vouches when it says its bytes
    were checked under the writer rule.
    """
    properties = dict(spec.get("properties") or {})
    if spec.get("link_class") == HASH_LINK:
        properties = dict(unstamped(properties), **stamp(content))
    elif (spec.get("link_class") == LAYER_LINK
          and properties.get(CHECKED_PROPERTY) == CHECKED_MARKER):
        properties.update(stamp(content))
    return dict(spec, properties=properties)


class ContentChanged(KeepdockerError):
    """A collection changed under this run (a collaborator rewrote it)."""


def default_collection_name(image_id: str, repo_tag: str | None) -> str:
    """3.2.1's name: ``Docker image <repo tag, "/" as " "> <id[:12]>``."""
    if repo_tag:
        return "Docker image {} {}".format(repo_tag.replace("/", " "), image_id[0:12])
    return f"Docker image {image_id[0:12]}"


class Recorder:
    """Makes the Arvados records of one run."""

    def __init__(self, ctx: RunContext):
        self.api = ctx.api
        self.pm = ctx.pm
        self.options = ctx.options  # for the hooks
        self.retries = ctx.retries
        self.project_uuid = ctx.project_uuid

    # -- what the hooks ask for -------------------------------------------------

    def properties(self, image: Image, repo_tag: str | None) -> dict[str, Any]:
        """Every plugin's properties; the essential plugin's keys keep its values."""
        merged: dict[str, Any] = {}
        kwargs = dict(image=image, repo_tag=repo_tag, options=self.options)
        # pluggy calls the newest plugin first: apply in registration order.
        for result in reversed(self.pm.other_hook("keepdocker_collection_properties")(**kwargs)):
            merged.update(result or {})
        for result in self.pm.essential_hook("keepdocker_collection_properties")(**kwargs):
            merged.update(result or {})
        return merged

    def link_specs(self, image: Image, repo_tag: str | None
                   ) -> tuple[list[LinkSpec], list[LinkSpec]]:
        """``(core links, added links)``; a plugin's core-class link is refused."""
        kwargs = dict(image=image, repo_tag=repo_tag, options=self.options)
        core: list[LinkSpec] = []
        for result in self.pm.essential_hook("keepdocker_links")(**kwargs):
            core.extend(result or ())
        added: list[LinkSpec] = []
        for result in reversed(self.pm.other_hook("keepdocker_links")(**kwargs)):
            for spec in result or ():
                if spec.get("link_class") in CORE_LINK_CLASSES:
                    logger.warning("ignoring a plugin's %s link %r: only the default links "
                                   "plugin makes those", spec.get("link_class"),
                                   spec.get("name"))
                    continue
                added.append(spec)
        return core, added

    # -- a fresh upload -----------------------------------------------------------

    def create(self, image: Image, repo_tag: str | None, name: str,
               manifest_text: str) -> dict[str, Any]:
        """Save ``manifest_text`` as the image collection and link it.

        The collection is born pending: with a ``trash_at`` and the
        :data:`PENDING_PROPERTY`, both cleared only once every link exists.
        If this run dies in between, Arvados trashes it by itself, and the
        next run finishes or removes it (:func:`sweep_pending`).
        """
        collection = arvados.collection.Collection(
            manifest_text, api_client=self.api, num_retries=self.retries)
        properties = dict(self.properties(image, repo_tag))
        properties[PENDING_PROPERTY] = image.image_id
        core, added = self.link_specs(image, repo_tag)
        content = portable_data_hash(manifest_text)
        owner = self.project_uuid
        with Rollback(self.api, self.retries) as rollback:
            # Properties go in with the record, so it never exists without them;
            # the server adds its managed properties beside ours, as it would to
            # arv-put's record before 3.2.1's separate update.
            collection.save_new(name=name, owner_uuid=owner, properties=properties,
                                trash_at=pending_until(), ensure_unique_name=True,
                                num_retries=self.retries)
            record = rollback.created_collection(collection.api_response())
            self.check_content(record, content, "the new collection")
            for spec in core + added:
                body = dict(stamped(spec, content), head_uuid=record["uuid"])
                if owner is not None:
                    body["owner_uuid"] = owner
                rollback.link(body)
            record = self.finish(record, content)
        self.notify(image, record, rollback.records)
        return record

    def finish(self, record: Mapping[str, Any], content: str) -> dict[str, Any]:
        """Clear a pending collection's ``trash_at`` and marker: it is complete.

        Only if it still holds ``content``: a collaborator may have rewritten
        it meanwhile, and this update would then make this user its last
        writer. Checked before (to name who changed it) and after.
        """
        now = self.api.collections().get(
            uuid=record["uuid"], select=["uuid", "portable_data_hash", "modified_by_user_uuid"],
        ).execute(num_retries=self.retries)
        self.check_content(now, content, "collection {}".format(record["uuid"]))
        properties = {k: v for k, v in (record.get("properties") or {}).items()
                      if k != PENDING_PROPERTY}
        done = self.api.collections().update(
            uuid=record["uuid"], body={"trash_at": None, "properties": properties},
        ).execute(num_retries=self.retries)
        self.check_content(done, content, "collection {}".format(record["uuid"]))
        return done

    @staticmethod
    def check_content(record: Mapping[str, Any], content: str, what: str) -> None:
        """Raise :class:`ContentChanged` unless ``record`` holds ``content``."""
        found = record.get("portable_data_hash")
        if found != content:
            raise ContentChanged(
                "{} holds {}, not the {} this run stored or checked (last modified by {}); "
                "nothing of this run is kept".format(
                    what, found, content, record.get("modified_by_user_uuid") or "someone"))

    # -- an image already in Arvados ----------------------------------------------

    def plan_existing(self, image: Image, repo_tag: str | None, name: str, parent: str,
                      chosen: Mapping[str, Any], hash_links: Sequence[Mapping[str, Any]],
                      tag_links: Sequence[Mapping[str, Any]]) -> ExistingPlan:
        """What 3.2.1's "already in Arvados" path must write for ``chosen``.

        ``chosen`` is the collection to reuse (owned by ``parent``) or to
        copy there. As 3.2.1 does, the core links copy the best hash link's
        properties and are made only when ``parent`` owns none of that class
        on the record yet; added links when it has none of that class and
        name there; a pending record (an earlier run's) is finished.
        """
        core, added = self.link_specs(image, repo_tag)
        copy = chosen["owner_uuid"] != parent
        record_uuid = None if copy else chosen["uuid"]
        have = set()
        if record_uuid is not None:
            have = {(l["link_class"], l["name"] if l["link_class"] not in CORE_LINK_CLASSES
                     else "") for l in list(hash_links) + list(tag_links)
                    if l["owner_uuid"] == parent and l["head_uuid"] == record_uuid}
            if added:
                have |= self._links_on(record_uuid, parent, added)
        content = portable_data_hash(chosen.get("manifest_text") or "")
        links = []
        for spec in core:
            if (spec["link_class"], "") not in have:
                copied = dict(spec, properties=unstamped(hash_links[0]["properties"]))
                links.append(stamped(copied, content))
        for spec in added:
            if (spec["link_class"], spec["name"]) not in have:
                links.append(dict(spec))
        pending = PENDING_PROPERTY in (chosen.get("properties") or {})
        return ExistingPlan(chosen, copy, name, parent, links, pending,
                            self.properties(image, repo_tag) if copy else {}, content)

    def apply(self, image: Image, plan: ExistingPlan) -> dict[str, Any]:
        """Make what ``plan`` says; undone together if a write fails."""
        with Rollback(self.api, self.retries) as rollback:
            if plan.copy:
                record = rollback.created_collection(self.api.collections().create(
                    body={"manifest_text": plan.chosen["manifest_text"],
                          "name": plan.name, "owner_uuid": plan.parent,
                          "properties": plan.properties},
                    ensure_unique_name=True).execute(num_retries=self.retries))
                self.check_content(record, plan.content, "the copy")
            else:
                record = dict(plan.chosen)
            for spec in plan.links:
                rollback.link(dict(spec, owner_uuid=plan.parent, head_uuid=record["uuid"]))
            if plan.finish:
                record = self.finish(record, plan.content)
        self.notify(image, record, rollback.records)
        return record

    def _links_on(self, head_uuid: str, owner: str, specs: Sequence[LinkSpec]) -> set:
        found = self.api.links().list(
            filters=[["head_uuid", "=", head_uuid], ["owner_uuid", "=", owner],
                     ["link_class", "in", sorted({s["link_class"] for s in specs})]],
            select=["link_class", "name"], limit=1000).execute(num_retries=self.retries)
        return {(l["link_class"], l["name"]) for l in found["items"]}

    # -- afterwards ---------------------------------------------------------------

    def notify(self, image: Image, record: Mapping[str, Any],
               links: Sequence[Mapping[str, Any]]) -> None:
        try:
            self.pm.hook.keepdocker_after_upload(
                image=image, collection=record, links=links, api=self.api)
        except Exception as error:  # a notification must not undo the upload
            logger.warning("after-upload hook failed: %s", error)
