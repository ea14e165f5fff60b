"""TarTap: read a docker-archive stream unchanged while learning what is in it.

The upload pipeline reads an image's docker-archive stream once, to store it.
Wrapping that stream in :class:`TarTap` gives, when the stream ends, the
image's ``manifest.json`` entry, its config (for ``image_timestamp``), the
config digest (the true image id) and where each member's data sits in the
stream (to align layers on Keep blocks) -- without a second read, without
seeking and with bounded memory.

The tar format in brief: each member is a 512-byte header (name, size, type,
checksum), then its data padded to 512 bytes. Long names come from a
preceding GNU ``L``/``K`` member or a PAX ``x`` member. Two zero blocks end
the archive.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from collections.abc import Callable

from ..errors import BadArchive
from ..image import ByteStream
from . import safety
from .layer_digests import Digests, MemberDigest
from .safety import bad
from .streams import ReadOnlyStream
from .tarheaders import BLOCK, Extensions, check_extension, is_extension, parse_block

#: Members smaller than this that start with ``{`` are kept until manifest.json
#: says which one is the config (``<hex>.json`` members: up to the JSON cap).
BLOB_KEEP_LIMIT = 1024 * 1024
#: Bound on all bytes kept at once (JSON candidates waiting for manifest.json).
KEEP_TOTAL_LIMIT = 32 * 1024 * 1024
#: OCI manifests and indexes (``index.json``, small blobs) kept to learn the
#: manifest digest; each at most, and all together at most.
OCI_DOC_LIMIT = 1024 * 1024
OCI_DOCS_TOTAL = 8 * 1024 * 1024

#: A content-addressed member (Docker 25+ and OCI layouts).
BLOB = re.compile(r"^blobs/sha256/([0-9a-f]{64})$")
#: A classic ``docker save`` config, named after its digest.
HEX_JSON = re.compile(r"^([0-9a-f]{64})\.json$")


def layer_digest(member_name: str, index: int, diff_ids: list, layer_count: int):
    """The digest a layer is known by (the layer index's key).

    A ``blobs/sha256/<hex>`` member is named by its digest; a classic
    ``<dir>/layer.tar`` is the uncompressed layer, so its digest is the
    config's diff id at the same position (when the counts agree).
    """
    blob = BLOB.match(member_name)
    if blob:
        return "sha256:" + blob.group(1)
    return diff_ids[index] if len(diff_ids) == layer_count else None

_HEADER, _EXTENSION, _DATA, _PADDING, _END = range(5)


class SeveralImages(BadArchive):
    """``manifest.json`` lists several images (one was expected)."""

    def __init__(self, archive: str, problem: str) -> None:
        super().__init__(" ".join(f"{archive}: {problem}".split("\n")))


class TarTap(ReadOnlyStream):
    """A read-only file object passing a docker-archive tar stream through unchanged.

    :param stream: any object with ``read(n)`` (``readinto`` is used when present);
        or ``None`` to push the bytes in with :meth:`feed`, :meth:`skip` and
        :meth:`finish` instead of reading.
    :param archive: a name for messages.
    :param on_data: called as ``on_data(name, data_offset, size)`` when a
        regular member's header has been parsed, before its data passes (the
        Keep writer aligns layers on block boundaries with it).
    :param on_member: called as ``on_member(name, data_offset, size,
        digests)`` once a regular member's data has passed and been hashed
        (and, for a ``blobs/sha256/<hex>`` member, found to have that
        digest); not for data accounted with :meth:`skip`. The resume
        journal records checked layers with it.
    :param on_document: called as ``on_document(name, data)`` with each small
        JSON document as soon as it has passed (a config may be recognised
        before ``manifest.json`` says which it is; nothing is trusted from it).

    Read it to the end (``read`` returning ``b""``); then these are set:

    * ``manifest``: the single ``manifest.json`` entry (a dict);
    * ``config``: the parsed image config; ``config_bytes`` its bytes;
    * ``config_digest``: ``sha256:<hex>`` of the config bytes (the image id);
    * ``members``: ``[(name, data_offset, size), ...]`` in stream order, every
      member (directories and links with size 0), ``data_offset`` being where
      the member's data starts in the stream.

    * ``digests``: ``{member name: Digests}`` of every regular member read
      (or skipped as already stored);
    * ``layer_digests``: the :class:`~.layer_digests.Digests` of each layer, in
      ``manifest.json`` order, each checked against its diff id.

    :class:`BadArchive` is raised from ``read`` for an unsafe member, a
    ``blobs/sha256/<hex>`` member whose sha256 is not ``<hex>`` (as soon as it
    has passed), and at the end for a truncated stream, a missing or
    ambiguous ``manifest.json``, a member it names that is absent, or a
    layer whose uncompressed data does not hash to the config's diff id at
    its position (what ``docker load`` would refuse, far from the cause).
    """

    def __init__(self, stream: ByteStream | None = None, archive: str = "<image stream>",
                 on_data: Callable[[str, int, int], None] | None = None,
                 on_member: Callable[[str, int, int, Digests], None] | None = None,
                 on_document: Callable[[str, bytes], None] | None = None) -> None:
        self._stream = stream
        self.archive = archive
        self._on_data = on_data
        self._on_member = on_member
        self._on_document = on_document
        self._data_start = 0
        self._checker = safety.MemberChecker(archive, allow_symlinks=True)
        self._pos = 0
        self._state = _HEADER
        self._block = bytearray()
        self._left = 0            # bytes left in the current data/extension/padding
        self._padding_after = 0
        self._ext = bytearray()
        self._ext_info: tarfile.TarInfo | None = None
        self._extensions = Extensions(archive)
        self._current: str | None = None
        self._digest: MemberDigest | None = None
        self.digests: dict[str, Digests] = {}
        self.layer_digests: list[Digests] = []
        self._keep: bytearray | None = None
        self._keep_limit = 0
        self._kept: dict[str, bytes] = {}
        self._oci_docs: dict[str, bytes] = {}
        self._oci_total = 0
        #: From ``index.json`` (Docker 25+, OCI): what the archive names the image by.
        self.index_digest: str | None = None
        self.manifest_digest: str | None = None
        self._kept_total = 0
        self._sizes: dict[str, int] = {}
        self.members: list[tuple[str, int, int]] = []
        self.finished = False
        self.manifest: dict | None = None
        self.config: dict | None = None
        self.config_bytes: bytes | None = None
        self.config_digest: str | None = None

    # -- file object (the rest of it from ReadOnlyStream) -----------------------

    def read(self, n: int = -1) -> bytes:
        assert self._stream is not None, "a TarTap fed with feed() is not read"
        data = self._stream.read(n)
        if data:
            self._feed(memoryview(data))
        if (not data and n != 0) or n is None or n < 0:
            self._finish()  # read() with no size reads to the end
        return data

    def readinto(self, b) -> int:
        readinto = getattr(self._stream, "readinto", None)
        if readinto is None:
            data = self.read(len(b))
            b[:len(data)] = data
            return len(data)
        n = readinto(b)
        if n:
            self._feed(memoryview(b)[:n])
        elif len(b):
            self._finish()
        return n or 0

    # -- pieces (for exports that skip stored layers) -------------------------

    def feed(self, data) -> None:
        """Parse ``data``, the next bytes of the stream (when not using ``read``)."""
        if data:
            self._feed(memoryview(data))

    def skip(self, size: int, digests: Digests) -> None:
        """Account for a whole member's data that is not read (a stored layer).

        Only valid right after that member's header. ``digests`` are what
        the data was checked to hash to when it was stored (from a record the
        core trusts); they are checked against the config like read data.
        """
        if self._state != _DATA or self._left != size or self._pos != self.members[-1][1]:
            raise bad(self.archive, "a stored layer does not line up with a tar member")
        self._digest = None
        if self._current is not None:
            self._check_blob_name(self._current, digests)
            self.digests[self._current] = digests
        self._keep = None
        self._pos += size
        self._left = 0
        self._member_done()

    def finish(self) -> None:
        """The stream has ended: check it and resolve manifest and config."""
        self._finish()

    def consume(self, chunk_size: int = 1024 * 1024) -> TarTap:
        """Read the stream to its end (discarding the bytes); return self."""
        while self.read(chunk_size):
            pass
        return self

    # -- the tar parser ----------------------------------------------------

    def _feed(self, view: memoryview) -> None:
        i = 0
        end = len(view)
        while i < end:
            state = self._state
            if state == _END:
                self._pos += end - i
                return
            if state == _HEADER:
                take = min(BLOCK - len(self._block), end - i)
                self._block += view[i:i + take]
                i += take
                self._pos += take
                if len(self._block) == BLOCK:
                    block = bytes(self._block)
                    self._block.clear()
                    self._header(block)
                continue
            take = min(self._left, end - i)
            chunk = view[i:i + take]
            i += take
            self._pos += take
            self._left -= take
            if state == _EXTENSION:
                self._ext += chunk
                if self._left == 0:
                    self._extension_done()
            elif state == _DATA:
                self._data(chunk)
                if self._left == 0:
                    self._member_done()
            elif self._left == 0:  # _PADDING
                self._state = _HEADER

    def _header(self, block: bytes) -> None:
        info = parse_block(self.archive, block, self._pos - BLOCK)
        if info is None:
            if not self.members and not self._extensions:
                raise bad(self.archive, "not a tar archive (starts with a zero block)")
            self._state = _END
            return
        if is_extension(info):
            self._ext_info = info
            self._ext.clear()
            self._start(_EXTENSION, check_extension(self.archive, info))
            return
        member = self._extensions.apply(info)
        kind = member.kind
        norm = self._checker.check(member.name, kind, member.linkname)
        data_size = member.size
        self.members.append((norm or ".", self._pos, data_size))
        if norm is not None and kind == safety.FILE:
            self._sizes[norm] = data_size
            if self._on_data is not None:
                self._on_data(norm, self._pos, data_size)
        self._data_start = self._pos
        self._begin_data(norm if kind == safety.FILE else None, data_size)
        self._padding_after = -data_size % BLOCK
        self._start(_DATA, data_size)

    def _start(self, state: int, size: int) -> None:
        self._left = size
        self._state = state
        if size == 0:
            if state == _EXTENSION:
                self._extension_done()
            else:
                self._member_done()

    def _extension_done(self) -> None:
        assert self._ext_info is not None
        self._extensions.add(self._ext_info, bytes(self._ext))
        self._left = -len(self._ext) % BLOCK
        self._ext.clear()
        self._state = _PADDING if self._left else _HEADER

    def _begin_data(self, name: str | None, size: int) -> None:
        self._current = name
        self._digest = None
        self._keep = None
        if name is None:
            return
        self._digest = MemberDigest()
        if name in ("manifest.json", "index.json"):
            safety.check_size(self.archive, name, size)
            self._keep_limit = safety.JSON_SIZE_LIMIT
        elif self.manifest is not None:
            wanted = self.manifest.get("Config") if isinstance(self.manifest, dict) else None
            if name == wanted:
                safety.check_size(self.archive, f"image config {name!r}", size)
                self._keep_limit = safety.JSON_SIZE_LIMIT
            elif BLOB.match(name):
                self._keep_limit = OCI_DOC_LIMIT  # perhaps an OCI manifest or index
            else:
                return
        elif name.endswith(".json") and "/" not in name:
            self._keep_limit = safety.JSON_SIZE_LIMIT
        else:
            self._keep_limit = BLOB_KEEP_LIMIT
        if size <= self._keep_limit:
            self._keep = bytearray()

    def _data(self, chunk: memoryview) -> None:
        if self._digest is not None:
            self._digest.update(chunk)
        if self._keep is not None:
            if not self._keep and self._current != "manifest.json" and chunk[:1] != b"{":
                self._keep = None  # a layer, not a JSON document
            else:
                self._keep += chunk

    def _member_done(self) -> None:
        name = self._current
        if self._digest is not None and name is not None:
            digests = self._digest.finish()
            self._check_blob_name(name, digests)
            self.digests[name] = digests
            if self._on_member is not None:
                self._on_member(name, self._data_start, self._sizes[name], digests)
        if self._keep is not None and name is not None:
            self._remember(name, bytes(self._keep))
        self._keep = None
        self._digest = None
        self._current = None
        self._left = self._padding_after
        self._state = _PADDING if self._left else _HEADER

    def _check_blob_name(self, name: str, digests: Digests) -> None:
        blob = BLOB.match(name)
        if blob and digests.raw != "sha256:" + blob.group(1):
            raise bad(self.archive, f"member {name!r} has {digests.raw}, not the digest its name "
                      "says")

    def _remember(self, name: str, data: bytes) -> None:
        if self._on_document is not None:
            self._on_document(name, data)
        if name == "manifest.json":
            self._set_manifest(data)
            return
        if (name == "index.json" or BLOB.match(name)) and len(data) <= OCI_DOC_LIMIT \
                and self._oci_total + len(data) <= OCI_DOCS_TOTAL:
            self._oci_docs[name] = data
            self._oci_total += len(data)
        if self.manifest is not None and name != self.manifest.get("Config"):
            return
        self._kept[name] = data
        self._kept_total += len(data)
        if self._kept_total > KEEP_TOTAL_LIMIT:
            raise bad(self.archive, "too many JSON documents before manifest.json "
                      f"(more than {KEEP_TOTAL_LIMIT} bytes)")

    def _set_manifest(self, data: bytes) -> None:
        if self.manifest is not None:
            raise bad(self.archive, "duplicate manifest.json")
        entries = safety.parse_json(self.archive, "manifest.json", data)
        if isinstance(entries, list) and len(entries) > 1:
            raise SeveralImages(self.archive, "manifest.json must list exactly one image, "
                                f"it lists {len(entries)}")
        if not isinstance(entries, list) or len(entries) != 1:
            raise bad(self.archive, "manifest.json must list exactly one image, "
                      "it lists {}".format(len(entries) if isinstance(entries, list)
                                            else "none (not a list)"))
        entry = entries[0]
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise bad(self.archive, "manifest.json entry has no Config")
        layers = entry.get("Layers")
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise bad(self.archive, "manifest.json entry has no valid Layers list")
        self.manifest = entry
        wanted = self._norm(entry["Config"])
        keep = self._kept.get(wanted)
        self._kept = {wanted: keep} if keep is not None else {}
        self._kept_total = len(keep) if keep is not None else 0

    def resolve(self, name: str) -> str:
        """The member that ``name`` (from manifest.json) designates, links followed."""
        return self._norm(name)

    def _norm(self, name: str) -> str:
        norm = safety.normalize_member_name(self.archive, name)
        if norm is None:
            raise bad(self.archive, "manifest.json names the archive root as a member")
        return self._checker.resolve(norm)

    # -- end of stream -----------------------------------------------------

    def _finish(self) -> None:
        if self.finished:
            return
        if self._state not in (_HEADER, _END) or self._block:
            raise bad(self.archive, "truncated tar stream (ended inside {})".format(
                repr(self._current) if self._current else "a header"))
        if not self.members:
            raise bad(self.archive, "empty stream, not a tar archive")
        if self.manifest is None:
            if "index.json" in self._oci_docs and "/" in self.archive:  # a file: say so
                raise bad(self.archive, "no manifest.json: this is an OCI layout, use "
                          f"oci-archive:{self.archive}")
            raise bad(self.archive, "no manifest.json: not a docker-archive (an OCI "
                      "layout must be converted first)")
        for layer in self.manifest["Layers"]:
            if self._norm(layer) not in self._sizes:
                raise bad(self.archive, f"layer {layer!r} named by manifest.json is missing"
                          )
        config_name = self._norm(self.manifest["Config"])
        if config_name not in self._sizes:
            raise bad(self.archive, "config {!r} named by manifest.json is missing"
                      .format(self.manifest["Config"]))
        data = self._kept.get(config_name)
        if data is None:
            raise bad(self.archive, f"config {config_name!r} is not a JSON document of at most "
                      f"{BLOB_KEEP_LIMIT} bytes")
        self.config = safety.parse_json(self.archive, "image config", data)
        if not isinstance(self.config, dict):
            raise bad(self.archive, "image config is not a JSON object")
        self.config_bytes = data
        self.config_digest = "sha256:" + hashlib.sha256(data).hexdigest()
        named = HEX_JSON.match(config_name)
        if named and "sha256:" + named.group(1) != self.config_digest:
            raise bad(self.archive, f"config {config_name!r} has {self.config_digest}, not the "
                                    "digest its name "
                      "says")
        self.layer_digests = self._check_layers(self.manifest["Layers"], self.config)
        self.index_digest, self.manifest_digest = oci_digests(
            self._oci_docs, self.config_digest)
        self._kept = {}
        self._oci_docs = {}
        self.finished = True

    def _check_layers(self, layers: list[str], config: dict) -> list[Digests]:
        """Each layer's digests, checked against the config's diff ids."""
        rootfs = config.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
            raise bad(self.archive, "image config has no rootfs.diff_ids list")
        if len(diff_ids) != len(layers):
            raise bad(self.archive, f"manifest.json lists {len(layers)} layers but the config has "
                                    f"{len(diff_ids)} "
                      "diff ids")
        checked = []
        for name, diff_id in zip(layers, diff_ids, strict=True):
            digests = self.digests[self._norm(name)]
            if digests.diff_id is None:
                raise bad(self.archive, "layer {!r} cannot be checked against its diff id "
                          "({})".format(name, digests.problem or "unknown compression"))
            if digests.diff_id != diff_id:
                raise bad(self.archive, f"layer {name!r} does not match its diff id: its "
                          f"uncompressed data has {digests.diff_id}, the config says {diff_id}")
            checked.append(digests)
        return checked


def oci_digests(docs: dict[str, bytes], config_digest: str) -> tuple[str | None,
                                                                      str | None]:
    """``(index digest, manifest digest)`` of the image whose config is ``config_digest``.

    Follows ``index.json`` (as Docker 25+ and OCI layouts write it) through
    nested indexes, among the blobs at hand, to the manifest that names the
    config; the index digest is ``index.json``'s target when that is an index
    (a multi-platform image), else None. ``(None, None)`` when the archive
    does not say.
    """
    def load(name: str):
        try:
            return json.loads(docs[name])
        except (KeyError, ValueError, RecursionError):
            return None

    def manifests(doc, depth):
        if depth > 4 or not isinstance(doc, dict):
            return
        for desc in doc.get("manifests") or []:
            digest = desc.get("digest") if isinstance(desc, dict) else None
            if not isinstance(digest, str) or not digest.startswith("sha256:"):
                continue
            blob = load("blobs/sha256/" + digest[7:])
            if isinstance(blob, dict) and isinstance(blob.get("manifests"), list):
                yield from ((top or digest, found)
                            for top, found in manifests(blob, depth + 1))
            elif isinstance(blob, dict) and (blob.get("config") or {}).get("digest") \
                    == config_digest:
                yield None, digest

    for index, manifest in manifests(load("index.json"), 0):
        return index, manifest
    return None, None
