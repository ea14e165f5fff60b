"""What people and scripts see around an upload: progress with a total, hints for a
mistyped transport, ``--json`` documents and ``--dry-run``, against the local
cluster and real engines.

Archives are built in pure Python (the test kit's image builder) and uploaded
with no engine reachable; engine images come from the test's Docker engine.
"""

import gzip
import json
import os
import re

import arvados.commands.keepdocker as sdk_keepdocker
import pytest
from arv_keepdocker_testkit import imagebuild
from arv_keepdocker_testkit.engines import build_layered_image
from arv_keepdocker_testkit.scripts import script

from arv_keepdocker_plugin import compat

from .conftest import Runner, collection_files
from .test_bad_input import one_error
from .test_podman_and_oci import podman_image  # noqa: F401 (a fixture)
from .test_upload_docker import uploaded_uuid

MACHINE = re.compile(r"^\S+ \d+: (\d+) written (-?\d+) total (\d+) read (\d+) uploaded "
                     r"(\d+) reused$")


@pytest.fixture
def daemonless(user_env, tmp_path, monkeypatch):
    """``arv keepdocker`` as alice in ``tmp_path``, no Docker engine and no podman."""
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.chdir(tmp_path)
    return Runner(dict(user_env, PATH=str(empty)))


def built(unique, megabytes=3, tag="1"):
    """An image with a layer of ``megabytes`` MiB that no other test has."""
    return imagebuild.build_image([
        {"base.txt": unique.encode()},
        {"data.bin": os.urandom(megabytes << 20)},
        {"tag.txt": tag.encode()}])


@pytest.fixture
def oci_archive(tmp_path, unique):
    image = built(unique)
    path = tmp_path / "app2-oci.tar"
    imagebuild.write_oci_layout(str(path), [(f"{unique}:1", image)], as_tar=True)
    return path, image


def stored_size(api, uuid):
    [(name, size)] = collection_files(api, uuid).items()
    return size


def machine_lines(stderr):
    return [tuple(int(n) for n in MACHINE.match(line).groups())
            for line in stderr.splitlines() if MACHINE.match(line)]


def human_lines(stderr):
    return [part for part in stderr.replace("\n", "\r").split("\r") if " stored " in part]


# -- progress --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["oci-archive", "docker-archive", "docker-archive-multi"])
def test_batch_progress_reports_an_archives_exact_total(daemonless, tmp_path, unique, arv_api,
                                                        kind):
    image = built(unique)
    path = tmp_path / "image.tar"
    if kind == "oci-archive":
        imagebuild.write_oci_layout(str(path), [(unique + ":1", image)], as_tar=True)
        ref = f"oci-archive:{path}"
    else:
        others = [built(unique + "x", 1)] if kind == "docker-archive-multi" else []
        imagebuild.write_docker_archive(str(path), [image] + others)
        ref = f"docker-archive:{path}:@0"
    proc = daemonless("--batch-progress", ref)
    uuid = uploaded_uuid(proc)
    size = stored_size(arv_api, uuid)
    lines = machine_lines(proc.stderr)
    assert lines, proc.stderr
    # arv-put's and 3.2.1's "<written> written <total> total": the total from the start.
    assert {total for _, total, *_ in lines} == {size}
    assert lines[-1][0] == size


def test_human_progress_shows_total_percentage_and_end(daemonless, oci_archive, arv_api):
    path, image = oci_archive
    proc = daemonless("--progress", f"oci-archive:{path}")
    size = stored_size(arv_api, uploaded_uuid(proc))
    lines = human_lines(proc.stderr)
    mib = f"{size >> 20}M"
    assert all(re.match(rf"^\d+M / {mib} stored \(\d+\.\d%\)", line) for line in lines)
    assert lines[-1].startswith(f"{mib} / {mib} stored (100.0%): ")


def test_a_compressed_archives_total_is_an_estimate(daemonless, tmp_path, unique, arv_api):
    plain = tmp_path / "plain.tar"
    imagebuild.write_docker_archive(str(plain), [built(unique)])
    path = tmp_path / "image.tar.gz"
    path.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=1))
    proc = daemonless("--progress", f"docker-archive:{path}")
    size = stored_size(arv_api, uploaded_uuid(proc))
    lines = human_lines(proc.stderr)
    assert all(re.search(r" / ~\d+M stored \(\d+%\)", line) for line in lines[:-1])
    assert lines[-1].startswith("{0}M / {0}M stored (100.0%)".format(size >> 20))


def test_an_engine_images_total_is_its_estimate(keepdocker, keepdocker_docker_engine, unique,
                                                 arv_api):
    image_id = build_layered_image(keepdocker_docker_engine, unique + ":e", [
        {"data.bin": os.urandom(2 << 20)}, {"more.bin": os.urandom(1 << 20)}])
    try:
        proc = keepdocker("--batch-progress", unique + ":e")
        size = stored_size(arv_api, uploaded_uuid(proc))
        lines = machine_lines(proc.stderr)
        # docker image inspect's Size stands in until the end, never below what is
        # written; the last line's total is what was written.
        assert all(total >= written > 0 or written == 0 for written, total, *_ in lines)
        assert -1 not in {total for _, total, *_ in lines}
        assert lines[-1][:2] == (size, size)
    finally:
        keepdocker_docker_engine.docker("rmi", "-f", image_id, check=False)


# -- a mistyped transport ----------------------------------------------------------


@pytest.mark.usefixtures("nothing_written")
def test_a_mistyped_transport_gets_a_hint(keepdocker, oci_archive, tmp_path, monkeypatch):
    path, image = oci_archive
    monkeypatch.chdir(tmp_path)
    message = one_error(keepdocker("--no-progress", "oci-arcive:app2-oci.tar"))
    assert message == ("no matching image found for oci-arcive:app2-oci.tar "
                       "(did you mean oci-archive:app2-oci.tar?)")
    # A path that cannot be an image name at all.
    message = one_error(keepdocker("--no-progress", f"oci-archiv:{path}"))
    assert message.endswith(f"(did you mean oci-archive:{path}?)")
    # No near transport, but the tag names a file.
    message = one_error(keepdocker("--no-progress", "myapp:app2-oci.tar"))
    assert message.endswith("(did you mean docker-archive:app2-oci.tar or "
                            "oci-archive:app2-oci.tar?)")
    # docker:TAG stays an image called docker: no hint.
    message = one_error(keepdocker("--no-progress", "docker:24-dind"))
    assert message == "no matching image found for docker:24-dind"


def test_a_name_like_a_transport_is_still_an_image_name(keepdocker, keepdocker_docker_engine,
                                                        unique, arv_api):
    # "oci-archiv" is one letter from a transport, but an image of that name exists.
    name = "oci-archiv"
    image_id = build_layered_image(keepdocker_docker_engine, name + ":" + unique, [
        {"f.txt": unique.encode()}])
    try:
        proc = keepdocker("--no-progress", f"{name}:{unique}")
        uuid = uploaded_uuid(proc)
        assert "did you mean" not in proc.stderr
        assert arv_api.collections().get(uuid=uuid).execute()["name"] == (
            f"Docker image {name}:{unique} {image_id[:12]}")
    finally:
        keepdocker_docker_engine.docker("rmi", "-f", image_id, check=False)


def test_source_podman_is_containers_storage(keepdocker, podman_image,  # noqa: F811
                                             keepdocker_podman_store):
    name, image_id = podman_image
    proc = keepdocker("--no-progress", "--json", "--source", "podman", name + ":p1",
                      env={"CONTAINERS_STORAGE_CONF": keepdocker_podman_store.storage_conf})
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert (document["image"]["id"], document["image"]["source"]) == (
        image_id, "containers-storage")


# -- --json ------------------------------------------------------------------------


def test_json_says_what_an_upload_did(daemonless, oci_archive, arv_api, project, unique):
    path, image = oci_archive
    ref = f"oci-archive:{path}"
    proc = daemonless("--no-progress", "--json", ref)
    assert proc.returncode == 0, proc.stderr
    stored = json.loads(proc.stdout)  # the whole of stdout is one document
    record = arv_api.collections().get(uuid=stored["collection"]["uuid"]).execute()
    assert stored["version"] == 1
    assert (stored["action"], stored["writes"], stored["dry_run"]) == ("stored", True, False)
    assert stored["collection"] == {key: record[key] for key in (
        "uuid", "portable_data_hash", "name", "owner_uuid")}
    assert stored["image"] == {
        "id": image.image_id, "provisional_id": False, "manifest_digest": image.manifest_digest,
        "index_digest": None, "repo_tag": unique + ":1", "source": "oci-archive"}
    size = stored_size(arv_api, record["uuid"])
    assert stored["bytes"]["written"] == size
    assert stored["bytes"]["uploaded"] + stored["bytes"]["reused"] == size
    assert stored["bytes"]["read"] > 3 << 20 and stored["bytes"]["downloaded"] == 0

    found = json.loads(daemonless("--no-progress", "--json", ref).stdout)
    assert (found["action"], found["writes"]) == ("found", False)
    assert found["collection"] == stored["collection"]
    assert set(found["bytes"].values()) == {0}

    copied = json.loads(daemonless("--no-progress", "--json", "--project-uuid", project,
                                   ref).stdout)
    assert (copied["action"], copied["copied_from"]) == ("copied", record["uuid"])
    assert copied["collection"]["owner_uuid"] == project
    assert copied["collection"]["portable_data_hash"] == record["portable_data_hash"]


@pytest.mark.usefixtures("nothing_written")
def test_json_error_is_one_document_too(daemonless, tmp_path):
    proc = daemonless("--no-progress", "--json", "oci-archive:{}".format(tmp_path / "none.tar"))
    assert proc.returncode == 1
    document = json.loads(proc.stdout)
    assert document["version"] == 1 and "none.tar" in document["error"]


def test_json_listing_has_every_column_and_what_cwl_runner_picks(
        daemonless, tmp_path, unique, arv_api, keepdocker, arv_keepdocker_321):
    # Two different images under one name and tag: two rows.
    for n in (1, 2):
        path = tmp_path / f"v{n}.tar"
        imagebuild.write_oci_layout(str(path), [(unique + ":v", built(unique, 1, str(n)))],
                                    as_tar=True)
        uploaded_uuid(daemonless("--no-progress", f"oci-archive:{path}"))
    proc = keepdocker("--json")
    assert proc.returncode == 0
    document = json.loads(proc.stdout)
    assert document["version"] == 1
    rows = [row for row in document["images"] if row["repository"] == unique]
    assert len(rows) == 2 and [row["picked"] for row in rows] == [True, False]
    picked = compat.list_images_in_arv(arv_api, 3, image_name=unique, image_tag="v")[0]
    assert rows[0]["collection"] == picked[0]
    assert rows[0]["collection"] == sdk_keepdocker.list_images_in_arv(
        arv_api, 3, image_name=unique, image_tag="v")[0][0]
    for row in rows:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", row["image_id"])  # full ids
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", row["created"])
        assert row["tag"] == "v"
    # Every row of the table, in its order, with its columns.
    table = keepdocker().stdout.splitlines()[1:]
    assert len(table) == len(document["images"])
    for line, row in zip(table, document["images"], strict=True):
        assert line.split()[:4] == [row["repository"] or "<none>", row["tag"] or "<none>",
                                    (row["image_id"] or "<unknown>")[:12], row["collection"]]
    # ...and the default listing is still 3.2.1's, byte for byte.
    assert keepdocker().stdout == arv_keepdocker_321().stdout


# -- --dry-run ---------------------------------------------------------------------


def test_dry_run_writes_nothing_and_says_whether_it_would(
        daemonless, oci_archive, arvados_state, project, unique, user_env):
    path, image = oci_archive
    ref = f"oci-archive:{path}"

    def dry(*args):
        before = arvados_state.snapshot()
        proc = daemonless("--no-progress", "--dry-run", *args)
        assert arvados_state.snapshot() == before, "a dry run wrote to Arvados"
        return proc

    proc = dry(ref)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert f"dry run: would upload {image.image_id} as a new collection" in proc.stderr
    document = json.loads(dry("--json", ref).stdout)
    assert (document["action"], document["writes"], document["collection"]) == (
        "stored", True, None)
    # arv's own -n is --dry-run here.
    arv = Runner(daemonless.env)("-n", "keepdocker", "--no-progress", ref,
                                 command=[script("arv")])
    assert arv.returncode == 2 and arv.stdout == ""
    assert not os.path.exists(os.path.join(user_env["XDG_CACHE_HOME"], "arvados", "docker",
                                           image.image_id + ".tar.journal"))

    uuid = uploaded_uuid(daemonless("--no-progress", ref))
    proc = dry(ref)
    assert proc.returncode == 0 and f"is stored in {uuid}; nothing to write" in (
        proc.stderr)
    document = json.loads(dry("--json", ref).stdout)
    assert (document["action"], document["collection"]["uuid"]) == ("found", uuid)

    # Another tag for the same image: links would be added.
    other = path.parent / "other.tar"
    imagebuild.write_oci_layout(str(other), [(unique + ":other", image)], as_tar=True)
    document = json.loads(dry("--json", f"oci-archive:{other}").stdout)
    assert (document["action"], document["writes"]) == ("linked", True)
    assert document["image"]["repo_tag"] == unique + ":other"
    assert dry(f"oci-archive:{other}").returncode == 2
    # Another project: a copy would be made.
    proc = dry("--json", "--project-uuid", project, ref)
    document = json.loads(proc.stdout)
    assert proc.returncode == 2
    assert (document["action"], document["copied_from"], document["collection"]) == (
        "copied", uuid, None)
    # --force would upload again.
    assert json.loads(dry("--json", "--force", ref).stdout)["action"] == "stored"


# -- the API server: refused certificates fail fast, 5xx is retried -----------------


def test_a_rejected_certificate_ends_the_first_request_at_once(user_env, arv_cluster):
    # The local cluster's certificate comes from a throw-away CA nobody trusts.
    env = {k: v for k, v in user_env.items() if k != "ARVADOS_API_HOST_INSECURE"}
    proc = Runner(env)("--no-progress", "debian:12", timeout=60)
    message = one_error(proc)
    assert message.startswith("cannot reach the Arvados API server: its certificate was "
                              "rejected (")
    assert message.endswith(f"; check ARVADOS_API_HOST={arv_cluster.api_host} (from the "
                            "environment)")


def test_a_5xx_after_the_first_answer_is_retried_and_said_once(keepdocker, arv_cluster,
                                                               arv_keepdocker_321):
    arv_cluster.inject_fault("api:GET:links", 2, status=503)
    proc = keepdocker()
    assert proc.returncode == 0, proc.stderr
    [said] = [line for line in proc.stderr.splitlines() if "arvados.keepdocker" in line]
    assert said.endswith(
        f"Arvados API server at {arv_cluster.api_host}: HTTP 503 Service Unavailable; retrying up "
        "to 10 times, "
        "waiting longer each time (--retries 10); press Ctrl-C to stop, or use --retries 0 "
        "to fail at once")
    assert proc.stdout == arv_keepdocker_321().stdout
