"""Which stored copies of an image this user's own records vouch for (the writer rule).

A copy (a collection holding ``<id>.tar``) is trusted unread when a record on
it was last written by this user and holds the portable data hash the
collection still has (:class:`~..keep.trust_records.WriterRule`): its
``docker_image_hash`` link, made by this tool on an upload or on a reuse of
bytes it trusted or checked, or the ``docker_image_checked`` link a run
leaves, owned by the user, after reading another user's copy back and
checking it (so a team does not pay that read on every run; it is no hash
or repo+tag link, so 3.2.1's listing does not change). Who owns a copy or
its links does not count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ..hooktypes import HASH_LINK
from ..keep.api_lists import list_all
from ..keep.locators import portable_data_hash
from ..keep.trust_records import CHECKED_LINK, LINK_FIELDS, WriterRule, stamp

logger = logging.getLogger("arvados.keepdocker")


def own_records(api, retries: int, rule: WriterRule, heads: Iterable[str],
                image_id: str | None = None) -> list[dict[str, Any]]:
    """This user's hash and checked links on ``heads`` (named ``image_id`` when given)."""
    wanted = sorted(set(heads))
    if not wanted:
        return []
    filters = [["head_uuid", "in", wanted], ["link_class", "in", [HASH_LINK, CHECKED_LINK]],
               ["modified_by_user_uuid", "=", rule.user_uuid]]
    if image_id is not None:
        filters.append(["name", "=", image_id])
    return list(list_all(api.links().list, num_retries=retries,
                                             filters=filters, select=LINK_FIELDS))


def vouched_for(rule: WriterRule, collections: Iterable[Mapping[str, Any]],
                records: Iterable[Mapping[str, Any]]) -> set[str]:
    """The UUIDs of ``collections`` (with ``portable_data_hash``) a record vouches for."""
    by_uuid = {c["uuid"]: c for c in collections}
    return {r["head_uuid"] for r in records if rule.trusts(r, by_uuid.get(r.get("head_uuid")))}


def trusted_copies(api, retries: int, rule: WriterRule, uuids: Iterable[str],
                   image_id: str | None = None) -> set[str]:
    """Of the collections ``uuids``, those this user's records vouch for."""
    wanted = sorted(set(uuids))
    records = own_records(api, retries, rule, wanted, image_id)
    if not records:
        return set()
    collections = list_all(
        api.collections().list, num_retries=retries,
        filters=[["uuid", "in", sorted({r["head_uuid"] for r in records})]],
        select=["uuid", "portable_data_hash"])
    return vouched_for(rule, collections, records)


def remember_checked(api, retries: int, rule: WriterRule, image_id: str,
                     collection: Mapping[str, Any]) -> None:
    """Record, as this user, that ``collection`` was read back and holds ``image_id``.

    The stamp is the hash of the manifest that was checked; the record is
    owned by the user (not the project: it vouches to its writer only). A
    failure to write it costs the next run a read, nothing else.
    """
    content = portable_data_hash(collection.get("manifest_text") or "")
    try:
        api.links().create(body={
            "link_class": CHECKED_LINK, "name": image_id, "head_uuid": collection["uuid"],
            "owner_uuid": rule.user_uuid, "properties": stamp(content)},
        ).execute(num_retries=retries)
    except Exception as error:
        logger.warning("could not record that collection %s was checked: %s",
                       collection["uuid"], error)
