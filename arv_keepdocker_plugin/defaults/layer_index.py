"""Default plugin: an index of stored layers, so later uploads reuse their blocks.

Records one ``docker_image_layer`` link per block-aligned layer of each
upload, and answers ``keepdocker_stored_layers`` from those links (see
:mod:`arv_keepdocker_plugin.keep.layer_links`). Disable it
(``ARV_KEEPDOCKER_DISABLE_PLUGINS=layer_index``) to leave exactly the links
arv-keepdocker 3.2.1 leaves; uploads then reuse nothing.
"""

from collections.abc import Sequence

from .. import hookimpl
from ..hooktypes import LayerRecord, LinkSpec
from ..image import Image
from ..keep.layer_links import find_layer_records, layer_links


@hookimpl(trylast=True)
def keepdocker_links(image: Image) -> list[LinkSpec]:
    return layer_links(image.layers)


@hookimpl(trylast=True)
def keepdocker_stored_layers(api, digests: Sequence[str], num_retries: int) -> list[LayerRecord]:
    return find_layer_records(api, num_retries, digests)
