"""The Keep writer stage: an image stream into a new collection as one ``<id>.tar``.

The bytes go through the SDK (:class:`arvados.collection.Collection`), which
packs them into 64 MiB Keep blocks and uploads them from its own writer
threads while we keep reading. Nothing is visible in Arvados until the
pipeline saves the collection, so an interrupted or failed stream leaves no
record behind (only unreferenced blocks, which Keep collects).
"""

from __future__ import annotations

from typing import IO, Optional

import arvados.collection

from .progress import Progress

#: How much to read from the source per call; the SDK buffers up to a block.
CHUNK = 8 << 20


class KeepImageWriter:
    """Writes one image tar into a new, unsaved collection."""

    def __init__(self, api, num_retries: int, progress: Optional[Progress] = None):
        self.api = api
        self.num_retries = num_retries
        self.progress = progress or Progress(None)

    def write(self, stream: IO[bytes], filename: str) -> arvados.collection.Collection:
        """Copy ``stream`` to ``filename`` in a new collection and return it.

        Blocks are committed to Keep before this returns; the collection
        record itself is not created (call ``save_new``).
        """
        collection = arvados.collection.Collection(
            api_client=self.api, num_retries=self.num_retries)
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        with collection.open(filename, "wb") as out:
            while True:
                n = stream.readinto(view) if hasattr(stream, "readinto") else None
                if n is None:
                    data = stream.read(CHUNK)
                    n = len(data)
                    if n:
                        out.write(data)
                elif n:
                    out.write(bytes(view[:n]))
                if not n:
                    break
                self.progress.update(n)
        self.progress.finish()
        return collection
