"""xz archives through the ``xz`` command (threaded decoder), against the real XZ Utils.

Same bytes, same bounds and the same one-line refusals as the in-process
decoder; a reader that stops early stops xz; without a new enough ``xz`` the
in-process decoder is used.
"""

import random
import subprocess
import time

import pytest

from arv_keepdocker_plugin.archive import streamed, xz_threads
from arv_keepdocker_plugin.archive.compression import Decompressor
from arv_keepdocker_plugin.errors import BadArchive

pytestmark = pytest.mark.skipif(xz_threads.command() is None,
                                reason="no xz of XZ Utils 5.4 or later on PATH")

MiB = 1 << 20


def noise(size, seed=1):
    """Half random bytes, half text: xz has work to do."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(4096) + b" ".join(b"word%d" % rng.randrange(500)
                                               for _ in range(600))[:4096]
    return bytes(out[:size])


def xz(data, *options):
    return subprocess.run(["xz", "-c", *options], input=data, capture_output=True,
                          check=True).stdout


def write(tmp_path, data, name="image.tar.xz"):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def read_all(path):
    with streamed.decompressed(path, "xz") as stream:
        return stream.read()


@pytest.fixture
def started(monkeypatch):
    """Every xz process started, and every in-process decoder (by kind)."""
    seen = []

    class Process(xz_threads.XzProcess):
        def __init__(self, source, argv):
            seen.append("xz command")
            super().__init__(source, argv)
            self_list.append(self)

    class InProcess(Decompressor):
        def __init__(self, kind):
            seen.append("in process")
            super().__init__(kind)

    self_list = []
    monkeypatch.setattr(streamed, "XzProcess", Process)
    monkeypatch.setattr(streamed, "Decompressor", InProcess)
    return seen, self_list


def test_a_stream_of_many_blocks_is_decompressed_on_every_core_byte_for_byte(tmp_path,
                                                                             started):
    data = noise(12 * MiB)
    compressed = xz(data, "-T2", "-1")  # 3 MiB blocks: several, each with its size
    path = write(tmp_path, compressed)
    listed = subprocess.run(["xz", "--robot", "--list", path], capture_output=True,
                            text=True, check=True).stdout
    totals = [l for l in listed.splitlines() if l.startswith("totals")][0].split("\t")
    assert int(totals[2]) > 1, listed  # blocks
    assert read_all(path) == data
    seen, _ = started
    assert seen == ["xz command"]
    assert "--threads=0" in xz_threads.command()


def test_concatenated_streams_and_stream_padding_are_read_whole(tmp_path):
    # As the in-process decoder reads them (and docker load, and xz -d).
    one, two = noise(300_000, 2), noise(200_000, 3)
    data = xz(one, "-1") + xz(two, "-1") + b"\0" * 8
    assert read_all(write(tmp_path, data)) == one + two
    decoder = Decompressor("xz")
    assert b"".join(decoder.feed(data)) == one + two


@pytest.mark.parametrize("fault, line", [
    ("truncated", "truncated xz data"),
    ("flipped", "corrupt xz data ("),
    ("garbage after", "corrupt xz data ("),
    ("xz -9", "xz data that needs more than 40 MiB to decompress, which is not accepted "
              "here: compress it at a lower level"),
])
def test_what_xz_refuses_is_one_line_in_the_in_process_decoders_words(tmp_path, fault, line):
    data = noise(2 * MiB, 4)
    compressed = xz(data, "-9" if fault == "xz -9" else "-1")
    if fault == "truncated":
        compressed = compressed[:len(compressed) // 2]
    elif fault == "flipped":
        flipped = bytearray(compressed)
        flipped[len(compressed) // 2] ^= 0xFF
        compressed = bytes(flipped)
    elif fault == "garbage after":
        compressed += b"not xz at all"
    path = write(tmp_path, compressed)
    with pytest.raises(BadArchive) as error:
        read_all(path)
    message = str(error.value)
    assert line in message and "\n" not in message, message
    assert message.startswith(path + ": "), message


def test_a_reader_that_stops_early_stops_xz(tmp_path, started):
    path = write(tmp_path, xz(noise(40 * MiB, 5), "-T2", "-1"))
    with streamed.decompressed(path, "xz") as stream:
        assert len(stream.read(MiB)) == MiB
    _, processes = started
    deadline = time.monotonic() + 10
    while processes[0].proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert processes[0].proc.returncode is not None  # ended, not left decompressing


def test_without_a_threaded_xz_the_in_process_decoder_reads_it(tmp_path, monkeypatch,
                                                               started):
    path = write(tmp_path, xz(noise(MiB, 6), "-1"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    old = bin_dir / "xz"  # an xz that says it is 5.2 (no threaded decoder)
    old.write_text("#!/bin/sh\necho XZ_VERSION=50020052\necho LIBLZMA_VERSION=50020052\n")
    old.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    xz_threads.command.cache_clear()
    try:
        assert xz_threads.command() is None
        assert read_all(path) == noise(MiB, 6)
        monkeypatch.setenv("PATH", "")
        xz_threads.command.cache_clear()
        assert xz_threads.command() is None
    finally:
        monkeypatch.undo()
        xz_threads.command.cache_clear()
    seen, _ = started
    assert seen == ["in process"]
