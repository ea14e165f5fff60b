"""Arvados timestamps: UTC, nine fractional digits, ``Z``.

As ``services/api/config/initializers/time_format.rb`` and
``lib/controller/router/response.go`` (``rfc3339NanoFixed``) write them.

Stored and served as fixed-width strings like ``2026-11-27T19:12:50.456312507Z``,
so comparing two of them as strings compares the instants. Filter operands
in any ISO 8601 form are normalised to the same shape first.
"""

import calendar
import re
import threading
import time

_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?$"
)

_lock = threading.Lock()
_last_ns = 0


def format_ns(ns):
    """Format Unix nanoseconds as ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ``."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%09dZ" % frac


def now_ns():
    """Return the current time in Unix nanoseconds, strictly increasing in this process."""
    global _last_ns
    with _lock:
        ns = max(time.time_ns(), _last_ns + 1)
        _last_ns = ns
        return ns


def now():
    """Return the current time as an Arvados timestamp string."""
    return format_ns(now_ns())


def parse_ns(text):
    """Parse an ISO 8601 date/time into Unix nanoseconds (no timezone means UTC).

    Raises :class:`ValueError` for anything else.
    """
    if not isinstance(text, str):
        raise ValueError("not a timestamp: %r" % (text,))
    match = _ISO_RE.match(text.strip())
    if not match:
        raise ValueError("not a timestamp: %r" % (text,))
    year, month, day, hour, minute, second, frac, zone = match.groups()
    seconds = calendar.timegm(
        (int(year), int(month), int(day),
         int(hour or 0), int(minute or 0), int(second or 0), 0, 0, 0)
    )
    nanos = int((frac or "0")[:9].ljust(9, "0"))
    if zone and zone[0] in "+-":
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60
        seconds -= offset if zone[0] == "+" else -offset
    return seconds * 1_000_000_000 + nanos


def normalize(text):
    """Return ``text`` (any ISO 8601 form) as a fixed-width Arvados timestamp."""
    return format_ns(parse_ns(text))


def after_seconds(seconds):
    """Return the timestamp ``seconds`` from now."""
    return format_ns(now_ns() + int(seconds * 1_000_000_000))


def to_unix(text):
    """Return the Unix time (float seconds) of an Arvados timestamp string."""
    return parse_ns(text) / 1e9
