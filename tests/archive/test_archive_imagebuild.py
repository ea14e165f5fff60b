"""imagebuild: deterministic images in every layout, readable by the archive readers."""

import io
import json
import tarfile

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.archive.docker_archive_reader import DockerArchive
from arv_keepdocker_plugin.archive.oci_layout_reader import OciLayout


def build():
    return ib.build_image([{"a/b": b"1"}, {"c": b"2"}], repo_tags=["r:1"], labels={"x": "y"},
                          env=["A=1"], cmd=["/c"], architecture="arm64", variant="v8",
                          compression="gzip")


def test_same_input_same_ids_and_bytes(tmp_path):
    one, two = build(), build()
    assert one.image_id == two.image_id and one.manifest_digest == two.manifest_digest
    for layout in ("classic", "docker25"):
        a, b = io.BytesIO(), io.BytesIO()
        ib.write_docker_archive(a, [one], layout=layout)
        ib.write_docker_archive(b, [two], layout=layout)
        assert a.getvalue() == b.getvalue()
    a.seek(0)
    assert {m.mtime for m in tarfile.open(fileobj=a)} == {ib.MTIME}


def test_config_fields_and_manifest_descriptors():
    image = build()
    assert image.config["config"] == {"Labels": {"x": "y"}, "Env": ["A=1"], "Cmd": ["/c"]}
    assert (image.config["architecture"], image.config["variant"]) == ("arm64", "v8")
    assert image.config["rootfs"]["diff_ids"] == [l.diff_id for l in image.layers]
    manifest = json.loads(image.manifest_bytes)
    assert manifest["config"]["digest"] == image.image_id
    assert [d["mediaType"] for d in manifest["layers"]] == [ib.MT_LAYER["gzip"]] * 2
    assert image.platform == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    no_created = ib.build_image([{"a": b""}], created=None)
    assert "created" not in no_created.config


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_layer_compressions_decode_to_the_diff_id(compression):
    layer = ib.make_layer({"f": b"data" * 100000}, compression)
    raw = layer.data
    if compression == "gzip":
        import gzip
        raw = gzip.decompress(raw)
    elif compression == "zstd":
        raw = _unzstd_raw(raw)
    assert "sha256:" + ib.sha256_hex(raw) == layer.diff_id


def _unzstd_raw(data):
    assert data[:4] == b"\x28\xb5\x2f\xfd"
    pos, out = 6, bytearray()
    while True:
        header = int.from_bytes(data[pos:pos + 3], "little")
        pos += 3
        size = header >> 3
        assert (header >> 1) & 3 == 0  # raw block
        out += data[pos:pos + size]
        pos += size
        if header & 1:
            return bytes(out)


def test_every_layout_reads_back(tmp_path):
    image = build()
    other = ib.build_image([{"z": b"z"}], repo_tags=["other:2"])
    for layout in ("classic", "docker25"):
        path = tmp_path / (layout + ".tar")
        ib.write_docker_archive(path, [image, other], layout=layout)
        with DockerArchive(str(path)) as archive:
            assert [archive.image_id(e) for e in archive.entries] == \
                [image.image_id, other.image_id]
    for as_tar in (True, False):
        path = tmp_path / ("oci.tar" if as_tar else "oci")
        ib.write_oci_layout(path, [("a", image), ("multi", ib.build_index([image, other]))],
                            as_tar=as_tar)
        with OciLayout(str(path), directory=not as_tar) as layout:
            assert layout.select("a").image_id == image.image_id
            assert layout.select("multi", "linux/arm64").image_id == image.image_id
            assert layout.select("multi", "linux/amd64").image_id == other.image_id
