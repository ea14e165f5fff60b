"""The records a user's runs write, and the rule that trusts them unread (docs/trust.md).

A record is a link this tool writes about a collection: a layer's
``docker_image_layer`` link, an image's ``docker_image_hash`` link, or the
``docker_image_checked`` link a run leaves after reading another user's copy
back and checking it. Whoever owns a record, :class:`WriterRule` trusts it
unread only when

1. its ``modified_by_user_uuid`` is this user: the API server sets that field
   on every create and every update that changes something, and overwrites
   what a client sends (``update_modified_by_fields`` in
   ``services/api/app/models/arvados_model.rb``; ``modified_by_user_uuid`` in
   ``doc/api/resources.html.textile.liquid``);
2. it carries :data:`CHECKED_MARKER` and the portable data hash its writing run
   computed, locally, for the collection it points to (:func:`stamp`); and
3. that collection's current ``portable_data_hash`` still equals it.

Owning a record proves nothing in a shared project (a record in a project is
owned by the project, whoever wrote it); "last modified by me" alone proves
nothing about a collection a collaborator may have changed before this tool
updated it again. Records made before this rule (``digests_checked: true``)
carry no hash and are never trusted unread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from .api_lists import list_all

#: The property that says a record's bytes were checked, and by which rule.
CHECKED_PROPERTY = "digests_checked"
#: Its value on records this rule trusts (older records say ``true``).
CHECKED_MARKER = 2
#: The property holding the portable data hash the writing run computed.
CONTENT_PROPERTY = "collection_pdh"
#: Link class of a user's record that another user's image copy checked out.
CHECKED_LINK = "docker_image_checked"
#: The link fields the rule reads.
LINK_FIELDS = ["uuid", "link_class", "name", "head_uuid", "owner_uuid",
               "modified_by_user_uuid", "properties", "created_at"]


def stamp(portable_data_hash: str) -> dict[str, Any]:
    """The properties that make a record trustworthy to its writer (and only to them)."""
    return {CHECKED_PROPERTY: CHECKED_MARKER, CONTENT_PROPERTY: portable_data_hash}


def unstamped(properties: Mapping[str, Any] | None) -> dict[str, Any]:
    """``properties`` without a stamp: what may be copied from someone else's record."""
    return {k: v for k, v in (properties or {}).items()
            if k not in (CHECKED_PROPERTY, CONTENT_PROPERTY)}


def recorded_content(link: Mapping[str, Any]) -> str | None:
    """The portable data hash a stamped record holds, else None."""
    properties = link.get("properties") or {}
    marker = properties.get(CHECKED_PROPERTY)
    content = properties.get(CONTENT_PROPERTY)
    if type(marker) is not int or marker != CHECKED_MARKER or not isinstance(content, str):
        return None
    return content


@dataclasses.dataclass(frozen=True)
class WriterRule:
    """Trust by writer and content: see the module docstring.

    :ivar user_uuid: the user the run's token belongs to.
    """

    user_uuid: str

    def wrote(self, link: Mapping[str, Any]) -> bool:
        """Whether this user was the last to write ``link``."""
        return link.get("modified_by_user_uuid") == self.user_uuid

    def trusts(self, link: Mapping[str, Any] | None,
               collection: Mapping[str, Any] | None) -> bool:
        """Whether ``link`` vouches, unread, for ``collection`` as it is now."""
        if link is None or collection is None or not self.wrote(link):
            return False
        content = recorded_content(link)
        return (content is not None and link.get("head_uuid") == collection.get("uuid")
                and collection.get("portable_data_hash") == content)


def links_by_uuid(api, num_retries: int, uuids: Iterable[str | None]) -> dict[str, dict]:
    """The links ``uuids`` name, read by the core itself (what a plugin said is not used)."""
    wanted = sorted({uuid for uuid in uuids if uuid})
    if not wanted:
        return {}
    return {link["uuid"]: link for link in list_all(
        api.links().list, num_retries=num_retries, filters=[["uuid", "in", wanted]],
        select=LINK_FIELDS)}
