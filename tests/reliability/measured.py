"""The real command run as the benchmarks measure it, under a memory limit.

:func:`run` starts ``argv`` under ``ulimit -v 1600000`` (as a site's batch
system or a container limit would cap it: a run that asks for more gets a
``MemoryError``, not the machine's swap) and measures it with
``bench/runmeasure.py``: the peak RSS of the whole process tree, sampled
every 20 ms. (Its other figure, ``ru_maxrss`` from ``wait4``, is no use
here: a child spawned from the test process starts with the test process's
memory high-water mark, which is what it would report for a small run.)
:func:`one_line_refusal`
checks what every hostile input must give: exit 1, nothing on stdout, one
line on stderr, peak memory under 300 MiB.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from runmeasure import RunResult, run_measured  # noqa: E402  (bench/ is not a package)

#: What every run must stay under, whatever it is given.
MEMORY_LIMIT = 300 << 20
#: ``ulimit -v`` (KiB) for the measured runs.
ADDRESS_SPACE_KIB = 1_600_000
LOG_LINE = re.compile(r"^\S+ \S+ arvados\.keepdocker\[\d+\] ERROR: (.*)$")


def run(argv: Sequence[str], env: dict[str, str], log_prefix: str) -> RunResult:
    """Run ``argv`` to its end under the address-space limit; measured."""
    limited = ["sh", "-c", 'ulimit -v %d && exec "$@"' % ADDRESS_SPACE_KIB, "sh", *argv]
    return run_measured(limited, env, log_prefix, interval=0.02)


def peak(result: RunResult) -> int:
    """The process tree's peak RSS, in bytes."""
    return result.tree_rss


def one_line_refusal(result: RunResult) -> str:
    """The one error line's message, after checking exit 1, no stdout, peak memory."""
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert (result.returncode, result.stdout, len(lines)) == (1, "", 1), (
        result.returncode, result.stdout, result.stderr[-3000:])
    match = LOG_LINE.match(lines[0])
    assert match, lines[0]
    assert peak(result) < MEMORY_LIMIT, "peak %d MiB" % (peak(result) >> 20)
    return match.group(1)
