"""Listing and reading the members of an image archive on disk, without extracting.

A first pass reads only tar headers (seeking over data), checks each member
with :class:`~.safety.MemberChecker` and remembers where its data lives. Data is
then read by offset, in chunks, and can be checked against a sha256 digest
and size as it passes; :meth:`TarMembers.span` reads any stretch of the
file, headers included, for callers that pass the file through. An OCI
layout directory is served by the same interface (:class:`DirectoryMembers`)
so that readers need not care.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Generator, Iterator
from typing import IO, Protocol

from . import safety
from .safety import bad
from .tarheaders import BLOCK, Extensions, check_extension, is_extension, padding, parse_block

CHUNK = 1024 * 1024


@dataclasses.dataclass
class Member:
    """One member: normalized ``name``, ``kind`` (see :mod:`.safety`), data
    ``offset`` in the archive and ``size`` in bytes."""

    name: str
    kind: str
    size: int
    offset: int
    linkname: str = ""


class _Closable(Protocol):
    def close(self) -> None: ...


class OwnsMembers:
    """For readers that hold a ``members`` object: close it, also as a context manager."""

    members: _Closable

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.members.close()


class MemberIndex:
    """Looking members up by name and reading small ones: what every archive reader shares.

    Subclasses set ``archive`` (a name for messages), ``members`` (``{normalized
    name: Member}``) and ``checker`` (the :class:`~.safety.MemberChecker` that
    knows the symlinks), and implement :meth:`chunks`.
    """

    archive: str
    members: dict[str, Member]
    checker: safety.MemberChecker

    def chunks(self, member: Member) -> Iterator[bytes]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the reader holds open (nothing by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def find(self, name: str) -> Member | None:
        """The regular-file member called ``name`` (symlinks followed), or None."""
        norm = safety.normalize_member_name(self.archive, name)
        if norm is None:
            return None
        member = self.members.get(self.checker.resolve(norm))
        if member is None or member.kind != safety.FILE:
            return None
        return member

    def get(self, name: str, what: str | None = None) -> Member:
        """Like :meth:`find` but a missing member is a :class:`BadArchive`."""
        member = self.find(name)
        if member is None:
            raise bad(self.archive, "{} {!r} is missing from the archive".format(
                what or "member", name))
        return member

    def head(self, member: Member, size: int) -> bytes:
        """The first ``size`` bytes of a member's data (fewer if it is shorter)."""
        chunks = self.chunks(member)
        try:
            return next(chunks, b"")[:size]
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def read(self, member: Member, what: str) -> bytes:
        """All of a small member's data (capped like a JSON document)."""
        safety.check_size(self.archive, what, member.size)
        return b"".join(self.chunks(member))

    def read_json(self, name: str, what: str | None = None):
        """Parse the JSON member ``name``."""
        what = what or name
        return safety.parse_json(self.archive, what, self.read(self.get(name, what), what))


class TarMembers(MemberIndex):
    """The members of a tar file on disk (``docker save`` output, an OCI tar).

    :param path: the archive file.
    :param allow_symlinks: see :class:`~.safety.MemberChecker`.

    Opening lists every header; a missing, unreadable, truncated or non-tar
    file raises :class:`BadArchive`. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str, allow_symlinks: bool = False) -> None:
        self.path = path
        self.archive = path
        self.file: IO[bytes] = open_regular_file(path)
        try:
            self.identity = _identity(self.file)
            self.size = self.identity[1]
            self.checker = safety.MemberChecker(path, allow_symlinks)
            self.members: dict[str, Member] = {}
            self._list()
        except BaseException:
            self.file.close()
            raise

    def _list(self) -> None:
        """Walk the headers, seeking over data: never more than one header in memory."""
        f = self.file
        extensions = Extensions(self.path)
        pos = 0
        try:
            while pos < self.size:
                f.seek(pos)
                block = f.read(BLOCK)
                if len(block) < BLOCK:
                    raise bad(self.path, "not a tar archive (shorter than one header)"
                              if pos == 0 else "truncated archive (a header is cut short)")
                info = parse_block(self.path, block, pos)
                if info is None:
                    if pos == 0:
                        raise bad(self.path, "not a tar archive (starts with a zero block)")
                    break
                data_offset = pos + BLOCK
                if is_extension(info):
                    size = check_extension(self.path, info)
                    data = f.read(size)
                    if len(data) < size:
                        raise bad(self.path, "truncated archive (in a tar extension header)")
                    extensions.add(info, data)
                    pos = data_offset + size + padding(size)
                    continue
                member = extensions.apply(info)
                norm = self.checker.check(member.name, member.kind, member.linkname)
                skipped = member.size if member.kind == safety.FILE else info.size
                if data_offset + skipped > self.size:
                    raise bad(self.path, f"truncated archive (member {norm or member.name!r} ends "
                                         "past "
                              "the end of the file)")
                if norm is not None:
                    self.members[norm] = Member(norm, member.kind, member.size,
                                                data_offset, member.linkname)
                pos = data_offset + skipped + padding(skipped)
        except OSError as e:
            raise bad(self.path, f"unreadable tar archive ({e.strerror or e})") from None
        if self.size == 0:
            raise bad(self.path, "empty file, not a tar archive")

    def close(self) -> None:
        self.file.close()

    def chunks(self, member: Member) -> Generator[bytes, None, None]:
        """The data of ``member``, in chunks of at most 1 MiB."""
        return self.span(member.offset, member.size, f"in {member.name!r}")

    def span(self, offset: int, size: int, where: str | None = None
             ) -> Generator[bytes, None, None]:
        """``size`` bytes of the file from ``offset``, in chunks of at most 1 MiB."""
        self.file.seek(offset)
        left = size
        while left:
            data = self.file.read(min(left, CHUNK))
            if not data:
                raise bad(self.archive, "truncated archive ({})".format(
                    where or f"at offset {offset + size - left}"))
            left -= len(data)
            yield data

    def check_unchanged(self) -> None:
        """Refuse a file that was modified or resized since it was listed."""
        if _identity(self.file) != self.identity:
            raise bad(self.archive, "changed while being read")



def open_regular_file(path: str) -> IO[bytes]:
    """Open an archive for reading; refuse directories, FIFOs, devices and sockets.

    Opening a FIFO would wait for a writer forever, and a device may never
    end: both are refused before anything is read (``O_NONBLOCK`` only for
    the open itself).
    """
    if os.path.isdir(path):
        raise bad(path, "is a directory, not a tar archive (an OCI layout directory "
                  f"is read with oci:{path})")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise bad(path, f"cannot open ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise bad(path, "is not a regular file (a FIFO, device or socket), not an archive")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _identity(f: IO[bytes]) -> tuple:
    st = os.fstat(f.fileno())
    return st.st_ino, st.st_size, st.st_mtime_ns


class DirectoryMembers(TarMembers):
    """An OCI image layout directory, read through the :class:`TarMembers` interface.

    Only names the reader asks for are looked up; each must be a regular file
    that stays inside the directory once symlinks are resolved.
    """

    def __init__(self, path: str) -> None:  # noqa: D401 - no tar to list
        self.path = path
        self.archive = path
        if not os.path.isdir(path):
            if os.path.exists(path):
                raise bad(path, "is not a directory (an OCI layout directory was "
                          "expected)")
            raise bad(path, "no such directory")
        self.root = os.path.realpath(path)
        self.checker = safety.MemberChecker(path)
        self.members = {}

    def close(self) -> None:
        """Nothing stays open: each member's file is opened while it is read."""

    def find(self, name: str) -> Member | None:
        norm = safety.normalize_member_name(self.archive, name)
        if norm is None:
            return None
        full = os.path.join(self.path, *norm.split("/"))
        real = os.path.realpath(full)
        if os.path.commonpath([real, self.root]) != self.root:
            raise bad(self.archive, f"{norm!r} points outside the layout directory")
        try:
            st = os.stat(real)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return Member(norm, safety.FILE, st.st_size, 0, real)

    def chunks(self, member: Member) -> Generator[bytes, None, None]:
        try:
            f = open(member.linkname, "rb")
        except OSError as e:
            raise bad(self.archive, f"cannot read {member.name!r} ({e.strerror or e})") from None
        with f:
            left = member.size
            while left:
                data = f.read(min(left, CHUNK))
                if not data:
                    raise bad(self.archive, f"{member.name!r} shrank while being read")
                left -= len(data)
                yield data


def verified(archive: str, what: str, chunks: Iterator[bytes],
             digest: str | None, size: int | None) -> Iterator[bytes]:
    """Pass ``chunks`` through, checking their sha256 ``digest`` and ``size``.

    The check happens when the last chunk has gone by: a mismatch raises
    :class:`BadArchive` before the stream ends, so a consumer never sees a
    complete, wrong archive. ``digest`` (``sha256:<hex>``) or ``size`` may be
    ``None`` to skip that check; digests of another algorithm are refused.
    """
    algo, _, want = (digest or "").partition(":")
    if digest is not None and algo != "sha256":
        raise bad(archive, f"{what} has digest {digest!r}; only sha256 is supported")
    h = hashlib.sha256()
    n = 0
    for data in chunks:
        h.update(data)
        n += len(data)
        yield data
    if size is not None and n != size:
        raise bad(archive, f"{what} is {n} bytes, its descriptor says {size}")
    if digest is not None and h.hexdigest() != want:
        raise bad(archive, f"{what} has sha256:{h.hexdigest()}, its descriptor says {digest}")
