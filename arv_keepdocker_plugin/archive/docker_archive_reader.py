"""Reading a docker-archive (``docker save`` / ``podman save`` output) on disk.

Both layouts are understood: the classic one (``<config hex>.json``,
``<v1 id>/layer.tar``) and Docker 25's (``blobs/sha256/<hex>`` plus
``index.json``); both carry ``manifest.json``, which is what we read. Opening
reads only tar headers and ``manifest.json``; nothing is extracted.

Export:

* an archive holding one image is the image's docker-archive already: it
  streams through byte for byte (checked on the way by
  :class:`~.tap.TarTap`);
* one image out of several is written on the fly as a new docker-archive
  holding only that image's members and a one-entry ``manifest.json``
  (and ``repositories``), never as a temporary copy.

:meth:`DockerArchive.export_pieces` gives the same stream as pieces, a
:class:`~..image.StoredData` standing for the data of each layer already
stored, which is then seeked over, never read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Generator, Iterator
from typing import cast

from ..errors import BadReference, ImageNotFound
from ..image import ByteStream, Layer, LayerSizes, Piece, StoredData
from ..names import matching
from . import safety, tarwrite
from .docker_archive_writer import one_image_tail
from .members import Member, OwnsMembers, TarMembers, open_regular_file, verified
from .safety import bad
from .streamed import ArchiveMembers, decompressed, open_archive, walk
from .streams import ChunkReader
from .tap import BLOB, HEX_JSON, TarTap, layer_digest
from .tarheaders import padding


@dataclasses.dataclass
class ArchiveEntry:
    """One image of the archive: an entry of its ``manifest.json``."""

    index: int
    config_name: str
    repo_tags: list[str]
    layer_names: list[str]
    layer_sources: dict

    def label(self) -> str:
        return "@{} ({})".format(self.index, ", ".join(self.repo_tags) or "untagged")


class DockerArchive(OwnsMembers):
    """A docker-archive file. Use as a context manager (or call :meth:`close`).

    :param path: the archive on disk.
    :raises BadArchive: missing, unreadable, truncated, unsafe, not a tar, no
        or malformed ``manifest.json``, a member it names is missing.
    """

    members: ArchiveMembers

    def __init__(self, path: str) -> None:
        self.path = path
        self.members = open_archive(path, allow_symlinks=True)
        #: ``gzip``, ``bzip2``, ``xz``, ``zstd`` or None (see :mod:`.streamed`).
        self.compression = getattr(self.members, "compression", None)
        try:
            self.entries = self._read_manifest()
        except BaseException:
            self.members.close()
            raise

    def _read_manifest(self) -> list[ArchiveEntry]:
        if self.members.find("manifest.json") is None:
            if self.members.find("index.json") is not None:
                raise bad(self.path, "no manifest.json: this is an OCI layout, use "
                          f"oci-archive:{self.path}")
            raise bad(self.path, "no manifest.json: not a docker-archive")
        data = self.members.read_json("manifest.json")
        if not isinstance(data, list) or not data:
            raise bad(self.path, "manifest.json lists no images")
        entries = []
        for n, item in enumerate(data):
            if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
                raise bad(self.path, f"manifest.json entry {n} has no Config")
            layers = item.get("Layers")
            if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
                raise bad(self.path, f"manifest.json entry {n} has no valid Layers")
            tags = item.get("RepoTags") or []
            if not isinstance(tags, list) or not all(isinstance(x, str) for x in tags):
                raise bad(self.path, f"manifest.json entry {n} has invalid RepoTags")
            sources = item.get("LayerSources") or {}
            if not isinstance(sources, dict):
                raise bad(self.path, f"manifest.json entry {n} has invalid LayerSources"
                          )
            self.members.get(item["Config"], "config")
            for layer in layers:
                self.members.get(layer, "layer")
            entries.append(ArchiveEntry(n, item["Config"], list(tags), list(layers), sources))
        return entries

    # -- selection -----------------------------------------------------------

    def describe(self) -> str:
        """What the archive holds, for messages: ``@0 (a:1), @1 (untagged)``."""
        return ", ".join(e.label() for e in self.entries)

    def select(self, index: int | None = None, repo_tag: str | None = None,
               transport: str = "docker-archive") -> ArchiveEntry:
        """The entry at ``@index``, the one tagged ``repo_tag``, or the only one."""
        if index is not None:
            if not 0 <= index < len(self.entries):
                raise ImageNotFound(f"{self.path}: no image @{index}; it holds {self.describe()}")
            return self.entries[index]
        if repo_tag is not None:
            found = self._by_tag(repo_tag)
            if not found:
                raise ImageNotFound(f"{self.path}: no image tagged {repo_tag}; it holds "
                                    f"{self.describe()}")
            if len(found) > 1:
                raise BadReference("{}: several images are tagged {}; choose one with "
                                   "{}:{}:@INDEX ({})".format(
                                       self.path, repo_tag, transport, self.path,
                                       ", ".join(e.label() for e in found)))
            return found[0]
        if len(self.entries) > 1:
            raise BadReference(f"{self.path} holds {len(self.entries)} images; choose one with "
                               f"{transport}:{self.path}:NAME:TAG or "
                               f":@INDEX ({self.describe()})")
        return self.entries[0]

    def _by_tag(self, repo_tag: str) -> list[ArchiveEntry]:
        return matching(repo_tag, self.entries, lambda e: e.repo_tags)

    # -- metadata ------------------------------------------------------------

    def config_bytes(self, entry: ArchiveEntry) -> bytes:
        """The config's bytes, checked against its name when the name is a digest."""
        member = self.members.get(entry.config_name, "config")
        data = self.members.read(member, "image config")
        digest = hashlib.sha256(data).hexdigest()
        named = BLOB.match(member.name) or HEX_JSON.match(member.name)
        if named and named.group(1) != digest:
            raise bad(self.path, f"config {entry.config_name!r} has sha256:{digest}, not the "
                                 "digest its name "
                      "says")
        return data

    def config(self, entry: ArchiveEntry) -> dict:
        """The parsed image config of ``entry``."""
        data = safety.parse_json(self.path, "image config", self.config_bytes(entry))
        if not isinstance(data, dict):
            raise bad(self.path, "image config is not a JSON object")
        return data

    def image_id(self, entry: ArchiveEntry) -> str:
        """``sha256:`` of the config bytes: the id ``docker load`` reports."""
        return "sha256:" + hashlib.sha256(self.config_bytes(entry)).hexdigest()

    def layer_members(self, entry: ArchiveEntry) -> list[Member]:
        """The regular member holding each layer's data (symlinks followed)."""
        return [self.members.get(name, "layer") for name in entry.layer_names]

    def layers(self, entry: ArchiveEntry, config: dict | None = None) -> list[Layer]:
        """:class:`Layer` records: digest from the blob name, else the diff id."""
        diff_ids = ((config or {}).get("rootfs") or {}).get("diff_ids") or []
        count = len(entry.layer_names)
        return [Layer(layer_digest(member.name, i, diff_ids, count), member.size)
                for i, member in enumerate(self.layer_members(entry))]

    # -- export --------------------------------------------------------------

    def export_length(self, entry: ArchiveEntry, config: dict | None = None
                      ) -> tuple[int | None, bool]:
        """``(length of export(entry), whether it is an estimate)``, no layer read.

        A plain archive of one image is exported as it is: its length. One
        image of several: the pieces of its export, every layer skipped (they
        add up to the stream). A compressed archive is read only in order:
        its members' sizes give an estimate.
        """
        members = [*self.layer_members(entry), self.members.get(entry.config_name, "config")]
        if self.compression is not None:
            return sum(512 + m.size + padding(m.size) for m in members) + 2048, True
        assert isinstance(self.members, TarMembers)
        if len(self.entries) == 1:
            return self.members.size, False
        stored = [layer.digest for layer in self.layers(entry, config)]
        if None in stored:
            return None, False
        pieces = _selected(self.members, self.path, entry, stored)
        return sum(p.size if isinstance(p, StoredData) else len(p) for p in pieces), False

    @contextlib.contextmanager
    def export(self, entry: ArchiveEntry, expected_id: str | None = None
               ) -> Iterator[ByteStream]:
        """A docker-archive stream of ``entry`` (see the module docstring).

        Reopens the file, so it works after :meth:`close`. With
        ``expected_id``, a single-image archive that changed since it was
        read is refused when the stream ends.
        """
        if self.compression is not None:
            with decompressed(self.path, self.compression) as stream:
                if len(self.entries) == 1:
                    yield _CheckedTap(stream, self.path, expected_id)
                    return
                with ChunkReader(_selected_stream(stream, self, entry)) as reader:
                    yield reader
            return
        if len(self.entries) == 1:
            with open_single(self.path, expected_id) as stream:
                yield stream
            return
        members = TarMembers(self.path, allow_symlinks=True)
        # With no layer skipped, every piece is bytes.
        with members, ChunkReader(cast(Iterator[bytes],
                                       _selected(members, self.path, entry))) as reader:
            yield reader

    @contextlib.contextmanager
    def export_pieces(self, entry: ArchiveEntry, skip: LayerSizes,
                      expected_id: str | None = None
                      ) -> Iterator[Generator[Piece, None, None]]:
        """:meth:`export` as pieces: bytes, and a :class:`StoredData` for the data
        of each layer member whose digest (as in :meth:`layers`) is in ``skip``.

        Reopens the archive and reads its headers and ``manifest.json`` again,
        so the pieces describe the file as it is; with ``expected_id``, an
        archive whose image changed is refused. Not for a compressed archive,
        which cannot be read but in order.
        """
        if self.compression is not None:
            raise bad(self.path, f"a {self.compression} archive is read whole; no layer can be "
                                 "skipped")
        with DockerArchive(self.path) as archive:
            if entry.index >= len(archive.entries):
                raise bad(self.path, f"changed while being read: no image @{entry.index} any "
                          "more")
            now = archive.entries[entry.index]
            image_id = archive.image_id(now)
            if expected_id and image_id != expected_id:
                raise bad(self.path, f"changed while being read: image id is now {image_id}, "
                          f"was {expected_id}")
            config = archive.config(now) if skip else None
            stored = [layer.digest if layer.digest in skip else None
                      for layer in archive.layers(now, config)]
            if len(archive.entries) == 1:
                pieces = _file_pieces(archive, now, image_id, stored)
            else:
                pieces = _selected(archive.members, archive.path, now, stored)
            try:
                yield pieces
            finally:
                pieces.close()


@contextlib.contextmanager
def open_single(path: str, expected_id: str | None = None) -> Iterator[ByteStream]:
    """The file itself, through a :class:`TarTap` that checks it as it passes."""
    with open_regular_file(path) as f:
        yield _CheckedTap(f, path, expected_id)


class _CheckedTap(TarTap):
    def __init__(self, stream, archive, expected_id):
        super().__init__(stream, archive)
        self._expected_id = expected_id

    def _finish(self) -> None:
        super()._finish()
        if self._expected_id and self.config_digest != self._expected_id:
            raise bad(self.archive, "changed while being read: image id is now "
                                    f"{self.config_digest}, "
                      f"was {self._expected_id}")


def _file_pieces(archive: DockerArchive, entry: ArchiveEntry, image_id: str,
                 stored: list[str | None]) -> Generator[Piece, None, None]:
    """The single-image archive file byte for byte, as :func:`open_single` gives it,
    but a :class:`StoredData` for the data of each layer whose ``stored`` digest
    is set (``stored`` runs along ``entry.layer_names``).

    What :class:`TarTap` checks on the way is checked here too: every
    ``blobs/sha256/<hex>`` member and the config against their digests, as
    they pass; the file must not change while it is read.
    """
    members = archive.members
    assert isinstance(members, TarMembers), "a compressed archive has no random access"
    # member name -> (member, StoredData, or digest to check)
    special: dict[str, tuple[Member, str | StoredData]] = {}
    for m in members.members.values():
        blob = BLOB.match(m.name)
        if blob and m.kind == safety.FILE:
            special[m.name] = (m, "sha256:" + blob.group(1))
    config = members.get(entry.config_name, "config")
    special[config.name] = (config, image_id)
    for m, digest in zip(archive.layer_members(entry), stored, strict=True):
        if digest is not None:
            special[m.name] = (m, StoredData(digest, m.size))
    pos = 0
    for m, what in sorted(special.values(), key=lambda s: s[0].offset):
        yield from members.span(pos, m.offset - pos)
        if isinstance(what, StoredData):
            yield what
        else:
            yield from verified(archive.path, f"member {m.name!r}",
                                members.chunks(m), what, m.size)
        pos = m.offset + m.size
    yield from members.span(pos, members.size - pos)
    members.check_unchanged()


def _selected(members: TarMembers, path: str, entry: ArchiveEntry,
              stored: list[str | None] | None = None
              ) -> Generator[Piece, None, None]:
    """The tar bytes of a docker-archive holding only ``entry``.

    With ``stored`` (a digest or ``None`` along ``entry.layer_names``), the
    data of each layer whose digest is set comes as a :class:`StoredData`,
    unread.
    """
    written = set()

    def member(name: str, what: str, digest: str | None = None,
               size: int | None = None,
               stored_as: str | None = None) -> Iterator[Piece]:
        norm = safety.normalize_member_name(path, name)
        if norm is None:
            raise bad(path, f"manifest.json names the archive root as a {what}")
        if norm in written:
            return
        written.add(norm)
        parent = norm.rpartition("/")[0]
        parts = parent.split("/") if parent else []
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in written:
                written.add(d)
                yield tarwrite.header(d, directory=True)
        m = members.get(name, what)
        blob = BLOB.match(m.name)
        if blob and digest is None:
            digest = "sha256:" + blob.group(1)
        if size is not None and size != m.size:
            raise bad(path, f"{what} {name!r} is {m.size} bytes, its descriptor says {size}")
        if stored_as is not None:
            yield from tarwrite.streamed_member(norm, m.size, [StoredData(stored_as, m.size)])
            return
        chunks = verified(path, f"{what} {name!r}", members.chunks(m), digest, size)
        yield from tarwrite.streamed_member(norm, m.size, chunks)

    tops = []
    for i, name in enumerate(entry.layer_names):
        src = entry.layer_sources
        blob = BLOB.match(safety.normalize_member_name(path, name) or "")
        desc = src.get("sha256:" + blob.group(1)) if blob else None
        size = desc.get("size") if isinstance(desc, dict) else None
        layer_dir = name.rpartition("/")[0]
        if not blob and layer_dir:
            for extra in ("VERSION", "json"):
                if members.find(layer_dir + "/" + extra) is not None:
                    yield from member(layer_dir + "/" + extra, "layer metadata")
        yield from member(name, "layer", size=size if isinstance(size, int) else None,
                          stored_as=stored[i] if stored else None)
        tops.append(blob.group(1) if blob else layer_dir)
    yield from member(entry.config_name, "config")
    yield from one_image_tail(entry.config_name, entry.repo_tags, entry.layer_names,
                              entry.layer_sources, tops[-1] if tops else "")


def _selected_stream(stream: ByteStream, archive: DockerArchive, entry: ArchiveEntry
                     ) -> Iterator[bytes]:
    """:func:`_selected` for a compressed archive: its members in stream order.

    The members ``entry`` needs (its layers, symlinked ones with their
    targets, their legacy ``VERSION``/``json`` and directories, its config)
    pass through as they are; everything else is skipped; a one-image
    ``manifest.json`` and ``repositories`` end the stream.
    """
    members, path = archive.members, archive.path
    keep: set[str] = set()

    def add(name: str) -> None:
        norm = safety.normalize_member_name(path, name)
        if norm is None:
            raise bad(path, "manifest.json names the archive root as a member")
        for target in (norm, members.checker.resolve(norm)):
            parts = target.split("/")
            keep.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))

    tops = []
    for name in entry.layer_names:
        add(name)
        blob = BLOB.match(safety.normalize_member_name(path, name) or "")
        layer_dir = name.rpartition("/")[0]
        if not blob and layer_dir:
            for extra in ("VERSION", "json"):
                if members.find(layer_dir + "/" + extra) is not None:
                    add(layer_dir + "/" + extra)
        tops.append(blob.group(1) if blob else layer_dir)
    add(entry.config_name)
    checker = safety.MemberChecker(path, allow_symlinks=True)
    for walked, data in walk(stream, path, checker):
        if walked.name in keep:
            yield walked.header
            yield from data
            yield b"\0" * padding(walked.size)
    yield from one_image_tail(entry.config_name, entry.repo_tags, entry.layer_names,
                              entry.layer_sources, tops[-1] if tops else "")
