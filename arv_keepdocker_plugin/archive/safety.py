"""Safety rules for the members of an image archive, and capped JSON reading.

An image archive (``docker save`` output, an OCI layout tar) is a tar whose
*members* are image metadata and layer blobs. We never extract it, but we name
members to the user, look them up by name and pass the archive on to
``docker load``, so an archive whose member names could point outside it, or
that holds the same name twice (which copy would a loader use?), or device
files, is refused rather than interpreted.

Every refusal is a :class:`~arv_keepdocker_plugin.errors.BadArchive` with a
one-line message ``"<archive>: <what>"``.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from typing import Any

from ..errors import BadArchive

#: Largest manifest.json / index.json / image config / OCI manifest we parse.
JSON_SIZE_LIMIT = 4 * 1024 * 1024
#: Deepest nesting of a JSON document we accept. Image documents nest about
#: five deep; a document nested near the interpreter's recursion limit could
#: still be parsed and then fail wherever it is written out again.
JSON_DEPTH_LIMIT = 100
#: Most members an image archive may have. ``docker save`` writes four per
#: layer (Docker allows 127 layers), OCI layouts about three: 10,000 is far
#: beyond any real image, and bounds the memory and time spent listing.
MAX_MEMBERS = 10_000

FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
OTHER = "other"


def member_kind(info: tarfile.TarInfo) -> str:
    """A tar member's kind: FILE, DIR, SYMLINK, HARDLINK or OTHER (refused).

    Sparse files are OTHER: an image archive never holds one, and reading
    their data needs the sparse map, not a plain byte range.
    """
    if info.type in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE):
        return FILE
    if info.type == tarfile.DIRTYPE:
        return DIR
    if info.type == tarfile.SYMTYPE:
        return SYMLINK
    if info.type == tarfile.LNKTYPE:
        return HARDLINK
    return OTHER


def bad(archive: str, what: str) -> BadArchive:
    """A :class:`BadArchive` whose message is ``"<archive>: <what>"`` on one line."""
    text = f"{archive}: {what}"
    return BadArchive(" ".join(text.split("\n")))


def normalize_member_name(archive: str, name: str) -> str | None:
    """Return ``name`` without leading ``./`` and trailing ``/``, or refuse it.

    Returns ``None`` for the archive root itself (``.`` or ``./``), which some
    tools write and which names nothing. Absolute names and names with a
    ``..`` component are refused.
    """
    if not name:
        raise bad(archive, "member with an empty name")
    if "\x00" in name:
        raise bad(archive, f"member name {name!r} contains a NUL byte")
    if name.startswith("/"):
        raise bad(archive, f"member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise bad(archive, f"member {name!r} has a '..' path component")
    if not parts:
        return None
    return "/".join(parts)


class MemberChecker:
    """Check members one by one as an archive is listed.

    :param archive: the archive's name, for messages.
    :param allow_symlinks: ``docker save`` writes a layer shared by two images
        of one archive once and the second ``layer.tar`` as a relative symlink
        to it; OCI layouts have no links. Symlinks are only accepted when they
        resolve to another name inside the archive.

    Hard links, device files, FIFOs, sparse files and duplicate names are
    always refused (duplicate directory entries are harmless and accepted).
    """

    def __init__(self, archive: str, allow_symlinks: bool = False) -> None:
        self.archive = archive
        self.allow_symlinks = allow_symlinks
        self.kinds: dict[str, str] = {}
        self.symlinks: dict[str, str] = {}
        self.count = 0

    def check(self, name: str, kind: str, linkname: str = "") -> str | None:
        """Check one member; return its normalized name (``None`` for the root)."""
        norm = normalize_member_name(self.archive, name)
        self.count += 1
        if self.count > MAX_MEMBERS:
            raise bad(self.archive, f"more than {MAX_MEMBERS} members: not an image archive")
        if kind == OTHER:
            raise bad(self.archive, f"member {name!r} is a device, FIFO or other special "
                      "file, which an image archive never holds")
        if kind == HARDLINK:
            raise bad(self.archive, f"member {name!r} is a hard link, which an image "
                      "archive must not hold")
        if norm is None:
            if kind != DIR:
                raise bad(self.archive, f"member {name!r} is not a directory")
            return None
        previous = self.kinds.get(norm)
        if previous is not None and not (previous == DIR and kind == DIR):
            raise bad(self.archive, f"duplicate member {norm!r}")
        if kind == SYMLINK:
            if not self.allow_symlinks:
                raise bad(self.archive, f"member {norm!r} is a symbolic link, which this "
                          "kind of archive must not hold")
            self.symlinks[norm] = self.link_target(norm, linkname)
        self.kinds[norm] = kind
        return norm

    def link_target(self, norm: str, linkname: str) -> str:
        """The normalized name a symlink member points to, refusing escapes."""
        if not linkname or linkname.startswith("/"):
            raise bad(self.archive, f"symbolic link {norm!r} -> {linkname!r} points outside the "
                      "archive")
        target = posixpath.normpath(posixpath.join(posixpath.dirname(norm), linkname))
        if target == ".." or target.startswith("../") or target == ".":
            raise bad(self.archive, f"symbolic link {norm!r} -> {linkname!r} points outside the "
                      "archive")
        return target

    def resolve(self, norm: str) -> str:
        """Follow symlinks (within the archive) to a regular member's name."""
        seen = set()
        while norm in self.symlinks:
            if norm in seen:
                raise bad(self.archive, f"symbolic link loop at {norm!r}")
            seen.add(norm)
            norm = self.symlinks[norm]
        return norm


class JSONRefused(ValueError):
    """Why a JSON document is refused, as the end of a sentence ("is not UTF-8 text")."""


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` (parsed JSON) has lists or objects more than ``limit`` deep."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False


def load_json(data: bytes, limit: int = JSON_SIZE_LIMIT) -> Any:
    """Parse a small JSON document of any origin (archive, registry, token server).

    :raises JSONRefused: larger than ``limit`` bytes, not UTF-8, not JSON,
        or nested more than :data:`JSON_DEPTH_LIMIT` deep (however deep: no
        ``RecursionError`` escapes).
    """
    if len(data) > limit:
        raise JSONRefused(f"is larger than {limit} bytes; refusing to parse it")
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise JSONRefused("is not UTF-8 text") from None
    except ValueError as e:
        raise JSONRefused(f"is not valid JSON ({e})") from None
    except RecursionError:
        value = None
        deep = True
    else:
        deep = isinstance(value, (dict, list)) and nested_deeper_than(value, JSON_DEPTH_LIMIT)
    if deep:
        raise JSONRefused(f"is nested more than {JSON_DEPTH_LIMIT} levels deep: not an image "
                          "document")
    return value


def parse_json(archive: str, what: str, data: bytes,
               limit: int = JSON_SIZE_LIMIT) -> Any:
    """Parse a small JSON document from an archive, with one-line errors.

    :param what: names the document in messages (``"manifest.json"``...).
    """
    try:
        return load_json(data, limit)
    except JSONRefused as e:
        raise bad(archive, f"{what} {e}") from None


def check_size(archive: str, what: str, size: int,
               limit: int = JSON_SIZE_LIMIT) -> None:
    """Refuse a JSON member before reading it when its size is over the cap."""
    if size > limit:
        raise bad(archive, f"{what} is larger than {limit} bytes; refusing to parse "
                  "it")
