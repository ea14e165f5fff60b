"""The resume journal: what a rerun may reuse, and when it must start over."""

import time

import pytest

from arv_keepdocker_plugin.journal import MARGIN, Journal, journal_path
from arv_keepdocker_plugin.locators import block_key

from .fakes import FakeKeep, signed

IMAGE = "sha256:" + "1" * 64


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def stored(keep, *blocks):
    return [keep.put(block) for block in blocks]


def test_recorded_blocks_are_known_to_the_next_run():
    keep = FakeKeep()
    journal = Journal(IMAGE)
    locators = stored(keep, b"a", b"b")
    for locator in locators:
        journal.record(locator)
    journal.close()
    known = Journal(IMAGE).load(keep)
    assert known == {block_key(l): l for l in locators}
    assert len(keep.heads) == 1  # one HEAD checks the signatures, as arv-put's cache


def test_expired_or_nearly_expired_locators_are_ignored():
    keep = FakeKeep()
    journal = Journal(IMAGE)
    journal.record(signed(b"old", expiry=int(time.time()) + MARGIN - 60))
    journal.record(signed(b"gone", expiry=int(time.time()) - 1))
    journal.record(block_key(signed(b"unsigned")))
    journal.close()
    assert Journal(IMAGE).load(keep) == {}


def test_a_journal_keep_refuses_is_ignored_whole():
    keep = FakeKeep()
    journal = Journal(IMAGE)
    journal.record(signed(b"never stored"))
    journal.close()
    assert Journal(IMAGE).load(keep) == {}
    assert keep.heads


def test_disabled_journal_writes_nothing_and_discard_removes_it():
    Journal(IMAGE, enabled=False).record(signed(b"x"))
    path = journal_path(IMAGE)
    import os
    assert not os.path.exists(path)
    journal = Journal(IMAGE)
    journal.record(signed(b"x"))
    journal.close()
    assert os.path.exists(path)
    journal.discard()
    journal.discard()  # twice is fine
    assert not os.path.exists(path)
