"""Which stored layers an upload may use, and how: the core's decision, not a plugin's.

The ``keepdocker_stored_layers`` hook (the ``layer_index`` default or a
third party) answers where an image's layers may already be stored. This
module reads those collections itself and turns the answers into:

* ``skip``: layers whose stored blocks stand in for the local bytes, which
  are then not read at all (archives and layouts on disk);
* ``known_blocks``: blocks that are reused only when a block of the local
  bytes has the same md5 and size (Keep addresses blocks by md5, so the
  bytes stored are the bytes read), which uploads nothing but reads
  everything.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import arvados.util

from .hooktypes import LayerRecord
from .image import Image
from .layerindex import locators_for_range
from .locators import block_key


@dataclasses.dataclass
class ReusableLayers:
    """What the store step may take from Keep instead of uploading.

    :ivar skip: ``{layer digest: signed locators}`` for layers that need not be read.
    :ivar known_blocks: ``{"<md5>+<size>": signed locator}`` of blocks to
        reuse when the local bytes match.
    """

    skip: Dict[str, List[str]] = dataclasses.field(default_factory=dict)
    known_blocks: Dict[str, str] = dataclasses.field(default_factory=dict)


def lookup_digests(image: Image) -> List[str]:
    """The digests an image's layers are looked up by."""
    return sorted({layer.digest for layer in image.layers if layer.digest})


def reusable_layers(records: Iterable[LayerRecord], image: Image, api, num_retries: int,
                    may_skip: Callable[[LayerRecord, Mapping], bool]) -> ReusableLayers:
    """Turn index records into blocks, reading each record's collection.

    :param records: candidates, preferred first.
    :param may_skip: ``may_skip(record, collection)`` says whether the
        record's blocks may stand in for local bytes unread; other records'
        blocks are only compared with what is read.
    """
    records = list(records)
    sizes: Dict[str, Optional[int]] = {l.digest: l.size for l in image.layers if l.digest}
    collections = _collections(api, num_retries, {r.collection_uuid for r in records})
    result = ReusableLayers()
    for record in records:
        if record.digest not in sizes or sizes[record.digest] not in (None, record.size):
            continue
        collection = collections.get(record.collection_uuid)
        if collection is None:
            continue
        locators = locators_for_range(collection.get("manifest_text") or "",
                                      record.offset, record.size)
        if not locators:
            continue
        if record.digest not in result.skip and may_skip(record, collection):
            result.skip[record.digest] = locators
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


def trust_every_readable_record(record: LayerRecord, collection: Mapping) -> bool:
    """Layers are trusted from records the user can read (``docker load`` checks digests)."""
    return True


def find_reusable_layers(hook, api, image: Image, owner: str, num_retries: int,
                         may_skip: Callable[[LayerRecord, Mapping], bool]
                         = trust_every_readable_record) -> ReusableLayers:
    """Ask the ``keepdocker_stored_layers`` hook and decide what to use."""
    digests: Sequence[str] = lookup_digests(image)
    if not digests:
        return ReusableLayers()
    records = hook(api=api, digests=digests, owner=owner, num_retries=num_retries) or []
    return reusable_layers(records, image, api, num_retries, may_skip)
