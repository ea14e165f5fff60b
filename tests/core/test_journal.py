"""The resume journal: what a rerun may reuse, and when it must start over."""

import logging
import os
import stat
import time

import pytest
from arv_keepdocker_testkit.fakes import FakeKeep, signed

from arv_keepdocker_plugin.keep.journal import MARGIN, Journal, journal_path, token_uuid
from arv_keepdocker_plugin.keep.layer_blocks import LayerBlocks
from arv_keepdocker_plugin.keep.locators import block_key

IMAGE = "sha256:" + "1" * 64
TOKEN = "v2/zzzzz-gj3su-000000000000001/secretsecretsecret"
OTHER = "v2/zzzzz-gj3su-000000000000002/othersecret"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def write(token, *locators):
    journal = Journal(IMAGE, token=token)
    for locator in locators:
        journal.record(locator)
    journal.close()


def test_recorded_blocks_are_known_to_a_rerun_with_the_same_token():
    keep = FakeKeep()
    locators = [keep.put(b"a"), keep.put(b"b")]
    write(TOKEN, *locators)
    assert Journal(IMAGE, token=TOKEN).load(keep) == {block_key(l): l for l in locators}
    assert keep.heads == []  # the token's UUID says whose signatures they are


def test_the_secret_is_never_written_only_the_uuid():
    write(TOKEN, signed(b"a"))
    text = open(journal_path(IMAGE)).read()
    assert "secret" not in text
    assert text.splitlines()[0] == "token zzzzz-gj3su-000000000000001"
    assert token_uuid("bare-v1-token") is None


def test_another_token_s_journal_is_not_used():
    keep = FakeKeep()
    write(OTHER, keep.put(b"a"))
    assert Journal(IMAGE, token=TOKEN).load(keep) == {}


def test_without_a_token_uuid_each_locator_is_checked_by_head():
    keep = FakeKeep()
    stored, missing = keep.put(b"a"), signed(b"never stored")
    write(None, stored, missing)
    assert Journal(IMAGE, token="v1secret").load(keep) == {block_key(stored): stored}
    assert sorted(keep.heads) == sorted([stored, missing])


def test_locators_expiring_before_the_upload_can_finish_are_dropped():
    keep = FakeKeep()
    soon = signed(b"soon", expiry=int(time.time()) + 600)
    later = signed(b"later", expiry=int(time.time()) + 7 * 86400)
    write(TOKEN, soon, later, block_key(signed(b"unsigned")))
    assert Journal(IMAGE, token=TOKEN).load(keep) == {block_key(later): later}
    # A long upload moves the deadline: then "later" must outlive it too.
    assert Journal(IMAGE, token=TOKEN).load(keep, time.time() + 8 * 86400) == {}
    assert MARGIN >= 3600


def test_a_rerun_appends_to_its_own_journal():
    keep = FakeKeep()
    first = keep.put(b"a")
    write(TOKEN, first)
    journal = Journal(IMAGE, token=TOKEN)
    assert journal.load(keep)
    second = keep.put(b"b")
    journal.record(second)
    journal.close()
    assert set(Journal(IMAGE, token=TOKEN).load(keep).values()) == {first, second}


@pytest.mark.parametrize("content", [b"\x00\xffbinary", b"not a locator\n", b"{}\n" * 3])
def test_a_garbage_journal_is_discarded_with_a_warning(caplog, content):
    path = journal_path(IMAGE)
    with open(path, "wb") as f:
        f.write(content)
    with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
        assert Journal(IMAGE, token=TOKEN).load(FakeKeep()) == {}
    assert "ignoring the resume journal" in caplog.text
    assert not os.path.exists(path)


def test_a_fifo_or_a_directory_is_not_read_and_never_hangs(caplog):
    path = journal_path(IMAGE)
    os.mkfifo(path)  # opening a FIFO for reading would block without O_NONBLOCK
    with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
        assert Journal(IMAGE, token=TOKEN).load(FakeKeep()) == {}
    assert "not a regular file" in caplog.text and not os.path.exists(path)
    os.mkdir(path)
    assert Journal(IMAGE, token=TOKEN).load(FakeKeep()) == {}
    assert not os.path.exists(path)


def test_an_unwritable_journal_is_a_warning_not_a_failure(caplog):
    cache = os.path.dirname(journal_path(IMAGE))
    os.chmod(cache, stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(cache, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        journal = Journal(IMAGE, token=TOKEN)
        with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
            journal.record(signed(b"x"))
            journal.record(signed(b"y"))
        assert caplog.text.count("cannot write the resume journal") == 1
    finally:
        os.chmod(cache, stat.S_IRWXU)


def test_a_journal_on_a_full_disk_is_a_warning_not_a_failure(caplog, monkeypatch):
    journal = Journal(IMAGE, token=TOKEN)
    journal.path = "/dev/full"  # every write fails with ENOSPC
    journal._appendable = True
    with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
        journal.record(signed(b"x"))
    assert "No space left on device" in caplog.text and not journal.enabled


def test_disabled_journal_writes_nothing_and_discard_removes_it():
    Journal(IMAGE, enabled=False).record(signed(b"x"))
    path = journal_path(IMAGE)
    assert not os.path.exists(path)
    write(TOKEN, signed(b"x"))
    assert os.path.exists(path)
    Journal(IMAGE).discard()
    Journal(IMAGE).discard()  # twice is fine
    assert not os.path.exists(path)


# -- whole layers -------------------------------------------------------------

D1, X1 = "sha256:" + "d1" * 32, "sha256:" + "e1" * 32
D2, X2 = "sha256:" + "d2" * 32, "sha256:" + "e2" * 32


def write_layers(token, keep, expiry=None):
    """Two layers journalled by ``token``: D1 in two blocks, D2 in one."""
    blocks = {name: keep.put(name.encode() * 100) for name in "abc"}
    if expiry is not None:
        blocks["c"] = signed(b"c" * 100, expiry=expiry)
    journal = Journal(IMAGE, token=token)
    for locator in blocks.values():
        journal.record(locator)
    journal.record_layer(D1, X1, [blocks["a"], blocks["b"]])
    journal.record_layer(D2, X2, [blocks["c"]])
    journal.close()
    return blocks


def test_layers_stored_whole_are_offered_to_a_rerun_with_the_same_token():
    keep = FakeKeep()
    blocks = write_layers(TOKEN, keep)
    contents = Journal(IMAGE, token=TOKEN).read(keep)
    assert contents.layers == {D1: LayerBlocks([blocks["a"], blocks["b"]], X1),
                               D2: LayerBlocks([blocks["c"]], X2)}
    assert contents.layers[D1].size == 200
    assert contents.blocks == {block_key(l): l for l in blocks.values()}
    text = open(journal_path(IMAGE)).read()
    assert "secret" not in text
    assert "layer {} {} {} {}\n".format(D1, X1, blocks["a"], blocks["b"]) in text


def test_layers_never_cross_tokens():
    keep = FakeKeep()
    write_layers(OTHER, keep)
    assert Journal(IMAGE, token=TOKEN).read(keep).layers == {}


def test_a_layer_with_one_block_unusable_is_not_offered():
    keep = FakeKeep()
    soon = int(time.time()) + 600
    blocks = write_layers(TOKEN, keep, expiry=soon)
    contents = Journal(IMAGE, token=TOKEN).read(keep)
    assert set(contents.layers) == {D1}  # D2's only block expires before the upload ends
    assert block_key(blocks["c"]) not in contents.blocks


def test_without_a_token_uuid_every_block_of_a_layer_must_answer_head():
    keep = FakeKeep()
    blocks = write_layers(None, keep)
    del keep.blocks[blocks["b"].split("+")[0]]  # gone, or signed for another token
    contents = Journal(IMAGE, token="v1secret").read(keep)
    assert set(contents.layers) == {D2}


def test_a_layer_line_with_a_bad_digest_or_locator_makes_the_journal_garbage(caplog):
    for line in ["layer sha256:xyz {} {}".format(X1, signed(b"a")),
                 f"layer {D1} {X1} not-a-locator",
                 f"layer {D1} {X1}"]:
        with open(journal_path(IMAGE), "w") as f:
            f.write("token zzzzz-gj3su-000000000000001\n" + line + "\n")
        with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
            assert Journal(IMAGE, token=TOKEN).read(FakeKeep()).layers == {}
        assert "ignoring the resume journal" in caplog.text
        assert not os.path.exists(journal_path(IMAGE))


def test_record_layer_writes_nothing_malformed():
    journal = Journal(IMAGE, token=TOKEN)
    journal.record_layer(D1, X1, [])
    journal.record_layer("sha256:short", X1, [signed(b"a")])
    journal.record_layer(D1, X1, ["bad locator"])
    journal.close()
    assert not os.path.exists(journal_path(IMAGE))
