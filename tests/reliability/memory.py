"""Peak memory of the tool's runs during a test: the largest process-tree RSS seen.

As ``bench/runmeasure.py`` measures one command (the largest sum of ``VmRSS``
over the tool's process tree, sampled), but for every run of the tool a test
starts, however it starts it: every process whose command line runs
``arv_keepdocker_plugin`` (``python -m arv_keepdocker_plugin``, ``unshare ...``
around it, the console scripts), and its descendants (the ``docker`` CLI,
engines it starts) that this test process started. Runs at the same time
count apart: the figure is the largest single run's tree. A test that runs
the tool in-process (no run of its own) gets the peak RSS of the test
process itself instead (``own_peak``): an upper bound, pytest included.
"""

from __future__ import annotations

import os
import threading

PAGE = os.sysconf("SC_PAGE_SIZE")
#: ``python -m arv_keepdocker_plugin ...`` (also under ``unshare``); the console script.
TOOL_MODULE = b"\0-m\0arv_keepdocker_plugin\0"
TOOL_SCRIPT = b"arv-keepdocker"


def is_tool(cmdline: bytes) -> bool:
    argv0 = cmdline.split(b"\0", 1)[0]
    return TOOL_MODULE in cmdline or argv0.endswith(TOOL_SCRIPT)


def _processes() -> dict[int, tuple[int, str]]:
    """``{pid: (parent pid, start time)}`` of every process."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        found[int(name)] = (int(fields[1]), fields[19].decode())
    return found


def _rss(pid: int) -> int:
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


class ToolMemory(threading.Thread):
    """``start()`` it; ``stop()`` gives the peak tree RSS in bytes (None: no run seen)."""

    def __init__(self, interval: float = 0.05):
        super().__init__(daemon=True)
        self.interval = interval
        self.halt = threading.Event()
        self.peak: int | None = None
        self.own_peak = 0
        self._is_tool: dict[tuple[int, str], bool] = {}
        self._me = os.getpid()

    def _tool(self, pid: int, start: str) -> bool:
        key = (pid, start)
        if key not in self._is_tool:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmdline = f.read()
            except OSError:
                cmdline = b""
            self._is_tool[key] = pid != self._me and is_tool(cmdline)
        return self._is_tool[key]

    def _mine(self, pid: int, processes: dict[int, tuple[int, str]]) -> bool:
        seen = set()
        while pid in processes and pid not in seen:
            if pid == self._me:
                return True
            seen.add(pid)
            pid = processes[pid][0]
        return False

    def sample(self) -> None:
        self.own_peak = max(self.own_peak, _rss(self._me))
        processes = _processes()
        children: dict[int, list[int]] = {}
        for pid, (parent, _) in processes.items():
            children.setdefault(parent, []).append(pid)
        for pid, (parent, start) in processes.items():
            if not self._tool(pid, start):
                continue
            above = processes.get(parent)
            if above is not None and self._tool(parent, above[1]):
                continue  # counted in its root's tree
            if not self._mine(pid, processes):
                continue  # another test session's run on this machine
            total, todo = 0, [pid]
            while todo:
                current = todo.pop()
                total += _rss(current)
                todo.extend(children.get(current, ()))
            self.peak = max(self.peak or 0, total)

    def run(self) -> None:
        while not self.halt.is_set():
            self.sample()
            self.halt.wait(self.interval)

    def stop(self) -> int | None:
        self.halt.set()
        self.join()
        return self.peak
