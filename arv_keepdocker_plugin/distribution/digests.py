"""Content digests (``sha256:<64 hex>``): validation and checking."""

from __future__ import annotations

import hashlib
import re

from .registry_errors import DigestMismatch, ManifestRefused

_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


def is_digest(text: object) -> bool:
    """Whether ``text`` is a ``sha256:`` digest with 64 lowercase hex digits."""
    return isinstance(text, str) and bool(_SHA256.match(text))


def require_digest(text: object, what: str) -> str:
    """Return ``text`` if it is a sha256 digest; :class:`ManifestRefused` otherwise.

    Other algorithms (``sha512:``) are refused too: only sha256 is checked.
    """
    if is_digest(text):
        return text  # type: ignore[return-value]
    if isinstance(text, str) and ":" in text and not text.startswith("sha256:"):
        raise ManifestRefused("%s: digest algorithm %r is not supported (only sha256)"
                              % (what, text.split(":", 1)[0][:20]))
    raise ManifestRefused("%s: invalid digest %r" % (what, str(text)[:80]))


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_bytes(data: bytes, digest: str, size: int | None, what: str) -> None:
    """Raise :class:`DigestMismatch` unless ``data`` has ``digest`` (and ``size``)."""
    if size is not None and len(data) != size:
        raise DigestMismatch("%s: got %d bytes, expected %d" % (what, len(data), size))
    actual = sha256_digest(data)
    if actual != digest:
        raise DigestMismatch("%s: content has digest %s, expected %s" % (what, actual, digest))
