"""Run one command and measure it: wall time, peak memory, peak extra disk.

* Wall time: from spawn to the end of ``wait4`` (exact, not sampled).
* Peak memory, two figures:
  ``tree_rss`` - the largest sum of ``VmRSS`` over the command's process tree
  (the process and all its descendants, found through ``/proc/*/stat``),
  sampled every ``interval`` seconds;
  ``max_rss`` - ``ru_maxrss`` from ``wait4``: the peak RSS of the largest
  single process among the command and its reaped descendants (exact).
* Peak extra disk: every ``interval`` seconds, the bytes allocated
  (``st_blocks``) under the watched directories, plus regular files the
  process tree holds open that have no name (deleted or ``O_TMPFILE``), minus
  the first sample. Also, separately, the peak size of "engine" directories
  (the Docker engine's staging area for ``docker save``).
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class RunResult:
    """What :func:`run_measured` found about one run."""

    argv: list[str]
    returncode: int
    wall: float
    tree_rss: int
    max_rss: int
    extra_disk: int
    engine_disk: int
    stdout: str
    stderr: str
    samples: int = 0
    extra: dict[str, object] = field(default_factory=dict)
    #: CPU seconds (user + system) of the process and the children it waited for.
    cpu: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def dir_bytes(path: str) -> int:
    """Bytes allocated to files under ``path`` (``du``-like, no symlinks followed)."""
    total = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(entry.path)
            elif stat.S_ISREG(info.st_mode):
                total += info.st_blocks * 512
    return total


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants (by scanning ``/proc``)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def rss_bytes(pid: int) -> int:
    """``VmRSS`` of ``pid`` in bytes (0 if gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def unnamed_open_files(pid: int, seen: set) -> int:
    """Bytes of regular files ``pid`` holds open that are deleted or ``O_TMPFILE``."""
    total = 0
    fd_dir = "/proc/%d/fd" % pid
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return 0
    for fd in fds:
        path = os.path.join(fd_dir, fd)
        try:
            target = os.readlink(path)
            if not target.startswith("/") or target.startswith("/memfd:"):
                continue
            if not target.endswith(" (deleted)"):
                continue
            info = os.stat(path)
        except OSError:
            continue
        key = (info.st_dev, info.st_ino)
        if stat.S_ISREG(info.st_mode) and key not in seen:
            seen.add(key)
            total += info.st_blocks * 512
    return total


class _Sampler(threading.Thread):
    def __init__(self, pid: int, watch: Sequence[str], engine_dirs: Sequence[str],
                 interval: float):
        super().__init__(daemon=True)
        self.pid, self.watch, self.engine_dirs = pid, list(watch), list(engine_dirs)
        self.interval = interval
        self.stop_event = threading.Event()
        self.first_disk: int | None = None
        self.first_engine: int | None = None
        self.peak_rss = self.peak_disk = self.peak_engine = 0
        self.samples = 0

    def sample(self) -> None:
        tree = process_tree(self.pid)
        rss = sum(rss_bytes(pid) for pid in tree)
        seen: set = set()
        disk = sum(dir_bytes(d) for d in self.watch)
        disk += sum(unnamed_open_files(pid, seen) for pid in tree)
        engine = sum(dir_bytes(d) for d in self.engine_dirs)
        if self.first_disk is None:
            self.first_disk, self.first_engine = disk, engine
        self.peak_rss = max(self.peak_rss, rss)
        self.peak_disk = max(self.peak_disk, disk - self.first_disk)
        self.peak_engine = max(self.peak_engine, engine - self.first_engine)
        self.samples += 1

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)


def run_measured(argv: Sequence[str], env: dict[str, str], log_prefix: str,
                 watch: Sequence[str] = (), engine_dirs: Sequence[str] = (),
                 interval: float = 0.05, cwd: str | None = None) -> RunResult:
    """Run ``argv`` to completion and measure it (see the module docstring).

    stdout and stderr go to ``<log_prefix>.out`` / ``.err`` (kept for reading).
    """
    out_path, err_path = log_prefix + ".out", log_prefix + ".err"
    initial_disk = sum(dir_bytes(d) for d in watch)
    initial_engine = sum(dir_bytes(d) for d in engine_dirs)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.monotonic()
        process = subprocess.Popen(list(argv), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                   stdout=out, stderr=err)
        sampler = _Sampler(process.pid, watch, engine_dirs, interval)
        sampler.first_disk, sampler.first_engine = initial_disk, initial_engine
        sampler.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            os.wait4(process.pid, 0)
            sampler.stop_event.set()
            raise
        wall = time.monotonic() - start
        sampler.stop_event.set()
        sampler.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path, errors="replace") as f:
        stdout = f.read()
    with open(err_path, errors="replace") as f:
        stderr = f.read()
    return RunResult(argv=list(argv), returncode=process.returncode, wall=wall,
                     tree_rss=sampler.peak_rss, max_rss=usage.ru_maxrss * 1024,
                     extra_disk=sampler.peak_disk, engine_disk=sampler.peak_engine,
                     stdout=stdout, stderr=stderr, samples=sampler.samples,
                     cpu=usage.ru_utime + usage.ru_stime)
