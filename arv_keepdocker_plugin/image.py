"""What flows between the command line, the sources and the upload pipeline.

* :class:`Reference` is what the user asked for, already split by its source.
* :class:`Image` is what a source hands over: identity, metadata and a way to
  export the image as a docker-archive stream (what ``docker load`` and
  crunch-run accept).
* :class:`ImageSource` is the base class for sources; third parties subclass
  it and register instances from the ``keepdocker_register_sources`` hook.

Images and layers are values: a stage that learns more about an image (the
upload learns the exported config and where each layer landed) makes a new
one with :func:`dataclasses.replace`, never changes the one it was given.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from collections.abc import Callable, Iterator, Mapping, Set
from contextlib import AbstractContextManager
from typing import Any, Protocol


@dataclasses.dataclass
class Reference:
    """A parsed image reference.

    ``transport`` is the source name the user typed (``docker-archive`` ...) or
    ``None`` for a bare ``NAME[:TAG]``. ``name`` and ``tag`` are the repository
    and tag exactly as they will be linked (``tag`` defaults to ``latest`` when a
    name is given). ``path`` is a file or directory for archive sources;
    ``index`` selects an image in a multi-image archive (``@INDEX``); ``ref``
    is an OCI ``org.opencontainers.image.ref.name``, or for ``docker://`` the
    fully qualified registry reference. ``image_id`` is set
    instead of ``name`` when the user gave an image id (``sha256:<hex>`` or a
    hex prefix). ``raw`` is what the user typed, for messages.
    """

    raw: str
    transport: str | None = None
    image_id: str | None = None
    name: str | None = None
    tag: str | None = None
    path: str | None = None
    index: int | None = None
    ref: str | None = None

    @property
    def repo_tag(self) -> str | None:
        if self.name is None:
            return None
        return "{}:{}".format(self.name, self.tag or "latest")

    @property
    def engine_target(self) -> str:
        """What an engine store looks up: the image id, else ``name:tag``."""
        target = self.image_id or self.repo_tag
        if target is None:
            raise ValueError(f"reference {self.raw!r} names no image")
        return target

    @property
    def file_path(self) -> str:
        """The archive or directory an archive transport reads."""
        if self.path is None:
            raise ValueError(f"reference {self.raw!r} names no path")
        return self.path


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer of an image, in the order of the image's ``manifest.json``.

    ``digest`` is the sha256 of the layer as stored in the archive (the diff id
    for an uncompressed layer, the blob digest for a compressed one); ``size``
    its length in bytes when known. The upload sets ``offset`` when the layer
    starts a Keep block, and ``diff_id`` (the sha256 of the uncompressed
    layer) once the bytes stored were checked against the config's diff id.
    """

    digest: str | None
    size: int | None = None
    #: Where the layer's data starts in the stored tar, once stored block-aligned.
    offset: int | None = None
    #: The checked diff id, once stored.
    diff_id: str | None = None


@dataclasses.dataclass(frozen=True)
class StoredData:
    """A placeholder in an export for layer data already stored in Keep.

    Sources that can skip reading a layer (archives and layouts on disk)
    yield this instead of the layer member's data bytes: the tar header and
    the padding around it are still yielded as bytes.
    """

    digest: str
    size: int


#: What the core passes to :attr:`Image.export_pieces`: the layers to skip,
#: ``{digest: size of the layer's data as stored}``. ``digest in skip``,
#: iteration and ``len`` work as they did on 0.2's set of digests.
LayerSizes = Mapping[str, int]


class SkippedLayers(Mapping[str, int]):
    """Deprecated (0.3.0; removed in 0.4): 0.2's name for what
    :attr:`Image.export_pieces` receives, now typed :data:`LayerSizes`.

    A read-only ``{digest: stored size}`` mapping; :attr:`sizes` is the
    mapping itself, as 0.2's frozenset carried it.
    """

    def __init__(self, sizes: Mapping[str, int]) -> None:
        warnings.warn("SkippedLayers is deprecated and will be removed in 0.4: "
                      "export_pieces receives a Mapping[str, int] (digest -> stored size)",
                      DeprecationWarning, stacklevel=2)
        self._sizes = dict(sizes)

    def __getitem__(self, digest: str) -> int:
        return self._sizes[digest]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sizes)

    def __len__(self) -> int:
        return len(self._sizes)

    @property
    def sizes(self) -> Mapping[str, int]:
        return self


def skipped_size(skip: LayerSizes | Set[str], digest: str) -> int | None:
    """Deprecated (0.3.0; removed in 0.4): ``skip.get(digest)``.

    The stored size of skipped layer ``digest``, from a :data:`LayerSizes`
    or from a 0.2 set carrying ``sizes``.
    """
    warnings.warn("skipped_size is deprecated and will be removed in 0.4: export_pieces "
                  "receives a Mapping[str, int]; use skip.get(digest)",
                  DeprecationWarning, stacklevel=2)
    sizes = skip if isinstance(skip, Mapping) else getattr(skip, "sizes", None)
    if isinstance(sizes, Mapping) and digest in skip:
        size = sizes.get(digest)
        return size if isinstance(size, int) else None
    return None


class ByteStream(Protocol):
    """What an export opens: ``read(n)`` gives at most ``n`` bytes, ``b""`` at the end.

    Binary files, pipes (``Popen.stdout``) and
    :class:`~.archive.streams.ChunkReader` are byte streams.
    """

    def read(self, size: int = -1, /) -> bytes: ...


#: What :attr:`Image.export_pieces` yields: bytes, or a placeholder for stored layer data.
Piece = bytes | StoredData


@dataclasses.dataclass(frozen=True)
class ReadOnce:
    """An image a source learns only by reading its export: a compressed archive.

    A compressed stream cannot seek, and ``docker save`` writes ``manifest.json``
    last, so nothing says which image it holds before the whole stream has
    passed. Rather than decompress it twice (once to learn the image, once to
    store it), the core stores the export as it reads it, learning the image on
    the way (:mod:`..steps.one_pass`), and then asks the source what it read:

    * ``identify(entry)``: the image of the archive's ``manifest.json`` entry
      (a dict: ``Config``, ``RepoTags``, ``Layers``), as ``resolve`` would have
      returned it, naming rules applied; the core then sets the config, id and
      layers it checked in the stream. A one-line error when the archive has no
      image so named;
    * ``resolve()``: the image by a first pass, as before (a dry run, several
      images), stored by a second.
    """

    identify: Callable[[dict[str, Any]], Image]
    resolve: Callable[[], Image]
    #: The archive, for messages.
    archive: str = "<image stream>"


@dataclasses.dataclass(frozen=True)
class Image:
    """An image a source can export.

    ``image_id`` is the config digest, ``sha256:<64 hex>`` (or 64 bare hex for a
    v1 image): the stored tar is ``<image_id>.tar`` and the ``docker_image_hash``
    link is named after it. ``repo_tag`` is what the user typed
    (``repo:tag``) or ``None`` when the image was given by id. ``config`` is the
    parsed image configuration (``created``, ``config.Labels``...), possibly
    empty when the source cannot read it cheaply before export.
    ``manifest_digest`` is the registry/OCI manifest digest when known, and
    ``index_digest`` the digest of the image index (a multi-platform image)
    it was chosen from. ``provisional_id`` is true when the source could only
    name the image by such a digest (Docker's containerd image store calls
    images by their manifest or index digest): ``image_id`` then holds that
    digest until the upload learns the config digest from the export.
    ``export`` opens a docker-archive byte stream of the image; call it as a
    context manager. Sources that cannot export (for instance an image only
    known from Arvados) leave it ``None``.

    ``downloaded``, for a source that downloads the image (a registry),
    gives the bytes it has received so far (documents and blobs); the
    progress shows them. ``manifest_digest`` and ``index_digest``, when a
    source sets them, are recorded as they are, even where the export had to
    describe the image with a manifest of its own (zstd layers stored
    decompressed).

    ``export_pieces``, optional, is ``export`` for sources that can skip
    reading layers: called with layer digests (as in ``layers``), it
    opens an iterator over the same stream as pieces, ``bytes`` or
    :class:`StoredData` standing for the data of a layer member whose digest
    is in the set (its header and padding still come as bytes). Joining the
    pieces with each placeholder replaced by that layer's bytes gives exactly
    the ``export`` stream. The core passes a :data:`LayerSizes` (each
    skipped layer's digest with the size of its data as stored), and every
    ``StoredData`` must carry that size.

    ``export_size`` is the length of the export stream in bytes when the
    source knows it before exporting (an archive's, a layout's, a registry
    image's from its manifests): the progress then shows a total, a
    percentage and the time left. ``export_size_estimated`` says it is only
    an estimate (an engine's reported image size): shown as ``~T``, the
    percentage stops at 99% until the end.
    """

    image_id: str
    source: str
    repo_tag: str | None = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    manifest_digest: str | None = None
    index_digest: str | None = None
    provisional_id: bool = False
    layers: tuple[Layer, ...] = ()
    export: Callable[[], AbstractContextManager[ByteStream]] | None = None
    export_pieces: Callable[[LayerSizes], AbstractContextManager[Iterator[Piece]]] | None = None
    downloaded: Callable[[], int] | None = None
    export_size: int | None = None
    export_size_estimated: bool = False
    #: Set when the image is learnt only as its export streams (see :class:`ReadOnce`):
    #: ``image_id`` is then a placeholder and ``provisional_id`` is true.
    read_once: ReadOnce | None = None

    def __post_init__(self) -> None:
        # Sources may pass a list; a value keeps a tuple.
        object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def created(self) -> str | None:
        """The config's ``created`` string, as arv-keepdocker links it."""
        return self.config.get("created")

    @property
    def labels(self) -> dict[str, Any]:
        """The image's labels (``config.Labels``), possibly empty."""
        return (self.config.get("config") or {}).get("Labels") or {}

    @property
    def format(self) -> str:
        """``v2`` for ``sha256:`` ids, ``v1`` for bare ids, else ``unknown``.

        The same rule as arv-keepdocker 3.2.1's ``docker_image_format``.
        """
        if self.image_id.startswith("sha256:"):
            return "v2"
        if ":" not in self.image_id:
            return "v1"
        return "unknown"


class ImageSource:
    """Base class for image sources.

    Subclasses set :attr:`name` (a containers-transports word such as
    ``docker-daemon``) and implement :meth:`parse` and :meth:`resolve`.
    Sources never talk to Arvados. A source's own command-line options come
    from its plugin's ``keepdocker_add_arguments`` hook, like any plugin's.
    """

    #: Transport name, typed by users as ``NAME:DETAILS``; also ``--source NAME``.
    name: str = ""
    #: One line for ``--help`` and ``--list-plugins``: what the source reads.
    description: str = ""
    #: True when the source can serve a bare ``NAME[:TAG]`` (an engine store).
    serves_bare_names: bool = False
    #: True for a transport typed ``NAME://DETAILS`` (skopeo's ``docker://``):
    #: only that prefix selects it, so ``NAME:TAG`` stays an image name
    #: (``docker:dind`` is the image ``docker`` with tag ``dind``).
    double_slash: bool = False
    #: What follows the prefix, for ``--help`` (``NAME[:TAG]``, ``PATH[:REF]``...).
    syntax: str = "DETAILS"
    #: True when the source reads ``options.platform`` (``--platform``) to choose
    #: one image of a multi-platform index. When it is False and ``--platform``
    #: is given, the run warns once that the flag is ignored.
    honours_platform: bool = False

    @property
    def prefix(self) -> str:
        """What a reference typed for this source starts with: ``NAME:`` or ``NAME://``."""
        return self.name + ("://" if self.double_slash else ":")

    def available(self, options: argparse.Namespace) -> bool:
        """Whether the source can answer now (engine present and running)."""
        return True

    def parse(self, details: str, tag: str | None) -> Reference:
        """Split ``details`` (the text after :attr:`prefix`) into a :class:`Reference`.

        ``tag`` is the separate tag argument, if given. Raise
        :class:`~arv_keepdocker_plugin.errors.BadReference` on malformed input.
        """
        raise NotImplementedError

    def pull(self, reference: Reference, options: argparse.Namespace) -> None:
        """Fetch the image into the source's store (``--pull``). Optional."""

    def resolve(self, reference: Reference, options: argparse.Namespace) -> Image:
        """Find the image and return it, ready to export.

        Raise :class:`~arv_keepdocker_plugin.errors.ImageNotFound` or
        :class:`~arv_keepdocker_plugin.errors.EngineUnavailable` when the image
        cannot be had (the pipeline may then fall back to a copy already in
        Arvados), :class:`~arv_keepdocker_plugin.errors.BadArchive` for a
        broken archive.
        """
        raise NotImplementedError
