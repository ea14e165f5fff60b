"""The store step: an image's docker-archive stream into Keep as one ``<id>.tar``.

:func:`store_tar` wires the parts together and returns a :class:`UploadedTar`:

* the export (a stream, or pieces that skip stored layers) passes through a
  :class:`~..archive.tap.TarTap`, which learns the archive as it goes (its
  config, the config digest that is the true image id, where each member's
  data lies) and announces each layer so that
* the :class:`~..keep.block_writer.BlockWriter` cuts a block wherever a layer begins
  and ends, reuses blocks already in Keep and uploads the rest;
* the :class:`~..keep.journal.Journal` records each stored block, and each layer
  once the tap has checked it and all its blocks are in Keep, so an
  interrupted upload run again uploads only what is missing, and does not
  even read (or download) the layers it had finished.

Nothing is written to the Arvados API here: the caller saves the collection
from :attr:`UploadedTar.locators` only once every block is stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import arvados.keep

from .. import stagetimes
from ..archive.layer_digests import Digests
from ..archive.streams import chunks_of
from ..archive.tap import TarTap
from ..image import Image, Layer
from ..keep.block_writer import BlockWriter, is_layer_member, write_pieces
from ..keep.journal import Journal
from ..keep.layer_blocks import LayerBlocks
from ..keep.locators import manifest_text
from ..keep.progress import Progress
from .context import RunContext
from .layer_trust import ReusableLayers


@dataclasses.dataclass
class UploadedTar:
    """An image tar whose blocks are all in Keep (no collection yet).

    :ivar locators: the signed block locators, in order.
    :ivar size: the tar's length in bytes.
    :ivar config: the image config read from the tar.
    :ivar config_digest: ``sha256:`` of the config bytes: the image id.
    :ivar layers: every layer as stored, with ``offset`` when block-aligned.
    :ivar journal: the resume journal, to discard once the collection exists.
    """

    locators: list[str]
    size: int
    config: dict[str, Any]
    config_digest: str
    layers: list[Layer]
    journal: Journal
    #: From the tar's ``index.json``, when it has one.
    manifest_digest: str | None = None
    index_digest: str | None = None

    def manifest_text(self, image_id: str) -> str:
        """The one-file manifest ``<image_id>.tar``."""
        return manifest_text(self.locators, self.size, f"{image_id}.tar")

    def stored_image(self, image: Image) -> Image:
        """``image`` as stored: the tar's config, id and layers are the truth.

        The engine may name the image otherwise (Docker's containerd store
        prints the manifest digest); the id is the config digest of what was
        exported, as ``docker load`` will report it. The digests the source
        names the image by (a registry's, an engine's RepoDigests) are kept as
        they are; the export's own ``index.json`` fills in what it did not know.
        """
        changes: dict[str, Any] = {"config": self.config, "layers": tuple(self.layers),
                                   "provisional_id": False}
        if self.config_digest != image.image_id and image.format == "v2":
            changes["image_id"] = self.config_digest
        # What the source calls the image by (a registry's digest from
        # RepoDigests, an OCI layout's manifest) stays: Docker 25+'s classic
        # store exports an index.json naming a manifest made at export time
        # (uncompressed layers) that no registry and no other store knows.
        # The archive's own index.json says it when the source could not:
        # Docker's containerd store exports the image as it was pulled.
        if self.manifest_digest is not None and not image.manifest_digest:
            changes["manifest_digest"] = self.manifest_digest
            changes["index_digest"] = self.index_digest or image.index_digest
        elif self.config_digest != image.image_id and not image.manifest_digest:
            changes["manifest_digest"] = image.image_id
        return dataclasses.replace(image, **changes)


def run_journal(ctx: RunContext, image_id: str) -> Journal:
    """This image's resume journal, emptied first unless the run resumes."""
    journal = Journal(image_id, enabled=ctx.use_cache,
                      token=getattr(ctx.api, "api_token", None))
    if not ctx.resume:
        journal.discard()
    return journal


def keep_client(ctx: RunContext):
    """The API client's Keep client (built on its first use), or a new one."""
    with stagetimes.stage("keep client"):
        return getattr(ctx.api, "keep", None) or arvados.keep.KeepClient(
            api_client=ctx.api, num_retries=ctx.retries)


def store_tar(ctx: RunContext, image: Image, reusable: ReusableLayers, valid_until: float,
              progress: Progress) -> UploadedTar:
    """Stream ``image`` into Keep blocks, layers aligned; reuse what is stored.

    ``valid_until``: blocks from the resume journal whose signatures expire
    before then are uploaded again. Layers in ``reusable.skip``, and the
    layers the journal has whole, are not read when the image can skip
    them (``export_pieces``).
    """
    journal = run_journal(ctx, image.image_id)
    keep = keep_client(ctx)
    known = dict(reusable.known_blocks)
    skip = dict(reusable.skip)
    if ctx.resume:
        resumed = journal.read(keep, valid_until)
        known.update(resumed.blocks)
        for digest, layer in journal_layers(image, resumed.layers).items():
            skip.setdefault(digest, layer)
    writer = BlockWriter(keep, ctx.replication, ctx.retries, progress, known, journal.record)

    def align(name: str, offset: int, size: int) -> None:
        if is_layer_member(name, size):
            writer.cut_at(offset)
            writer.cut_at(offset + size)

    def checked(name: str, offset: int, size: int, digests: Digests) -> None:
        diff_id = digests.diff_id
        if diff_id is not None and is_layer_member(name, size):
            writer.when_stored(offset, offset + size, lambda locators: journal.record_layer(
                digests.raw, diff_id, locators))

    tap = TarTap(None, archive=image.source, on_data=align, on_member=checked)
    meter = image.downloaded
    if meter is not None:
        progress.add(downloaded=meter())
    try:
        if image.export_pieces is not None and skip:
            sizes = MappingProxyType({digest: layer.size for digest, layer in skip.items()})
            with image.export_pieces(sizes) as pieces:
                write_pieces(pieces, tap, writer, skip, meter)
        else:
            assert image.export is not None
            with image.export() as stream:
                write_pieces(chunks_of(stream), tap, writer, {}, meter)
        with stagetimes.stage("last blocks"):
            locators = writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        journal.close()
    progress.finish()
    assert tap.config is not None and tap.config_digest is not None
    return UploadedTar(locators, writer.position, tap.config, tap.config_digest,
                     aligned_layers(tap), journal, tap.manifest_digest, tap.index_digest)


def journal_layers(image: Image, layers: Mapping[str, LayerBlocks]) -> dict[str, LayerBlocks]:
    """The journal's whole layers that are layers of ``image`` (same digest and size)."""
    sizes = {layer.digest: layer.size for layer in image.layers if layer.digest}
    return {digest: layer for digest, layer in layers.items()
            if digest in sizes and sizes[digest] in (None, layer.size)}


def aligned_layers(tap: TarTap) -> list[Layer]:
    """The image's layers as stored and checked: digests, size, offset when aligned."""
    names = (tap.manifest or {}).get("Layers") or []
    members = {name: (offset, size) for name, offset, size in tap.members}
    layers = []
    for name, digests in zip(names, tap.layer_digests, strict=True):
        member = tap.resolve(name)
        offset: int | None
        offset, size = members.get(member, (None, 0))
        aligned = offset is not None and is_layer_member(member, size)
        layers.append(Layer(digests.raw, size, offset if aligned else None, digests.diff_id))
    return layers
