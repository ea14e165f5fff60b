"""Progress lines: arv-put's formats, then what was read, uploaded and reused."""

import argparse
import io
import re

import pytest

from arv_keepdocker_plugin.keep.progress import Progress, mode_from_options


def test_machine_lines_start_as_arv_put_s():
    out = io.StringIO()
    progress = Progress("machine", stream=out, interval=0)
    progress.add(read=10, uploaded=6, written=6)
    progress.add(reused=4, written=4)
    progress.finish()
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"\S+ \d+: 6 written -1 total 10 read 6 uploaded 0 reused", lines[0])
    assert lines[-1].endswith(": 10 written -1 total 10 read 6 uploaded 4 reused")


def test_human_line_is_redrawn_and_ends_with_a_newline():
    out = io.StringIO()
    progress = Progress("human", stream=out, interval=0)
    progress.add(read=3 << 20, uploaded=2 << 20, reused=1 << 20, written=3 << 20)
    progress.finish()
    text = out.getvalue()
    assert text.startswith("\r3M stored (total unknown): 3M read, 2M uploaded, 1M reused ")
    assert text.endswith("\n") and text.count("\n") == 1


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_known_total_gives_a_percentage_a_rate_and_the_time_left():
    out, clock = io.StringIO(), Clock()
    progress = Progress("human", stream=out, interval=0, total=572 << 20, clock=clock)
    clock.now += 10
    progress.add(read=128 << 20, uploaded=128 << 20, written=128 << 20)
    # 3.2.1 (arv-put) says "128M / 572M 22.4%"; we add the rate and the time left.
    assert progress.human_line() == ("128M / 572M stored (22.4%), 12.8M/s, 0:35 left: "
                                     "128M read, 128M uploaded, 0M reused")
    clock.now += 34.7
    progress.add(read=444 << 20, uploaded=444 << 20, written=444 << 20)
    progress.finish()
    last = out.getvalue().rstrip("\n").rsplit("\r", 1)[1]
    assert last.startswith("572M / 572M stored (100.0%): 572M read")


def test_an_estimated_total_is_marked_and_stops_at_99_percent_until_the_end():
    out, clock = io.StringIO(), Clock()
    progress = Progress("human", stream=out, interval=0, total=100 << 20, estimated=True,
                        clock=clock)
    clock.now += 2
    progress.add(read=99 << 20, uploaded=99 << 20, written=int(99.9 * (1 << 20)))
    assert progress.human_line().startswith("99M / ~100M stored (99%), ")
    assert "~0:00 left" in progress.human_line()
    # The engine's size was short: the total follows what is written, still 99%.
    progress.add(written=20 << 20, uploaded=20 << 20)
    assert progress.human_line().startswith("119M / ~119M stored (99%)")
    progress.finish()
    assert out.getvalue().rstrip("\n").rsplit("\r", 1)[1].startswith(
        "119M / 119M stored (100.0%): ")


def test_batch_progress_reports_the_total_where_known_as_arv_put():
    exact = Progress("machine", stream=io.StringIO(), total=4096)
    exact.add(written=1024, read=1024, uploaded=1024)
    assert re.fullmatch(r"\S+ \d+: 1024 written 4096 total 1024 read 1024 uploaded 0 reused\n",
                        exact.machine_line())
    estimate = Progress("machine", stream=io.StringIO(), total=1000, estimated=True)
    estimate.add(written=1500)
    assert " 1500 written 1500 total " in estimate.machine_line()  # never below written
    unknown = Progress("machine", stream=io.StringIO())
    unknown.add(written=7)
    assert " 7 written -1 total " in unknown.machine_line()


def test_a_shorter_line_blanks_what_the_longer_one_left():
    out, clock = io.StringIO(), Clock()
    progress = Progress("human", stream=out, interval=0, total=10 << 30, clock=clock)
    clock.now += 5
    progress.add(written=5 << 30, read=5 << 30, uploaded=5 << 30)
    progress.finish()
    first, second = out.getvalue().split("\r")[1:]
    assert len(second.rstrip("\n")) >= len(first)


def test_no_mode_prints_nothing():
    out = io.StringIO()
    progress = Progress(None, stream=out, interval=0)
    progress.add(read=1, written=1)
    progress.finish()
    assert out.getvalue() == ""


@pytest.mark.parametrize("flags, tty, mode", [
    ({}, False, None),
    ({}, True, "human"),
    ({"progress": True}, False, "human"),
    ({"batch_progress": True}, True, "machine"),
    ({"no_progress": True}, True, None),
    ({"silent": True}, True, None),
])
def test_mode_follows_arv_put_s_rule(monkeypatch, flags, tty, mode):
    monkeypatch.setattr("sys.stderr.isatty", lambda: tty)
    assert mode_from_options(argparse.Namespace(**flags)) == mode


def test_a_downloading_source_adds_its_counter_after_the_others():
    out = io.StringIO()
    progress = Progress("machine", stream=out, interval=0, downloads=True)
    progress.add(downloaded=7)
    progress.add(read=5, uploaded=5, written=5, downloaded=5)
    progress.finish()
    last = out.getvalue().splitlines()[-1]
    # arv-put's prefix first, then the same pairs as every source, then downloads.
    assert re.fullmatch(r"\S+ \d+: 5 written -1 total 5 read 5 uploaded 0 reused 12 downloaded",
                        last)
    human = io.StringIO()
    progress = Progress("human", stream=human, interval=0, downloads=True)
    progress.add(read=1 << 20, written=1 << 20, downloaded=2 << 20)
    progress.finish()
    assert human.getvalue().startswith("\r1M stored (total unknown): 1M read, 0M uploaded, "
                                       "0M reused, "
                                       "2M downloaded ")


def test_on_a_terminal_the_line_never_wraps(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setenv("COLUMNS", "60")
    out = Terminal()
    progress = Progress("human", stream=out, interval=0, total=10 << 30, downloads=True)
    progress.add(written=5 << 30, read=5 << 30, downloaded=6 << 30)
    progress.finish()
    for line in out.getvalue().strip("\n").split("\r")[1:]:
        assert len(line) < 60 and line.startswith("5120M / 10240M stored (50.0%)")
