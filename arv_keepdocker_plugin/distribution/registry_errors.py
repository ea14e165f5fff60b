"""Errors of the registry client: one line each, never holding a secret.

Every error here is a :class:`~arv_keepdocker_plugin.errors.SourceError` (so
the CLI prints it as one line and exits 1, and the upload pipeline may fall
back to an image already stored in Arvados). Messages are built by this
package from host names, repository names, digests and status codes; text
that comes from elsewhere (a server's error body, an exception from the
network stack) goes through :func:`one_line` and a :class:`Redactor` first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import ImageNotFound, SourceError

#: The longest piece of foreign text (a server's error message...) we quote.
QUOTE_LIMIT = 200

_QUERY = re.compile(r"(https?://[^\s?#'\"]*)[?#][^\s'\"]*")


def one_line(text: str, limit: int = 0) -> str:
    """``text`` with every run of whitespace (newlines too) made one space.

    :param limit: when positive, cut the result to this many characters
        (an ellipsis marks the cut).
    """
    flat = " ".join(str(text).split())
    if limit and len(flat) > limit:
        flat = flat[:limit - 3].rstrip() + "..."
    return flat


def strip_queries(text: str) -> str:
    """Drop the query and fragment of every URL in ``text``.

    Blob storage redirects carry signatures in their query string; a URL is
    only ever shown as scheme, host and path.
    """
    return _QUERY.sub(r"\1", text)


class Redactor:
    """Remembers secrets (passwords, tokens) and masks them in any text.

    One redactor is shared by everything a :class:`~.session.RegistrySession`
    does; credentials and tokens are added as soon as they are known.
    """

    MASK = "***"

    def __init__(self) -> None:
        self._secrets: list[str] = []

    def add(self, *secrets: str) -> None:
        """Remember non-empty ``secrets`` (longest first, so no part leaks)."""
        for secret in secrets:
            if secret and secret not in self._secrets:
                self._secrets.append(secret)
        self._secrets.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with URL queries dropped and every known secret masked."""
        text = strip_queries(str(text))
        for secret in self._secrets:
            text = text.replace(secret, self.MASK)
        return text

    def __repr__(self) -> str:
        return "Redactor(<%d secrets>)" % len(self._secrets)


class RegistryError(SourceError):
    """A registry could not serve the image; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class RegistryUnreachable(RegistryError):
    """Unknown host, connection refused or dropped, timeout, TLS failure."""


class RegistryAuthError(RegistryError):
    """Missing or wrong credentials, or access denied."""


class ManifestUnknown(RegistryError, ImageNotFound):
    """The registry has no such repository, tag or digest (HTTP 404)."""


class PlatformNotFound(RegistryError, ImageNotFound):
    """An image index holds no image for the requested platform."""


class RegistryBlocked(RegistryError):
    """registries.conf blocks the registry or namespace."""


class DigestMismatch(RegistryError):
    """Bytes from the registry do not match their digest or size."""


class ManifestRefused(RegistryError):
    """A manifest we do not accept: schema 1, too large, malformed."""


class CredentialError(RegistryError):
    """An auth file or credential helper could not be read."""


class RegistryConfigError(RegistryError):
    """registries.conf or a certs.d directory is invalid."""


class DecompressionError(RegistryError):
    """A layer cannot be decompressed (unknown type, corrupt data, no zstd)."""


def join_errors(parts: Iterable[str]) -> str:
    """Several one-line messages as one line, separated by ``"; "``."""
    return "; ".join(one_line(p) for p in parts)
