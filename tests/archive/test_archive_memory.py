"""A 200 MiB layer streams through every reader with bounded memory."""

import io
import tarfile
import tracemalloc

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.archive.docker_archive_reader import DockerArchive
from arv_keepdocker_plugin.archive.oci_layout_reader import OciLayout
from arv_keepdocker_plugin.archive.tap import TarTap

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
