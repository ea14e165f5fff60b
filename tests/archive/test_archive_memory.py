"""A 200 MiB layer streams through every reader with bounded memory."""

import hashlib
import io
import tarfile
import tracemalloc

import pytest
from arv_keepdocker_testkit import bombs
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.archive.docker_archive_reader import DockerArchive
from arv_keepdocker_plugin.archive.oci_layout_reader import OciLayout
from arv_keepdocker_plugin.archive.tap import TarTap
from arv_keepdocker_plugin.errors import BadArchive

LAYER_BYTES = 200 * 1024 * 1024
PEAK_LIMIT = 30 * 1024 * 1024


class Zeros(io.RawIOBase):
    def __init__(self, size):
        self.left = size

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("big")
    layer = tmp / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = LAYER_BYTES
        tar.addfile(info, io.BufferedReader(Zeros(LAYER_BYTES), 1 << 20))
    image = ib.build_image([{"small": b"s"}, str(layer)], repo_tags=["big:1"])
    return tmp, image


def peak_while(func):
    tracemalloc.start()
    try:
        result = func()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def stream_through_tap(open_stream):
    with open_stream() as stream:
        tap = TarTap(stream, "big").consume(1 << 20)
    return tap


def test_oci_conversion_and_tap_memory_is_bounded(big_image):
    tmp, image = big_image
    path = tmp / "oci.tar"
    ib.write_oci_layout(path, [("1", image)])

    def run():
        with OciLayout(str(path)) as layout:
            selected = layout.select("1")
        return stream_through_tap(lambda: selected.export("big:1"))

    tap, peak = peak_while(run)
    assert tap.config_digest == image.image_id
    assert max(size for _name, _offset, size in tap.members) >= LAYER_BYTES
    print("tracemalloc peak: %d bytes" % peak)
    assert peak < PEAK_LIMIT, "peak %d bytes" % peak


def test_docker_archive_selection_memory_is_bounded(big_image):
    tmp, image = big_image
    other = ib.build_image([{"x": b"x"}], repo_tags=["other:1"])
    path = tmp / "multi.tar"
    ib.write_docker_archive(path, [other, image], layout="docker25")

    def run():
        with DockerArchive(str(path)) as archive:
            entry = archive.select(repo_tag="big:1")
        return stream_through_tap(lambda: archive.export(entry))

    tap, peak = peak_while(run)
    assert tap.config_digest == image.image_id
    print("tracemalloc peak: %d bytes" % peak)
    assert peak < PEAK_LIMIT, "peak %d bytes" % peak


#: A bomb of this size is enough: the decompressor this replaced held the whole
#: output of 32 KiB of input at once (up to 1 GiB), so 256 MiB was over the limit.
BOMB_BYTES = 256 << 20


def refusal_and_peak(func):
    """The one-line :class:`BadArchive` ``func`` raises, and the traced peak meanwhile."""
    tracemalloc.start()
    try:
        with pytest.raises(BadArchive) as error:
            func()
        return str(error.value), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("kind", ["zstd", "gzip"])
def test_a_compressed_archive_bomb_is_refused_in_bounded_memory(tmp_path, kind):
    # One member of 256 MiB of zeros, the whole tar compressed (8 KiB of zstd):
    # the first pass decompresses it all, a piece at a time.
    pytest.importorskip("backports.zstd")
    path = tmp_path / ("bomb.tar." + ("zst" if kind == "zstd" else "gz"))
    path.write_bytes(bombs.tar_bomb(kind, BOMB_BYTES))
    for reader, missing in ((DockerArchive, "no manifest.json"), (OciLayout, "no index.json")):
        message, peak = refusal_and_peak(lambda reader=reader: reader(str(path)))
        assert message.startswith("%s: %s" % (path, missing)) and "\n" not in message
        assert peak < PEAK_LIMIT, "peak %d bytes" % peak


@pytest.mark.parametrize("kind", ["zstd", "gzip"])
@pytest.mark.parametrize("layout", ["docker", "oci"])
def test_a_layer_bomb_is_refused_by_the_tap_in_bounded_memory(tmp_path, kind, layout):
    # A layer blob of 256 MiB of compressed zeros claiming another diff id: the tap
    # decompresses it whole to check it (zstd bytes behind a gzip media type too:
    # the tap goes by the bytes) and refuses it. An OCI layout refuses zstd bytes
    # before that, docker load of Docker 20.10 could not read them.
    pytest.importorskip("backports.zstd")
    layer = bombs.bomb_layer(kind, BOMB_BYTES)
    layer.media_type = ib.MT_LAYER["gzip"]
    image = ib.build_image([{"small": b"s"}, layer], repo_tags=["bomb:1"])
    path = tmp_path / "bomb.tar"
    if layout == "docker":
        ib.write_docker_archive(path, [image])
    else:
        ib.write_oci_layout(path, [("1", image)])

    def run():
        if layout == "docker":
            with DockerArchive(str(path)) as archive:
                entry = archive.select(repo_tag="bomb:1")
            return stream_through_tap(lambda: archive.export(entry))
        with OciLayout(str(path)) as oci:
            selected = oci.select("1")
        return stream_through_tap(lambda: selected.export("bomb:1"))

    message, peak = refusal_and_peak(run)
    assert peak < PEAK_LIMIT, "peak %d bytes" % peak
    assert "\n" not in message
    if layout == "oci" and kind == "zstd":
        assert "zstd-compressed layers cannot be loaded by docker load" in message
        return
    zeros = "sha256:" + hashlib.sha256(bytes(BOMB_BYTES)).hexdigest()
    assert "does not match its diff id: its uncompressed data has %s, the config says %s" % (
        zeros, bombs.WRONG_DIFF_ID) in message
