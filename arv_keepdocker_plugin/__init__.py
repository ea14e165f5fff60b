"""arv-keepdocker-plugin: store container images in Arvados Keep.

Everything a hook package needs is importable from here::

    from arv_keepdocker_plugin import hookimpl

    @hookimpl
    def keepdocker_collection_properties(image):
        return {"my-site:built-by": image.config.get("author")}

The hooks themselves are documented in :mod:`arv_keepdocker_plugin.hookspecs`.
"""

import pluggy

__version__ = "0.3.0"

#: One name for the hook markers, the plugin manager and the entry-point group.
PROJECT_NAME = "arv_keepdocker"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

from .errors import (  # noqa: E402  (the markers above come first)
    BadArchive,
    BadReference,
    EngineUnavailable,
    FormatRefused,
    ImageNotFound,
    KeepdockerError,
    SourceError,
)
from .hooktypes import FormatVerdict, LayerRecord, LinkSpec  # noqa: E402
from .image import (  # noqa: E402
    Image,
    ImageSource,
    Layer,
    LayerSizes,
    Reference,
    SkippedLayers,
    StoredData,
)

__all__ = [
    "PROJECT_NAME", "__version__", "hookimpl",
    "Image", "ImageSource", "Layer", "LayerSizes", "Reference", "StoredData",
    # Deprecated in 0.3.0, removed in 0.4: export_pieces receives a LayerSizes.
    "SkippedLayers",
    "FormatVerdict", "LayerRecord", "LinkSpec",
    "KeepdockerError", "BadReference", "SourceError", "EngineUnavailable",
    "ImageNotFound", "BadArchive", "FormatRefused",
]
