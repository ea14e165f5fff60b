"""One ``arv keepdocker IMAGE`` run, step by step.

1 resolve -> 2 check format -> 3 reuse, or store -> 4 record (steps 3 and 4
under the local lock per image id; writes to Arvados under the lock Arvados
enforces, :mod:`..keep.arvados_lock`).

Mirrors arv-keepdocker 3.2.1's ``main`` (``sdk/python/arvados/commands/
keepdocker.py``) with the engine-specific parts behind the source hooks and
the Arvados records behind the linking hooks. Nothing half-written is left
in Arvados: the collection is created only after every byte is in Keep, born
pending (due for the trash) until all its links exist, and if a link fails,
what this run created is removed again (:mod:`.record`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import time
from contextlib import AbstractContextManager
from typing import Any

from .. import stagetimes
from ..errors import FormatRefused, KeepdockerError
from ..hooktypes import FormatVerdict
from ..image import Image, Reference
from ..keep.arvados_lock import ArvadosLock
from ..keep.local_lock import image_lock
from ..keep.progress import Progress
from .context import RunContext
from .hints import with_hint
from .layer_trust import TrustRule, find_reusable_layers
from .one_pass import PendingTar, store_read_once
from .outcome import STORED, NotingRecorder, Outcome
from .record import default_collection_name
from .registry_fallback import FromRegistry, fallback_for_pull
from .resolve import choose_source, resolve_image
from .reuse import Reuser, sweep_pending
from .store import store_tar

logger = logging.getLogger("arvados.keepdocker")
put_logger = logging.getLogger("arvados.arv_put")


def run(api, pm, options: argparse.Namespace,
        resolved: FromRegistry | None = None) -> Outcome:
    """Upload or reuse ``options.image``; return what was done (nothing printed on stdout).

    With ``options.dry_run`` nothing is written anywhere: the run stops where
    it would first write (no lock is taken, no block uploaded) and says what
    it would have done. ``resolved`` is an image the caller already resolved
    in its registry (the cwl launcher's check did): step 1 is then skipped.
    """
    put_logger.setLevel(logging.WARNING if options.silent else logging.INFO)
    dry_run = bool(getattr(options, "dry_run", False))
    # 1. resolve (the reference is parsed before any request: a typo costs nothing)
    # (a name found nowhere whose NAME looks like a mistyped transport gets a hint)
    if resolved is None:
        source, reference, by_default = with_hint(
            lambda: choose_source(pm, options), pm.sources, options.image,
            not getattr(options, "source", None))
        # --pull with no engine answering: the name's registry (registry_fallback)
        resolved = fallback_for_pull(pm, options, source, reference, by_default)
    if resolved is not None:
        options = resolved.options_for(options)
        with stagetimes.stage("run context"):
            ctx = RunContext.build(api, pm, options)
        reference, image = resolved.reference, resolved.image
    else:
        with stagetimes.stage("run context"):
            ctx = RunContext.build(api, pm, options)
        with stagetimes.stage("resolve"):
            image = with_hint(lambda: resolve_image(ctx, source, reference, by_default),
                              pm.sources, reference.raw, by_default)
    # A compressed archive is decompressed once: stored as it is read, learning
    # the image (steps/one_pass.py); its blocks become a collection only below.
    pending: PendingTar | None = None
    if image.read_once is not None:
        if dry_run:
            image = image.read_once.resolve()
        else:
            with stagetimes.stage("store"):
                image, pending = store_read_once(ctx, image, trust_rule(ctx, image))
    # 2. check format
    try:
        check_format(ctx, image)
    except BaseException:
        if pending is not None:
            pending.drop()
        raise
    repo_tag = linked_repo_tag(image, reference)
    recorder = NotingRecorder(ctx, dry_run)
    with (contextlib.nullcontext() if dry_run else image_lock(image.image_id)), \
            (pending or contextlib.nullcontext()):
        # 3. reuse, or store
        def lock(image_id: str) -> AbstractContextManager[Any]:
            if dry_run:
                return contextlib.nullcontext()
            return ArvadosLock(api, ctx.owner_uuid, image_id, ctx.retries, ctx.user_uuid)

        reuser = Reuser(ctx, recorder, lock)

        def name_for(found: Image) -> str:
            return collection_name(ctx, found, repo_tag)

        if not ctx.force:
            with stagetimes.stage("reuse"):
                record = reuser.reuse(image, repo_tag, name_for)
            if record is not None:
                return recorder.reused(image, record, repo_tag)
        if image.export is None and ctx.force:
            raise KeepdockerError(f"image {image.image_id} is only available from Arvados, so it "
                                  "cannot be uploaded again with --force")
        if image.export is None:
            raise KeepdockerError(f"no copy of image {image.image_id} in Arvados can be used (see "
                                  "the warnings above), and no source has it")
        if dry_run:
            return Outcome(STORED, image, None, repo_tag, dry_run=True)
        with contextlib.ExitStack() as exporting:
            source_image = image
            if pending is None:
                image = start_export(exporting, image)
            if not image.provisional_id:
                # A collection named like the lock that is no lease must cost
                # seconds, not the upload: refuse it before any block is stored
                # (a compressed archive read once: before its blocks are kept).
                ArvadosLock(api, ctx.owner_uuid, image.image_id, ctx.retries,
                            ctx.user_uuid).check()
            if pending is not None:
                progress = pending.progress
                with stagetimes.stage("last blocks"):
                    tar = pending.commit()
            else:
                rule = trust_rule(ctx, image)
                with stagetimes.stage("layer trust"):
                    reusable = find_reusable_layers(ctx, image, rule)
                progress = Progress(ctx.progress, downloads=image.downloaded is not None,
                                    total=image.export_size,
                                    estimated=image.export_size_estimated)
                with stagetimes.stage("store"):
                    tar = store_tar(ctx, image, reusable, rule.valid_until, progress)
            image = tar.stored_image(source_image)
        name = collection_name(ctx, image, repo_tag)
        # 4. record, under the lock Arvados enforces: a run on another machine
        # that stored the same image meanwhile wins, and this one adopts its copy.
        with lock(image.image_id), stagetimes.stage("record"):
            if not ctx.force:
                recorder.applied = None
                record = reuser.reuse(image, repo_tag, name_for, locked=True)
                if record is not None:
                    tar.journal.discard()
                    return dataclasses.replace(recorder.reused(image, record, repo_tag),
                                               progress=progress)
            sweep_pending(api, ctx.owner_uuid, image.image_id, ctx.retries, ctx.writer_rule)
            record = recorder.create(image, repo_tag, name, tar.manifest_text(image.image_id))
        tar.journal.discard()
    # What arv-put says at the end of a 3.2.1 upload.
    put_logger.info("Collection saved as '%s'", record["name"])
    return Outcome(STORED, image, record, repo_tag, progress=progress)


def start_export(stack: contextlib.ExitStack, image: Image) -> Image:
    """Start the export now, while Arvados is asked about the layers and the lock.

    Only once no usable copy is in Arvados (the caller's reuse step said so),
    and only for an image that streams whole (``export``, no
    ``export_pieces``: which layers a piecewise export skips is known only
    after the lookups). An engine takes its time before the first byte
    (Docker 20.10 writes the whole export to its disk first); that time now
    runs beside the lookups. ``stack`` ends the export (and reaps it) when
    the store step is done or has failed.
    """
    if image.export is None or image.export_pieces is not None:
        return image
    stream = stack.enter_context(image.export())
    return dataclasses.replace(image, export=lambda: contextlib.nullcontext(stream))


#: Reused blocks must stay valid this long after the upload starts...
SIGNATURE_MARGIN = 3600
#: ... plus one second per this many bytes of the image (1 MiB/s, a slow link).
SLOW_UPLOAD_BYTES_PER_SECOND = 1 << 20
#: ... taking a compressed archive's export to be this many times its size.
READ_ONCE_RATIO = 8


def trust_rule(ctx: RunContext, image: Image) -> TrustRule:
    """Records this user wrote for what is still stored; blocks that outlive the upload."""
    size = sum(layer.size or 0 for layer in image.layers)
    if image.read_once is not None:  # a compressed archive: its export is larger
        size = READ_ONCE_RATIO * (image.export_size or 0)
    return TrustRule(writer=ctx.writer_rule,
                     valid_until=time.time() + SIGNATURE_MARGIN
                     + size / SLOW_UPLOAD_BYTES_PER_SECOND)


def check_format(ctx: RunContext, image: Image) -> None:
    """Every ``keepdocker_check_format`` verdict counts; any refusal refuses.

    Messages are logged as arv-keepdocker 3.2.1 logs its own: a warning
    when the cluster lists no formats, else an error; ``--force-image-format``
    then turns the refusal into the warning "forcing incompatible image".
    """
    formats = list(ctx.formats) if ctx.formats is not None else None
    verdicts = [FormatVerdict(*v) for v in ctx.pm.hook.keepdocker_check_format(
        image=image, supported_formats=formats, options=ctx.options) if v is not None]
    refusals = [v for v in reversed(verdicts) if not v.ok]
    if not refusals:
        return
    for verdict in refusals:
        if verdict.message:
            (logger.warning if not formats else logger.error)(verdict.message)
    if ctx.force_image_format:
        logger.warning("forcing incompatible image")
        return
    raise FormatRefused(
        "refusing to store incompatible format (use --force-image-format to override)")


def linked_repo_tag(image: Image, reference: Reference) -> str | None:
    """The ``repo:tag`` to link; none when the user typed an id (3.2.1's test)."""
    repo_tag = image.repo_tag
    if repo_tag and reference.name and image.image_id.startswith(reference.name.lower()):
        return None
    return repo_tag


def collection_name(ctx: RunContext, image: Image, repo_tag: str | None) -> str:
    return ctx.collection_name or default_collection_name(image.image_id, repo_tag)
