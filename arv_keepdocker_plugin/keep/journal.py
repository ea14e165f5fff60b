"""The resume journal: blocks and layers an interrupted upload already stored.

``<Arvados cache>/docker/<image id>.tar.journal`` gets one signed locator per
line as each block reaches Keep, after a first line naming the token that
signed them (its UUID part, ``token <uuid>``: never the secret). Running the
same upload again hands the still-usable locators to the Keep writer as
known blocks: a block is reused only when the bytes read again have the same
md5 and size, so a journal can never put other bytes into an image. A
locator is usable when its signature outlives the upload by a margin and it
was signed for this token (the recorded UUID matches; for a token without a
UUID, a Keep HEAD of that locator answers); others are dropped and those
blocks uploaded again.

Reading everything again is what a registry cannot afford (it means
downloading it all again), so the journal also records whole layers: once a
layer member has passed the tap (its sha256 computed as it streamed, found
equal to its blob name, and its uncompressed sha256 computed) and every
block of it is in Keep, a line ``layer <digest> <diff id> <locator>...``
says so. A rerun may let such a layer stand in for its bytes unread (a
:class:`~.layer_blocks.LayerBlocks`, as a record the core trusts), when
every one of its locators is usable by the rule above: so only this user's
(this token's) own checked uploads are ever skipped, and the diff id is
still checked against the image's config at the end.

A journal that is not a regular file, is unreadable or is garbage is
discarded with a warning. A journal that cannot be written (a full disk, a
read-only HOME) is a warning too: the upload goes on without one.
``--no-resume`` starts over, ``--no-cache`` keeps no journal, and a finished
upload removes it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Sequence
from typing import IO

from .cache_paths import cache_file
from .layer_blocks import LayerBlocks
from .locators import block_key, signature_expiry

logger = logging.getLogger("arvados.keepdocker")

#: Locators must stay valid at least this long (seconds) when no deadline is given.
MARGIN = 3600
#: A journal larger than this is not one of ours.
MAX_SIZE = 16 << 20
#: For tokens without a UUID, at most this many locators are checked by HEAD.
MAX_HEADS = 256
_LOCATOR = re.compile(r"^[0-9a-f]{32}\+[0-9]+(\+[A-Z][A-Za-z0-9@_-]*)*$")
_TOKEN_UUID = re.compile(r"^v2/([a-z0-9]{5}-gj3su-[a-z0-9]{15})/")
_DIGEST = r"sha256:[0-9a-f]{64}"
#: ``layer <digest> <diff id> <locator> [<locator>...]``
_LAYER = re.compile(rf"^layer ({_DIGEST}) ({_DIGEST})((?: \S+)+)$")


@dataclasses.dataclass
class JournalContents:
    """What a journal offers a rerun.

    :ivar blocks: ``{"<md5>+<size>": locator}`` of usable blocks (reused when
        the bytes read again match).
    :ivar layers: ``{digest: LayerBlocks}`` of layers stored whole and
        checked by an earlier run with this token, every block usable.
    """

    blocks: dict[str, str] = dataclasses.field(default_factory=dict)
    layers: dict[str, LayerBlocks] = dataclasses.field(default_factory=dict)


def journal_path(image_id: str) -> str:
    return cache_file(image_id, ".tar.journal")


def token_uuid(token: str | None) -> str | None:
    """The UUID part of a v2 token (``v2/<uuid>/<secret>``), else None."""
    match = _TOKEN_UUID.match(token or "")
    return match.group(1) if match else None


class Journal:
    """One image's journal. ``token`` is the API token; only its UUID is written."""

    def __init__(self, image_id: str, enabled: bool = True, token: str | None = None):
        self.path = journal_path(image_id)
        self.enabled = enabled
        self.token_uuid = token_uuid(token)
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        #: Set by :meth:`load` when the journal on disk is ours to append to.
        self._appendable = False

    # -- reading ---------------------------------------------------------------

    def load(self, keep, valid_until: float | None = None) -> dict[str, str]:
        """Usable blocks from an earlier run, ``{"<md5>+<size>": locator}``."""
        return self.read(keep, valid_until).blocks

    def read(self, keep, valid_until: float | None = None) -> JournalContents:
        """Usable blocks and whole layers from an earlier run (see the module docstring).

        ``valid_until``: every locator used must be valid until then (default:
        :data:`MARGIN` seconds from now).
        """
        lines = self._read_lines()
        if not lines:
            return JournalContents()
        header, entries = lines[0], lines[1:]
        recorded = header[len("token "):] if header.startswith("token ") else None
        if recorded is None:
            entries = lines  # a journal from before the header existed
        if self.token_uuid is not None and recorded != self.token_uuid:
            if entries:
                logger.info("resume journal %s was made with another token; starting over",
                            self.path)
            return JournalContents()
        self._appendable = recorded is not None and recorded == (self.token_uuid or "-")
        deadline = valid_until if valid_until is not None else time.time() + MARGIN
        known: dict[str, str] = {}
        layers = []
        for entry in entries:
            layer = _LAYER.match(entry)
            locators = layer.group(3).split() if layer else [entry]
            if layer:
                layers.append((layer.group(1), layer.group(2), locators))
            for locator in locators:
                expiry = signature_expiry(locator)
                if expiry is not None and expiry >= deadline:
                    known[block_key(locator)] = locator
        if self.token_uuid is None:
            known = self._head_checked(keep, known)
        stored: dict[str, LayerBlocks] = {}
        for digest, diff_id, locators in layers:
            usable = [known.get(block_key(locator)) for locator in locators]
            if all(usable):
                stored[digest] = LayerBlocks([u for u in usable if u], diff_id)
        return JournalContents(known, stored)

    def _head_checked(self, keep, known: dict[str, str]) -> dict[str, str]:
        """Without a token UUID to compare, ask Keep whether each signature is valid."""
        checked: dict[str, str] = {}
        for key, locator in list(known.items())[:MAX_HEADS]:
            try:
                keep.head(locator, num_retries=0)
            except Exception:
                continue
            checked[key] = locator
        return checked

    def _read_lines(self) -> list[str]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except FileNotFoundError:
            return []
        except OSError as error:
            self._unusable(f"cannot open it ({error.strerror or error})")
            return []
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            self._unusable("it is not a regular file")
            return []
        with os.fdopen(fd, "rb") as f:
            if info.st_size > MAX_SIZE:
                self._unusable(f"it is larger than {MAX_SIZE} bytes")
                return []
            try:
                text = f.read(MAX_SIZE + 1).decode("ascii")
            except (OSError, UnicodeDecodeError) as error:
                self._unusable(f"it cannot be read as text ({error})")
                return []
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        bad = [line for line in lines[1:] if not _valid_entry(line)]
        if bad or (lines and not (lines[0].startswith("token ") or _valid_entry(lines[0]))):
            self._unusable("it holds lines that are not Keep locators or layers")
            return []
        return lines

    def _unusable(self, why: str) -> None:
        logger.warning("ignoring the resume journal %s: %s; uploading again", self.path, why)
        self.discard()

    # -- writing ---------------------------------------------------------------

    def discard(self) -> None:
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        except OSError:
            return
        try:
            if stat.S_ISDIR(info.st_mode):
                os.rmdir(self.path)
            else:
                os.unlink(self.path)
        except OSError as error:
            logger.warning("cannot remove the resume journal %s: %s", self.path,
                           error.strerror or error)

    def record(self, locator: str) -> None:
        """Record a block stored in Keep (its signed locator)."""
        self._write(locator)

    def record_layer(self, digest: str, diff_id: str, locators: Sequence[str]) -> None:
        """Record a layer stored whole: its data's ``digest`` and ``diff_id`` as
        the tap computed them, and the blocks (exactly the layer's bytes).

        Call it only once the tap has checked the member and every block is
        in Keep (:meth:`~.block_writer.BlockWriter.when_stored`).
        """
        line = "layer {} {} {}".format(digest, diff_id, " ".join(locators))
        if locators and _LAYER.match(line) and all(_LOCATOR.match(l) for l in locators):
            self._write(line)

    def _write(self, line: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            try:
                if self._file is None and self._appendable:
                    self._file = open(self.path, "a")
                elif self._file is None:
                    self.discard()  # never append to a journal that is not ours
                    self._file = open(self.path, "x")
                    self._file.write("token {}\n".format(self.token_uuid or "-"))
                self._file.write(line + "\n")
                self._file.flush()
            except OSError as error:
                logger.warning("cannot write the resume journal %s (%s); continuing "
                               "without it", self.path, error.strerror or error)
                self.enabled = False
                self._close()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


def _valid_entry(line: str) -> bool:
    """A locator line, or a layer line of valid digests and locators."""
    if _LOCATOR.match(line):
        return True
    layer = _LAYER.match(line)
    return layer is not None and all(_LOCATOR.match(l) for l in layer.group(3).split())
