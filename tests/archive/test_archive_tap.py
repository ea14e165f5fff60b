"""TarTap: bytes pass unchanged; manifest, config, digest and member offsets learnt."""

import io
import json
import tarfile

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.archive.oci_layout_reader import OciLayout
from arv_keepdocker_plugin.archive.tap import TarTap
from arv_keepdocker_plugin.errors import BadArchive


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
        names = [f"{long_dir}{n}/layer.tar" for n in range(len(image.layers))]
        add("manifest.json", json.dumps([{
            "Config": long_dir + "/config.json", "RepoTags": ["x:1"],
            "Layers": names}]).encode())
        for name, layer in zip(names, image.layers, strict=True):
            add(name, layer.data)
        add(long_dir + "/config.json", image.config_bytes)
    tap, _ = tap_all(out.getvalue())
    assert tap.config_digest == image.image_id
    assert names[0] in [m[0] for m in tap.members]
    assert [d.diff_id for d in tap.layer_digests] == image.config["rootfs"]["diff_ids"]


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
        layer_names = []
        for n, layer in enumerate(image.layers):
            layer_names.append(f"l{n}/" + "ü" * 90 + ".tar")
            info = tarfile.TarInfo(layer_names[-1])
            info.size = len(layer.data)
            tar.addfile(info, io.BytesIO(layer.data))
        manifest = json.dumps([{"Config": name, "RepoTags": None,
                                "Layers": layer_names}]).encode()
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


def replaced_layer(image, index, data):
    """A docker-archive of ``image`` whose layer ``index`` holds ``data`` instead."""
    members = {}
    with tarfile.open(fileobj=io.BytesIO(archive_bytes([image]))) as tar:
        names = json.loads(tar.extractfile("manifest.json").read())[0]["Layers"]
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as new:
            for member in tar:
                payload = tar.extractfile(member).read() if member.isreg() else b""
                if member.name == names[index]:
                    payload = data
                member.size = len(payload)
                new.addfile(member, io.BytesIO(payload))
                members[member.name] = payload
    return out.getvalue(), names[index]


def test_a_layer_tar_that_does_not_match_its_diff_id_is_refused(two_images):
    image = two_images[0]
    corrupt = bytearray(image.layers[0].data)
    corrupt[600] ^= 1  # one bit of a file's content
    data, name = replaced_layer(image, 0, bytes(corrupt))
    with pytest.raises(BadArchive, match=f"layer '{name}' does not match its diff id"):
        tap_all(data)


def test_a_layer_swapped_for_another_valid_layer_is_refused(two_images):
    image = two_images[0]
    data, _ = replaced_layer(image, 0, two_images[1].layers[1].data)
    with pytest.raises(BadArchive, match="does not match its diff id"):
        tap_all(data)


def test_gzip_layers_are_checked_as_blobs_and_as_diff_ids():
    image = ib.build_image([{"a": b"a" * 5000}, {"b": b"b"}], compression="gzip")
    tap, _ = tap_all(archive_bytes([image], "docker25"))
    assert [(d.raw, d.diff_id, d.compression) for d in tap.layer_digests] == [
        (layer.digest, layer.diff_id, "gzip") for layer in image.layers]


def test_a_gzip_layer_whose_content_differs_from_the_config_is_refused():
    """A blob that matches its own name but not the config's diff id."""
    image = ib.build_image([{"a": b"a"}], compression="gzip")
    other = ib.build_image([{"a": b"not a"}], compression="gzip")
    blob = other.layers[0]
    data = archive_bytes([image], "docker25")
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar, \
            tarfile.open(fileobj=out, mode="w") as new:
        old_name = "blobs/sha256/" + image.layers[0].digest.split(":")[1]
        new_name = "blobs/sha256/" + blob.digest.split(":")[1]
        for member in tar:
            payload = tar.extractfile(member).read() if member.isreg() else b""
            if member.name == old_name:
                member.name, payload = new_name, blob.data
            elif member.name == "manifest.json":
                payload = payload.replace(old_name.encode(), new_name.encode())
            member.size = len(payload)
            new.addfile(member, io.BytesIO(payload))
    with pytest.raises(BadArchive, match="does not match its diff id"):
        tap_all(out.getvalue())


def test_a_truncated_gzip_layer_cannot_be_checked():
    image = ib.build_image([{"a": b"a" * 100}], compression="gzip")
    data, name = replaced_layer(image, 0, image.layers[0].data[:-9])
    with pytest.raises(BadArchive, match="cannot be checked against its diff id .*truncated"):
        tap_all(data)


def test_config_without_diff_ids_is_refused(two_images):
    image = two_images[0]
    config = dict(image.config, rootfs={"type": "layers"})
    bad = ib.BuiltImage(config, ib.canonical_json(config), image.layers, image.manifest_bytes,
                        image.platform, image.repo_tags)
    with pytest.raises(BadArchive, match="no rootfs.diff_ids"):
        tap_all(archive_bytes([bad]))
