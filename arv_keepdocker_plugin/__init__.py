"""arv-keepdocker-plugin: store container images in Arvados Keep.

Everything a hook package needs is importable from here::

    from arv_keepdocker_plugin import hookimpl

    @hookimpl
    def keepdocker_collection_properties(image):
        return {"my-site:built-by": image.config.get("author")}

The hooks themselves are documented in :mod:`arv_keepdocker_plugin.hookspecs`.
"""

import pluggy

__version__ = "0.2.0"

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
from .image import Image, ImageSource, Layer, Reference, SkippedLayers, StoredData  # noqa: E402

__all__ = [
    "PROJECT_NAME", "__version__", "hookimpl",
    "Image", "ImageSource", "Layer", "Reference", "SkippedLayers", "StoredData",
    "FormatVerdict", "LayerRecord", "LinkSpec",
    "KeepdockerError", "BadReference", "SourceError", "EngineUnavailable",
    "ImageNotFound", "BadArchive", "FormatRefused",
]
