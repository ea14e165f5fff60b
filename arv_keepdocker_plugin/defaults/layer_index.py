"""Default plugin: record each stored layer, so later uploads reuse its blocks.

Adds one ``docker_image_layer`` link per block-aligned layer (see
:mod:`arv_keepdocker_plugin.layerindex`). Disable it
(``ARV_KEEPDOCKER_DISABLE_PLUGINS=layer_index``) to leave exactly the links
arv-keepdocker 3.2.1 leaves; uploads then reuse nothing.
"""

from .. import hookimpl
from ..layerindex import layer_links


@hookimpl(trylast=True)
def keepdocker_links(image):
    return layer_links(image.layers)
