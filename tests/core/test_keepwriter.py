"""The block writer: cuts, reuse by md5, stored placeholders, failures (fake Keep)."""

import hashlib
import io

import pytest
from arv_keepdocker_testkit.fakes import FakeKeep, signed

from arv_keepdocker_plugin.archive.layer_digests import Digests
from arv_keepdocker_plugin.image import StoredData
from arv_keepdocker_plugin.keep.block_writer import BLOCK_SIZE, BlockWriter, write_pieces
from arv_keepdocker_plugin.keep.layer_blocks import LayerBlocks
from arv_keepdocker_plugin.keep.locators import block_key
from arv_keepdocker_plugin.keep.progress import Progress


def writer(keep, known=None, recorded=None):
    return BlockWriter(keep, copies=2, num_retries=0, progress=Progress(None),
                       known=known, on_stored=(recorded.append if recorded is not None
                                               else None))


def sizes(locators):
    return [int(loc.split("+")[1]) for loc in locators]


def test_blocks_end_at_every_cut_and_at_64_mib():
    keep = FakeKeep()
    w = writer(keep)
    w.cut_at(100)
    w.cut_at(300)
    w.cut_at(100)  # twice is once
    w.write(b"a" * 150)
    w.write(b"b" * (BLOCK_SIZE + 200))
    locators = w.close()
    assert sizes(locators) == [100, 200, BLOCK_SIZE, 50]
    assert w.position == 150 + BLOCK_SIZE + 200
    assert [copies for _, copies in keep.puts] == [2, 2, 2, 2]
    assert b"".join(block for block, _ in keep.puts) == b"a" * 150 + b"b" * (BLOCK_SIZE + 200)


def test_a_known_block_is_not_uploaded_but_its_locator_is_used():
    keep = FakeKeep()
    known_block = b"k" * 1000
    known = {block_key(signed(known_block)): signed(known_block)}
    recorded = []
    w = writer(keep, known, recorded)
    w.cut_at(1000)
    w.write(known_block + b"new")
    locators = w.close()
    assert locators[0] == known[block_key(locators[0])]
    assert [block for block, _ in keep.puts] == [b"new"]
    assert recorded == [locators[1]]  # only uploaded blocks are journalled
    assert (w.progress.reused, w.progress.uploaded, w.progress.written) == (1000, 3, 1003)


def test_a_block_of_other_content_with_a_known_size_is_uploaded():
    keep = FakeKeep()
    known = {block_key(signed(b"x" * 10)): signed(b"x" * 10)}
    w = writer(keep, known)
    w.write(b"y" * 10)
    assert w.close()[0].startswith(hashlib.md5(b"y" * 10).hexdigest())
    assert len(keep.puts) == 1


def test_stored_data_is_appended_unread():
    keep = FakeKeep()
    w = writer(keep)
    stored = [signed(b"s" * 64), signed(b"t" * 36)]
    w.write(b"head")
    w.stored(stored, 100)
    w.write(b"tail")
    locators = w.close()
    assert locators[1:3] == stored
    assert sizes(locators) == [4, 64, 36, 4]
    assert w.position == 108
    assert [block for block, _ in keep.puts] == [b"head", b"tail"]


def test_a_failed_put_fails_the_upload():
    keep = FakeKeep(fail_puts=1)
    w = writer(keep)
    w.write(b"z" * 10)
    with pytest.raises(IOError, match="Keep refused"):
        w.close()


def test_abort_stops_the_writer_threads():
    keep = FakeKeep()
    w = writer(keep)
    w.cut_at(5)
    w.write(b"0123456789")
    w.abort()
    assert w._pool._shutdown


def test_write_pieces_feeds_bytes_through_the_tap_and_skips_stored_layers():
    keep = FakeKeep()
    w = writer(keep)

    class Tap:
        def __init__(self):
            self.fed, self.skipped, self.finished = [], [], False

        def feed(self, data):
            self.fed.append(bytes(data))

        def skip(self, size, digests):
            self.skipped.append((size, digests))

        def finish(self):
            self.finished = True

    tap = Tap()
    stored = [signed(b"L" * 20)]
    write_pieces([b"ab", b"", StoredData("sha256:l", 20), b"cd"], tap, w,
                 {"sha256:l": LayerBlocks(stored, "sha256:d")})
    locators = w.close()
    assert tap.fed == [b"ab", b"cd"] and tap.finished
    # The tap checks a skipped layer's recorded digests against the config.
    assert tap.skipped == [(20, Digests("sha256:l", "sha256:d"))]
    assert locators[1] == stored[0]
    assert w.progress.read == 4  # stored data is never read


def test_memory_holds_at_most_the_buffer_and_the_blocks_in_flight():
    # Not a timing test: the writer's semaphore is what bounds memory.
    from arv_keepdocker_plugin.keep import block_writer as keepwriter
    assert keepwriter.IN_FLIGHT == 2
    stream = io.BytesIO(b"q" * 1000)
    keep = FakeKeep()
    w = writer(keep)
    w.write(stream.read())
    w.close()
    assert w._slots._value == keepwriter.IN_FLIGHT


def test_when_stored_gives_a_ranges_blocks_once_all_are_in_keep():
    keep = FakeKeep()
    w = writer(keep)
    told = []
    # A "layer" at [100, 100 + BLOCK_SIZE + 50): two blocks, cut at both ends.
    start, end = 100, 100 + BLOCK_SIZE + 50
    w.cut_at(start)
    w.cut_at(end)
    w.when_stored(start, end, told.append)
    w.when_stored(50, 150, lambda locators: told.append(("unaligned", locators)))
    w.write(b"h" * 100)
    assert told == []  # not written yet
    w.write(b"L" * (BLOCK_SIZE + 50) + b"tail")
    locators = w.close()
    assert told == [locators[1:3]]
    assert sizes(told[0]) == [BLOCK_SIZE, 50]


def test_when_stored_counts_stored_placeholders_and_never_calls_after_a_failure():
    keep = FakeKeep()
    w = writer(keep)
    told = []
    stored = [signed(b"S" * 30)]
    w.write(b"h" * 10)
    w.stored(stored, 30)
    w.when_stored(10, 40, told.append)
    w.close()
    assert told == [stored]

    failing = writer(FakeKeep(fail_puts=1))
    failing.cut_at(10)
    failing.when_stored(0, 10, told.append)
    failing.write(b"x" * 10)
    with pytest.raises(IOError):
        failing.close()
    assert told == [stored]


def test_a_stored_layer_whose_blocks_do_not_match_the_export_is_refused():
    from arv_keepdocker_plugin.errors import BadArchive

    class Tap:
        archive = "test"

        def skip(self, size, digests):
            raise AssertionError("never reached")

    w = writer(FakeKeep())
    with pytest.raises(BadArchive, match="stored layer sha256:l is 20 bytes in Keep, but the "
                       "image says 21"):
        write_pieces([StoredData("sha256:l", 21)], Tap(), w,
                     {"sha256:l": LayerBlocks([signed(b"L" * 20)], "sha256:d")})
    w.abort()


def test_write_pieces_reports_what_a_downloading_image_received():
    w = writer(FakeKeep())
    received = iter([5, 5, 12, 20])  # before, at each piece, at the end

    class Tap:
        def feed(self, data):
            pass

        def finish(self):
            pass

    write_pieces([b"ab", b"cdef"], Tap(), w, {}, lambda: next(received))
    w.close()
    assert w.progress.downloaded == 15  # 20 - 5: what arrived while the export ran


def held_writer(keep, known=None):
    return BlockWriter(keep, copies=2, num_retries=0, progress=Progress(None), known=known,
                       hold=True)


def test_held_blocks_outside_layers_wait_for_release_and_layers_do_not():
    keep = FakeKeep()
    w = held_writer(keep)
    w.cut_at(100)
    w.cut_at(300)
    w.layer_at(100, 300)
    w.write(b"h" * 100 + b"L" * 200 + b"t" * 50)
    w._flush()
    for item in w._locators:  # let the layer's block reach Keep
        if hasattr(item, "result"):
            item.result()
    assert [block for block, _ in keep.puts] == [b"L" * 200]
    assert w.held == 150
    locators = w.close()  # releases what was held
    assert sizes(locators) == [100, 200, 50]
    assert sorted(block for block, _ in keep.puts) == sorted([b"h" * 100, b"L" * 200,
                                                              b"t" * 50])


def test_abort_drops_held_blocks_and_learn_spares_known_layer_blocks():
    keep = FakeKeep()
    layer = b"L" * 200
    w = held_writer(keep)
    w.learn({block_key(signed(layer)): signed(layer)})
    w.cut_at(100)
    w.cut_at(300)
    w.layer_at(100, 300)
    w.write(b"h" * 100 + layer + b"t" * 50)
    w._flush()
    w.abort()
    assert keep.puts == []  # the layer was known, the rest held back and dropped


def test_held_bytes_are_bounded():
    from arv_keepdocker_plugin.keep.block_writer import HOLD_LIMIT
    keep = FakeKeep()
    w = held_writer(keep)
    piece = HOLD_LIMIT // 4 + 1
    for n in range(1, 6):
        w.cut_at(n * piece)
    w.write(b"x" * (5 * piece))
    w.close()
    assert len(keep.puts) == 5
    assert w.held == 0
