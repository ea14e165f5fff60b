"""Keep locators and one-file manifests, as Arvados writes them.

A locator is ``<md5 hex>+<size>[+hints]``; a signed one carries
``+A<40 hex signature>@<expiry, hex Unix seconds>`` (see
``sdk/go/arvados/blob_signature.go`` and
``doc/api/keep-server.html.textile.liquid``). A manifest stream is
``. <locators...> <offset>:<size>:<escaped name>`` (see
``doc/architecture/manifest-format.html.textile.liquid``).
"""

from __future__ import annotations

import hashlib
import re

#: The empty block, which needs no signature.
EMPTY_BLOCK = "d41d8cd98f00b204e9800998ecf8427e+0"
_EXPIRY = re.compile(r"\+A[0-9a-f]{40}@([0-9a-f]{1,8})(?:\+|$)")


def block_key(locator: str) -> str:
    """``<md5>+<size>`` of a (possibly signed) locator."""
    return "+".join(locator.split("+")[:2])


def locator_size(locator: str) -> int:
    """The size of the block a locator names (its second field)."""
    return int(locator.split("+")[1])


def signature_expiry(locator: str) -> int | None:
    """When a signed locator's permission signature expires (Unix seconds), else None."""
    match = _EXPIRY.search(locator)
    return int(match.group(1), 16) if match else None


def escape_name(name: str) -> str:
    """A file name as a manifest writes it (``\\``, ``:``, space, controls as ``\\ooo``)."""
    return "".join("\\%03o" % ord(c) if c in "\\:" or ord(c) <= 32 else c for c in name)


def unescape_name(token: str) -> str:
    """A manifest's file name token back to the name (``\\ooo`` octal escapes)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), token)


def manifest_text(locators: list[str], size: int, filename: str) -> str:
    """A one-file manifest: ``. <blocks> 0:<size>:<name>``."""
    blocks = locators or [EMPTY_BLOCK]
    return ". {} 0:{}:{}\n".format(" ".join(blocks), size, escape_name(filename))


_PDH_LOCATOR = re.compile(r"^([0-9a-f]{32})(\+[0-9]+)?(\+\S*)?$")


def portable_manifest_text(manifest_text: str) -> str:
    """A manifest with every locator cut to ``<md5>+<size>``, as the API server cuts it.

    ``portable_manifest_text`` and ``munge_manifest_locators`` in
    ``services/api/app/models/collection.rb``: each line stripped at its end and
    split on spaces, the first word (the stream name) kept, each locator's
    hints dropped, lines joined with a final newline.
    """
    if not manifest_text:
        return ""
    lines = manifest_text.split("\n")
    if lines[-1] == "":
        lines.pop()
    out = []
    for line in lines:
        words = line.rstrip().split()
        kept = words[:1]
        for word in words[1:]:
            match = _PDH_LOCATOR.match(word)
            kept.append(match.group(1) + (match.group(2) or "") if match else word)
        out.append(" ".join(kept))
    return "\n".join(out) + "\n"


def portable_data_hash(manifest_text: str) -> str:
    """The portable data hash the API server will compute for ``manifest_text``.

    ``<md5 of the portable manifest>+<its length>`` (``compute_pdh`` in
    ``services/api/app/models/collection.rb``), computed here, locally, so a
    record can say which content its writer stored.
    """
    portable = portable_manifest_text(manifest_text).encode()
    return f"{hashlib.md5(portable).hexdigest()}+{len(portable)}"
