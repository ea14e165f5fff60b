"""Which stored layers an upload may use, and how: the core's decision, not a plugin's.

The ``keepdocker_stored_layers`` hook (the ``layer_index`` default or a
third party) answers where an image's layers may already be stored. This
module reads the records' links and collections itself and, by the
:class:`TrustRule`, turns the answers into:

* ``skip``: layers whose stored blocks stand in for the local bytes, which
  are then not read at all (archives, layouts on disk, registries): records
  this user wrote for content the collection still holds
  (:class:`~..keep.trust_records.WriterRule`), and, for an image that would
  otherwise be downloaded, another user's record whose blocks were read back
  from Keep and hashed to the layer's digest in this run;
* ``known_blocks``: blocks that are reused only when a block of the local
  bytes has the same md5 and size (Keep addresses blocks by md5, so the
  bytes stored are the bytes read), which uploads nothing but reads
  everything.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..hooktypes import LAYER_LINK, LayerRecord
from ..image import Image
from ..keep.api_lists import list_all
from ..keep.layer_blocks import LayerBlocks
from ..keep.layer_links import layer_record, locators_for_range
from ..keep.layer_readback import problem_with_layer, reading_client
from ..keep.locators import block_key, signature_expiry
from ..keep.trust_records import WriterRule, links_by_uuid
from .context import RunContext

logger = logging.getLogger("arvados.keepdocker")

#: At most this many other users' records are read back per layer (a
#: collaborator who plants many cannot make a run read without end).
READBACK_TRIES = 2


@dataclasses.dataclass
class ReusableLayers:
    """What the store step may take from Keep instead of uploading.

    :ivar skip: ``{layer digest: LayerBlocks}`` for layers that need not be read
        (from records the core trusts; the store step adds this user's own
        verified layers from the resume journal).
    :ivar known_blocks: ``{"<md5>+<size>": signed locator}`` of blocks to
        reuse when the local bytes match.
    """

    skip: dict[str, LayerBlocks] = dataclasses.field(default_factory=dict)
    known_blocks: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrustRule:
    """Which records may stand in for bytes unread (docs/trust.md).

    :ivar writer: the writer rule: a record this user wrote, holding the
        portable data hash the collection still has. Owners do not count: in a
        shared project anyone with ``can_write`` makes records the project owns.
    :ivar valid_until: Unix time until which every reused block's signature
        must stay valid (the upload must be able to finish with it).
    """

    writer: WriterRule
    valid_until: float

    def may_skip(self, link: Mapping[str, Any] | None,
                 collection: Mapping[str, Any] | None) -> bool:
        """A layer link, as the core read it, that this user wrote for ``collection``'s
        current content, recording a checked diff id."""
        if link is None or link.get("link_class") != LAYER_LINK:
            return False
        record = layer_record(link)
        return (record is not None and record.diff_id is not None
                and self.writer.trusts(link, collection))

    def lasts(self, locator: str) -> bool:
        """Whether a locator's signature (if it has one) outlives the upload."""
        expiry = signature_expiry(locator)
        return expiry is None or expiry >= self.valid_until


def lookup_digests(image: Image) -> list[str]:
    """The digests an image's layers are looked up by."""
    return sorted({layer.digest for layer in image.layers if layer.digest})


#: (record, its collection, the blocks holding exactly its bytes)
_Candidate = tuple[LayerRecord, Mapping[str, Any], list[str]]


def reusable_layers(records: Iterable[LayerRecord], image: Image, api, num_retries: int,
                    rule: TrustRule, keep=None, destination: str | None = None
                    ) -> ReusableLayers:
    """Turn index records into blocks, reading each record's link and collection.

    Blocks whose signatures would expire before the upload ends (someone's
    collection due for the trash soon) are never used. A layer's blocks
    stand in for its bytes unread when ``rule`` trusts the link a record names
    (read here: writer, recorded hash, offset, size, diff id) and the link is
    for exactly those bytes (same digest and size). With ``keep`` (a Keep
    client: the image would otherwise be downloaded), a layer no such record
    covers may come from another user's record once its blocks, read back
    from Keep, hash to the layer's digest; records in ``destination`` are
    read first. Every other record's blocks are only compared with what is read.
    """
    records = list(records)
    sizes: dict[str, int | None] = {l.digest: l.size for l in image.layers if l.digest}
    links = links_by_uuid(api, num_retries, (r.link_uuid for r in records))
    collections = _collections(api, num_retries,
                               {r.collection_uuid for r in records}
                               | {l["head_uuid"] for l in links.values() if l.get("head_uuid")})

    def fits(record: LayerRecord) -> bool:
        return record.digest in sizes and sizes[record.digest] in (None, record.size)

    def blocks(record: LayerRecord) -> tuple[Mapping[str, Any] | None, list[str] | None]:
        collection = collections.get(record.collection_uuid)
        if collection is None:
            return None, None
        locators = locators_for_range(collection.get("manifest_text") or "",
                                      record.offset, record.size)
        if not locators or not all(rule.lasts(locator) for locator in locators):
            return collection, None
        return collection, locators

    result = ReusableLayers()
    newest_first = sorted(links.values(), key=lambda l: l.get("created_at") or "", reverse=True)
    for link in newest_first:
        own = layer_record(link)
        if own is None or not fits(own) or own.digest in result.skip:
            continue
        collection, locators = blocks(own)
        if locators and rule.may_skip(link, collection):
            result.skip[own.digest] = LayerBlocks(locators, own.diff_id)
    candidates: list[_Candidate] = []
    for record in records:
        collection, locators = blocks(record)
        if collection is None or not locators:
            continue
        for locator in locators:
            result.known_blocks.setdefault(block_key(locator), locator)
        if fits(record):
            candidates.append((record, collection, locators))
    if keep is not None:
        candidates.sort(key=lambda c: c[1].get("owner_uuid") != destination)  # stable
        _read_back_others(keep, num_retries, candidates, result)
    return result


def _read_back_others(keep, num_retries: int, candidates: Sequence[_Candidate],
                      result: ReusableLayers) -> None:
    """Check other users' records by reading their blocks; never for a covered layer."""
    tried: dict[str, int] = {}
    for record, collection, locators in candidates:
        if record.digest in result.skip or tried.get(record.digest, 0) >= READBACK_TRIES:
            continue
        tried[record.digest] = tried.get(record.digest, 0) + 1
        logger.info("checking layer %s in collection %s, recorded by another user, by "
                    "reading it back", record.digest, collection["uuid"])
        problem, diff_id = problem_with_layer(keep, locators, record.digest, num_retries)
        if problem is not None:
            logger.warning("not using collection %s for layer %s: %s", collection["uuid"],
                           record.digest, problem)
            continue
        result.skip[record.digest] = LayerBlocks(list(locators), diff_id)


def _collections(api, num_retries: int, uuids: Iterable[str]) -> dict[str, dict]:
    wanted = sorted(uuids)
    if not wanted:
        return {}
    return {c["uuid"]: c for c in list_all(
        api.collections().list, num_retries=num_retries,
        filters=[["uuid", "in", wanted]],
        select=["uuid", "owner_uuid", "manifest_text", "portable_data_hash"])}


def find_reusable_layers(ctx: RunContext, image: Image, rule: TrustRule) -> ReusableLayers:
    """Ask the ``keepdocker_stored_layers`` hook and decide what to use.

    Other users' records are read back from Keep only for an image that
    would otherwise be downloaded (a registry's): reading a local archive to
    compare its blocks costs no more than reading Keep.
    """
    digests: Sequence[str] = lookup_digests(image)
    if not digests:
        return ReusableLayers()
    records = ctx.pm.hook.keepdocker_stored_layers(
        api=ctx.api, digests=digests, owner=ctx.owner_uuid, num_retries=ctx.retries) or []
    keep = None
    if image.downloaded is not None and image.export_pieces is not None:
        keep = reading_client(ctx.api, ctx.retries)
    return reusable_layers(records, image, ctx.api, ctx.retries, rule, keep, ctx.owner_uuid)
