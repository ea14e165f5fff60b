"""Uploading from a real Docker engine: what arv-keepdocker 3.2.1 leaves, and better.

Each test builds its own COPY-only image with a unique name, uploads it with
``arv keepdocker`` (a subprocess, as a user would) and checks what a user
and crunch-run see: stdout, the exit status, the collection and its links.
"""

import re
import threading

import pytest
from arv_keepdocker_testkit.engines import build_layered_image

from .conftest import collection_files, image_links, load_from_keep

UUID = re.compile(r"^[a-z0-9]{5}-4zz18-[a-z0-9]{15}$")


@pytest.fixture
def image(keepdocker_docker_engine, unique):
    """A fresh 3-layer image ``<unique>:v1`` sharing nothing with other tests."""
    tag = f"{unique}:v1"
    image_id = build_layered_image(keepdocker_docker_engine, tag, [
        {"base.txt": b"base " + unique.encode()},
        {"lib/data.bin": bytes(range(256)) * 512},
        {"app/run.sh": b"echo " + unique.encode()},
    ], labels={"org.opencontainers.image.version": "1.0"})
    yield unique, image_id
    keepdocker_docker_engine.docker("rmi", "-f", image_id, check=False)


def uploaded_uuid(proc):
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and UUID.match(lines[0]), proc.stdout
    return lines[0]


def test_upload_by_name_stores_one_tar_links_and_properties(
        keepdocker, image, arv_api, keepdocker_docker_engine, arv_cluster):
    name, image_id = image
    uuid = uploaded_uuid(keepdocker("--no-progress", name + ":v1"))

    record = arv_api.collections().get(uuid=uuid).execute()
    assert record["name"] == f"Docker image {name}:v1 {image_id[:12]}"
    assert record["properties"] == {"docker-image-repo-tag": name + ":v1"}
    assert list(collection_files(arv_api, uuid)) == [image_id + ".tar"]
    created = keepdocker_docker_engine.docker("image", "inspect", "--format", "{{.Created}}",
                                              image_id, text=True).stdout.strip()
    alice = arv_cluster.user_uuid("alice")
    assert image_links(arv_api, uuid) == sorted([
        ("docker_image_hash", image_id, alice, created),
        ("docker_image_repo+tag", name + ":v1", alice, created)])

    # crunch-run: an engine without the image loads the bytes and gets the same id.
    keepdocker_docker_engine.docker("rmi", "-f", image_id)
    assert load_from_keep(arv_api, uuid, keepdocker_docker_engine) == image_id


def test_second_upload_reuses_and_force_uploads_again(keepdocker, image, arv_api):
    name, image_id = image
    first = uploaded_uuid(keepdocker("--no-progress", name, "v1"))
    links_before = image_links(arv_api, first)
    again = uploaded_uuid(keepdocker("--no-progress", name + ":v1"))
    assert again == first
    assert image_links(arv_api, first) == links_before  # nothing new

    forced = uploaded_uuid(keepdocker("--no-progress", "--force", name + ":v1"))
    assert forced != first
    assert [l[:2] for l in image_links(arv_api, forced)] == [
        ("docker_image_hash", image_id), ("docker_image_repo+tag", name + ":v1")]


def test_upload_by_id_links_only_the_hash(keepdocker, image, arv_api):
    # arv-keepdocker 3.2.1 fails here with exit 2 (it passes the id on to arv-put as a
    # path: sdk/python/arvados/commands/keepdocker.py); we store it.
    name, image_id = image
    uuid = uploaded_uuid(keepdocker("--no-progress", image_id))
    record = arv_api.collections().get(uuid=uuid).execute()
    assert record["name"] == f"Docker image {image_id[:12]}"
    assert record["properties"] == {"docker-image-repo-tag": None}
    assert [l[:2] for l in image_links(arv_api, uuid)] == [("docker_image_hash", image_id)]


def test_name_latest_is_a_name_like_any_other(keepdocker, image, arv_api):
    # 3.2.1 dropped the value "latest" from the arguments and failed (its arv-put
    # arguments drop anything equal to the tag).
    name, image_id = image
    uuid = uploaded_uuid(keepdocker("--no-progress", "--force", "--name", "latest",
                                    name + ":v1"))
    assert arv_api.collections().get(uuid=uuid).execute()["name"] == "latest"


def test_project_uuid_copies_into_the_project_with_project_owned_links(
        keepdocker, image, arv_api, project):
    name, image_id = image
    home = uploaded_uuid(keepdocker("--no-progress", name + ":v1"))
    copy = uploaded_uuid(keepdocker("--no-progress", "--project-uuid", project,
                                    name + ":v1"))
    assert copy != home
    home_record = arv_api.collections().get(uuid=home).execute()
    copy_record = arv_api.collections().get(uuid=copy).execute()
    assert copy_record["owner_uuid"] == project
    assert copy_record["portable_data_hash"] == home_record["portable_data_hash"]
    assert {(l[0], l[1], l[2]) for l in image_links(arv_api, copy)} == {
        ("docker_image_hash", image_id, project),
        ("docker_image_repo+tag", name + ":v1", project)}
    # Once more: the project copy is found and nothing is added.
    assert uploaded_uuid(keepdocker("--no-progress", "--project-uuid", project,
                                    name + ":v1")) == copy


def test_engine_without_the_image_falls_back_to_arvados(
        keepdocker, image, keepdocker_docker_engine):
    name, image_id = image
    first = uploaded_uuid(keepdocker("--no-progress", name + ":v1"))
    keepdocker_docker_engine.docker("rmi", "-f", image_id)
    assert uploaded_uuid(keepdocker("--no-progress", name + ":v1")) == first
    # ...and with no engine at all.
    assert uploaded_uuid(keepdocker("--no-progress", name + ":v1",
                                    env={"DOCKER_HOST": "unix:///nonexistent.sock"})) == first


def test_concurrent_runs_upload_once(keepdocker, image, arv_api):
    name, image_id = image
    results = []
    runs = [threading.Thread(target=lambda: results.append(
        keepdocker("--no-progress", name + ":v1"))) for _ in range(3)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    uuids = {uploaded_uuid(proc) for proc in results}
    assert len(uuids) == 1
    hash_links = arv_api.links().list(filters=[
        ["link_class", "=", "docker_image_hash"], ["name", "=", image_id]]).execute()["items"]
    assert len(hash_links) == 1


def test_batch_progress_lines_and_silent(keepdocker, image):
    name, image_id = image
    proc = keepdocker("--batch-progress", "--force", name + ":v1")
    uploaded_uuid(proc)
    lines = [l for l in proc.stderr.splitlines() if " written " in l]
    # arv-put's line, then what was read, uploaded and reused; the last line's
    # total (the engine's estimate until then) is what was written.
    match = re.match(r"^\S+ \d+: (\d+) written (\d+) total (\d+) read (\d+) uploaded "
                     r"(\d+) reused$", lines[-1])
    written, total, read, uploaded, reused = map(int, match.groups())
    assert written == total == read == uploaded + reused > 0
    # --silent: as arv-put, no progress, no INFO lines and no UUID on stdout.
    quiet = keepdocker("--silent", "--force", name + ":v1")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


def test_pull_fetches_a_missing_image_from_a_registry(
        keepdocker, keepdocker_docker_engine, keepdocker_registry, unique, arv_api):
    remote = f"{keepdocker_registry.address}/{unique}/app:v1"
    image_id = build_layered_image(keepdocker_docker_engine, remote,
                                   [{"pulled.txt": unique.encode()}])
    keepdocker_docker_engine.docker("push", remote)
    keepdocker_docker_engine.docker("rmi", "-f", image_id)
    # Without --pull the engine lacks it: an error, as in 3.2.1.
    assert keepdocker("--no-progress", remote).returncode == 1
    uuid = uploaded_uuid(keepdocker("--no-progress", "--pull", remote))
    assert [l[:2] for l in image_links(arv_api, uuid)] == sorted([
        ("docker_image_hash", image_id), ("docker_image_repo+tag", remote)])
    keepdocker_docker_engine.docker("rmi", "-f", image_id, check=False)


def test_pulled_image_is_found_by_its_manifest_digest_too(
        keepdocker, keepdocker_docker_engine, keepdocker_registry, unique, arv_api):
    from arv_keepdocker_plugin import compat
    remote = f"{keepdocker_registry.address}/{unique}/dig:v1"
    image_id = build_layered_image(keepdocker_docker_engine, remote, [{"d.txt": unique.encode()}])
    pushed = keepdocker_docker_engine.docker("push", remote, text=True).stdout
    manifest_digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed).group(1)
    keepdocker_docker_engine.docker("rmi", "-f", image_id)
    keepdocker_docker_engine.docker("pull", remote)
    uuid = uploaded_uuid(keepdocker("--no-progress", remote))
    [hash_link] = arv_api.links().list(filters=[["head_uuid", "=", uuid],
                                                ["link_class", "=", "docker_image_hash"]]
                                       ).execute()["items"]
    assert hash_link["name"] == image_id
    assert hash_link["properties"]["image_manifest_digest"] == manifest_digest
    assert compat.list_images_in_arv(arv_api, 0, manifest_digest)[0][0] == uuid
    keepdocker_docker_engine.docker("rmi", "-f", image_id, check=False)
