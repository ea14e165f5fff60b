"""At least 300 generated bad inputs: one line, exit 1 (2 for usage), nothing
written in Arvados, peak memory under 300 MiB, no hang."""

import io
import logging
import signal
import tracemalloc

import pytest

from arv_keepdocker_plugin import cli

from . import badinputs

MEMORY_LIMIT = 300 << 20
CASE_TIMEOUT = 120


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


class Timeout(Exception):
    pass


def run_in_process(args, api, capsys):
    handler = Lines()
    logger = logging.getLogger("arvados.keepdocker")
    logger.addHandler(handler)
    out = io.StringIO()

    def alarm(signum, frame):
        raise Timeout(f"no answer within {CASE_TIMEOUT}s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_TIMEOUT)
    tracemalloc.start()
    try:
        try:
            status, _ = cli.execute(["--no-progress"] + args, stdout=out,
                                    install_sig_handlers=False, api=api)
        except SystemExit as exit:
            status = exit.code
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        logger.removeHandler(handler)
    usage = capsys.readouterr().err
    return status, handler.lines, usage, out.getvalue(), peak


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return badinputs.all_cases(str(tmp_path_factory.mktemp("bad")))


def test_there_are_at_least_300_cases(cases):
    assert len(cases) >= 300
    assert len({case_id for case_id, _, _ in cases}) == len(cases)


def test_every_generated_bad_input_fails_cleanly(cases, arv_api, arvados_state, capsys,
                                                 monkeypatch, tmp_path, record_property):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    before = arvados_state.snapshot()
    failures, peaks = [], []
    for case_id, args, exits in cases:
        try:
            status, lines, usage, out, peak = run_in_process(args, arv_api, capsys)
        except Exception as error:  # a traceback is a failure of its own
            failures.append(f"{case_id}: raised {error!r}")
            continue
        peaks.append(peak)
        if status not in exits:
            failures.append(f"{case_id}: exit {status} (wanted {exits}): {lines}")
        elif status == 1 and len(lines) != 1:
            failures.append(f"{case_id}: {len(lines)} lines: {lines}")
        elif status == 2 and "error:" not in usage:
            failures.append(f"{case_id}: exit 2 without argparse's error line")
        elif out:
            failures.append(f"{case_id}: printed {out!r} on stdout")
        elif peak > MEMORY_LIMIT:
            failures.append(f"{case_id}: peak memory {peak >> 20} MiB")
        elif any(c in line for line in lines for c in "\x1b\x00\x07\n\u202e"):
            failures.append(f"{case_id}: unescaped control character in {lines!r}")
    assert failures == [], "\n".join(failures)
    assert arvados_state.snapshot() == before, "a bad input left something in Arvados"
    record_property("cases", len(cases))
    record_property("peak_traced_mib", max(peaks) >> 20)
    print(f"\nbad inputs: {len(cases)} tried, {len(cases) - len(failures)} held; peak traced "
          f"memory {max(peaks) >> 20} MiB")


def test_the_real_command_prints_one_line(cases, keepdocker, arvados_state):
    """A sample through the console command: stderr is exactly one line."""
    before = arvados_state.snapshot()
    # (A command line cannot carry a NUL byte: those cases run in-process only.)
    sample = [case for n, case in enumerate(cases) if n % 15 == 0 and case[2] == (1,)
              and not any("\0" in arg for arg in case[1])]
    for case_id, args, _exits in sample:
        proc = keepdocker("--no-progress", *args, timeout=300)
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        assert (proc.returncode, len(lines), proc.stdout) == (1, 1, ""), (case_id, lines)
    assert arvados_state.snapshot() == before
