"""The Keep writer stage: an image stream into Keep blocks, layers block-aligned.

The docker-archive stream is cut into Keep blocks of at most 64 MiB, with a
cut wherever a layer's data begins and ends. So a layer's bytes always map to
the same blocks (the same locators) in every image that has it, and a new
image version costs only its new layers: a block already in Keep (found
through the layer index or the resume journal) is not uploaded again, and a
layer the source can skip (:class:`~.image.StoredData`) is not even read.

Blocks go to Keep through the SDK's ``KeepClient.put`` from two writer
threads while the stream goes on (the md5 that recognises a stored block is
computed there too); at most two blocks besides the one being filled are in
memory. The
result is a one-file manifest; the pipeline saves it as a collection only
after every block is stored, so an interrupted upload leaves no record.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import threading
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Union

from .archive.layercheck import Digests
from .image import StoredData
from .progress import Progress
from .stored_layers import StoredLayer

#: Keep's block size.
BLOCK_SIZE = 1 << 26
#: Members at least this large get their own blocks (layers; never tiny JSON).
ALIGN_MIN = 64 * 1024
#: Blocks being uploaded at once (each holds up to 64 MiB of memory).
IN_FLIGHT = 2


def is_layer_member(name: str, size: int) -> bool:
    """Whether a tar member holds a layer, to be aligned on block boundaries."""
    return size >= ALIGN_MIN and (name.endswith(".tar") or name.startswith("blobs/sha256/")
                                  or size >= BLOCK_SIZE)


class BlockWriter:
    """Cuts bytes into blocks and stores them, reusing blocks already in Keep.

    :param keep: an ``arvados.keep.KeepClient``.
    :param copies: replicas wanted per block (the cluster's default replication).
    :param known: ``{"<md5>+<size>": signed locator}`` of blocks already
        stored and readable; a block with the same content is not uploaded.
    :param on_stored: called with each signed locator once its block is in
        Keep (the resume journal records it).
    """

    def __init__(self, keep, copies: int, num_retries: int, progress: Progress,
                 known: Optional[Dict[str, str]] = None,
                 on_stored: Optional[Callable[[str], None]] = None):
        self.keep = keep
        self.copies = copies
        self.num_retries = num_retries
        self.progress = progress
        self.known = dict(known or {})
        self.on_stored = on_stored
        self.position = 0
        self._buffer = bytearray(BLOCK_SIZE)
        self._fill = 0
        self._cuts: List[int] = []
        self._locators: List[Union[str, concurrent.futures.Future]] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(IN_FLIGHT, "keep-put")
        self._slots = threading.Semaphore(IN_FLIGHT)

    # -- input ---------------------------------------------------------------

    def cut_at(self, offset: int) -> None:
        """Make a block end at stream ``offset`` (ahead of the current position)."""
        if offset > self.position and offset not in self._cuts:
            self._cuts.append(offset)
            self._cuts.sort()

    def write(self, data) -> None:
        view = memoryview(data)
        while view:
            limit = BLOCK_SIZE - self._fill
            if self._cuts:
                limit = min(limit, self._cuts[0] - self.position)
            take = min(limit, len(view))
            self._buffer[self._fill:self._fill + take] = view[:take]
            self._fill += take
            view = view[take:]
            self.position += take
            while self._cuts and self._cuts[0] <= self.position:
                self._cuts.pop(0)
                self._flush()
            if self._fill >= BLOCK_SIZE:
                self._flush()

    def stored(self, locators: Iterable[str], size: int) -> None:
        """Append data already in Keep (whole, aligned blocks) without reading it."""
        self._flush()
        for locator in locators:
            self._locators.append(locator)
        self.position += size
        self._cuts = [c for c in self._cuts if c > self.position]
        self.progress.add(reused=size, written=size)

    def close(self) -> List[str]:
        """Store the last block, wait for every upload; return the locators in order."""
        self._flush()
        try:
            return [loc if isinstance(loc, str) else loc.result() for loc in self._locators]
        finally:
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        for loc in self._locators:
            if not isinstance(loc, str):
                loc.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- blocks --------------------------------------------------------------

    def _flush(self) -> None:
        if not self._fill:
            return
        # Wait for a free writer before copying the block out, so that at most
        # IN_FLIGHT blocks plus the buffer being filled are ever in memory.
        self._slots.acquire()
        try:
            block = bytes(memoryview(self._buffer)[:self._fill])
            self._fill = 0
            future = self._pool.submit(self._store, block)
        except BaseException:
            self._slots.release()
            raise
        self._locators.append(future)
        # Fail fast: an earlier upload's error surfaces at the next block.
        for done in [f for f in self._locators[-IN_FLIGHT - 1:-1]
                     if not isinstance(f, str) and f.done()]:
            done.result()

    def _store(self, block: bytes) -> str:
        """In a writer thread: reuse the block if Keep has it, else upload it."""
        try:
            if self.known:
                key = "{}+{}".format(hashlib.md5(block).hexdigest(), len(block))
                locator = self.known.get(key)
                if locator is not None:
                    self.progress.add(reused=len(block), written=len(block))
                    return locator
            locator = self.keep.put(block, copies=self.copies, num_retries=self.num_retries)
            self.progress.add(uploaded=len(block), written=len(block))
            if self.on_stored is not None:
                self.on_stored(locator)
            return locator
        finally:
            self._slots.release()


def write_pieces(pieces: Iterable, tap, writer: BlockWriter,
                 stored: Mapping[str, StoredLayer]) -> None:
    """Feed an export (bytes and StoredData pieces) through ``tap`` into ``writer``.

    ``tap`` (a :class:`~.archive.tap.TarTap` without a stream) learns the
    archive as it passes, checks every layer, and announces each member's
    data, so layers are cut on block boundaries; ``stored`` maps a skipped
    layer's digest to its blocks and recorded diff id.
    """
    for piece in pieces:
        if isinstance(piece, StoredData):
            layer = stored[piece.digest]
            tap.skip(piece.size, Digests(piece.digest, layer.diff_id))
            writer.stored(layer.locators, piece.size)
            continue
        if not piece:
            continue
        writer.progress.add(read=len(piece))
        tap.feed(piece)
        writer.write(piece)
    tap.finish()
