"""When and how long to wait before trying a registry request again."""

from __future__ import annotations

import dataclasses
import email.utils
import time
from collections.abc import Callable

#: HTTP statuses worth another try: rate limiting and server trouble.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff, bounded in tries and in delay.

    :ivar attempts: tries per request in all (1 means never retry); a blob
        download may also resume this many times in a row without progress.
    :ivar initial_delay: seconds before the first retry; each next one waits
        ``multiplier`` times longer, at most ``max_delay``.
    :ivar sleep: the function that waits (tests pass one that does not).
    """

    attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 10.0
    multiplier: float = 2.0
    sleep: Callable[[float], None] = dataclasses.field(default=time.sleep, compare=False,
                                                       repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("RetryPolicy delays must be >= 0 and multiplier >= 1")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first).

        A server's ``Retry-After`` is honoured up to ``max_delay``.
        """
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_delay))
        return min(self.initial_delay * self.multiplier ** (retry - 1), self.max_delay)

    def wait(self, retry: int, retry_after: float | None = None) -> None:
        """Sleep for :meth:`delay`."""
        seconds = self.delay(retry, retry_after)
        if seconds > 0:
            self.sleep(seconds)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())
