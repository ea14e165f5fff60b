"""SIGKILL at 20 seeded random points of a ~300 MB upload and at every step boundary.

After each kill the same command is run again (same HOME, no --force) and
the end state must hold (see :mod:`.world`): one untrashed, complete,
loadable collection with its links; nothing without links; no link to a
trashed collection.
"""

import random
import signal
import subprocess
import sys
import time

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from .world import check_end_state, clean_up, new_project

MiB = 1 << 20
SEED = 20261130
RANDOM_KILLS = 20


@pytest.fixture(scope="module")
def big_image(tmp_path_factory):
    """A ~300 MB docker-archive on disk: three 100 MB layers of seeded random bytes."""
    rng = random.Random(SEED)
    layers = [{f"layer{n}.bin": rng.randbytes(100 * MiB)} for n in range(3)]
    image = ib.build_image(layers, repo_tags=["reliability/big:1"])
    path = tmp_path_factory.mktemp("big") / "big.tar"
    ib.write_docker_archive(str(path), [image])
    return image, str(path)


@pytest.fixture(scope="module")
def project(arv_cluster):
    return new_project(arv_cluster.api("alice"), "kills")


def start(env, *args):
    return subprocess.Popen([sys.executable, "-m", "arv_keepdocker_plugin", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fresh_env(base_env, arv_cluster, tmp_path, n):
    home = tmp_path / f"home{n}"
    (home / ".cache").mkdir(parents=True)
    return dict(base_env, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
                **arv_cluster.env("alice"))


def rerun_and_check(env, args, admin, api, project, image_id):
    proc = subprocess.run([sys.executable, "-m", "arv_keepdocker_plugin", *args], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    uuid = check_end_state(admin, api, project, image_id, "reliability/big:1")
    assert proc.stdout.strip() == uuid
    return uuid


def test_sigkill_at_random_points(big_image, project, base_env, arv_cluster, arv_api,
                                  arv_api_admin, tmp_path, record_property):
    image, path = big_image
    args = ["--no-progress", "--project-uuid", project, "docker-archive:" + path]
    # One full run tells how long an upload takes here.
    clean_up(arv_api_admin, project, image.image_id)
    started = time.monotonic()
    rerun_and_check(fresh_env(base_env, arv_cluster, tmp_path, "t"), args, arv_api_admin,
                    arv_api, project, image.image_id)
    full = time.monotonic() - started
    rng = random.Random(SEED)
    points = sorted(rng.uniform(0.05, full) for _ in range(RANDOM_KILLS))
    held = 0
    for n, point in enumerate(points):
        clean_up(arv_api_admin, project, image.image_id)
        env = fresh_env(base_env, arv_cluster, tmp_path, n)
        proc = start(env, *args)
        time.sleep(point)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        rerun_and_check(env, args, arv_api_admin, arv_api, project, image.image_id)
        held += 1
    record_property("random_kills", f"{len(points)} tried, {held} held; full upload {full:.1f}s")
    print(f"\nrandom kills: {len(points)} tried, {held} held (points "
          f"{points[0]:.2f}..{points[-1]:.2f}s of {full:.1f}s)")


#: (step, fault target, requests let through first, whether the stalled request
#: is processed after the kill). An upload writes, in order: the lock
#: collection, the image collection (pending), its links (hash, repo+tag,
#: three layers), the update that clears its trash_at, the lock's removal.
STEPS = [
    ("after the last block", "api:POST:collections", 1, False),
    ("after the collection is created", "api:POST:links", 0, False),
    ("as the first link is made", "api:POST:links", 0, True),
    ("between the first and second link", "api:POST:links", 1, False),
    ("between the second and third link", "api:POST:links", 2, False),
    ("as the last link is made", "api:POST:links", 4, True),
    ("before the trash_at is cleared", "api:PUT:collections", 0, False),
    ("as the trash_at is cleared", "api:PUT:collections", 0, True),
    ("before the lock is removed", "api:DELETE:collections", 0, False),
]


@pytest.mark.parametrize("step, target, skip, processed", STEPS,
                         ids=[s[0].replace(" ", "-") for s in STEPS])
def test_sigkill_at_each_step_boundary(step, target, skip, processed, big_image, project,
                                       base_env, arv_cluster, arv_api, arv_api_admin,
                                       tmp_path):
    image, path = big_image
    args = ["--no-progress", "--project-uuid", project, "docker-archive:" + path]
    clean_up(arv_api_admin, project, image.image_id)
    env = fresh_env(base_env, arv_cluster, tmp_path, "s")
    stall = 1.0 if processed else 60.0
    arv_cluster.inject_fault(target, 1, status=None if processed else 503, stall=stall,
                             skip=skip)
    proc = start(env, *args)
    try:
        deadline = time.monotonic() + 300
        while target in arv_cluster.pending_faults():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the upload never reached " + step
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # the stalled request is in flight
        proc.communicate(timeout=60)
    finally:
        arv_cluster.clear_faults()
        if proc.poll() is None:
            proc.kill()
    if processed:
        time.sleep(stall + 0.5)  # the server finishes the request of the dead client
    rerun_and_check(env, args, arv_api_admin, arv_api, project, image.image_id)


@pytest.fixture(scope="module")
def compressed_image(tmp_path_factory):
    """A gzip docker-archive (read once: steps/one_pass.py): three 24 MiB layers."""
    import gzip
    rng = random.Random(SEED + 1)
    layers = [{f"layer{n}.bin": rng.randbytes(24 * MiB)} for n in range(3)]
    image = ib.build_image(layers, repo_tags=["reliability/big:1"])
    plain = tmp_path_factory.mktemp("gz") / "big.tar"
    ib.write_docker_archive(str(plain), [image])
    path = str(plain) + ".gz"
    with open(str(plain), "rb") as src, gzip.open(path, "wb", compresslevel=1) as dst:
        while True:
            data = src.read(8 * MiB)
            if not data:
                break
            dst.write(data)
    return image, path


def test_sigkill_while_a_compressed_archive_is_read_once(
        compressed_image, project, base_env, arv_cluster, arv_api, arv_api_admin, tmp_path,
        record_property):
    """Blocks stored while the image is being learnt belong to no collection when the
    run is killed; the run again (same HOME: its journal) ends complete."""
    image, path = compressed_image
    args = ["--no-progress", "--project-uuid", project, "docker-archive:" + path]
    clean_up(arv_api_admin, project, image.image_id)
    started = time.monotonic()
    rerun_and_check(fresh_env(base_env, arv_cluster, tmp_path, "gz"), args, arv_api_admin,
                    arv_api, project, image.image_id)
    full = time.monotonic() - started
    rng = random.Random(SEED + 2)
    points = sorted(rng.uniform(0.05, full) for _ in range(6))
    for n, point in enumerate(points):
        clean_up(arv_api_admin, project, image.image_id)
        env = fresh_env(base_env, arv_cluster, tmp_path, f"gz{n}")
        proc = start(env, *args)
        time.sleep(point)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        rerun_and_check(env, args, arv_api_admin, arv_api, project, image.image_id)
    record_property("compressed_kills", f"{len(points)} tried, {len(points)} held; full upload "
                                        f"{full:.1f}s")


def test_sigkill_while_the_engines_files_are_read(
        big_image, keepdocker_docker_engine, project, base_env, arv_cluster, arv_api,
        arv_api_admin, tmp_path, record_property):
    """From the Docker engine, whose files (root may read them) stand in for its
    export: killed anywhere, the run again ends with one complete image."""
    image, path = big_image
    keepdocker_docker_engine.docker("load", "-i", path)
    args = ["--no-progress", "--project-uuid", project, "reliability/big:1"]
    engine_env = {"DOCKER_HOST": keepdocker_docker_engine.host,
                  "ARV_KEEPDOCKER_ENGINE_FILES": "1"}
    try:
        clean_up(arv_api_admin, project, image.image_id)
        started = time.monotonic()
        rerun_and_check(dict(fresh_env(base_env, arv_cluster, tmp_path, "e"), **engine_env),
                        args, arv_api_admin, arv_api, project, image.image_id)
        full = time.monotonic() - started
        rng = random.Random(SEED + 3)
        points = sorted(rng.uniform(0.05, full) for _ in range(4))
        for n, point in enumerate(points):
            clean_up(arv_api_admin, project, image.image_id)
            env = dict(fresh_env(base_env, arv_cluster, tmp_path, f"e{n}"), **engine_env)
            proc = start(env, *args)
            time.sleep(point)
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=60)
            rerun_and_check(env, args, arv_api_admin, arv_api, project, image.image_id)
    finally:
        keepdocker_docker_engine.docker("rmi", "-f", image.image_id)
    record_property("engine_files_kills", f"{len(points)} tried, {len(points)} held; full "
                                          f"upload {full:.1f}s")
