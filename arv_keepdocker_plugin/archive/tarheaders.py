"""Tar headers, read one 512-byte block at a time: one parser for streams and files.

Each member is a header block, then its data padded to 512 bytes. A long
name, link target or size comes from a preceding PAX (``x``) or GNU
(``L``/``K``) extension member, whose data we read only up to
:data:`EXTENSION_LIMIT`: Python's ``tarfile`` would read a header of any
size into memory, so a hostile archive with a multi-gigabyte PAX header
could exhaust it. Two zero blocks (or one, then the end) end the archive.
"""

from __future__ import annotations

import dataclasses
import tarfile

from . import safety
from .safety import bad

BLOCK = 512
ZERO_BLOCK = b"\0" * BLOCK
#: Largest PAX / GNU long-name extension we accept.
EXTENSION_LIMIT = 1024 * 1024
EXTENSION_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE,
                   tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


def padding(size: int) -> int:
    """Bytes of padding after ``size`` bytes of member data."""
    return -size % BLOCK


def parse_block(archive: str, block: bytes, offset: int) -> tarfile.TarInfo | None:
    """The header at ``offset``; None for a zero block (the end of the archive)."""
    if block == ZERO_BLOCK:
        return None
    try:
        return tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError as e:
        if offset == 0:
            raise bad(archive, f"not a tar archive ({e})") from None
        raise bad(archive, f"corrupt tar header at offset {offset} ({e})") from None


def is_extension(info: tarfile.TarInfo) -> bool:
    return info.type in EXTENSION_TYPES


def check_extension(archive: str, info: tarfile.TarInfo) -> int:
    """The size of an extension member's data, refused when over the limit."""
    if info.size > EXTENSION_LIMIT:
        raise bad(archive, f"tar extension header of {info.size} bytes is too large")
    return info.size


@dataclasses.dataclass(frozen=True)
class Member:
    """A regular header with its extensions applied: what the member really is."""

    name: str
    linkname: str
    size: int
    kind: str


class Extensions:
    """Collects PAX/GNU extension values for the next regular header."""

    def __init__(self, archive: str) -> None:
        self.archive = archive
        self._pending: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, info: tarfile.TarInfo, data: bytes) -> None:
        """Take an extension member's data."""
        if info.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
            records = pax_records(self.archive, data)
            for key in ("path", "linkpath", "size"):
                if key in records:
                    self._pending[key] = records[key]
        elif info.type == tarfile.GNUTYPE_LONGNAME:
            self._pending["path"] = _c_string(data)
        elif info.type == tarfile.GNUTYPE_LONGLINK:
            self._pending["linkpath"] = _c_string(data)
        # Global PAX headers (XGLTYPE) apply to nothing we read.

    def apply(self, info: tarfile.TarInfo) -> Member:
        """The member ``info`` describes, with the pending extensions; clears them."""
        pending, self._pending = self._pending, {}
        size = info.size
        if "size" in pending:
            try:
                size = int(pending["size"])
            except ValueError:
                raise bad(self.archive, "malformed PAX size {!r}".format(
                    pending["size"])) from None
            if size < 0:
                raise bad(self.archive, "negative PAX size")
        kind = safety.member_kind(info)
        return Member(pending.get("path", info.name), pending.get("linkpath", info.linkname),
                      size if kind == safety.FILE else 0, kind)


def _c_string(data: bytes) -> str:
    return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def pax_records(archive: str, data: bytes) -> dict[str, str]:
    """Parse PAX extended header records ``"<len> <key>=<value>\\n"``."""
    records = {}
    pos = 0
    while pos < len(data):
        if data[pos:pos + 1] == b"\0":
            break
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise bad(archive, "malformed PAX header") from None
        record = data[space + 1:pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise bad(archive, "malformed PAX header")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records
