"""OCI image layouts: selection by ref and platform, conversion to docker-archive."""

import io
import json
import os
import tarfile

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.archive import platforms
from arv_keepdocker_plugin.archive.docker_archive_reader import DockerArchive
from arv_keepdocker_plugin.archive.oci_layout_reader import OciLayout
from arv_keepdocker_plugin.archive.platforms import Platform
from arv_keepdocker_plugin.archive.tap import TarTap
from arv_keepdocker_plugin.errors import BadArchive, BadReference, ImageNotFound

HELLO_WORLD_ID = "sha256:d2c94e258dcb3c5ac2798d32e1249e42ef01cba4841c2234249495f87264ac5a"


def layout_path(tmp_path, entries, as_tar):
    path = tmp_path / ("oci.tar" if as_tar else "oci")
    ib.write_oci_layout(path, entries, as_tar=as_tar)
    return str(path)


def convert(image, repo_tag=None):
    with image.export(repo_tag) as stream:
        return stream.read()


@pytest.fixture
def multi_platform():
    amd = ib.build_image([{"arch": b"amd64"}], architecture="amd64")
    arm = ib.build_image([{"arch": b"arm64"}], architecture="arm64", variant="v8")
    armv7 = ib.build_image([{"arch": b"armv7"}], architecture="arm", variant="v7")
    return {"amd64": amd, "arm64": arm, "arm": armv7}


@pytest.mark.parametrize("as_tar", [True, False])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_convert_keeps_config_and_manifest_bytes(tmp_path, as_tar, compression):
    image = ib.build_image([{"a": b"a" * 5000}, {"b/c": b"c"}, {"d": b""}],
                           labels={"x": "y"}, compression=compression)
    path = layout_path(tmp_path, [("v1", image)], as_tar)
    with OciLayout(path, directory=not as_tar) as layout:
        selected = layout.select("v1")
    assert selected.image_id == image.image_id
    assert selected.manifest_digest == image.manifest_digest
    assert [l.digest for l in selected.layers] == [l.digest for l in image.layers]
    data = convert(selected, "demo/app:v1")
    tap = TarTap(io.BytesIO(data)).consume()
    assert tap.config_digest == image.image_id
    assert tap.manifest["RepoTags"] == ["demo/app:v1"]
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert "blobs/sha256/" + image.manifest_digest[7:] in names
    assert {"index.json", "oci-layout", "manifest.json", "repositories"} <= set(names)
    # the output is also an OCI layout again (Docker 25 style): read it back both ways
    out = tmp_path / "converted.tar"
    out.write_bytes(data)
    with OciLayout(str(out)) as again:
        back = again.select("v1")
        assert back.manifest_digest == image.manifest_digest
        assert back.annotations["io.containerd.image.name"] == "demo/app:v1"
    with DockerArchive(str(out)) as again:
        assert again.image_id(again.select()) == image.image_id


def test_conversion_is_deterministic(tmp_path, two_images):
    path = layout_path(tmp_path, [("2", two_images[1])], True)
    with OciLayout(path) as layout:
        image = layout.select()
    assert convert(image, "x:2") == convert(image, "x:2")
    data = convert(image)
    assert json.loads(tarfile.open(fileobj=io.BytesIO(data)).extractfile(
        "manifest.json").read())[0]["RepoTags"] is None


def test_select_by_ref_lists_refs_when_unknown(tmp_path, two_images):
    path = layout_path(tmp_path, [("one", two_images[0]), ("two", two_images[1])], True)
    with OciLayout(path) as layout:
        assert layout.select("two").image_id == two_images[1].image_id
        with pytest.raises(ImageNotFound, match=r"oci.tar: no image with reference 'three'; "
                           r"it holds: one linux/amd64, two linux/amd64"):
            layout.select("three")
        with pytest.raises(BadReference, match=r"several images match linux/\w+; choose "
                           r"one with oci-archive:.*oci.tar:REF \(one linux/amd64, two"):
            layout.select(platform="linux/amd64")


def test_platform_selection_in_an_index(tmp_path, multi_platform, monkeypatch):
    index = ib.build_index(list(multi_platform.values()))
    path = layout_path(tmp_path, [("multi", index)], True)
    with OciLayout(path) as layout:
        assert len(layout.candidates) == 3
        assert layout.select("multi", "linux/arm64/v8").image_id == \
            multi_platform["arm64"].image_id
        assert layout.select(platform="linux/arm64").image_id == multi_platform["arm64"].image_id
        assert layout.select(platform="linux/arm/v7").image_id == multi_platform["arm"].image_id
        assert layout.select(platform="linux/x86_64").image_id == \
            multi_platform["amd64"].image_id
        with pytest.raises(ImageNotFound, match=r"no image for platform linux/s390x; it "
                           r"holds: multi linux/amd64, multi linux/arm64/v8, multi "
                           r"linux/arm/v7"):
            layout.select(platform="linux/s390x")
        with pytest.raises(BadReference, match="invalid platform 'arm64'"):
            layout.select(platform="arm64")
        # default: this machine's platform
        monkeypatch.setattr(platforms._platform, "machine", lambda: "aarch64")
        assert layout.select("multi").image_id == multi_platform["arm64"].image_id
        monkeypatch.setattr(platforms._platform, "machine", lambda: "x86_64")
        assert layout.select().image_id == multi_platform["amd64"].image_id
        monkeypatch.setattr(platforms._platform, "machine", lambda: "riscv64")
        with pytest.raises(ImageNotFound, match=r"no image for this machine's platform "
                           r"linux/riscv64; choose one with --platform"):
            layout.select()


def test_ambiguous_platform_is_refused(tmp_path):
    v6 = ib.build_image([{"a": b"6"}], architecture="arm", variant="v6")
    v7 = ib.build_image([{"a": b"7"}], architecture="arm", variant="v7")
    path = layout_path(tmp_path, [("m", ib.build_index([v6, v7]))], True)
    with OciLayout(path) as layout:
        with pytest.raises(BadReference, match=r"several images match linux/arm; choose one "
                           r"with --platform OS/ARCH/VARIANT or oci-archive:"):
            layout.select(platform="linux/arm")


def test_platform_from_config_when_descriptor_has_none(tmp_path):
    arm = ib.build_image([{"a": b"arm"}], architecture="arm64")
    amd = ib.build_image([{"a": b"amd"}], architecture="amd64")
    path = tmp_path / "noplat"
    ib.write_oci_layout(path, [arm, amd], as_tar=False)
    index = json.loads((path / "index.json").read_text())
    for desc in index["manifests"]:
        del desc["platform"]
    (path / "index.json").write_text(json.dumps(index))
    with OciLayout(str(path), directory=True) as layout:
        assert layout.select(platform="linux/arm64").image_id == arm.image_id


def test_platform_matching_rules():
    assert Platform.parse("linux/arm64/v8").matches(Platform("linux", "arm64"))
    assert Platform.parse("linux/arm64").matches(Platform("linux", "arm64", "v8"))
    assert not Platform.parse("linux/arm/v7").matches(Platform("linux", "arm", "v6"))
    assert Platform.parse("LINUX/AMD64") == Platform("linux", "amd64")


@pytest.mark.parametrize("as_tar", [True, False])
def test_zstd_layers_are_refused_with_a_clear_line(tmp_path, as_tar):
    image = ib.build_image([{"a": b"a"}], compression="zstd")
    path = layout_path(tmp_path, [("z", image)], as_tar)
    with OciLayout(path, directory=not as_tar) as layout:
        with pytest.raises(BadArchive, match=r"is zstd-compressed; zstd-compressed layers "
                           r"cannot be loaded by docker load; convert the image first"):
            layout.select("z")


def test_zstd_magic_is_refused_even_with_a_tar_media_type(tmp_path):
    image = ib.build_image([{"a": b"a"}], compression="zstd")
    for layer in image.layers:
        layer.media_type = ib.MT_LAYER["none"]
    manifest = json.loads(image.manifest_bytes)
    for desc in manifest["layers"]:
        desc["mediaType"] = ib.MT_LAYER["none"]
    image.manifest_bytes = ib.canonical_json(manifest)
    path = layout_path(tmp_path, [image], True)
    with OciLayout(path) as layout:
        with pytest.raises(BadArchive, match="zstd-compressed layers cannot be loaded"):
            layout.select()


def _corrupt_blob(layout_dir, digest, data):
    with open(os.path.join(layout_dir, "blobs", "sha256", digest[7:]), "wb") as f:
        f.write(data)


def test_layer_digest_mismatch_fails_the_stream(tmp_path, two_images):
    image = two_images[1]
    path = layout_path(tmp_path, [image], False)
    original = image.layers[1].data
    _corrupt_blob(path, image.layers[1].digest, bytes([original[0] ^ 1]) + original[1:])
    with OciLayout(path, directory=True) as layout:
        selected = layout.select()
    with pytest.raises(BadArchive, match=r"oci: layer blob sha256:[0-9a-f]{64} has "
                       r"sha256:[0-9a-f]{64}, its descriptor says sha256:"):
        convert(selected)


def test_layer_size_mismatch_is_refused(tmp_path, two_images):
    image = two_images[1]
    path = layout_path(tmp_path, [image], False)
    _corrupt_blob(path, image.layers[0].digest, image.layers[0].data + b"x")
    with OciLayout(path, directory=True) as layout:
        with pytest.raises(BadArchive, match=r"layer blob sha256:[0-9a-f]{64} is \d+ bytes, "
                           r"its descriptor says \d+"):
            layout.select()


@pytest.mark.parametrize("which", ["layer", "config", "manifest"])
def test_missing_blob_is_refused(tmp_path, two_images, which):
    image = two_images[0]
    path = layout_path(tmp_path, [image], False)
    digest = {"layer": image.layers[0].digest, "config": image.image_id,
              "manifest": image.manifest_digest}[which]
    os.unlink(os.path.join(path, "blobs", "sha256", digest[7:]))
    with pytest.raises(BadArchive, match=rf"oci: {which} blob sha256:[0-9a-f]{{64}} is "
                       r"missing"):
        with OciLayout(path, directory=True) as layout:
            layout.select()


def test_config_digest_mismatch_is_refused(tmp_path, two_images):
    image = two_images[0]
    path = layout_path(tmp_path, [image], False)
    _corrupt_blob(path, image.image_id, image.config_bytes.replace(b"amd64", b"arm64"))
    with OciLayout(path, directory=True) as layout:
        with pytest.raises(BadArchive, match=r"config blob has sha256:[0-9a-f]{64}, its "
                           r"descriptor says"):
            layout.select()


def test_layout_directory_symlink_escaping_is_refused(tmp_path, two_images):
    image = two_images[0]
    path = layout_path(tmp_path, [image], False)
    outside = tmp_path / "outside"
    outside.write_bytes(image.layers[0].data)
    blob = os.path.join(path, "blobs", "sha256", image.layers[0].hex)
    os.unlink(blob)
    os.symlink(str(outside), blob)
    with OciLayout(path, directory=True) as layout:
        with pytest.raises(BadArchive, match="points outside the layout directory"):
            layout.select()


@pytest.mark.parametrize("index,message", [
    (b"{oops", r"index.json is not valid JSON"),
    (b'{"schemaVersion":2}', "index.json has no manifests list"),
    (None, "no index.json: not an OCI image layout"),
])
def test_bad_index_is_refused(tmp_path, index, message):
    members = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    if index is not None:
        members.append(("index.json", index))
    path = tmp_path / "bad.tar"
    ib.write_tar(path, members)
    with pytest.raises(BadArchive, match="bad.tar: " + message):
        OciLayout(str(path))


def test_docker_archive_given_as_oci_says_so(tmp_path, two_images):
    path = tmp_path / "classic.tar"
    ib.write_docker_archive(path, [two_images[0]])
    with pytest.raises(BadArchive, match=r"not an OCI image layout \(this is a "
                       r"docker-archive: use docker-archive:"):
        OciLayout(str(path))


def test_hello_world_docker25_archive_is_an_oci_layout(hello_world):
    with OciLayout(hello_world["docker25"]) as layout:
        image = layout.select("latest")
    assert image.image_id == HELLO_WORLD_ID
    assert image.annotations["io.containerd.image.name"] == "docker.io/library/hello-world:latest"
    tap = TarTap(io.BytesIO(convert(image, "hello-world:latest"))).consume()
    assert tap.config_digest == HELLO_WORLD_ID
    with DockerArchive(hello_world["classic"]) as classic:
        assert classic.image_id(classic.select()) == image.image_id
