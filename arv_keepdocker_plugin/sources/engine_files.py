"""An image read from the Docker engine's own files, where this process may read them.

``docker save`` in Docker's classic image store rebuilds every layer into a
temporary directory and only then sends the first byte (``image/tarexport/
save.go`` in moby): 1.2 s for 330 MiB here, during which the upload has
nothing to store, and a layer Keep already holds is rebuilt and sent all the
same. The engine rebuilds each layer from two things in its data root
(``DockerRootDir`` of ``docker info``), which a process on the engine's
machine with read access to it (root) can read as well:

* ``image/<driver>/imagedb/content/sha256/<hex>``: the image config, whose
  sha256 is the image id (``image/fs.go``);
* ``image/<driver>/layerdb/sha256/<chain id>/``: per layer, ``diff`` (its diff
  id), ``cache-id`` (its directory in the storage driver) and
  ``tar-split.json.gz`` (the tar's own bytes, :mod:`..archive.tar_split`);
  the chain id is the OCI image spec's ``ChainID`` of the diff ids up to it
  (``layer/layer.go``);
* the layer's files: ``vfs/dir/<cache-id>`` (driver ``vfs``) or
  ``overlay2/<cache-id>/diff`` (driver ``overlay2``).

So the docker-daemon source, when the engine is on a local unix socket,
keeps images in the classic store with one of those two drivers, and its
data root is readable here, writes the docker-archive itself (the shared
writer, :func:`~..archive.docker_archive_writer.to_docker_archive`): layers
rebuilt as they stream, the config as stored, a manifest of its own naming
the uncompressed layers. Nothing is taken on trust: the config is checked
against the image id, the core checks every layer against its diff id as it
passes, and files are opened beneath the layer's directory only, never
through a symbolic link. A layer Keep already holds is not read at all.

Anything missing or unexpected before the first byte (another driver, an
unreadable root, a layer the engine has not finished, a record that does not
parse) falls back to the engine's export, as before; after it, the upload
fails in one line and records nothing. ``ARV_KEEPDOCKER_ENGINE_FILES=0``
turns this off.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, cast

from ..archive.docker_archive_writer import (
    DocumentDigests,
    PlannedLayer,
    export_length,
    to_docker_archive,
)
from ..archive.streams import ChunkReader
from ..archive.tar_split import TarSplitError, assemble, tar_length
from ..errors import SourceError
from ..image import ByteStream, LayerSizes, Piece
from ..names import sha256_digest

logger = logging.getLogger("arvados.keepdocker")

#: Set to ``0`` to always use the engine's export.
SWITCH = "ARV_KEEPDOCKER_ENGINE_FILES"
#: Storage drivers whose layer directories hold exactly what the tar-split names.
LAYER_DIRS: Mapping[str, Callable[[str, str], str]] = {
    "vfs": lambda root, cache_id: os.path.join(root, "vfs", "dir", cache_id),
    "overlay2": lambda root, cache_id: os.path.join(root, "overlay2", cache_id, "diff"),
}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


class Unusable(Exception):
    """The engine's files cannot stand in for its export (the export is used)."""


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The OCI image spec's ``ChainID`` of each layer (``config.md``, "Layer ChainID")."""
    chain: list[str] = []
    for diff_id in diff_ids:
        chain.append(diff_id if not chain else "sha256:" + hashlib.sha256(
            f"{chain[-1]} {diff_id}".encode()).hexdigest())
    return chain


def _hex(digest: object) -> str:
    if not sha256_digest(digest):
        raise Unusable(f"unexpected digest {digest!r}")
    return cast(str, digest).split(":", 1)[1]


def _read(path: str, limit: int = 1 << 20) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as error:
        raise Unusable(f"cannot read {path}: {error.strerror}") from None
    if len(data) > limit:
        raise Unusable(f"{path} is larger than expected")
    return data


@dataclasses.dataclass
class LayerFiles:
    """Where one layer's tar-split record and files are."""

    diff_id: str
    record: str
    directory: str


class EngineFilesImage(DocumentDigests):
    """An image in a classic-store data root, written as a docker-archive on the fly."""

    def __init__(self, root: str, driver: str, image_id: str) -> None:
        self.path = f"docker-daemon:{image_id}"
        self.config_bytes = _read(os.path.join(root, "image", driver, "imagedb", "content",
                                               "sha256", _hex(image_id)), limit=64 << 20)
        if self.image_id != image_id:
            raise Unusable(f"the engine's stored config of {image_id} has another digest")
        try:
            self.config: dict[str, Any] = json.loads(self.config_bytes)
            diff_ids = list(self.config["rootfs"]["diff_ids"])
        except (ValueError, KeyError, TypeError):
            raise Unusable(f"the engine's stored config of {image_id} names no layers") from None
        for diff_id in diff_ids:
            _hex(diff_id)
        layer_dir = LAYER_DIRS[driver]
        self.layers: list[LayerFiles] = []
        for diff_id, chain_id in zip(diff_ids, chain_ids(diff_ids), strict=True):
            entry = os.path.join(root, "image", driver, "layerdb", "sha256", _hex(chain_id))
            if _read(os.path.join(entry, "diff")).decode(errors="replace").strip() != diff_id:
                raise Unusable(f"layer {chain_id} of {image_id} is not {diff_id}")
            cache_id = _read(os.path.join(entry, "cache-id")).decode(errors="replace").strip()
            if not cache_id or "/" in cache_id or cache_id in (".", ".."):
                raise Unusable(f"layer {chain_id} has cache id {cache_id!r}")
            record = os.path.join(entry, "tar-split.json.gz")
            directory = layer_dir(root, cache_id)
            if not (os.path.isfile(record) and os.path.isdir(directory)
                    and os.access(record, os.R_OK)
                    and os.access(directory, os.R_OK | os.X_OK)):
                raise Unusable(f"layer {diff_id} of {image_id}: no readable tar-split or "
                               "files here")
            self.layers.append(LayerFiles(diff_id, record, directory))
        self._planned: list[PlannedLayer] | None = None
        self._manifest: bytes | None = None

    # -- ImageDocuments ---------------------------------------------------

    manifest_media_type = OCI_MANIFEST

    @property
    def manifest_bytes(self) -> bytes:  # type: ignore[override]
        """An OCI manifest naming the uncompressed layers, as ``docker save`` (25+) writes."""
        if self._manifest is None:
            manifest = {
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": self.image_id,
                           "size": len(self.config_bytes)},
                "layers": [{"mediaType": layer.media_type, "digest": layer.digest,
                            "size": layer.size} for layer in self.planned_layers],
            }
            self._manifest = json.dumps(manifest, separators=(",", ":")).encode()
        return self._manifest

    # -- the archive ------------------------------------------------------

    @property
    def planned_layers(self) -> list[PlannedLayer]:
        """Each layer as its rebuilt tar (reads every tar-split record once)."""
        if self._planned is None:
            planned = []
            for layer in self.layers:
                try:
                    size = tar_length(layer.record)
                except TarSplitError as error:
                    raise Unusable(str(error)) from None
                descriptor = {"mediaType": OCI_LAYER, "digest": layer.diff_id, "size": size}
                planned.append(PlannedLayer(layer.diff_id, size, OCI_LAYER, descriptor))
            self._planned = planned
        return self._planned

    def layer_data(self, planned: PlannedLayer) -> tuple[int, Iterable[bytes]]:
        layer = next(layer for layer in self.layers if layer.diff_id == planned.digest)
        assert planned.size is not None
        return planned.size, _one_line(assemble(layer.record, layer.directory))

    def pieces(self, skip: LayerSizes) -> Generator[Piece, None, None]:
        return to_docker_archive(self, self.planned_layers, self.layer_data, None, skip)

    def length(self) -> int | None:
        return export_length(self, self.planned_layers)


def _one_line(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """A layer that cannot be rebuilt mid-stream is one line (the upload records nothing)."""
    try:
        yield from chunks
    except TarSplitError as error:
        raise SourceError(f"reading the engine's files of a layer failed: {error}; run again, "
                          f"or set {SWITCH}=0 to use the engine's export") from None


def engine_files(info: Mapping[str, Any], image_id: str) -> EngineFilesImage | None:
    """The image in the engine's data root, if it can be read from there; else None.

    ``info`` is the engine's ``docker info`` record (its socket being local).
    Only small files are read here (config, diff and cache ids): the
    tar-split records, which an already stored image never needs, are read
    when the export starts.
    """
    if os.environ.get(SWITCH, "1") == "0":
        return None
    root, driver = info.get("DockerRootDir"), info.get("Driver")
    if not isinstance(root, str) or driver not in LAYER_DIRS:
        return None
    if not os.access(os.path.join(root, "image", str(driver)), os.R_OK | os.X_OK):
        return None
    try:
        return EngineFilesImage(root, cast(str, driver), image_id)
    except Unusable as error:
        logger.debug("using the engine's export of %s: %s", image_id, error)
        return None


def exporters(image: EngineFilesImage,
              engine_export: Callable[[], AbstractContextManager[ByteStream]]
              ) -> tuple[Callable[[], AbstractContextManager[ByteStream]],
                         Callable[[LayerSizes], AbstractContextManager[Iterator[Piece]]]]:
    """``(export, export_pieces)`` for an :class:`~..image.Image` of ``image``.

    ``export`` falls back to ``engine_export`` when a tar-split record does
    not parse; ``export_pieces`` (which skips stored layers) fails then, in one line.
    """

    @contextlib.contextmanager
    def export() -> Iterator[ByteStream]:
        try:
            image.planned_layers  # noqa: B018 - every record parses before the first byte
        except Unusable as error:
            logger.debug("using the engine's export of %s: %s", image.image_id, error)
            with engine_export() as stream:
                yield stream
            return
        # With nothing skipped, every piece is bytes.
        with ChunkReader(cast(Iterator[bytes], image.pieces({}))) as reader:
            yield reader

    @contextlib.contextmanager
    def export_pieces(skip: LayerSizes) -> Iterator[Iterator[Piece]]:
        try:
            pieces = image.pieces(skip)
        except Unusable as error:
            raise SourceError(f"the engine's files of {image.image_id} cannot be read ({error});"
                              f" set {SWITCH}=0 to use the engine's export") from None
        try:
            yield pieces
        finally:
            pieces.close()

    return export, export_pieces
