"""Converted streams load into a real Docker engine; podman's saves are read right.

Uses the session engines from :mod:`arv_keepdocker_testkit.engines_fixtures`
(skipped with the reason when an engine cannot start, failed under ``CI``).
"""

import json
import uuid

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.archive.docker_archive_reader import DockerArchive
from arv_keepdocker_plugin.archive.oci_layout_reader import OciLayout


def unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def docker_load(engine, data):
    out = engine.docker("load", input=data).stdout.decode()
    return out


def inspect(engine, ref):
    return json.loads(engine.docker("image", "inspect", ref).stdout)[0]


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_converted_oci_layouts_load_into_docker(keepdocker_docker_engine, tmp_path, compression):
    name = unique("b2oci")
    image = ib.build_image([{"etc/one": b"1\n"}, {"usr/two": b"2\n" * 1000},
                            {"three/x": name.encode()}],
                           labels={"test": name}, compression=compression, cmd=["/x"])
    path = tmp_path / "oci.tar"
    ib.write_oci_layout(path, [("v1", image)])
    with OciLayout(str(path)) as layout:
        selected = layout.select("v1")
    with selected.export(name + ":v1") as stream:
        data = stream.read()
    out = docker_load(keepdocker_docker_engine, data)
    assert name + ":v1" in out
    info = inspect(keepdocker_docker_engine, name + ":v1")
    assert info["Id"] == image.image_id
    assert info["Config"]["Labels"] == {"test": name}
    assert len(info["RootFS"]["Layers"]) == 3
    keepdocker_docker_engine.docker("rmi", name + ":v1")


@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_selected_image_of_a_multi_image_archive_loads(keepdocker_docker_engine, tmp_path, layout):
    name = unique("b2multi")
    shared = ib.make_layer({"shared": name.encode()})
    a = ib.build_image([shared], repo_tags=[name + ":a"])
    b = ib.build_image([{"other": b"o"}, shared], repo_tags=[name + ":b"])
    path = tmp_path / "multi.tar"
    ib.write_docker_archive(path, [a, b], layout=layout)
    with DockerArchive(str(path)) as archive:
        entry = archive.select(repo_tag=name + ":b")
    with archive.export(entry) as stream:
        data = stream.read()
    docker_load(keepdocker_docker_engine, data)
    assert inspect(keepdocker_docker_engine, name + ":b")["Id"] == b.image_id
    missing = keepdocker_docker_engine.docker("image", "inspect", name + ":a", check=False)
    assert missing.returncode != 0  # only the selected image was in the stream
    keepdocker_docker_engine.docker("rmi", name + ":b")


@pytest.mark.parametrize("fmt", ["oci-archive", "oci-dir", "docker-archive"])
def test_podman_saves_are_read_and_load_into_docker(
        keepdocker_podman_store, keepdocker_docker_engine, tmp_path, fmt):
    """podman keeps the config bytes (so the id) when it saves an image in the
    format it was stored in; a cross-format save re-serializes the config and
    so changes the id (checked below): we always report the saved config's
    digest, which is what docker load gives."""
    name = unique("b2podman")
    image = ib.build_image([{"p/one": b"1"}, {"p/two": name.encode()}],
                           repo_tags=[name + ":1"])
    src = tmp_path / "in.tar"
    if fmt == "docker-archive":
        ib.write_docker_archive(src, [image])
    else:
        ib.write_oci_layout(src, [(name + ":1", image)])
    keepdocker_podman_store.podman("load", "-i", str(src))
    loaded = keepdocker_podman_store.podman("images", "--format", "{{.Repository}}:{{.Tag}}",
                                            text=True).stdout.split()
    ref = [r for r in loaded if name in r][0]
    podman_id = keepdocker_podman_store.image_id(ref)
    assert podman_id == image.image_id
    out = tmp_path / ("saved.tar" if fmt != "oci-dir" else "saved")
    keepdocker_podman_store.podman("save", "--format", fmt, "-o", str(out), ref)
    if fmt == "docker-archive":
        with DockerArchive(str(out)) as archive:
            entry = archive.select()
            assert archive.image_id(entry) == podman_id
        with archive.export(entry) as stream:
            data = stream.read()
        assert data == out.read_bytes()
    else:
        with OciLayout(str(out), directory=(fmt == "oci-dir")) as layout:
            selected = layout.select()
        assert selected.image_id == podman_id
        with selected.export(name + ":1") as stream:
            data = stream.read()
    docker_load(keepdocker_docker_engine, data)
    assert inspect(keepdocker_docker_engine, podman_id)["Id"] == podman_id
    keepdocker_docker_engine.docker("rmi", "-f", podman_id)
    keepdocker_podman_store.podman("rmi", "-f", ref)


def test_podman_cross_format_save_changes_the_id_and_we_report_the_new_one(
        keepdocker_podman_store, tmp_path):
    name = unique("b2cross")
    image = ib.build_image([{"x": name.encode()}], repo_tags=[name + ":1"])
    src = tmp_path / "in.tar"
    ib.write_docker_archive(src, [image])
    keepdocker_podman_store.podman("load", "-i", str(src))
    out = tmp_path / "saved-oci"
    keepdocker_podman_store.podman("save", "--format", "oci-dir", "-o", str(out), name + ":1")
    with OciLayout(str(out), directory=True) as layout:
        selected = layout.select()
    assert selected.config == json.loads(image.config_bytes)  # same content...
    assert selected.image_id == "sha256:" + ib.sha256_hex(selected.config_bytes)
    assert selected.config_bytes != image.config_bytes  # ...re-serialized by podman
    keepdocker_podman_store.podman("rmi", "-f", name + ":1")
