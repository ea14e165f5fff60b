"""A compressed archive decompressed once: stored while the image is learnt.

A compressed tar cannot seek and ``docker save`` writes ``manifest.json``
last, so the image (its id, name, config, which members are its layers) is
known only once the whole stream has passed. Instead of a first pass to learn
it and a second to store it, :func:`store_read_once` reads the decompressed
stream once, through the same :class:`~..archive.tap.TarTap` and
:class:`~..keep.block_writer.BlockWriter` as any upload (layers cut on block
boundaries, every layer checked against its digest and diff id, the config
against its digest), and hands the pipeline a :class:`PendingTar`: the image
as read, and blocks that become a collection only if the pipeline commits
them (the image is new), after the usual reuse check, under the usual locks.

What Keep is spared, by what is known when:

* before anything is read: the blocks of the layers recorded most recently
  in the layer index (:data:`RECENT_RECORDS`; an earlier version's layers,
  the same image stored before) and this archive's own resume journal. A
  block of the stream with the same md5 and size is not uploaded (Keep
  addresses blocks by md5, so the bytes stored are the bytes read; no
  record is trusted for it);
* a ``blobs/sha256/<hex>`` layer (Docker 25+) is looked up by its name
  before its data passes; a config met in the stream (a ``<hex>.json`` or
  blob whose sha256 is its name and that lists diff ids) has every layer
  looked up, so the layers after it are not uploaded when stored;
* blocks outside layers (tar headers, small documents) are held back
  (``hold``, at most 8 MiB) until the image is known: an image already
  stored uploads nothing at all, when its layers were recorded.

A layer the stream passes before any of this names it, and that no recent
record holds, is uploaded as it passes: if the image turns out to be stored
(recorded elsewhere than the recent records), Keep stores no new bytes for it
(the same blocks), but the PUTs happen. Such blocks, like every block of a
run that fails (bad digest, truncated stream, kill), belong to no collection.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable

from ..archive.layer_digests import Digests
from ..archive.streamed import READ_CHUNK
from ..archive.streams import chunks_of
from ..archive.tap import BLOB, HEX_JSON, SeveralImages, TarTap
from ..hooktypes import LAYER_LINK
from ..image import Image, Layer
from ..keep.block_writer import BlockWriter, is_layer_member, write_pieces
from ..keep.journal import Journal
from ..keep.layer_links import layer_record
from ..keep.progress import Progress
from .context import RunContext
from .layer_trust import TrustRule, find_reusable_layers, reusable_layers
from .store import UploadedTar, aligned_layers, keep_client, run_journal

logger = logging.getLogger("arvados.keepdocker")

#: How many of the newest readable layer records have their blocks known before
#: the stream starts (one page of links, their collections' manifests).
RECENT_RECORDS = 500


class PendingTar:
    """An image read and stored once, its blocks not yet a tar the run keeps.

    :meth:`commit` stores what was held back and waits for every block: the
    :class:`~.store.UploadedTar` to record. :meth:`drop` (also on leaving a
    ``with``) discards what was held back, when the image was stored already
    or the run failed.
    """

    def __init__(self, writer: BlockWriter, tap: TarTap, journal: Journal,
                 progress: Progress) -> None:
        self.writer = writer
        self.tap = tap
        self.journal = journal
        self.progress = progress
        self.done = False

    def commit(self) -> UploadedTar:
        tap = self.tap
        self.done = True
        try:
            locators = self.writer.close()
        except BaseException:
            self.writer.abort()
            raise
        finally:
            self.journal.close()
        self.progress.finish()
        assert tap.config is not None and tap.config_digest is not None
        return UploadedTar(locators, self.writer.position, tap.config, tap.config_digest,
                           aligned_layers(tap), self.journal, tap.manifest_digest,
                           tap.index_digest)

    def drop(self) -> None:
        if not self.done:
            self.done = True
            self.writer.abort()
            self.journal.close()

    def __enter__(self) -> PendingTar:
        return self

    def __exit__(self, *exc) -> None:
        self.drop()


def store_read_once(ctx: RunContext, image: Image, rule: TrustRule
                    ) -> tuple[Image, PendingTar | None]:
    """Read ``image`` (a :class:`~..image.ReadOnce` source's) once, storing as it goes.

    Returns the image as read (id, name, config, layers checked) and its
    :class:`PendingTar`; or, for an archive of several images (one pass
    cannot tell which members to keep), the image as the source's first pass
    resolves it and ``None`` (stored by :func:`~.store.store_tar`, a second
    pass).
    """
    read_once = image.read_once
    assert read_once is not None and image.export is not None
    journal = run_journal(ctx, image.image_id)
    keep = keep_client(ctx)
    known = recent_blocks(ctx, rule)
    if ctx.resume:
        known.update(journal.read(keep, rule.valid_until).blocks)
    progress = Progress(ctx.progress, total=image.export_size,
                        estimated=image.export_size_estimated)
    writer = BlockWriter(keep, ctx.replication, ctx.retries, progress, known, journal.record,
                         hold=True)
    looked_up: set[str] = set()

    def look_up(digests: Iterable[str]) -> None:
        wanted = sorted({d for d in digests if d not in looked_up})
        if not wanted:
            return
        looked_up.update(wanted)
        layers = tuple(Layer(digest) for digest in wanted)
        found = find_reusable_layers(ctx, Image(image.image_id, image.source, layers=layers),
                                     rule)
        writer.learn(found.known_blocks)

    def align(name: str, offset: int, size: int) -> None:
        if is_layer_member(name, size):
            writer.cut_at(offset)
            writer.cut_at(offset + size)
            writer.layer_at(offset, offset + size)
            blob = BLOB.match(name)
            if blob:
                look_up(["sha256:" + blob.group(1)])

    def checked(name: str, offset: int, size: int, digests: Digests) -> None:
        diff_id = digests.diff_id
        if diff_id is not None and is_layer_member(name, size):
            writer.when_stored(offset, offset + size, lambda locators: journal.record_layer(
                digests.raw, diff_id, locators))

    def document(name: str, data: bytes) -> None:
        diff_ids = config_diff_ids(name, data)
        if diff_ids:
            look_up(diff_ids)

    tap = TarTap(None, archive=read_once.archive, on_data=align, on_member=checked,
                 on_document=document)
    pending = PendingTar(writer, tap, journal, progress)
    try:
        with image.export() as stream:
            write_pieces(chunks_of(stream, READ_CHUNK), tap, writer, {})
        assert tap.manifest is not None and tap.config is not None
        named = read_once.identify(tap.manifest)
    except SeveralImages:
        pending.drop()
        logger.info("%s holds several images: reading it again to store the one asked for",
                    read_once.archive)
        return read_once.resolve(), None
    except BaseException:
        pending.drop()
        raise
    assert tap.config_digest is not None
    learned = Image(image_id=tap.config_digest, source=named.source, repo_tag=named.repo_tag,
                    config=tap.config, manifest_digest=tap.manifest_digest,
                    index_digest=tap.index_digest, layers=tuple(aligned_layers(tap)),
                    export=named.export, export_size=writer.position)
    return learned, pending


def config_diff_ids(name: str, data: bytes) -> list | None:
    """The diff ids of ``data`` if it looks like an image config named by its digest."""
    named = HEX_JSON.match(name) or BLOB.match(name)
    if not named or hashlib.sha256(data).hexdigest() != named.group(1):
        return None
    try:
        config = json.loads(data)
    except (ValueError, RecursionError):
        return None
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        return None
    return diff_ids


def recent_blocks(ctx: RunContext, rule: TrustRule) -> dict[str, str]:
    """``{"<md5>+<size>": locator}`` of the newest readable layer records' blocks.

    Only compared with the bytes read (never trusted in their place), so any
    readable record will do; signatures must outlive the upload.
    """
    if RECENT_RECORDS <= 0:
        return {}
    links = ctx.api.links().list(
        filters=[["link_class", "=", LAYER_LINK]], order=["created_at desc"],
        limit=RECENT_RECORDS).execute(num_retries=ctx.retries).get("items") or []
    records = [record for record in map(layer_record, links) if record is not None]
    if not records:
        return {}
    none = Image("", "", layers=())
    found = reusable_layers(records, none, ctx.api, ctx.retries, rule)
    return dict(found.known_blocks)


__all__ = ["PendingTar", "RECENT_RECORDS", "config_diff_ids", "recent_blocks",
           "store_read_once"]
