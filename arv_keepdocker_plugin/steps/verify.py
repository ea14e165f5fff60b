"""Checking an image collection no record of this user's vouches for, before it is reused.

What crunch-run needs of an image collection (``lib/crunchrun/crunchrun.go``,
``LoadImage``, and ``Collection.find_all_for_docker_image`` in
``services/api/app/models/collection.rb``): exactly one file, named
``<image id>.tar``, which ``docker load`` accepts as that image. We check
the same by reading the tar back from Keep as a stream (nothing on disk,
memory bounded by a one-block cache) through the
:class:`~..archive.tap.TarTap` that checks every upload: its config must hash
to the image id and every layer must match its diff id. Because the id is the
digest of a config that lists every layer's diff id, a collection that passes
holds exactly that image, whoever made it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import arvados.collection

from ..archive.tap import TarTap
from ..errors import KeepdockerError
from ..keep.layer_readback import reading_client

logger = logging.getLogger("arvados.keepdocker")

#: How much of the tar to read from Keep per call.
READ_CHUNK = 8 << 20


def problem_with(api, collection: Mapping[str, Any], image_id: str,
                 retries: int, named_by: str | None = None) -> str | None:
    """Why ``collection`` is not a loadable ``image_id``, or None when it is.

    With ``named_by`` (a manifest or index digest someone's link says names
    this image), the tar must also prove it: its ``index.json`` must lead
    from that digest to the config (blobs are checked against their names,
    so no other bytes can pass for that digest).
    """
    try:
        reader = arvados.collection.CollectionReader(
            collection["manifest_text"], api_client=api, num_retries=retries,
            keep_client=reading_client(api, retries))
        names = list(reader.keys())
        expected = f"{image_id}.tar"
        if names != [expected]:
            return "it holds {} instead of the one file {}".format(
                ", ".join(repr(n) for n in names) or "nothing", expected)
        if not hasattr(reader.find(expected), "size"):
            return f"{expected} is a directory"
        with reader.open(expected, "rb") as stream:
            tap = TarTap(stream, archive=expected)
            while tap.read(READ_CHUNK):
                pass
    except KeepdockerError as error:
        return str(error)
    except Exception as error:  # a Keep block that cannot be read, a bad manifest
        return "cannot read it back ({})".format(str(error).splitlines()[0] if str(error)
                                                 else type(error).__name__)
    if tap.config_digest != image_id:
        return f"its config has {tap.config_digest}, not {image_id}"
    if named_by is not None and named_by not in (tap.index_digest, tap.manifest_digest):
        return f"it does not show that {named_by} names this image"
    return None


def loadable(api, collection: Mapping[str, Any], image_id: str, retries: int,
             named_by: str | None = None) -> bool:
    """Check ``collection``; warn, naming it, when it fails."""
    logger.info("checking %s before reusing it (no record of this user's vouches for it)",
                collection["uuid"])
    problem = problem_with(api, collection, image_id, retries, named_by)
    if problem is not None:
        logger.warning("not reusing collection %s as image %s: %s", collection["uuid"],
                       image_id, problem)
        return False
    return True
