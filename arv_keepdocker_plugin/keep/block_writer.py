"""The Keep writer stage: an image stream into Keep blocks, layers block-aligned.

The docker-archive stream is cut into Keep blocks of at most 64 MiB, with a
cut wherever a layer's data begins and ends. So a layer's bytes always map to
the same blocks (the same locators) in every image that has it, and a new
image version costs only its new layers: a block already in Keep (found
through the layer index or the resume journal) is not uploaded again, and a
layer the source can skip (:class:`~..image.StoredData`) is not even read.

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
from collections.abc import Callable, Iterable, Mapping
from typing import cast

from .. import stagetimes
from ..archive.layer_digests import Digests
from ..errors import BadArchive
from ..image import StoredData
from .layer_blocks import LayerBlocks
from .locators import locator_size
from .progress import Progress

#: Keep's block size.
BLOCK_SIZE = 1 << 26
#: Members at least this large get their own blocks (layers; never tiny JSON).
ALIGN_MIN = 64 * 1024
#: Blocks being uploaded at once (each holds up to 64 MiB of memory).
IN_FLIGHT = 2
#: With ``hold``, at most this many bytes outside layers wait for :meth:`BlockWriter.release`.
HOLD_LIMIT = 8 << 20


class _Held:
    """A block outside any layer, kept back until the run knows it must store it."""

    def __init__(self, block: bytes) -> None:
        self.block = block


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

    :meth:`when_stored` asks to be told the locators of a range of the
    stream (a layer's data, cut at both ends) once every block of it is in
    Keep, so that the journal records a layer only when it is whole.

    With ``hold``, blocks that hold no layer's bytes (tar headers, small
    documents: see :meth:`layer_at`), up to :data:`HOLD_LIMIT` bytes, are kept
    back until :meth:`release` (the image turned out to be new) and dropped by
    :meth:`abort` (it was stored already): an image read before it is known
    uploads nothing when it is stored already. :meth:`learn` adds known blocks
    while the stream goes on (a config read mid-stream names its layers).
    """

    def __init__(self, keep, copies: int, num_retries: int, progress: Progress,
                 known: dict[str, str] | None = None,
                 on_stored: Callable[[str], None] | None = None, hold: bool = False):
        self.keep = keep
        self.copies = copies
        self.num_retries = num_retries
        self.progress = progress
        self.known = dict(known or {})
        self.on_stored = on_stored
        self.position = 0
        self._buffer = bytearray(BLOCK_SIZE)
        self._fill = 0
        self._cuts: list[int] = []
        self._locators: list[str | concurrent.futures.Future | _Held] = []
        #: Where each entry of ``_locators`` starts in the stream, and its size.
        self._spans: list[tuple[int, int]] = []
        self._waiting: list[tuple[int, int, Callable[[list[str]], None]]] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(IN_FLIGHT, "keep-put")
        self._slots = threading.Semaphore(IN_FLIGHT)
        self._hold = hold
        self._held_bytes = 0
        #: ``[(start, end)]`` of layer data (never held).
        self._layers: list[tuple[int, int]] = []

    def layer_at(self, start: int, end: int) -> None:
        """Stream bytes ``[start, end)`` are a layer's data (cut at both ends)."""
        self._layers.append((start, end))

    def learn(self, known: Mapping[str, str]) -> None:
        """More blocks already in Keep, ``{"<md5>+<size>": locator}``, from now on."""
        for key, locator in known.items():
            self.known.setdefault(key, locator)

    @property
    def held(self) -> int:
        """Bytes kept back (see ``hold``)."""
        return self._held_bytes

    def release(self) -> None:
        """Store the blocks kept back, and hold no more."""
        self._hold = False
        for i, item in enumerate(self._locators):
            if isinstance(item, _Held):
                self._slots.acquire()
                try:
                    self._locators[i] = self._pool.submit(self._store, item.block)
                except BaseException:
                    self._slots.release()
                    raise
        self._held_bytes = 0
        self._check_waiting()

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
        start = self.position
        for locator in locators:
            self._locators.append(locator)
            self._spans.append((start, locator_size(locator)))
            start += locator_size(locator)
        self.position += size
        self._cuts = [c for c in self._cuts if c > self.position]
        self.progress.add(reused=size, written=size)
        self._check_waiting()

    def when_stored(self, start: int, end: int,
                    callback: Callable[[list[str]], None]) -> None:
        """Call ``callback(locators)`` once the blocks holding stream bytes
        ``[start, end)`` are all in Keep.

        Only for a range that starts and ends a block (cut at both ends, as
        layers are); for any other range, or if a block fails, it is never
        called. It may be called from a writer thread.
        """
        self._waiting.append((start, end, callback))
        self._check_waiting()

    def close(self) -> list[str]:
        """Store the last block, wait for every upload; return the locators in order."""
        self._flush()
        self.release()
        try:
            return [loc if isinstance(loc, str) else cast(concurrent.futures.Future,
                                                          loc).result()
                    for loc in self._locators]
        finally:
            self._pool.shutdown(wait=True)

    def abort(self) -> None:
        """Stop: cancel what has not started, drop what is held back."""
        self._locators = [loc for loc in self._locators if not isinstance(loc, _Held)]
        self._held_bytes = 0
        for loc in self._locators:
            if isinstance(loc, concurrent.futures.Future):
                loc.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- blocks --------------------------------------------------------------

    def _flush(self) -> None:
        if not self._fill:
            return
        start = self.position - self._fill
        if self._hold and self._held_bytes + self._fill <= HOLD_LIMIT and not any(
                begin <= start < end for begin, end in self._layers):
            self._locators.append(_Held(bytes(memoryview(self._buffer)[:self._fill])))
            self._spans.append((start, self._fill))
            self._held_bytes += self._fill
            self._fill = 0
            self._check_waiting()
            return
        # Wait for a free writer before copying the block out, so that at most
        # IN_FLIGHT blocks plus the buffer being filled are ever in memory.
        with stagetimes.stage("wait for a writer"):
            self._slots.acquire()
        try:
            block = bytes(memoryview(self._buffer)[:self._fill])
            self._fill = 0
            future = self._pool.submit(self._store, block)
        except BaseException:
            self._slots.release()
            raise
        self._locators.append(future)
        self._spans.append((self.position - len(block), len(block)))
        self._check_waiting()
        # Fail fast: an earlier upload's error surfaces at the next block.
        for done in [f for f in self._locators[-IN_FLIGHT - 1:-1]
                     if isinstance(f, concurrent.futures.Future) and f.done()]:
            done.result()

    def _check_waiting(self) -> None:
        """Watch the blocks of every waiting range that is now cut into blocks."""
        handed = self.position - self._fill  # every byte before this is in a block
        still = []
        for start, end, callback in self._waiting:
            if end > handed:
                still.append((start, end, callback))
                continue
            picked = [i for i, (at, _) in enumerate(self._spans) if start <= at < end]
            if picked and self._spans[picked[0]][0] == start and \
                    sum(self._spans[i][1] for i in picked) == end - start:
                _when_done([self._locators[i] for i in picked], callback)
        self._waiting = still

    def _store(self, block: bytes) -> str:
        """In a writer thread: reuse the block if Keep has it, else upload it."""
        try:
            if self.known:
                with stagetimes.stage("md5 (known blocks)"):
                    key = f"{hashlib.md5(block).hexdigest()}+{len(block)}"
                locator = self.known.get(key)
                if locator is not None:
                    self.progress.add(reused=len(block), written=len(block))
                    return locator
            with stagetimes.stage("keep put"):
                locator = self.keep.put(block, copies=self.copies,
                                        num_retries=self.num_retries)
            self.progress.add(uploaded=len(block), written=len(block))
            if self.on_stored is not None:
                self.on_stored(locator)
            return locator
        finally:
            self._slots.release()


def _when_done(items: list[str | concurrent.futures.Future | _Held],
               callback: Callable[[list[str]], None]) -> None:
    """``callback(locators)`` once every future of ``items`` has succeeded."""
    if any(isinstance(item, _Held) for item in items):
        return  # never for a layer's range, whose blocks are not held
    futures = [item for item in items if isinstance(item, concurrent.futures.Future)]
    lock = threading.Lock()
    left = [len(futures)]

    def finished(_future: concurrent.futures.Future | None = None) -> None:
        if _future is not None:
            with lock:
                left[0] -= 1
                if left[0]:
                    return
        if all(not f.cancelled() and f.exception() is None for f in futures):
            callback([item if isinstance(item, str) else cast(concurrent.futures.Future,
                                                              item).result()
                      for item in items])

    if not futures:
        finished()
    for future in futures:
        future.add_done_callback(finished)


def write_pieces(pieces: Iterable, tap, writer: BlockWriter,
                 stored: Mapping[str, LayerBlocks],
                 downloaded: Callable[[], int] | None = None) -> None:
    """Feed an export (bytes and StoredData pieces) through ``tap`` into ``writer``.

    ``tap`` (a :class:`~..archive.tap.TarTap` without a stream) learns the
    archive as it passes, checks every layer, and announces each member's
    data, so layers are cut on block boundaries; ``stored`` maps a skipped
    layer's digest to its blocks and recorded diff id. ``downloaded``, for
    an image that downloads (:attr:`~..image.Image.downloaded`), is read
    after each piece and its growth added to the progress.
    """
    progress = writer.progress
    seen = downloaded() if downloaded is not None else 0
    if stagetimes.ENABLED:
        pieces = _timed_pieces(pieces)
        tap = _Timed(tap, "feed", "tar walk + digests")
        writer = _Timed(writer, "write", "block copy")  # type: ignore[assignment]
    for piece in pieces:
        if downloaded is not None:
            now = downloaded()
            progress.add(downloaded=now - seen)
            seen = now
        if isinstance(piece, StoredData):
            layer = stored[piece.digest]
            if layer.size != piece.size:
                raise BadArchive(f"{tap.archive}: stored layer {piece.digest} is {layer.size} "
                                 "bytes in Keep, but the image "
                                 f"says {piece.size}")
            tap.skip(piece.size, Digests(piece.digest, layer.diff_id))
            writer.stored(layer.locators, piece.size)
            continue
        if not piece:
            continue
        progress.add(read=len(piece))
        tap.feed(piece)
        writer.write(piece)
    if downloaded is not None:
        progress.add(downloaded=downloaded() - seen)
    tap.finish()


# -- stage times (ARV_KEEPDOCKER_STAGE_TIMES only) ----------------------------------

def _timed_pieces(pieces: Iterable) -> Iterable:
    """``pieces``, the time spent waiting for each recorded as stage "export read"."""
    import time

    iterator = iter(pieces)
    while True:
        wall, cpu = time.monotonic(), time.thread_time()
        try:
            piece = next(iterator)
        except StopIteration:
            return
        finally:
            stagetimes.add("export read", time.monotonic() - wall, time.thread_time() - cpu)
        if piece:
            stagetimes.mark("export first byte")
        yield piece


class _Timed:
    """``target`` with one method's calls recorded as a stage (the rest passed through)."""

    def __init__(self, target, method: str, stage: str):
        self._target, self._method, self._stage = target, method, stage

    def __getattr__(self, name: str):
        attribute = getattr(self._target, name)
        if name != self._method:
            return attribute

        def timed(*args, **kwargs):
            with stagetimes.stage(self._stage):
                return attribute(*args, **kwargs)
        return timed
