"""Fault injection for the local cluster: make the next N requests fail or stall.

Tests arm a fault through the admin-only ``POST /_test/faults`` endpoint (or
directly with :data:`FAULTS` when the cluster runs in-process). Each request
of the target kind takes one armed fault until the count runs out:

* ``"api"`` - any ``/arvados/v1`` call,
* ``"api:<METHOD>:<resource>"`` - one kind of API call, e.g. ``"api:POST:links"``
  (link creates), ``"api:PUT:collections"`` (collection updates),
  ``"api:DELETE:collections"``; taken before a plain ``"api"`` fault,
* ``"keep_put"`` - Keep block writes,
* ``"keep_get"`` - Keep block reads (GET and HEAD).

A fault lets the first ``skip`` matching requests pass, then, for ``count``
requests, sleeps ``stall`` seconds and, if ``status`` is set, answers that
HTTP status instead of serving the request. So ``skip=1`` on
``"api:POST:links"`` reaches the second link of an upload.
"""

import re
import threading
from dataclasses import dataclass

TARGETS = ("api", "keep_put", "keep_get")
_API_TARGET = re.compile(r"^api:(GET|POST|PUT|PATCH|DELETE):[a-z_]+$")


@dataclass(frozen=True)
class Fault:
    """One armed fault, as handed to one request."""

    status: "int | None" = None
    stall: float = 0.0


class Faults:
    """Thread-safe table of armed faults, one entry per target."""

    def __init__(self):
        self._lock = threading.Lock()
        self._armed = {}  # target -> [remaining count, Fault]

    def arm(self, target, count, status=None, stall=0.0, skip=0):
        """Make ``count`` requests of ``target``, after the next ``skip``, take this fault.

        Replaces whatever was armed for ``target``; ``count`` 0 disarms it.
        Raises :class:`ValueError` for an unknown target or a bad value.
        """
        if target not in TARGETS and not _API_TARGET.match(str(target)):
            raise ValueError("unknown fault target %r (one of %s, or api:METHOD:resource)"
                             % (target, ", ".join(TARGETS)))
        count = int(count)
        skip = int(skip or 0)
        stall = float(stall or 0.0)
        if status is not None:
            status = int(status)
            if not 100 <= status <= 599:
                raise ValueError("fault status must be an HTTP status code, got %d" % status)
        if count < 0 or stall < 0 or skip < 0:
            raise ValueError("fault count, skip and stall must not be negative")
        with self._lock:
            if count == 0:
                self._armed.pop(target, None)
            else:
                self._armed[target] = [count, Fault(status=status, stall=stall), skip]

    def take(self, target):
        """Return the :class:`Fault` for this request of ``target`` (or None) and count it."""
        with self._lock:
            entry = self._armed.get(target)
            if entry is None:
                return None
            if entry[2] > 0:
                entry[2] -= 1  # let this one pass
                return None
            entry[0] -= 1
            if entry[0] <= 0:
                del self._armed[target]
            return entry[1]

    def pending(self):
        """Return ``{target: remaining count}`` of what is still armed."""
        with self._lock:
            return {target: entry[0] for target, entry in self._armed.items()}

    def clear(self):
        """Disarm every fault."""
        with self._lock:
            self._armed.clear()


#: The process-wide fault table used by the cluster's request handlers.
FAULTS = Faults()
