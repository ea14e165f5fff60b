"""Which stored layers an upload may use, and how: the core's decision, not a plugin's.

The ``keepdocker_stored_layers`` hook (the ``layer_index`` default or a
third party) answers where an image's layers may already be stored. This
module reads those collections itself and, by the :class:`TrustRule`,
turns the answers into:

* ``skip``: layers whose stored blocks stand in for the local bytes, which
  are then not read at all (archives and layouts on disk);
* ``known_blocks``: blocks that are reused only when a block of the local
  bytes has the same md5 and size (Keep addresses blocks by md5, so the
  bytes stored are the bytes read), which uploads nothing but reads
  everything.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence

import arvados.util

from ..hooktypes import LayerRecord
from ..image import Image
from ..keep.layer_blocks import LayerBlocks
from ..keep.layer_links import locators_for_range
from ..keep.locators import block_key, signature_expiry
from .context import RunContext


@dataclasses.dataclass
class ReusableLayers:
    """What the store step may take from Keep instead of uploading.

    :ivar skip: ``{layer digest: LayerBlocks}`` for layers that need not be read
        (from records the core trusts; the store step adds this user's own
        verified layers from the resume journal).
    :ivar known_blocks: ``{"<md5>+<size>": signed locator}`` of blocks to
        reuse when the local bytes match.
    """

    skip: Dict[str, LayerBlocks] = dataclasses.field(default_factory=dict)
    known_blocks: Dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrustRule:
    """Which records may stand in for bytes unread (docs/trust.md).

    :ivar owners: the uploading user and the destination project: only
        records (index links) and collections they own can have been written
        by nobody else.
    :ivar valid_until: Unix time until which every reused block's signature
        must stay valid (the upload must be able to finish with it).
    """

    owners: FrozenSet[str]
    valid_until: float

    def may_skip(self, record: LayerRecord, collection: Mapping[str, Any]) -> bool:
        """A record the owner made and checked, on a collection the owner owns."""
        return (record.checked and record.diff_id is not None
                and record.owner_uuid in self.owners
                and collection.get("owner_uuid") in self.owners)

    def lasts(self, locator: str) -> bool:
        """Whether a locator's signature (if it has one) outlives the upload."""
        expiry = signature_expiry(locator)
        return expiry is None or expiry >= self.valid_until


def lookup_digests(image: Image) -> List[str]:
    """The digests an image's layers are looked up by."""
    return sorted({layer.digest for layer in image.layers if layer.digest})


def reusable_layers(records: Iterable[LayerRecord], image: Image, api, num_retries: int,
                    rule: TrustRule) -> ReusableLayers:
    """Turn index records into blocks, reading each record's collection.

    Blocks whose signatures would expire before the upload ends (someone's
    collection due for the trash soon) are never used. A layer's blocks may
    stand in for its bytes unread only when ``rule`` trusts the record and
    the record is for exactly those bytes (same digest and size); every
    other record's blocks are only compared with what is read.
    """
    records = list(records)
    sizes: Dict[str, Optional[int]] = {l.digest: l.size for l in image.layers if l.digest}
    collections = _collections(api, num_retries, {r.collection_uuid for r in records})
    result = ReusableLayers()
    for record in records:
        collection = collections.get(record.collection_uuid)
        if collection is None:
            continue
        locators = locators_for_range(collection.get("manifest_text") or "",
                                      record.offset, record.size)
        if not locators or not all(rule.lasts(locator) for locator in locators):
            continue
        if (record.digest in sizes and sizes[record.digest] in (None, record.size)
                and record.digest not in result.skip and rule.may_skip(record, collection)):
            result.skip[record.digest] = LayerBlocks(locators, record.diff_id)
        for locator in locators:
            result.known_blocks.setdefault(block_key(locator), locator)
    return result


def _collections(api, num_retries: int, uuids: Iterable[str]) -> Dict[str, Dict]:
    wanted = sorted(uuids)
    if not wanted:
        return {}
    return {c["uuid"]: c for c in arvados.util.keyset_list_all(
        api.collections().list, num_retries=num_retries,
        filters=[["uuid", "in", wanted]],
        select=["uuid", "owner_uuid", "manifest_text", "portable_data_hash"])}


def find_reusable_layers(ctx: RunContext, image: Image, rule: TrustRule) -> ReusableLayers:
    """Ask the ``keepdocker_stored_layers`` hook and decide what to use."""
    digests: Sequence[str] = lookup_digests(image)
    if not digests:
        return ReusableLayers()
    records = ctx.pm.hook.keepdocker_stored_layers(
        api=ctx.api, digests=digests, owner=ctx.owner_uuid, num_retries=ctx.retries) or []
    return reusable_layers(records, image, ctx.api, ctx.retries, rule)
