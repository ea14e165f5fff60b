"""Podman's store and daemonless OCI sources through ``arv keepdocker`` (issue 4).

Images are built with a real podman (private vfs store); uploads of archives
run with no engine reachable at all (no DOCKER_HOST, an empty PATH apart from
the interpreter); every stored tar is loaded into the real Docker engine (what
crunch-run does) and must give the id the tar is named after.
"""

import pytest
from arv_keepdocker_testkit import imagebuild
from arv_keepdocker_testkit.engines import build_layered_image

from .conftest import Runner, image_links, load_from_keep
from .test_bad_input import one_error
from .test_upload_docker import uploaded_uuid


@pytest.fixture
def podman_image(keepdocker_podman_store, unique):
    tag = f"{unique}:p1"
    image_id = build_layered_image(keepdocker_podman_store, tag, [
        {"base.txt": b"podman base"}, {"mid/data": bytes(range(256)) * 64},
        {"top.txt": unique.encode()}])
    yield unique, image_id
    keepdocker_podman_store.podman("rmi", "-f", image_id, check=False)


@pytest.fixture
def daemonless(user_env, tmp_path):
    """Runs ``arv keepdocker`` with no Docker engine and no podman reachable."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    return Runner(dict(user_env, PATH=str(empty)))


def test_containers_storage_upload_loads_in_docker_with_podmans_id(
        keepdocker, podman_image, keepdocker_podman_store, arv_api, keepdocker_docker_engine):
    name, image_id = podman_image
    uuid = uploaded_uuid(keepdocker("--no-progress", f"containers-storage:{name}:p1",
                                    "--podman-root", keepdocker_podman_store.root,
                                    "--podman-runroot", keepdocker_podman_store.runroot,
                                    "--podman-storage-driver", keepdocker_podman_store.driver))
    # The link is the name the user typed, not podman's localhost/NAME:TAG.
    assert [l[:2] for l in image_links(arv_api, uuid)] == sorted([
        ("docker_image_hash", image_id), ("docker_image_repo+tag", name + ":p1")])
    assert load_from_keep(arv_api, uuid, keepdocker_docker_engine) == image_id
    keepdocker_docker_engine.docker("rmi", "-f", image_id)


def test_bare_name_means_podman_when_no_docker_engine_answers(
        keepdocker, podman_image, keepdocker_podman_store, arv_api):
    name, image_id = podman_image
    uuid = uploaded_uuid(keepdocker("--no-progress", name + ":p1", env={
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",
        "CONTAINERS_STORAGE_CONF": keepdocker_podman_store.storage_conf}))
    assert arv_api.collections().get(uuid=uuid).execute()["name"] == (
        f"Docker image {name}:p1 {image_id[:12]}")


def test_source_flag_forces_podman_even_with_docker_running(
        keepdocker, podman_image, keepdocker_podman_store, arv_api):
    name, image_id = podman_image
    uuid = uploaded_uuid(keepdocker(
        "--no-progress", "--source", "containers-storage", name + ":p1",
        env={"CONTAINERS_STORAGE_CONF": keepdocker_podman_store.storage_conf}))
    assert list(arv_api.links().list(filters=[["head_uuid", "=", uuid],
                                              ["link_class", "=", "docker_image_hash"]])
                .execute()["items"])[0]["name"] == image_id


@pytest.mark.parametrize("fmt, transport", [
    ("oci-archive", "oci-archive"), ("oci-dir", "oci"), ("docker-archive", "docker-archive")])
def test_podman_save_formats_upload_with_no_daemon(
        fmt, transport, podman_image, keepdocker_podman_store, daemonless, arv_api,
        keepdocker_docker_engine, tmp_path, nothing_written_but_the_upload):
    name, image_id = podman_image
    saved = tmp_path / ("saved." + fmt)
    keepdocker_podman_store.podman("save", "--format", fmt, "-o", str(saved), f"{name}:p1")
    proc = daemonless("--no-progress", f"{transport}:{saved}:{name}:p1")
    uuid = uploaded_uuid(proc)
    nothing_written_but_the_upload(uuid)
    [hash_link] = [l for l in image_links(arv_api, uuid) if l[0] == "docker_image_hash"]
    stored_id = hash_link[1]
    if fmt == "docker-archive":
        assert stored_id == image_id
    # podman re-serialises the config when saving as OCI (same content, new
    # digest): the stored id is the saved config's digest, whatever podman says.
    assert load_from_keep(arv_api, uuid, keepdocker_docker_engine) == stored_id
    keepdocker_docker_engine.docker("rmi", "-f", stored_id)
    # ...and the same bytes load into podman with that id too.
    tar = tmp_path / "from-keep.tar"
    import arvados.collection
    reader = arvados.collection.CollectionReader(uuid, api_client=arv_api)
    with reader.open(stored_id + ".tar", "rb") as src, open(tar, "wb") as dst:
        dst.write(src.read())
    keepdocker_podman_store.podman("rmi", "-f", image_id, check=False)
    keepdocker_podman_store.podman("load", "-i", str(tar))
    assert keepdocker_podman_store.image_id(stored_id.split(":", 1)[1]) == stored_id


def test_multi_platform_index_takes_platform(
        daemonless, tmp_path, arv_api, keepdocker_docker_engine, unique):
    amd = imagebuild.build_image([{"arch": b"amd64 " + unique.encode()}], architecture="amd64")
    arm = imagebuild.build_image([{"arch": b"arm64 " + unique.encode()}], architecture="arm64",
                                 variant="v8")
    layout = tmp_path / "multi"
    imagebuild.write_oci_layout(str(layout), [("1.0", imagebuild.build_index([amd, arm]))],
                                as_tar=False)
    ref = f"oci:{layout}:1.0"
    uuid = uploaded_uuid(daemonless("--no-progress", "--platform", "linux/arm64/v8", ref))
    assert [l[1] for l in image_links(arv_api, uuid) if l[0] == "docker_image_hash"] == [
        arm.image_id]
    uuid = uploaded_uuid(daemonless("--no-progress", "--platform", "linux/amd64", ref))
    assert load_from_keep(arv_api, uuid, keepdocker_docker_engine) == amd.image_id
    keepdocker_docker_engine.docker("rmi", "-f", amd.image_id)
    message = one_error(daemonless("--no-progress", "--platform", "linux/s390x", ref))
    assert "linux/amd64" in message and "linux/arm64/v8" in message


@pytest.mark.usefixtures("nothing_written")
@pytest.mark.parametrize("damage", ["digest", "dotdot", "zstd", "missing-blob"])
def test_bad_oci_archives_are_refused_and_leave_no_trace(daemonless, tmp_path, damage):
    image = imagebuild.build_image([{"a": b"payload " * 1000}],
                                   compression="zstd" if damage == "zstd" else "none")
    layout = tmp_path / "layout"
    imagebuild.write_oci_layout(str(layout), [("1", image)], as_tar=False)
    blob = layout / "blobs" / "sha256" / image.layers[0].digest.split(":")[1]
    if damage == "digest":
        data = bytearray(blob.read_bytes())
        data[-1] ^= 1
        blob.write_bytes(bytes(data))
    elif damage == "missing-blob":
        blob.unlink()
    archive = tmp_path / "bad.tar"
    members = []
    for path in sorted(layout.rglob("*")):
        if path.is_file():
            members.append((str(path.relative_to(layout)), path.read_bytes()))
    if damage == "dotdot":
        members.append(("../escape", b"x"))
    imagebuild.write_tar(str(archive), members)
    message = one_error(daemonless("--no-progress", f"oci-archive:{archive}:1"))
    assert str(archive) in message


def test_shared_hello_world_pair_uploads_to_one_image_id(daemonless, arv_api, shared_dir):
    ids = set()
    for name in ("hello-world-ManifestV2.tar", "hello-world-ManifestV2-OCILayout.tar"):
        uuid = uploaded_uuid(daemonless("--no-progress", "--force",
                                        "docker-archive:{}".format(shared_dir / "testdata" / name)))
        ids |= {l[1] for l in image_links(arv_api, uuid) if l[0] == "docker_image_hash"}
    assert ids == {"sha256:d2c94e258dcb3c5ac2798d32e1249e42ef01cba4841c2234249495f87264ac5a"}


def test_pull_with_podman_from_a_registry(
        keepdocker, keepdocker_podman_store, keepdocker_registry, unique, arv_api):
    remote = f"{keepdocker_registry.address}/{unique}/podpull:v1"
    image_id = build_layered_image(keepdocker_podman_store, remote, [{"p.txt": unique.encode()}])
    keepdocker_podman_store.podman("push", "--tls-verify=false", remote)
    keepdocker_podman_store.podman("rmi", "-f", image_id)
    options = ["--no-progress", "--source", "containers-storage", "--podman-root",
               keepdocker_podman_store.root, "--podman-runroot", keepdocker_podman_store.runroot,
               "--podman-storage-driver", keepdocker_podman_store.driver]
    assert keepdocker(*options, remote).returncode == 1  # not in the store yet
    uuid = uploaded_uuid(keepdocker(*options, "--pull", remote))
    assert [l[:2] for l in image_links(arv_api, uuid)] == sorted([
        ("docker_image_hash", image_id), ("docker_image_repo+tag", remote)])
    keepdocker_podman_store.podman("rmi", "-f", image_id, check=False)
