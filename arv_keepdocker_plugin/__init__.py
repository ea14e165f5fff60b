"""arv-keepdocker-plugin: store container images in Arvados Keep.

Authors of hook packages need only :data:`hookimpl` and the types in
:mod:`arv_keepdocker_plugin.image`::

    from arv_keepdocker_plugin import hookimpl

    @hookimpl
    def keepdocker_collection_properties(image):
        return {"my-site:built-by": image.config.get("author")}
"""

import pluggy

__version__ = "0.1.0"

#: One name for the hook markers, the plugin manager and the entry-point group.
PROJECT_NAME = "arv_keepdocker"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = ["hookimpl", "PROJECT_NAME", "__version__"]
