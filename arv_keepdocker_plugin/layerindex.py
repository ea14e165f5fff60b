"""The layer index: ``docker_image_layer`` links that say where layers are stored.

Each upload records, for every block-aligned layer of the stored tar, a link
``docker_image_layer`` named after the layer's digest (the sha256 of the bytes
in the tar member: the diff id for an uncompressed layer, the blob digest in
an OCI layout) pointing at the image collection, with the layer's ``offset``
and ``size`` inside ``<image id>.tar``. One ``name in [...]`` query finds
the candidates for an image's layers; :mod:`.stored_layers` decides which
of them may be used.
"""

from __future__ import annotations

import itertools
import re
from typing import Iterable, List, Optional, Sequence

import arvados.util

from .hooktypes import LAYER_LINK, LayerRecord, LinkSpec
from .image import Layer

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


def locators_for_range(manifest_text: str, offset: int, size: int) -> Optional[List[str]]:
    """The blocks that hold exactly ``[offset, offset + size)``, if they are aligned."""
    blocks = _blocks(manifest_text)
    if blocks is None or size <= 0:
        return None
    chosen = [b for b in blocks if b[0] >= offset and b[0] + b[1] <= offset + size]
    if not chosen or chosen[0][0] != offset or sum(b[1] for b in chosen) != size:
        return None
    return [b[2] for b in chosen]


def find_layer_records(api, num_retries: int, digests: Iterable[str]) -> List[LayerRecord]:
    """Every readable index link for ``digests``, newest first, as records."""
    wanted = sorted({d for d in digests if d})
    if not wanted:
        return []
    records = []
    for link in arvados.util.keyset_list_all(
            api.links().list, num_retries=num_retries,
            filters=[["link_class", "=", LAYER_LINK], ["name", "in", wanted]],
            order_key="created_at", ascending=False):
        props = link.get("properties") or {}
        try:
            offset, size = int(props["offset"]), int(props["size"])
        except (KeyError, TypeError, ValueError):
            continue
        records.append(LayerRecord(
            digest=link["name"], collection_uuid=link["head_uuid"], offset=offset,
            size=size, owner_uuid=link["owner_uuid"]))
    return records


def layer_links(layers: Sequence[Layer]) -> List[LinkSpec]:
    """Link specs recording ``layers`` (with offsets) of a just-stored tar."""
    seen, links = set(), []
    for layer in layers:
        if layer.digest and layer.offset is not None and layer.digest not in seen:
            seen.add(layer.digest)
            links.append(LinkSpec(link_class=LAYER_LINK, name=layer.digest,
                                  properties={"offset": layer.offset, "size": layer.size}))
    return links
