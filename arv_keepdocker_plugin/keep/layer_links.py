"""The layer index: ``docker_image_layer`` links that say where layers are stored.

Each upload records, for every block-aligned layer of the stored tar, a link
``docker_image_layer`` named after the layer's digest (the sha256 of the bytes
in the tar member: the diff id for an uncompressed layer, the blob digest of a
compressed one) pointing at the image collection, with properties:

* ``offset`` and ``size``: where the layer's bytes lie inside ``<image id>.tar``;
* ``diff_id``: the sha256 of the uncompressed layer, so that a lookup by diff
  id (what engines list) finds a compressed copy too;
* ``digests_checked``: ``2`` when the bytes were checked against both digests
  as they were stored, and ``collection_pdh``: the portable data hash the
  writing run computed for the collection (the core adds it when it records
  the collection; see :mod:`.trust_records`). Records made before the
  writer rule say ``true`` and hold no hash: their blocks are only compared.

Two queries (by name, by ``properties.diff_id``) find the candidates for an
image's layers; :mod:`..steps.layer_trust`, in the core, decides which to use.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from typing import Any

import arvados.util

from ..hooktypes import LAYER_LINK, LayerRecord, LinkSpec
from ..image import Layer
from .trust_records import CHECKED_MARKER, CHECKED_PROPERTY

_LOCATOR = re.compile(r"^[0-9a-f]{32}\+[0-9]+(\+|$)")


def _blocks(manifest_text: str):
    """``[(offset, size, locator)]`` of the one file in a one-stream manifest, or None."""
    lines = [line for line in manifest_text.splitlines() if line]
    if len(lines) != 1:
        return None
    tokens = lines[0].split(" ")[1:]
    locators = list(itertools.takewhile(_LOCATOR.match, tokens))
    files = tokens[len(locators):]
    if len(files) != 1 or not files[0].startswith("0:"):
        return None
    blocks, offset = [], 0
    for locator in locators:
        size = int(locator.split("+")[1])
        blocks.append((offset, size, locator))
        offset += size
    return blocks


def locators_for_range(manifest_text: str, offset: int, size: int) -> list[str] | None:
    """The blocks that hold exactly ``[offset, offset + size)``, if they are aligned."""
    blocks = _blocks(manifest_text)
    if blocks is None or size <= 0:
        return None
    chosen = [b for b in blocks if b[0] >= offset and b[0] + b[1] <= offset + size]
    if not chosen or chosen[0][0] != offset or sum(b[1] for b in chosen) != size:
        return None
    return [b[2] for b in chosen]


DIFF_ID_PROPERTY = "diff_id"


def find_layer_records(api, num_retries: int, digests: Iterable[str]) -> list[LayerRecord]:
    """Every readable index link for ``digests``, by name or by diff id, newest first."""
    wanted = sorted({d for d in digests if d})
    if not wanted:
        return []
    found: dict[str, tuple[str, LayerRecord]] = {}
    for column in ("name", "properties." + DIFF_ID_PROPERTY):
        for link in arvados.util.keyset_list_all(
                api.links().list, num_retries=num_retries,
                filters=[["link_class", "=", LAYER_LINK], [column, "in", wanted]],
                order_key="created_at", ascending=False):
            record = layer_record(link)
            if record is not None:
                found.setdefault(link["uuid"], (link["created_at"], record))
    ordered = sorted(found.values(), key=lambda item: item[0], reverse=True)
    return [record for _, record in ordered]


def layer_record(link) -> LayerRecord | None:
    """The record a ``docker_image_layer`` link makes, or None when it is malformed."""
    props = link.get("properties") or {}
    try:
        offset, size = props["offset"], props["size"]
    except KeyError:
        return None
    if not isinstance(link.get("name"), str) or not isinstance(link.get("head_uuid"), str) or \
            type(offset) is not int or type(size) is not int or offset < 0 or size <= 0:
        return None
    diff_id = props.get(DIFF_ID_PROPERTY)
    return LayerRecord(digest=link["name"], collection_uuid=link["head_uuid"], offset=offset,
                       size=size, owner_uuid=link.get("owner_uuid") or "",
                       checked=props.get(CHECKED_PROPERTY) in (True, CHECKED_MARKER),
                       diff_id=diff_id if isinstance(diff_id, str) else None,
                       link_uuid=link.get("uuid"))


def layer_links(layers: Sequence[Layer]) -> list[LinkSpec]:
    """Link specs recording ``layers`` (with offsets) of a just-stored tar."""
    seen, links = set(), []
    for layer in layers:
        if layer.digest and layer.offset is not None and layer.digest not in seen:
            seen.add(layer.digest)
            properties: dict[str, Any] = {"offset": layer.offset, "size": layer.size}
            if layer.diff_id is not None:
                properties.update({DIFF_ID_PROPERTY: layer.diff_id,
                                   CHECKED_PROPERTY: CHECKED_MARKER})
            links.append(LinkSpec(link_class=LAYER_LINK, name=layer.digest,
                                  properties=properties))
    return links
