"""Keep manifest text: validation, portable data hash, signing.

See ``doc/architecture/manifest-format.html.textile.liquid`` and
``services/api/app/models/collection.rb`` in the Arvados repository.

A manifest is zero or more lines, each ``<stream> <locator>... <pos:size:name>...``
followed by ``\\n``. Names escape ``\\``, ``:`` and characters up to space as
``\\ooo`` (three octal digits).
"""

import hashlib
import re

from . import signing

EMPTY_BLOCK = "d41d8cd98f00b204e9800998ecf8427e"

_LOCATOR_TOKEN_RE = re.compile(r"^[0-9a-f]{32}\+[0-9]+(?:\+[A-Z][A-Za-z0-9@_-]*)*$")
_FILE_TOKEN_RE = re.compile(r"^([0-9]+):([0-9]+):(.+)$", re.S)
_ESCAPE_RE = re.compile(r"\\([0-7]{3}|\\)")
# Text whose every backslash starts a valid escape: "\\" or \[0-3][0-7][0-7].
_ESCAPED_TEXT_RE = re.compile(r"^(?:[^\\]|\\\\|\\[0-3][0-7]{2})*$", re.S)
_CONTROL_RE = re.compile(r"[\x00-\x1f]")
# Locator tokens anywhere in a manifest, with their hints split off.
_LOCATOR_ANYWHERE_RE = re.compile(r"(?<= )([0-9a-f]{32}\+[0-9]+)"
                                  r"((?:\+[A-Z][A-Za-z0-9@_-]*)*)(?=[ \n])")


def unescape(name):
    """Decode ``\\ooo`` (and ``\\\\``) escapes of a manifest name."""

    def _one(match):
        code = match.group(1)
        return "\\" if code == "\\" else chr(int(code, 8))

    return _ESCAPE_RE.sub(_one, name)


def _check_escapes(token, what, lineno):
    if not _ESCAPED_TEXT_RE.match(token):
        raise ValueError(
            "line %d: invalid escape in %s %r (need \\ooo with first digit 0-3)"
            % (lineno, what, token)
        )


def _check_stream_name(name, lineno):
    _check_escapes(name, "stream name", lineno)
    if name != "." and not name.startswith("./"):
        raise ValueError("line %d: stream name %r must be '.' or start with './'" % (lineno, name))
    for part in name.split("/")[1:]:
        if unescape(part) in ("", ".", ".."):
            raise ValueError("line %d: stream name %r has an empty, '.' or '..' part"
                             % (lineno, name))


def _check_file_name(name, lineno):
    _check_escapes(name, "file name", lineno)
    if name == ".":
        return  # 0:0:. marks an empty directory; size checked by caller
    for part in name.split("/"):
        if unescape(part) in ("", ".", ".."):
            raise ValueError("line %d: file name %r has an empty, '.' or '..' part"
                             % (lineno, name))


def _parse_line(line, lineno):
    """Validate one line (without ``\\n``); return (stream, locators, files)."""
    if line == "":
        raise ValueError("line %d: empty line" % lineno)
    if _CONTROL_RE.search(line):
        raise ValueError("line %d: unescaped control character (tab?)" % lineno)
    tokens = line.split(" ")
    if "" in tokens:
        raise ValueError("line %d: empty token (leading, doubled or trailing space)" % lineno)
    stream = tokens[0]
    _check_stream_name(stream, lineno)
    locators, files = [], []
    for token in tokens[1:]:
        if not files and _LOCATOR_TOKEN_RE.match(token):
            for hint in token.split("+")[2:]:
                if hint.startswith("A") and not signing.PERMISSION_HINT_RE.match(hint):
                    raise ValueError("line %d: malformed permission hint in %r" % (lineno, token))
            locators.append(token)
            continue
        match = _FILE_TOKEN_RE.match(token)
        if not match:
            if files and _LOCATOR_TOKEN_RE.match(token):
                raise ValueError("line %d: locator %r after file tokens" % (lineno, token))
            raise ValueError("line %d: %r is neither a locator nor a pos:size:name file token"
                             % (lineno, token))
        if not locators:
            raise ValueError("line %d: file token %r before any locator" % (lineno, token))
        pos, size, name = int(match.group(1)), int(match.group(2)), match.group(3)
        _check_file_name(name, lineno)
        if name == "." and size != 0:
            raise ValueError("line %d: '.' is only valid as an empty directory marker 0:0:."
                             % lineno)
        files.append((pos, size, name))
    if not locators:
        raise ValueError("line %d: stream %r has no block locator" % (lineno, stream))
    if not files:
        raise ValueError("line %d: stream %r has no file token" % (lineno, stream))
    total = sum(int(loc.split("+")[1]) for loc in locators)
    for pos, size, name in files:
        if pos + size > total:
            raise ValueError("line %d: file segment %d:%d:%s goes past the end of the stream's"
                             " blocks (%d bytes)" % (lineno, pos, size, name, total))
    return stream, locators, files


def _lines(text):
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("manifest text is not valid UTF-8") from None
    if not isinstance(text, str):
        raise ValueError("manifest text must be a string")
    if text == "":
        return []
    if not text.endswith("\n"):
        raise ValueError("manifest text must end with a newline")
    return text[:-1].split("\n")


def validate(text):
    """Raise :class:`ValueError` with a clear message if ``text`` is not a valid manifest.

    The empty string is valid. ``text`` may be ``str`` or UTF-8 ``bytes``.
    """
    for lineno, line in enumerate(_lines(text), 1):
        _parse_line(line, lineno)


def portable_data_hash(text):
    """Return ``<md5 of the portable text>+<its length in bytes>``.

    The portable text is the manifest with every hint after ``<md5>+<size>``
    removed from locator tokens (names and file tokens untouched).
    """
    portable = _LOCATOR_ANYWHERE_RE.sub(lambda m: m.group(1), text).encode("utf-8")
    return "%s+%d" % (hashlib.md5(portable).hexdigest(), len(portable))


def _map_locators(text, func):
    return _LOCATOR_ANYWHERE_RE.sub(lambda m: func(m.group(0)), text)


def strip_permission_hints(text):
    """Return the manifest with every ``+A`` permission hint removed (other hints kept)."""
    return _map_locators(text, signing.strip_signature)


def sign_manifest(text, token, key, ttl, expiry):
    """Return the manifest with every locator (re)signed for ``token`` until ``expiry``."""
    return _map_locators(text, lambda loc: signing.sign_locator(loc, token, key, ttl, expiry))


def locators(text):
    """Return every locator token of the manifest, in order (duplicates kept)."""
    return [m.group(0) for m in _LOCATOR_ANYWHERE_RE.finditer(text)]


def check_signatures(text, token, key, ttl, now):
    """Raise :class:`PermissionError` unless every locator is validly signed for ``token``.

    An unsigned locator is accepted only for the empty block; a present but
    invalid, expired or foreign signature is always refused.
    """
    for loc in locators(text):
        try:
            signing.verify_locator(loc, token, key, ttl, now)
        except signing.MissingSignatureError as err:
            if loc.startswith(EMPTY_BLOCK + "+") and "+A" not in loc:
                continue
            raise PermissionError("%s: %s" % (loc, err.reason)) from None
        except signing.SignatureError as err:
            raise PermissionError("%s: %s" % (loc, err.reason)) from None


def files(text):
    """Return ``[(path, size), ...]`` for the files of a (valid) manifest.

    Paths are unescaped and relative to the collection root (``dir/name``);
    segments of the same path add up; order is first appearance; empty
    directory markers (``0:0:.``) are not files.
    """
    sizes = {}
    for lineno, line in enumerate(_lines(text), 1):
        stream, _locs, segments = _parse_line(line, lineno)
        prefix = "/".join(unescape(p) for p in stream.split("/")[1:])
        for _pos, size, name in segments:
            if name == ".":
                continue
            path = "/".join(unescape(p) for p in name.split("/"))
            if prefix:
                path = prefix + "/" + path
            sizes[path] = sizes.get(path, 0) + size
    return list(sizes.items())
