"""Chunks read as a file: whole reads, or short reads for chunks that arrive slowly."""

from arv_keepdocker_plugin.archive.streams import ChunkReader, chunks_of


def test_reads_are_filled_to_the_size_asked_for():
    reader = ChunkReader([b"ab", b"cde", b"", b"f"])
    assert [reader.read(4), reader.read(4), reader.read(4)] == [b"abcd", b"ef", b""]


def test_short_reads_pass_on_each_chunk_as_it_comes():
    def arriving():
        yield b"ab"
        yield b"cdefgh"
        raise AssertionError("read ahead of what was asked for")

    reader = ChunkReader(arriving(), short_reads=True)
    assert reader.read(4) == b"ab"  # without waiting for the next chunk
    assert reader.read(4) == b"cdef" and reader.read(4) == b"gh"
    assert list(chunks_of(ChunkReader([b"x", b"yz"], short_reads=True))) == [b"x", b"yz"]
