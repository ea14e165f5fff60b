"""Finding layers already stored in Keep, without scanning collections.

Each upload records, for every block-aligned layer of the stored tar, a link
``docker_image_layer`` named after the layer's digest (the sha256 of the bytes
in the tar member: the diff id for an uncompressed layer, the blob digest in
an OCI layout) pointing at the image collection, with the layer's ``offset``
and ``size`` inside ``<image id>.tar``. One ``name in [...]`` query finds the
stored copies of an image's layers; the collection's manifest, signed for the
caller by the API server, gives their blocks.

Trust: a layer is taken from links and collections the user can read, that
is, from people whose projects the user reads anyway. Loading checks layer
digests again (``docker load`` verifies each diff id), so a wrong entry
makes an image fail to load rather than run other code.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Dict, Iterable, List, Optional

import arvados.util

LINK_CLASS = "docker_image_layer"
_LOCATOR = re.compile(r"^[0-9a-f]{32}\+[0-9]+(\+|$)")


@dataclasses.dataclass
class StoredLayer:
    digest: str
    size: int
    locators: List[str]   # signed, whole blocks covering exactly the layer's bytes


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


def find_stored_layers(api, num_retries: int, digests: Iterable[str]) -> Dict[str, StoredLayer]:
    """``{digest: StoredLayer}`` for the layers among ``digests`` already stored and readable."""
    wanted = sorted({d for d in digests if d})
    if not wanted:
        return {}
    links = list(arvados.util.keyset_list_all(
        api.links().list, num_retries=num_retries,
        filters=[["link_class", "=", LINK_CLASS], ["name", "in", wanted]],
        order_key="created_at", ascending=False))
    heads = sorted({link["head_uuid"] for link in links})
    if not heads:
        return {}
    manifests = {c["uuid"]: c.get("manifest_text") or "" for c in arvados.util.keyset_list_all(
        api.collections().list, num_retries=num_retries,
        filters=[["uuid", "in", heads]], select=["uuid", "manifest_text"])}
    found: Dict[str, StoredLayer] = {}
    for link in links:  # newest first
        digest = link["name"]
        props = link.get("properties") or {}
        if digest in found or link["head_uuid"] not in manifests:
            continue
        try:
            offset, size = int(props["offset"]), int(props["size"])
        except (KeyError, TypeError, ValueError):
            continue
        locators = locators_for_range(manifests[link["head_uuid"]], offset, size)
        if locators:
            found[digest] = StoredLayer(digest, size, locators)
    return found


def layer_links(layers) -> List[dict]:
    """Link specs recording ``layers`` (with offsets) of a just-stored tar."""
    seen, links = set(), []
    for layer in layers:
        if layer.digest and layer.offset is not None and layer.digest not in seen:
            seen.add(layer.digest)
            links.append({"link_class": LINK_CLASS, "name": layer.digest,
                          "properties": {"offset": layer.offset, "size": layer.size}})
    return links
