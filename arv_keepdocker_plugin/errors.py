"""Errors a user can cause and fix.

A :class:`KeepdockerError` is reported as one line on stderr and exit status 1,
never as a traceback. Anything else escaping the command is a bug and keeps its
traceback.
"""


def printable(text: str) -> str:
    """``text`` with every control or unprintable character escaped (``\\x1b``, ``\\n``).

    Names in messages come from archives, links and users; printed raw, a
    name could move the cursor, recolour the terminal or fake another line.
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class KeepdockerError(Exception):
    """A user-facing error: bad input, missing image, refused format..."""

    exit_code = 1


class BadReference(KeepdockerError):
    """The image reference cannot be parsed."""


class SourceError(KeepdockerError):
    """A source could not produce the image.

    The upload pipeline falls back to an image already stored in Arvados
    (as arv-keepdocker 3.2.1 does when ``docker inspect`` fails) when a source
    raises this error while resolving an image.
    """


class EngineUnavailable(SourceError):
    """The container engine behind a source is missing or not answering."""


class ImageNotFound(SourceError):
    """The source answers but has no such image."""


class BadArchive(KeepdockerError):
    """An image archive or layout is unreadable, truncated or unsafe."""


class FormatRefused(KeepdockerError):
    """The cluster does not accept this image format."""


class LocalError(KeepdockerError):
    """Something on this machine failed (an unwritable HOME, a full disk...)."""
