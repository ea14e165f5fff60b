"""Keep and API failures at every write, and an API that stays down through the rollback.

Each failing run must end in one line on stderr, exit 1, and leave nothing a
user would see as half-written (a pending collection, due for the trash, is
allowed only while the API is down); after the cluster recovers, the same
command run again must reach the end state of :mod:`.world`.
"""

import random
import subprocess
import sys

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from .world import check_end_state, clean_up, image_collections, new_project

MiB = 1 << 20


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    rng = random.Random(7)
    image = ib.build_image([{"a.bin": rng.randbytes(6 * MiB)}, {"b.bin": rng.randbytes(MiB)},
                            {"c": b"c"}], repo_tags=["reliability/faults:1"])
    path = tmp_path_factory.mktemp("faults") / "image.tar"
    ib.write_docker_archive(str(path), [image])
    return image, str(path)


@pytest.fixture
def setting(image_file, arv_cluster, arv_api, arv_api_admin, base_env, tmp_path):
    image, path = image_file
    project = new_project(arv_api, "faults")
    env = dict(base_env, **arv_cluster.env("alice"))
    args = ["--no-progress", "--retries", "0", "--project-uuid", project,
            "docker-archive:" + path]

    def run():
        return subprocess.run([sys.executable, "-m", "arv_keepdocker_plugin", *args], env=env,
                              capture_output=True, text=True, timeout=600)

    def recovers():
        arv_cluster.clear_faults()
        proc = run()
        assert proc.returncode == 0, proc.stderr
        uuid = check_end_state(arv_api_admin, arv_api, project, image.image_id,
                               "reliability/faults:1")
        assert proc.stdout.strip() == uuid

    yield image, project, run, recovers
    arv_cluster.clear_faults()
    clean_up(arv_api_admin, project, image.image_id)


def failed_cleanly(proc):
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    return lines


def nothing_half_written(admin, project, image_id):
    live = image_collections(admin, project, image_id)
    assert live == [], "left behind: {}".format([c["uuid"] for c in live])
    assert admin.links().list(filters=[["owner_uuid", "=", project]]
                              ).execute()["items"] == []


@pytest.mark.parametrize("status", [503, 500])
def test_keep_refusing_writes(setting, arv_cluster, arv_api_admin, status):
    image, project, run, recovers = setting
    arv_cluster.inject_fault("keep_put", 1000, status=status)
    lines = failed_cleanly(run())
    assert len(lines) == 1 and "Keep" in lines[0]
    nothing_half_written(arv_api_admin, project, image.image_id)
    recovers()


def test_keep_stalling(setting, arv_cluster):
    image, project, run, recovers = setting
    arv_cluster.inject_fault("keep_put", 3, stall=1.5)
    recovers()  # slow, not broken: the stalls pass and the upload completes


#: Every write of the record step: (what, target, requests let through first).
WRITES = [
    ("the image collection's create", "api:POST:collections", 1),
    ("the hash link", "api:POST:links", 0),
    ("the repo+tag link", "api:POST:links", 1),
    ("a layer link", "api:POST:links", 3),
    ("the trash_at clear", "api:PUT:collections", 0),
]


@pytest.mark.parametrize("what, target, skip", WRITES, ids=[w[0] for w in WRITES])
@pytest.mark.parametrize("status", [500, 503])
def test_api_failing_one_write(setting, arv_cluster, arv_api_admin, what, target, skip,
                               status):
    image, project, run, recovers = setting
    arv_cluster.inject_fault(target, 1, status=status, skip=skip)
    lines = failed_cleanly(run())
    assert lines[-1].startswith("arv keepdocker") or f"API error {status}" in lines[-1]
    assert len([l for l in lines if "ERROR" in l]) == 1
    nothing_half_written(arv_api_admin, project, image.image_id)
    recovers()


@pytest.mark.parametrize("what, target, skip", WRITES[1:], ids=[w[0] for w in WRITES[1:]])
def test_api_down_through_the_rollback(setting, arv_cluster, arv_api_admin, what, target,
                                       skip):
    """The write fails, and so does every undo: a pending collection may remain, due for
    the trash, until the API is back and the command runs again."""
    image, project, run, recovers = setting
    arv_cluster.inject_fault(target, 1, status=503, skip=skip)
    arv_cluster.inject_fault("api:DELETE:links", 1000, status=503)
    arv_cluster.inject_fault("api:DELETE:collections", 1000, status=503)
    lines = failed_cleanly(run())
    assert any("could not undo" in l for l in lines)
    for collection in image_collections(arv_api_admin, project, image.image_id):
        assert collection["trash_at"] is not None, "a leftover must be due for the trash"
    recovers()
