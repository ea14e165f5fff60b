"""Keep block permission signatures, as Arvados computes them.

A signed locator carries a ``+A<signature>@<expiry>`` hint where

    signature = hex(HMAC-SHA1(key, "<md5>@<token>@<expiry hex>@<ttl hex>"))

``token`` is the exact API token string the client presented, ``expiry`` is a
Unix time written as lowercase hex (8 digits when signing, like Arvados' Go
code) and ``ttl`` is the cluster's ``BlobSigningTTL`` in seconds (unpadded
lowercase hex). Changing the key, the token or the TTL invalidates every
signature. See ``sdk/go/arvados/blob_signature.go`` and
``services/api/app/models/blob.rb`` in the Arvados repository.
"""

import hashlib
import hmac
import re

#: A whole locator: ``<md5>+<size>`` followed by hints (the size is optional
#: only for the empty block in some places; we require it everywhere).
LOCATOR_RE = re.compile(r"^([0-9a-f]{32})(\+[0-9]+)((?:\+[A-Z][A-Za-z0-9@_-]*)*)$")
#: A well-formed permission hint (without its leading ``+``).
PERMISSION_HINT_RE = re.compile(r"^A([0-9a-f]{40})@([0-9a-f]{1,8})$")

DEFAULT_TTL = 1209600  # 336 hours, Arvados' default BlobSigningTTL


class SignatureError(Exception):
    """A locator's permission signature does not grant access."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class MissingSignatureError(SignatureError):
    """The locator has no ``+A`` hint (or no token was presented)."""


class ExpiredSignatureError(SignatureError):
    """The ``+A`` hint's expiry time has passed."""


class InvalidSignatureError(SignatureError):
    """The ``+A`` hint is malformed or was not made for this token/key/TTL."""


def _mac(md5hex, token, key, expiry_hex, ttl):
    message = "%s@%s@%s@%x" % (md5hex, token, expiry_hex, ttl)
    return hmac.new(key.encode(), message.encode(), hashlib.sha1).hexdigest()


def signature(md5hex, token, key, ttl, expiry):
    """Return the 40-hex permission signature for a block.

    :param md5hex: the block's md5 (32 lowercase hex digits)
    :param token: the exact API token string the client authenticated with
    :param key: the cluster's blob signing key
    :param ttl: the blob signing TTL in seconds
    :param expiry: the expiry time, Unix seconds (int)
    """
    return _mac(md5hex, token, key, "%08x" % expiry, ttl)


def split_hints(locator):
    """Split a locator into ``(md5, "+size", [hints without "+"])``.

    Raises :class:`ValueError` when it is not a ``<md5>+<size>(+Hint)*`` locator.
    """
    match = LOCATOR_RE.match(locator)
    if not match:
        raise ValueError("not a Keep locator: %r" % (locator,))
    hints = [h for h in match.group(3).split("+") if h]
    return match.group(1), match.group(2), hints


def sign_locator(locator, token, key, ttl, expiry):
    """Return ``locator`` with its ``+A`` hints replaced by a fresh signature.

    Other hints are kept in order; the new ``+A<sig>@<expiry>`` goes last.
    """
    md5hex, size, hints = split_hints(locator)
    kept = "".join("+" + h for h in hints if not h.startswith("A"))
    sig = signature(md5hex, token, key, ttl, expiry)
    return "%s%s%s+A%s@%08x" % (md5hex, size, kept, sig, expiry)


def strip_signature(locator):
    """Return ``locator`` without its ``+A`` hints (other hints kept)."""
    md5hex, size, hints = split_hints(locator)
    return md5hex + size + "".join("+" + h for h in hints if not h.startswith("A"))


def verify_locator(locator, token, key, ttl, now):
    """Check that ``locator`` carries a valid, unexpired signature for ``token``.

    Returns None on success; raises :class:`MissingSignatureError`,
    :class:`ExpiredSignatureError` or :class:`InvalidSignatureError`
    (all :class:`SignatureError`) otherwise. A locator that is not a locator
    at all raises :class:`InvalidSignatureError` too.
    """
    try:
        md5hex, _size, hints = split_hints(locator)
    except ValueError as err:
        raise InvalidSignatureError(str(err)) from None
    permission = [h for h in hints if h.startswith("A")]
    if not permission:
        raise MissingSignatureError("locator has no permission signature")
    if not token:
        raise MissingSignatureError("no API token to check the signature against")
    if len(permission) > 1:
        raise InvalidSignatureError("locator has more than one permission hint")
    match = PERMISSION_HINT_RE.match(permission[0])
    if not match:
        raise InvalidSignatureError("malformed permission hint +%s" % permission[0])
    given, expiry_hex = match.groups()
    expected = _mac(md5hex, token, key, expiry_hex, ttl)
    if not hmac.compare_digest(given, expected):
        raise InvalidSignatureError("invalid permission signature")
    if int(expiry_hex, 16) < now:
        raise ExpiredSignatureError("permission signature expired")
