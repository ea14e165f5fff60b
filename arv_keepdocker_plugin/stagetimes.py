"""Where a run's time goes, for the benchmarks: ``ARV_KEEPDOCKER_STAGE_TIMES=<file>``.

With the variable set, a run appends one JSON line to ``<file>`` when it
exits: per stage its wall time, the CPU time of the thread that ran it and
how often it ran (``stages``), and points in time (``marks``, seconds since
this module was imported, which is the first thing ``cli`` does). Stages
may overlap and run in several threads at once (Keep PUTs do), so their
figures do not add up to the run's wall time. ``process_cpu`` is the whole
process's CPU time (user + system) at exit; ``start_unix`` lets a caller
that noted the spawn time add the interpreter's own start-up.

Unset (the normal case), every function here is a test of one module
global and returns at once: :func:`stage` returns a shared no-op context
manager, :func:`add` and :func:`mark` return.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

#: The variable naming the file the record is appended to.
ENV = "ARV_KEEPDOCKER_STAGE_TIMES"

_PATH = os.environ.get(ENV) or None
#: Whether this run records its stages (read once, at import).
ENABLED = _PATH is not None

_T0 = time.monotonic()
_START_UNIX = time.time()
_lock = threading.Lock()
_stages: dict[str, dict[str, float]] = {}
_marks: dict[str, float] = {}
_NULL: AbstractContextManager[None] = contextlib.nullcontext()


def add(name: str, wall: float, cpu: float = 0.0, count: int = 1) -> None:
    """Add ``wall`` and ``cpu`` seconds to stage ``name``."""
    if not ENABLED:
        return
    with _lock:
        entry = _stages.setdefault(name, {"wall": 0.0, "cpu": 0.0, "count": 0})
        entry["wall"] += wall
        entry["cpu"] += cpu
        entry["count"] += count


def mark(name: str) -> None:
    """Note that ``name`` happened now (the first time only)."""
    if not ENABLED:
        return
    with _lock:
        _marks.setdefault(name, time.monotonic() - _T0)


@contextlib.contextmanager
def _timed(name: str) -> Iterator[None]:
    wall, cpu = time.monotonic(), time.thread_time()
    try:
        yield
    finally:
        add(name, time.monotonic() - wall, time.thread_time() - cpu)


def stage(name: str) -> AbstractContextManager[None]:
    """A context manager timing its block as stage ``name`` (wall and this thread's CPU)."""
    if not ENABLED:
        return _NULL
    return _timed(name)


def record() -> dict[str, Any] | None:
    """What this run has recorded so far (None when not enabled)."""
    if not ENABLED:
        return None
    times = os.times()
    with _lock:
        return {"argv": sys.argv[1:], "pid": os.getpid(), "start_unix": _START_UNIX,
                "end": time.monotonic() - _T0,
                "process_cpu": times.user + times.system,
                "children_cpu": times.children_user + times.children_system,
                "stages": {name: dict(entry) for name, entry in _stages.items()},
                "marks": dict(_marks)}


def _write() -> None:
    document = record()
    if document is None or _PATH is None:
        return
    try:
        with open(_PATH, "a") as f:
            f.write(json.dumps(document, sort_keys=True) + "\n")
    except OSError:
        pass  # a measurement aid never fails the run


if ENABLED:
    atexit.register(_write)
