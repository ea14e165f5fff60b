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
    assert text.startswith("\r3M stored: 3M read, 2M uploaded, 1M reused ")
    assert text.endswith("\n") and text.count("\n") == 1


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
    assert human.getvalue().startswith("\r1M stored: 1M read, 0M uploaded, 0M reused, "
                                       "2M downloaded ")
