"""Unsafe or malformed archives are refused, one line each, by every reader."""

import io
import json
import tarfile

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.archive import safety
from arv_keepdocker_plugin.archive.docker_archive_reader import DockerArchive
from arv_keepdocker_plugin.archive.oci_layout_reader import OciLayout
from arv_keepdocker_plugin.archive.tap import TarTap
from arv_keepdocker_plugin.errors import BadArchive


def evil_tar(path, entry):
    """A docker-archive-looking tar plus one odd ``entry(tar)`` member."""
    image = ib.build_image([{"a": b"a"}])
    cfg = ib.sha256_hex(image.config_bytes) + ".json"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        add(cfg, image.config_bytes)
        add("l/layer.tar", image.layers[0].data)
        entry(tar, add)
        add("manifest.json", json.dumps([{"Config": cfg, "Layers": ["l/layer.tar"]}]).encode())


def _special(name, kind, linkname=""):
    def entry(tar, add):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        tar.addfile(info)
    return entry


CASES = {
    "dotdot": (lambda tar, add: add("../escape", b"x"), r"member '../escape' has a '..' path "
               r"component"),
    "dotdot-inner": (lambda tar, add: add("l/../../x", b"x"), r"member 'l/../../x' has a '..' path "
                     r"component"),
    "absolute": (lambda tar, add: add("/etc/passwd", b"x"), r"member '/etc/passwd' has an "
                 r"absolute path"),
    "duplicate": (lambda tar, add: add("l/layer.tar", b"again"), r"duplicate member "
                  r"'l/layer.tar'"),
    "hardlink": (_special("hl", tarfile.LNKTYPE, "l/layer.tar"), r"member 'hl' is a hard link"),
    "symlink-escape": (_special("sl", tarfile.SYMTYPE, "../../etc/passwd"),
                       r"symbolic link 'sl' -> '../../etc/passwd' points outside the archive"),
    "symlink-absolute": (_special("sa", tarfile.SYMTYPE, "/etc/passwd"),
                         r"symbolic link 'sa' -> '/etc/passwd' points outside"),
    "chardev": (_special("dev", tarfile.CHRTYPE), r"member 'dev' is a device, FIFO"),
    "fifo": (_special("pipe", tarfile.FIFOTYPE), r"member 'pipe' is a device, FIFO"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_docker_archive_reader_refuses(tmp_path, case):
    entry, message = CASES[case]
    path = tmp_path / "evil.tar"
    evil_tar(path, entry)
    with pytest.raises(BadArchive, match=r"^.*evil.tar: " + message):
        DockerArchive(str(path))


@pytest.mark.parametrize("case", sorted(CASES))
def test_stream_tap_refuses(tmp_path, case):
    entry, message = CASES[case]
    path = tmp_path / "evil.tar"
    evil_tar(path, entry)
    with pytest.raises(BadArchive, match=r"^evil: " + message):
        TarTap(io.BytesIO(path.read_bytes()), "evil").consume()


def test_oci_layout_tar_refuses_any_symlink(tmp_path):
    path = tmp_path / "oci.tar"
    image = ib.build_image([{"a": b"a"}])
    ib.write_oci_layout(path, [image])
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo("blobs/sha256/link")
        info.type = tarfile.SYMTYPE
        info.linkname = image.layers[0].hex
        tar.addfile(info)
    with pytest.raises(BadArchive, match=r"'blobs/sha256/link' is a symbolic link, which "
                       r"this kind of archive must not hold"):
        OciLayout(str(path))


def test_in_archive_symlink_is_accepted_in_docker_archive(tmp_path):
    path = tmp_path / "ok.tar"
    evil_tar(path, _special("l2/layer.tar", tarfile.SYMTYPE, "../l/layer.tar"))
    with DockerArchive(str(path)) as archive:
        assert archive.members.find("l2/layer.tar").name == "l/layer.tar"


@pytest.mark.parametrize("content,message", [
    (None, r"cannot open \(No such file or directory\)"),
    (b"", r"empty file, not a tar archive"),
    (b"definitely not a tar archive\n" * 100, r"not a tar archive"),
])
def test_missing_empty_or_not_a_tar(tmp_path, content, message):
    path = tmp_path / "x.tar"
    if content is not None:
        path.write_bytes(content)
    for reader in (DockerArchive, OciLayout):
        with pytest.raises(BadArchive, match=r"x.tar: " + message):
            reader(str(path))


def test_truncated_archive_on_disk(tmp_path):
    path = tmp_path / "cut.tar"
    image = ib.build_image([{"a": b"a" * 20000}])
    ib.write_docker_archive(path, [image])
    data = path.read_bytes()
    with tarfile.open(path) as tar:
        layer = [m for m in tar if m.name.endswith("layer.tar")][0]
    path.write_bytes(data[:layer.offset_data + 100])
    with pytest.raises(BadArchive, match=r"cut.tar: truncated"):
        DockerArchive(str(path))


def test_a_directory_is_not_a_tar(tmp_path):
    with pytest.raises(BadArchive, match=r"is a directory, not a tar archive"):
        DockerArchive(str(tmp_path))
    with pytest.raises(BadArchive, match=r"is not a directory \(an OCI layout directory"):
        p = tmp_path / "f"
        p.write_bytes(b"x")
        OciLayout(str(p), directory=True)


@pytest.mark.parametrize("data,message", [
    (b"[" + b" " * safety.JSON_SIZE_LIMIT + b"]", "manifest.json is larger than 4194304 bytes"),
    (b"[{]", r"manifest.json is not valid JSON \(Expecting"),
    (b"\xff\xfe", "manifest.json is not UTF-8 text"),
    (b'{"a":1}', "manifest.json lists no images"),
    # Too deep to parse, and deep enough to fail wherever it would be written out again.
    (b"[" * 100_000 + b"]" * 100_000, "manifest.json is nested more than 100 levels deep"),
    (b"[{\"a\":" + b"[" * 100 + b"]" * 100 + b"}]", "manifest.json is nested more than 100"),
])
def test_bad_manifest_json_on_disk(tmp_path, data, message):
    path = tmp_path / "m.tar"
    ib.write_tar(path, [("manifest.json", data)])
    with pytest.raises(BadArchive, match="m.tar: " + message):
        DockerArchive(str(path))


def test_messages_are_one_line():
    error = safety.bad("a\nb.tar", "two\nlines")
    assert "\n" not in str(error)


def test_json_of_exactly_the_depth_limit_is_read():
    depth = safety.JSON_DEPTH_LIMIT
    nested: list = []
    for _ in range(depth - 1):
        nested = [nested]
    assert safety.load_json(b"[" * depth + b"]" * depth) == nested
    assert safety.load_json(b'{"a": "[[[["}') == {"a": "[[[["}
