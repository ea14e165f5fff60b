"""Compressed archives (``docker save | gzip``, bzip2, xz, zstd), read as streams.

A compressed tar cannot seek, and ``docker save`` writes ``manifest.json``
last, so nothing says which image it holds or which members are its layers
until the whole stream has passed. It is never written out:

* a single image (``docker-archive:PATH``, ``PATH:NAME:TAG``, an OCI layout
  tar of one image) is decompressed **once**: :func:`decompressed` gives the
  stream (decompressed in a thread, a few MiB ahead of the reader) and the
  core stores it while learning the image (``steps/one_pass.py``); an OCI
  layout is converted as it passes with :class:`PassedMembers`;
* one image out of several (``PATH:@INDEX``, an archive that turns out to
  hold several, a multi-platform layout) and a dry run take two passes:
  :class:`StreamMembers` walks the decompressed stream once and remembers
  every member (name, kind, size) and the small JSON documents, so the image
  is known before anything is stored; the export decompresses the file again
  and streams only the members the image needs (via :func:`walk`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import os
import queue
import threading
from collections.abc import Iterator
from typing import IO

from ..image import ByteStream
from . import safety, xz_threads
from .compression import SNIFF_BYTES, CompressionError, Decompressor, sniff
from .members import Member, MemberIndex, TarMembers, open_regular_file
from .safety import bad
from .streams import ChunkReader
from .tarheaders import BLOCK, Extensions, check_extension, is_extension, padding, parse_block
from .xz_threads import XzProcess

#: Compressed bytes read per call.
READ_CHUNK = 1 << 20
#: Small members kept in memory during the first pass (all JSON the image needs).
KEEP_LIMIT = safety.JSON_SIZE_LIMIT
#: Bound on all bytes kept at once.
KEEP_TOTAL = 64 << 20
#: Bytes kept from the start of every member (to recognise zstd layers).
HEAD_BYTES = 8


def compression_of(path: str) -> str | None:
    """The compression of the file at ``path`` (``None`` for a plain tar)."""
    with open_regular_file(path) as f:
        return sniff(f.read(SNIFF_BYTES))


def estimated_length(path: str, kind: str) -> int:
    """A guess at the decompressed length of ``path``, for the progress (never trusted).

    gzip's trailer says it (modulo 4 GiB, for the last member); any other
    stream, or a trailer that cannot be right, counts the compressed length.
    """
    with open_regular_file(path) as f:
        size = os.fstat(f.fileno()).st_size
        if kind == "gzip" and size >= 18:
            f.seek(size - 4)
            isize = int.from_bytes(f.read(4), "little")
            while isize < size and size > (1 << 32):
                isize += 1 << 32
            if isize >= size // 2:
                return isize
    return size


def placeholder_id(path: str) -> str:
    """An id for a compressed archive read once, until its stream has said the image's.

    Made of the file's identity (path, inode, size, modification time), so
    the resume journal of an interrupted upload of the same file is found
    again under it.
    """
    st = os.stat(path)
    identity = f"{os.path.realpath(path)}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}"
    return "sha256:" + hashlib.sha256(identity.encode()).hexdigest()


def open_archive(path: str, allow_symlinks: bool = False) -> ArchiveMembers:
    """The members of an archive file: listed by seeking, or learnt by a first pass."""
    kind = compression_of(path)
    if kind is None:
        return TarMembers(path, allow_symlinks)
    return StreamMembers(path, kind, allow_symlinks)


#: Decompressed pieces (at most 1 MiB each) waiting for the reader.
AHEAD = 8


@contextlib.contextmanager
def decompressed(path: str, kind: str) -> Iterator[ByteStream]:
    """The decompressed bytes of ``path`` as a stream; a corrupt or truncated file fails.

    A thread decompresses (zlib, bz2, lzma and zstd release the GIL while they
    work) up to :data:`AHEAD` pieces ahead of the reader, so decompressing and
    what the reader does with the bytes (hashing, storing) share two cores.
    """
    f = open_regular_file(path)
    processes: list[XzProcess] = []
    pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(AHEAD)
    stop = threading.Event()

    def put(item: bytes | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                pieces.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for piece in decompress_file(f, kind, processes):
                if not put(piece):
                    return
            put(None)
        except CompressionError as error:
            put(bad(path, str(error)))
        except BaseException as error:  # noqa: BLE001 - handed to the reader
            put(error)

    def chunks() -> Iterator[bytes]:
        while True:
            item = pieces.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    thread = threading.Thread(target=produce, name="decompress", daemon=True)
    thread.start()
    reader = ChunkReader(chunks())
    try:
        yield reader
    finally:
        stop.set()
        for process in list(processes):
            process.close()  # a reader that stopped early: xz stops too
        reader.close()
        thread.join()
        f.close()


def decompress_file(f: IO[bytes], kind: str, processes: list[XzProcess]) -> Iterator[bytes]:
    """The decompressed pieces of the open file ``f``; a corrupt or truncated stream fails.

    xz goes to the ``xz`` command where it can decompress on every core
    (:mod:`.xz_threads`, which is added to ``processes`` for the caller to
    stop); everything else, and xz without that command, to :class:`Decompressor`.
    """
    argv = xz_threads.command() if kind == "xz" else None
    if argv is not None:
        process = XzProcess(f, argv)
        processes.append(process)
        yield from process.pieces()
        return
    decompressor = Decompressor(kind)
    while True:
        data = f.read(READ_CHUNK)
        if not data:
            decompressor.end()
            return
        yield from decompressor.feed(data)


@dataclasses.dataclass
class Walked:
    """One member met by :func:`walk`: what it is, its header bytes, where it is."""

    name: str | None   # normalized; None for the archive root
    kind: str
    size: int             # data bytes that follow the header
    linkname: str
    header: bytes         # the raw header block(s), extensions included
    offset: int           # where its data starts in the uncompressed stream


def walk(stream: ByteStream, archive: str, checker: safety.MemberChecker
         ) -> Iterator[tuple[Walked, Iterator[bytes]]]:
    """Each member of a tar stream with an iterator over its data.

    The consumer may read the data iterator or not; what it leaves unread
    is skipped before the next member. Padding is skipped too.
    """
    pos = 0
    extensions = Extensions(archive)
    prefix = b""
    while True:
        block = _read_exact(stream, BLOCK, archive, "a header", allow_empty=True)
        if not block:
            return  # the end, without end-of-archive blocks
        info = parse_block(archive, block, pos)
        pos += BLOCK
        if info is None:
            if pos == BLOCK:
                raise bad(archive, "not a tar archive (starts with a zero block)")
            return
        if is_extension(info):
            size = check_extension(archive, info)
            extension = _read_exact(stream, size + padding(size), archive,
                                    "a tar extension header")
            extensions.add(info, extension[:size])
            prefix += block + extension
            pos += len(extension)
            continue
        member = extensions.apply(info)
        norm = checker.check(member.name, member.kind, member.linkname)
        size = member.size if member.kind == safety.FILE else info.size
        walked = Walked(norm, member.kind, size, member.linkname, prefix + block, pos)
        prefix = b""
        data = _DataReader(stream, size, archive, norm or member.name)
        yield walked, iter(data)
        data.skip_rest()
        pos += size
        skipped = _read_exact(stream, padding(size), archive, "padding")
        pos += len(skipped)


class _DataReader:
    def __init__(self, stream: ByteStream, size: int, archive: str, name: str) -> None:
        self.stream = stream
        self.left = size
        self.archive = archive
        self.name = name

    def __iter__(self) -> Iterator[bytes]:
        while self.left:
            data = self.stream.read(min(self.left, READ_CHUNK))
            if not data:
                raise bad(self.archive, f"truncated archive (ends inside {self.name!r})")
            self.left -= len(data)
            yield data

    def skip_rest(self) -> None:
        for _ in self:
            pass


def _read_exact(stream: ByteStream, size: int, archive: str, what: str,
                allow_empty: bool = False) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < size:
        data = stream.read(size - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    out = b"".join(parts)
    if got < size and not (allow_empty and got == 0):
        raise bad(archive, f"truncated archive (ends inside {what})")
    return out


class StreamMembers(MemberIndex):
    """The members of a compressed archive, learnt in one pass (see the module docstring).

    Offers the reading interface of :class:`~.members.MemberIndex` for what
    was kept (small documents); the data of other members is read again by
    the second pass, never from here.
    """

    def __init__(self, path: str, kind: str, allow_symlinks: bool = False) -> None:
        self.path = path
        self.archive = path
        self.compression = kind
        self.checker = safety.MemberChecker(path, allow_symlinks)
        self.members: dict[str, Member] = {}
        self.kept: dict[str, bytes] = {}
        self.heads: dict[str, bytes] = {}
        kept_total = 0
        with decompressed(path, kind) as stream:
            for walked, data in walk(stream, path, self.checker):
                if walked.name is None:
                    continue
                self.members[walked.name] = Member(walked.name, walked.kind, walked.size
                                                   if walked.kind == safety.FILE else 0,
                                                   walked.offset, walked.linkname)
                if walked.kind != safety.FILE:
                    continue
                if walked.size <= KEEP_LIMIT and kept_total + walked.size <= KEEP_TOTAL:
                    body = b"".join(data)
                    if walked.size <= HEAD_BYTES or body[:1] in (b"{", b"["):
                        self.kept[walked.name] = body
                        kept_total += len(body)
                    self.heads[walked.name] = body[:HEAD_BYTES]
                else:
                    first = next(data, b"")
                    self.heads[walked.name] = first[:HEAD_BYTES]
        if not self.members:
            raise bad(path, f"empty {kind} stream, not a tar archive")

    # -- the TarMembers interface, for kept members ------------------------------

    def close(self) -> None:
        """Nothing stays open between passes."""

    def head(self, member: Member, size: int) -> bytes:
        return self.heads.get(member.name, b"")[:size]

    def chunks(self, member: Member) -> Iterator[bytes]:
        data = self.kept.get(member.name)
        if data is None:
            raise bad(self.archive, f"{member.name!r} is not a small document; it is read while "
                                    "the "
                      "archive streams")
        yield data


class PassedMembers(StreamMembers):
    """:class:`StreamMembers` learnt while the stream is stored (one pass, no first pass).

    :meth:`note` is shown every member as :func:`walk` meets it: small JSON
    documents are kept (bounded as for :class:`StreamMembers`) and the data
    of any other member is handed back, for the caller to pass on.
    """

    def __init__(self, path: str, kind: str, allow_symlinks: bool = False) -> None:  # noqa: D107
        self.path = path
        self.archive = path
        self.compression = kind
        self.checker = safety.MemberChecker(path, allow_symlinks)
        self.members = {}
        self.kept = {}
        self.heads = {}
        self._kept_total = 0

    def note(self, walked: Walked, data: Iterator[bytes]) -> Iterator[bytes] | None:
        """Remember ``walked``; its data unless it was kept (a small document)."""
        if walked.name is None:
            return None
        size = walked.size if walked.kind == safety.FILE else 0
        self.members[walked.name] = Member(walked.name, walked.kind, size, walked.offset,
                                           walked.linkname)
        if walked.kind != safety.FILE:
            return None
        first = next(data, b"")
        self.heads[walked.name] = first[:HEAD_BYTES]
        if first[:1] in (b"{", b"[") and walked.size <= KEEP_LIMIT \
                and self._kept_total + walked.size <= KEEP_TOTAL:
            body = first + b"".join(data)
            self.kept[walked.name] = body
            self._kept_total += len(body)
            return None
        return itertools.chain([first] if first else [], data)


#: The members of an archive file, however it is read.
ArchiveMembers = TarMembers | StreamMembers
