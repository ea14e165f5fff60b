"""The record step: the collection, its properties and its links, through the hooks.

Both ways a run ends well go through here, with the same hook calls:

* :meth:`Recorder.create` saves a freshly stored tar as a collection and
  links it;
* :meth:`Recorder.link_existing` makes the links (and, for another project,
  the copy) of an image already in Arvados.

The essential ``links`` plugin's answers are arv-keepdocker 3.2.1's links and
property; other plugins add to them and cannot change or drop them. Every
write is undone together if one fails (:class:`~.rollback.Rollback`).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import arvados.collection

from .hooktypes import HASH_LINK, REPO_TAG_LINK, LinkSpec
from .image import Image
from .rollback import Rollback

logger = logging.getLogger("arvados.keepdocker")

#: Link classes only the essential plugin may ask for.
CORE_LINK_CLASSES = (HASH_LINK, REPO_TAG_LINK)


def default_collection_name(image_id: str, repo_tag: Optional[str]) -> str:
    """3.2.1's name: ``Docker image <repo tag, "/" as " "> <id[:12]>``."""
    if repo_tag:
        return "Docker image {} {}".format(repo_tag.replace("/", " "), image_id[0:12])
    return "Docker image {}".format(image_id[0:12])


class Recorder:
    """Makes the Arvados records of one run."""

    def __init__(self, api, pm, options: argparse.Namespace):
        self.api = api
        self.pm = pm
        self.options = options
        self.retries = options.retries

    # -- what the hooks ask for -------------------------------------------------

    def properties(self, image: Image, repo_tag: Optional[str]) -> Dict[str, Any]:
        """Every plugin's properties; the essential plugin's keys keep its values."""
        merged: Dict[str, Any] = {}
        kwargs = dict(image=image, repo_tag=repo_tag, options=self.options)
        # pluggy calls the newest plugin first: apply in registration order.
        for result in reversed(self.pm.other_hook("keepdocker_collection_properties")(**kwargs)):
            merged.update(result or {})
        for result in self.pm.essential_hook("keepdocker_collection_properties")(**kwargs):
            merged.update(result or {})
        return merged

    def link_specs(self, image: Image, repo_tag: Optional[str]
                   ) -> Tuple[List[LinkSpec], List[LinkSpec]]:
        """``(core links, added links)``; a plugin's core-class link is refused."""
        kwargs = dict(image=image, repo_tag=repo_tag, options=self.options)
        core: List[LinkSpec] = []
        for result in self.pm.essential_hook("keepdocker_links")(**kwargs):
            core.extend(result or ())
        added: List[LinkSpec] = []
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

    def create(self, image: Image, repo_tag: Optional[str], name: str,
               manifest_text: str) -> Dict[str, Any]:
        """Save ``manifest_text`` as the image collection and link it."""
        collection = arvados.collection.Collection(
            manifest_text, api_client=self.api, num_retries=self.retries)
        properties = self.properties(image, repo_tag)
        core, added = self.link_specs(image, repo_tag)
        owner = self.options.project_uuid
        with Rollback(self.api, self.retries) as rollback:
            # Properties go in with the record, so it never exists without them;
            # the server adds its managed properties beside ours, as it would to
            # arv-put's record before 3.2.1's separate update.
            collection.save_new(name=name, owner_uuid=owner, properties=properties,
                                ensure_unique_name=True, num_retries=self.retries)
            record = rollback.created_collection(collection.api_response())
            for spec in core + added:
                body = dict(spec, head_uuid=record["uuid"])
                if owner is not None:
                    body["owner_uuid"] = owner
                rollback.link(body)
        self.notify(image, record, rollback.records)
        return record

    # -- an image already in Arvados ----------------------------------------------

    def link_existing(self, image: Image, repo_tag: Optional[str], name: str, parent: str,
                      collections: Sequence[Mapping[str, Any]],
                      hash_links: Sequence[Mapping[str, Any]],
                      tag_links: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
        """3.2.1's "already in Arvados" records: a copy owned by ``parent`` and its links.

        ``collections`` are the readable image collections (3.2.1's order),
        ``hash_links`` and ``tag_links`` their links, best first. As 3.2.1
        does, the core links copy the best hash link's properties and are
        made only when ``parent`` owns none of that kind yet; added links are
        made when ``parent`` has none of that class and name on the record.
        """
        core, added = self.link_specs(image, repo_tag)
        with Rollback(self.api, self.retries) as rollback:
            owned = [c for c in collections if c["owner_uuid"] == parent]
            if owned:
                record = dict(owned[0])
            else:
                record = rollback.created_collection(self.api.collections().create(
                    body={"manifest_text": collections[0]["manifest_text"],
                          "name": name, "owner_uuid": parent,
                          "properties": self.properties(image, repo_tag)},
                    ensure_unique_name=True).execute(num_retries=self.retries))
            base = {"owner_uuid": parent, "head_uuid": record["uuid"]}
            have = {HASH_LINK: any(l["owner_uuid"] == parent for l in hash_links),
                    REPO_TAG_LINK: any(l["owner_uuid"] == parent for l in tag_links)}
            for spec in core:
                if not have.get(spec["link_class"], False):
                    rollback.link(dict(spec, properties=dict(hash_links[0]["properties"]),
                                       **base))
            existing = self._links_on(record["uuid"], parent, added) if added else set()
            for spec in added:
                if (spec["link_class"], spec["name"]) not in existing:
                    rollback.link(dict(spec, **base))
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
