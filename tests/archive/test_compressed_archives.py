"""Compressed archives, as ``docker load`` takes them: gzip, bzip2, xz, zstd.

Read in two passes (the first learns the image, the second streams it), in
bounded memory, with the same checks as a plain archive.
"""

import bz2
import gzip
import io
import lzma
import sys

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.archive.compression import ZSTD_EXTRA, ZSTD_MODULES
from arv_keepdocker_plugin.archive.docker_archive_reader import DockerArchive
from arv_keepdocker_plugin.archive.oci_layout_reader import OciLayout
from arv_keepdocker_plugin.archive.tap import TarTap
from arv_keepdocker_plugin.errors import BadArchive

COMPRESSORS = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "zstd": ib.zstd_bytes,
}


@pytest.fixture(scope="module")
def images():
    return [ib.build_image([{"a": b"a" * 5000}, {"n": str(n).encode() * 100}],
                           repo_tags=[f"app/{n}:1"]) for n in range(2)]


def write(tmp_path, data, kind, name="image.tar"):
    path = tmp_path / f"{name}.{kind}"
    path.write_bytes(COMPRESSORS[kind](data))
    return str(path)


def docker_archive(images, layout):
    out = io.BytesIO()
    ib.write_docker_archive(out, images, layout=layout)
    return out.getvalue()


def tap_export(archive, entry, expected_id):
    with archive.export(entry, expected_id=expected_id) as stream:
        return TarTap(stream).consume()


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_a_compressed_single_image_archive_streams_the_whole_tar(tmp_path, images, kind,
                                                                 layout):
    plain = docker_archive(images[:1], layout)
    with DockerArchive(write(tmp_path, plain, kind)) as archive:
        assert archive.compression == kind
        entry = archive.select()
        assert archive.image_id(entry) == images[0].image_id
        with archive.export(entry, expected_id=images[0].image_id) as stream:
            assert stream.read() == plain  # byte for byte what docker save wrote


@pytest.mark.parametrize("kind", ["gzip", "xz"])
@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_one_image_of_a_compressed_multi_image_archive(tmp_path, images, kind, layout):
    path = write(tmp_path, docker_archive(images, layout), kind)
    with DockerArchive(path) as archive:
        for n, image in enumerate(images):
            entry = archive.select(repo_tag=f"app/{n}:1")
            tap = tap_export(archive, entry, image.image_id)
            assert tap.config_digest == image.image_id
            assert tap.manifest["RepoTags"] == [f"app/{n}:1"]
            assert [d.diff_id for d in tap.layer_digests] == image.config["rootfs"]["diff_ids"]


@pytest.mark.parametrize("kind", ["gzip", "xz"])
def test_a_compressed_oci_archive_is_converted_in_stream_order(tmp_path, kind):
    amd = ib.build_image([{"p": b"amd" * 1000}, {"q": b"q"}], compression="gzip")
    arm = ib.build_image([{"p": b"arm"}], architecture="arm64", variant="v8")
    out = io.BytesIO()
    ib.write_oci_layout(out, [("m", ib.build_index([amd, arm]))])
    path = write(tmp_path, out.getvalue(), kind)
    for platform, image in (("linux/amd64", amd), ("linux/arm64/v8", arm)):
        with OciLayout(path) as layout:
            selected = layout.select(platform=platform)
        assert selected.compression == kind
        with selected.export("m:1") as stream:
            tap = TarTap(stream).consume()
        assert tap.config_digest == image.image_id
        assert tap.manifest["RepoTags"] == ["m:1"]


def test_a_corrupt_or_truncated_compressed_archive_is_one_line(tmp_path, images):
    data = gzip.compress(docker_archive(images[:1], "classic"))
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(BadArchive, match="cut.tar.gz: truncated"):
        DockerArchive(str(cut))
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(BadArchive, match="bad.tar.gz: (corrupt gzip data|.*)"):
        DockerArchive(str(bad))


def test_zstd_without_its_decompressor_names_what_to_install(tmp_path, images, monkeypatch):
    path = write(tmp_path, docker_archive(images[:1], "classic"), "zstd")
    for name in ZSTD_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    with pytest.raises(BadArchive) as error:
        DockerArchive(path)
    assert ZSTD_EXTRA in str(error.value) and "\n" not in str(error.value)


def test_the_first_pass_keeps_only_small_documents(tmp_path):
    big = ib.build_image([{"big": bytes(range(256)) * (40 << 12)}])  # a 10 MiB layer
    path = write(tmp_path, docker_archive([big], "classic"), "gzip")
    with DockerArchive(path) as archive:
        assert sum(len(v) for v in archive.members.kept.values()) < 64 << 10
        with pytest.raises(BadArchive, match="read while the archive streams"):
            next(archive.members.chunks(archive.layer_members(archive.select())[0]))
