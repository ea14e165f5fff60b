"""Streaming decompression of layers: none, gzip, zstd."""

import gzip
import lzma
import os
import random
import sys
import tracemalloc

import pytest

from arv_keepdocker_plugin.archive.compression import ZSTD_MODULES, CompressionError, Decompressor
from arv_keepdocker_plugin.distribution.layer_compression import (
    OUTPUT_CHUNK,
    compression_of,
    decompress,
    layer_decompressor,
    sniff,
    zstd_available,
)
from arv_keepdocker_plugin.distribution.registry_errors import DecompressionError

DATA = random.Random(1).randbytes(300_000) + b"\0" * 5_000_000


def pieces(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1 << 20, 4096, 7])
def test_gzip_streams_in_bounded_chunks(size):
    blob = gzip.compress(DATA[:200_000] if size == 7 else DATA)
    expected = DATA[:200_000] if size == 7 else DATA
    out = list(decompress(pieces(blob, size), "gzip"))
    assert b"".join(out) == expected
    assert max(len(o) for o in out) <= OUTPUT_CHUNK


def test_gzip_members_and_errors():
    blob = gzip.compress(b"one") + gzip.compress(b"two")
    assert b"".join(decompress([blob], "gzip")) == b"onetwo"
    for bad, message in ((blob[:-3], "truncated"), (blob + b"junk", "corrupt gzip"),
                         (b"", "empty gzip"), (b"not gzip", "corrupt gzip")):
        with pytest.raises(DecompressionError, match=message):
            list(decompress([bad], "gzip", "layer sha256:x"))


def test_plain_is_rechunked():
    out = list(decompress([DATA], "none"))
    assert b"".join(out) == DATA and max(map(len, out)) <= OUTPUT_CHUNK


def test_media_types():
    assert compression_of("application/vnd.docker.image.rootfs.diff.tar.gzip") == "gzip"
    assert compression_of("application/vnd.oci.image.layer.v1.tar+gzip") == "gzip"
    assert compression_of("application/vnd.oci.image.layer.v1.tar") == "none"
    assert compression_of("application/vnd.oci.image.layer.v1.tar+zstd") == "zstd"
    with pytest.raises(DecompressionError, match="unsupported layer media type"):
        compression_of("application/x-unknown")
    assert sniff(gzip.compress(b"")) == "gzip" and sniff(b"\x28\xb5\x2f\xfd..") == "zstd"
    assert sniff(b"ustar") == "none"
    blob = gzip.compress(b"layer")
    assert b"".join(layer_decompressor("application/vnd.oci.image.layer.v1.tar+gzip",
                                       [blob])) == b"layer"


def test_zstd_when_installed():
    zstd = pytest.importorskip("backports.zstd")
    assert zstd_available()
    blob = zstd.compress(DATA) + zstd.compress(b"2")
    out = list(decompress(pieces(blob, 65536), "zstd"))
    assert b"".join(out) == DATA + b"2" and max(map(len, out)) <= OUTPUT_CHUNK
    with pytest.raises(DecompressionError, match="truncated"):
        list(decompress(pieces(blob[:-1], 65536), "zstd"))
    with pytest.raises(DecompressionError, match="corrupt zstd data"):
        list(decompress([blob + b"garbage!"], "zstd"))
    with pytest.raises(DecompressionError, match="empty zstd stream"):
        list(decompress([], "zstd"))


def test_zstd_missing_names_the_extra(monkeypatch):
    for name in ZSTD_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # import fails
    assert not zstd_available()
    with pytest.raises(DecompressionError) as info:
        list(decompress([b"\x28\xb5\x2f\xfd"], "zstd", "layer sha256:abc"))
    assert str(info.value) == ("layer sha256:abc is zstd-compressed and no zstd decompressor "
                               "is installed (pip install 'arv-keepdocker-plugin[zstd]')")


def test_imagebuilds_raw_block_zstd_frames_decompress():
    pytest.importorskip("backports.zstd")
    from arv_keepdocker_testkit.imagebuild import zstd_bytes
    payload = os.urandom(300_000)
    assert b"".join(decompress([zstd_bytes(payload)], "zstd")) == payload
    # A skippable frame, then a frame given one byte at a time.
    skippable = b"\x50\x2a\x4d\x18\x03\x00\x00\x00abc"
    small = zstd_bytes(b"tiny")
    assert b"".join(decompress([bytes([b]) for b in skippable + small], "zstd")) == b"tiny"


@pytest.mark.parametrize("size", [1 << 20, 65536, 1000])
def test_zstd_frames_ending_early_in_a_chunk_as_zstd_chunked_writes_them(size):
    # zstd:chunked: a frame per file (the first one tiny), then skippable
    # frames holding its table of contents; the chunk a frame ends in holds
    # far more than the decompressor is fed at once.
    zstd = pytest.importorskip("backports.zstd")
    files = [b"h" * 512, random.Random(2).randbytes(100_000), b"t" * 1024]
    frames = b"".join(zstd.compress(f) for f in files)
    skippable = b"\x50\x2a\x4d\x18\x05\x00\x00\x00toc!!" + b"\x51\x2a\x4d\x18\x02\x00\x00\x00ft"
    out = b"".join(decompress(pieces(frames + skippable, size), "zstd"))
    assert out == b"".join(files)


@pytest.mark.parametrize("kind", ["zstd", "gzip"])
def test_a_bomb_decompresses_in_bounded_memory(kind):
    # 256 MiB of zeros in 8 KiB (zstd) or 260 KiB (gzip), fed in 64 KiB pieces:
    # the decompressor is asked for at most OUTPUT_CHUNK bytes a call, so what
    # is held at once stays near that, whatever the ratio (zstandard's
    # decompression object returned a whole piece's output: 1 GiB for 32 KiB).
    pytest.importorskip("backports.zstd")
    from arv_keepdocker_testkit import bombs
    size = 256 << 20
    blob = bombs.compressed_zeros(kind, size)
    assert len(blob) < size // 900
    total, largest = 0, 0
    tracemalloc.start()
    try:
        for piece in decompress(pieces(blob, 65536), kind, "bomb"):
            total += len(piece)
            largest = max(largest, len(piece))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == size and largest <= OUTPUT_CHUNK
    assert peak < len(blob) + 4 * OUTPUT_CHUNK, peak


def test_a_stream_needing_more_than_40_mib_to_decompress_is_refused_in_one_line():
    # zstd's window and xz's dictionary are the stream's choice, up to gigabytes.
    zstd = pytest.importorskip("backports.zstd")
    parameter = zstd.CompressionParameter.window_log
    for log, accepted in ((25, True), (26, False)):  # 32 MiB (zstd:chunked's), 64 MiB
        compressor = zstd.ZstdCompressor(options={parameter: log})
        blob = compressor.compress(b"x" * 4096) + compressor.flush(compressor.FLUSH_FRAME)
        if accepted:
            assert b"".join(decompress([blob], "zstd")) == b"x" * 4096
            continue
        with pytest.raises(DecompressionError) as info:
            list(decompress([blob], "zstd", "layer sha256:abc"))
        assert str(info.value) == ("layer sha256:abc: zstd data that needs more than 40 MiB to "
                                   "decompress, which is not accepted here: compress it at a "
                                   "lower level")


@pytest.mark.parametrize("dictionary_mib, accepted", [(8, True), (32, True), (64, False)])
def test_xz_dictionaries_within_the_budget(dictionary_mib, accepted):
    # xz -6 (the default), -8, -9: the dictionary a stream declares is what its
    # decoder allocates.
    compressor = lzma.LZMACompressor(filters=[{"id": lzma.FILTER_LZMA2, "preset": 0,
                                               "dict_size": dictionary_mib << 20}])
    blob = compressor.compress(b"x" * 4096) + compressor.flush()
    decompressor = Decompressor("xz")
    if accepted:
        assert b"".join(decompressor.feed(blob)) == b"x" * 4096
        return
    with pytest.raises(CompressionError, match="xz data that needs more than 40 MiB"):
        list(decompressor.feed(blob))
