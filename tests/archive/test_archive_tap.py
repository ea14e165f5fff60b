"""TarTap: bytes pass unchanged; manifest, config, digest and member offsets learnt."""

import io
import json
import tarfile

import pytest

from arv_keepdocker_plugin.archive.oci_layout import OciLayout
from arv_keepdocker_plugin.archive.tap import TarTap
from arv_keepdocker_plugin.errors import BadArchive
from arv_keepdocker_testkit import imagebuild as ib


def tap_all(data: bytes, read_size=4096, use_readinto=False):
    tap = TarTap(io.BytesIO(data), "img.tar")
    out = bytearray()
    if use_readinto:
        buf = bytearray(read_size)
        while True:
            n = tap.readinto(buf)
            if not n:
                break
            out += buf[:n]
    else:
        while True:
            chunk = tap.read(read_size)
            if not chunk:
                break
            out += chunk
    return tap, bytes(out)


def archive_bytes(images, layout="classic"):
    buf = io.BytesIO()
    ib.write_docker_archive(buf, images, layout=layout)
    return buf.getvalue()


@pytest.mark.parametrize("layout", ["classic", "docker25"])
@pytest.mark.parametrize("read_size,use_readinto", [(1, False), (511, False), (4096, True),
                                                    (1 << 20, False)])
def test_tap_passes_bytes_and_learns_image(layout, read_size, use_readinto, two_images):
    image = two_images[1]
    data = archive_bytes([image], layout)
    if read_size == 1:
        data = data[:]  # byte-by-byte reads exercise every parser boundary
    tap, out = tap_all(data, read_size, use_readinto)
    assert out == data
    assert tap.finished
    assert tap.config_digest == image.image_id
    assert tap.config == image.config
    assert tap.config["created"] == "2023-05-02T16:49:27Z"
    assert tap.manifest["RepoTags"] == ["example.org/second:2"]
    assert len(tap.manifest["Layers"]) == 2


@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_member_offsets_point_at_member_data(layout, two_images):
    data = archive_bytes([two_images[0]], layout)
    tap, _ = tap_all(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        expected = [(m.name, m.offset_data, m.size if m.isreg() else 0) for m in tar]
    assert tap.members == expected
    for name, offset, size in tap.members:
        if name == "manifest.json":
            assert json.loads(data[offset:offset + size])[0]["Config"]


def test_config_after_manifest_and_long_gnu_names(two_images):
    image = two_images[0]
    long_dir = "d" * 120
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        def add(name, payload):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        layer = image.layers[0]
        add("manifest.json", json.dumps([{
            "Config": long_dir + "/config.json", "RepoTags": ["x:1"],
            "Layers": [long_dir + "/layer.tar"]}]).encode())
        add(long_dir + "/layer.tar", layer.data)
        add(long_dir + "/config.json", image.config_bytes)
    tap, _ = tap_all(out.getvalue())
    assert tap.config_digest == image.image_id
    assert (long_dir + "/layer.tar") in [m[0] for m in tap.members]


def test_pax_long_names_are_followed(two_images):
    image = two_images[0]
    data = archive_bytes([image], "docker25")
    # rewrite with a PAX header for a long, non-ASCII config path
    name = "blobs/" + "é" * 80 + "/cfg"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(image.config_bytes)
        tar.addfile(info, io.BytesIO(image.config_bytes))
        manifest = json.dumps([{"Config": name, "RepoTags": None, "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    assert data  # the Docker 25 layout itself is covered above
    tap, _ = tap_all(out.getvalue(), 100)
    assert tap.config_digest == image.image_id
    assert tap.members[0][0] == name


def test_converted_oci_stream_taps_to_the_same_id(tmp_path, two_images):
    path = tmp_path / "oci.tar"
    ib.write_oci_layout(path, [("2", two_images[1])])
    with OciLayout(str(path)) as layout:
        image = layout.select("2")
    with image.export("second:2") as stream:
        tap = TarTap(stream).consume(700)
    assert tap.config_digest == two_images[1].image_id
    assert tap.manifest["RepoTags"] == ["second:2"]


def test_blob_digest_mismatch_is_refused(two_images):
    image = two_images[0]
    data = bytearray(archive_bytes([image], "docker25"))
    layer = image.layers[1].data
    pos = data.find(layer)
    data[pos + 600] ^= 0xFF  # inside the layer's first file header area
    with pytest.raises(BadArchive, match=r"img.tar: member 'blobs/sha256/[0-9a-f]{64}' has "
                       r"sha256:[0-9a-f]{64}, not the digest its name says"):
        tap_all(bytes(data))


def test_config_name_digest_mismatch_is_refused(two_images):
    image = two_images[0]
    wrong = "0" * 64 + ".json"
    out = io.BytesIO()
    ib.write_tar(out, [(wrong, image.config_bytes),
                       ("l.tar", image.layers[0].data),
                       ("manifest.json", json.dumps([{"Config": wrong, "Layers": ["l.tar"]}])
                        .encode())])
    with pytest.raises(BadArchive, match="not the digest its name says"):
        tap_all(out.getvalue())


@pytest.mark.parametrize("manifest,message", [
    (None, "no manifest.json: not a docker-archive"),
    (b"[]", "manifest.json must list exactly one image, it lists 0"),
    (b'[{"Config":"c.json","Layers":[]},{"Config":"c.json","Layers":[]}]',
     "manifest.json must list exactly one image, it lists 2"),
    (b"{not json", r"manifest.json is not valid JSON \("),
    (b'[{"Config":"c.json","Layers":["missing.tar"]}]',
     "layer 'missing.tar' named by manifest.json is missing"),
    (b'[{"Config":"gone.json","Layers":[]}]', "config 'gone.json' named by manifest.json "
     "is missing"),
])
def test_bad_manifests_are_refused(manifest, message):
    members = [("c.json", b'{"created":"x"}')]
    if manifest is not None:
        members.append(("manifest.json", manifest))
    out = io.BytesIO()
    ib.write_tar(out, members)
    with pytest.raises(BadArchive, match="^img.tar: " + message):
        tap_all(out.getvalue())


def test_oversized_manifest_is_refused_before_reading_it():
    big = b"[" + b" " * (4 * 1024 * 1024) + b"]"
    out = io.BytesIO()
    ib.write_tar(out, [("manifest.json", big)])
    with pytest.raises(BadArchive, match="manifest.json is larger than 4194304 bytes"):
        tap_all(out.getvalue(), 1 << 20)


def test_truncated_stream_is_refused(two_images):
    data = archive_bytes([two_images[0]])
    for cut in (100, 512 + 3, len(data) // 2):
        with pytest.raises(BadArchive, match="^img.tar: truncated tar stream"):
            tap_all(data[:cut])


@pytest.mark.parametrize("data,message", [
    (b"", "empty stream, not a tar archive"),
    (b"hello, this is not a tar file" * 40, "not a tar archive"),
    (b"\0" * 1024, "not a tar archive"),
])
def test_not_a_tar_is_refused(data, message):
    with pytest.raises(BadArchive, match="^img.tar: " + message):
        tap_all(data)


def test_trailing_bytes_after_end_of_archive_pass_through(two_images):
    data = archive_bytes([two_images[0]]) + b"trailing garbage"
    tap, out = tap_all(data)
    assert out == data and tap.config_digest == two_images[0].image_id
