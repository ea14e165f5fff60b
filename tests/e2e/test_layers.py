"""Layer-aligned streaming uploads: layout, reuse, skipping, resume (issue 5).

Images are built in the real Docker engine from COPY-only Dockerfiles; the
Keep block store of the local cluster is inspected directly to count what an
upload really added.
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from arv_keepdocker_testkit.engines import build_layered_image

from arv_keepdocker_plugin.keep.block_writer import BLOCK_SIZE
from arv_keepdocker_plugin.keep.layer_links import locators_for_range
from arv_keepdocker_plugin.keep.locators import block_key

from .conftest import layer_links, load_from_keep
from .test_upload_docker import uploaded_uuid

MiB = 1 << 20


def pseudo_random(seed: str, size: int) -> bytes:
    """Incompressible, reproducible bytes (so equal layers come from equal seeds)."""
    import hashlib
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha512(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:size])


@pytest.fixture(scope="module")
def versions(keepdocker_docker_engine):
    """v1 and v2 of one image: two shared layers (1 MiB, 66 MiB), new top layers."""
    base = {"base.bin": pseudo_random("base", MiB)}
    big = {"big.bin": pseudo_random("big", 66 * MiB)}
    ids = [build_layered_image(keepdocker_docker_engine, f"layered:v{n}", [
        base, big, {"top.bin": pseudo_random(f"top{n}", 3 * MiB)}]) for n in (1, 2)]
    yield ids
    for image_id in ids:
        keepdocker_docker_engine.docker("rmi", "-f", image_id, check=False)


def block_files(cluster):
    keep = cluster.dir / "keep"
    return {p.name: p.stat().st_size for p in keep.glob("*/*") if p.is_file()}


def manifest(api, uuid):
    return api.collections().get(uuid=uuid).execute()["manifest_text"]


def progress_counts(stderr):
    line = [l for l in stderr.splitlines() if " written " in l][-1]
    match = re.search(r"(\d+) written -?\d+ total (\d+) read (\d+) uploaded (\d+) reused$", line)
    return dict(zip(("written", "read", "uploaded", "reused"), map(int, match.groups()),
                    strict=True))


@pytest.fixture
def fresh(keepdocker, arv_api_admin):
    """Remove every layer-index link, so each test starts with nothing to reuse."""
    def clear():
        for link in arv_api_admin.links().list(
                filters=[["link_class", "=", "docker_image_layer"]], limit=1000).execute()["items"]:
            arv_api_admin.links().delete(uuid=link["uuid"]).execute()
    clear()
    return keepdocker


@pytest.mark.parametrize("read_from", ["engine files", "engine export"])
def test_same_layer_same_blocks_and_second_version_adds_only_its_layer(
        fresh, versions, arv_api, arv_cluster, read_from):
    v1, v2 = versions
    # The engine's files (root can read them here) or, switched off, its export.
    env = {"ARV_KEEPDOCKER_ENGINE_FILES": "1" if read_from == "engine files" else "0"}
    first = fresh("--no-progress", "--force", "layered:v1", env=env)
    uuid1 = uploaded_uuid(first)
    before = block_files(arv_cluster)
    second = fresh("--batch-progress", "--force", "layered:v2", env=env)
    uuid2 = uploaded_uuid(second)
    added = {k: v for k, v in block_files(arv_cluster).items() if k not in before}

    layers1, layers2 = layer_links(arv_api, uuid1), layer_links(arv_api, uuid2)
    shared = set(layers1) & set(layers2)
    assert len(shared) == 2 and len(layers2) == 3
    for digest in shared:  # identical locators for identical layers
        blocks1 = locators_for_range(manifest(arv_api, uuid1), *layers1[digest])
        blocks2 = locators_for_range(manifest(arv_api, uuid2), *layers2[digest])
        assert [block_key(b) for b in blocks1] == [block_key(b) for b in blocks2]
    assert max(size for _, size in layers2.values()) > BLOCK_SIZE  # spans two blocks

    new_layer = [size for d, (_, size) in layers2.items() if d not in shared][0]
    assert sum(added.values()) <= 1.1 * new_layer
    counts = progress_counts(second.stderr)
    assert counts["reused"] >= sum(layers2[d][1] for d in shared)
    if read_from == "engine export":
        assert counts["read"] == counts["written"]  # the engine streams every byte
    else:
        assert counts["read"] < 5 * MiB  # the 67 MiB of stored layers were not read
    assert counts["uploaded"] + counts["reused"] == counts["written"]


def test_archive_on_disk_does_not_read_stored_layers(
        fresh, versions, arv_api, keepdocker_docker_engine, tmp_path, arv_cluster):
    v1, v2 = versions
    archive = tmp_path / "v2.tar"
    keepdocker_docker_engine.docker("save", "-o", str(archive), "layered:v2")
    uploaded_uuid(fresh("--no-progress", "--force", "layered:v1"))
    before = block_files(arv_cluster)
    proc = fresh("--batch-progress", "--force", f"docker-archive:{archive}")
    uuid = uploaded_uuid(proc)
    counts = progress_counts(proc.stderr)
    assert counts["written"] == archive.stat().st_size
    assert counts["read"] < 5 * MiB  # the 67 MiB of shared layers were not read
    added = sum(v for k, v in block_files(arv_cluster).items() if k not in before)
    assert added <= 1.1 * 3 * MiB + 64 * 1024
    keepdocker_docker_engine.docker("rmi", "-f", v2)
    try:
        assert load_from_keep(arv_api, uuid, keepdocker_docker_engine) == v2
    finally:
        keepdocker_docker_engine.docker("tag", v2, "layered:v2", check=False)


def test_disabling_the_layer_index_leaves_exactly_3_2_1_links(fresh, versions, arv_api):
    proc = fresh("--no-progress", "--force", "layered:v1",
                 env={"ARV_KEEPDOCKER_DISABLE_PLUGINS": "oci_labels,layer_index"})
    uuid = uploaded_uuid(proc)
    classes = sorted(l["link_class"] for l in arv_api.links().list(
        filters=[["head_uuid", "=", uuid]]).execute()["items"])
    assert classes == ["docker_image_hash", "docker_image_repo+tag"]


def journal_file(env, image_id):
    return os.path.join(env["XDG_CACHE_HOME"], "arvados", "docker", image_id + ".tar.journal")


def start(env, *args):
    return subprocess.Popen([sys.executable, "-m", "arv_keepdocker_plugin", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_journal(path, proc, min_bytes, timeout=120):
    """Wait until the journal records ``min_bytes`` of blocks; return the amount."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                # The first line names the token ("token <uuid>"); then locators,
                # and "layer ..." lines for layers stored whole.
                done = sum(int(line.split("+")[1]) for line in f
                           if line.strip() and not line.startswith(("token ", "layer ")))
            if done >= min_bytes:
                return done
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    pytest.fail(f"the upload never journalled {min_bytes} bytes")


@pytest.fixture(scope="module")
def many_layers(keepdocker_docker_engine):
    """Twelve 1 MiB layers: at least twelve blocks, so a run can be caught mid-way."""
    image_id = build_layered_image(keepdocker_docker_engine, "many-layers:v1", [
        {f"layer{n}.bin": pseudo_random(f"many{n}", MiB)} for n in range(12)])
    yield image_id
    keepdocker_docker_engine.docker("rmi", "-f", image_id, check=False)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT", "keep-failure"])
def test_interrupted_upload_resumes_with_only_what_is_missing(
        how, fresh, many_layers, docker_user_env, arv_cluster, arvados_state, arv_api,
        keepdocker_docker_engine):
    image_id = many_layers
    before = arvados_state.snapshot()
    # Every Keep write takes a second (two at a time), so the run is surely
    # caught mid-way, even on a loaded machine: at least four blocks (two
    # seconds or more) are still to go when the signal is sent.
    arv_cluster.inject_fault("keep_put", 1000, stall=1.0)
    proc = start(docker_user_env, "--no-progress", "--force", "--retries", "0",
                 "many-layers:v1")
    journal = journal_file(docker_user_env, image_id)
    try:
        journalled = wait_for_journal(journal, proc, 3 * MiB)
        if how == "keep-failure":  # Keep starts refusing writes
            arv_cluster.inject_fault("keep_put", 1000, status=503)
        else:
            proc.send_signal(getattr(signal, how))
        out, err = proc.communicate(timeout=60)
    finally:
        arv_cluster.clear_faults()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    if how == "keep-failure":
        assert proc.returncode == 1 and "Traceback" not in err and "Keep" in err
    assert arvados_state.snapshot() == before  # nothing visible from the broken run

    rerun = fresh("--batch-progress", "--force", "many-layers:v1")
    uuid = uploaded_uuid(rerun)
    counts = progress_counts(rerun.stderr)
    assert counts["reused"] >= journalled
    assert counts["uploaded"] <= counts["written"] - journalled
    assert not os.path.exists(journal)  # a finished upload removes its journal
    keepdocker_docker_engine.docker("rmi", "-f", image_id)
    try:
        assert load_from_keep(arv_api, uuid, keepdocker_docker_engine) == image_id
    finally:
        keepdocker_docker_engine.docker("tag", image_id, "many-layers:v1", check=False)


def test_no_resume_starts_over(fresh, versions, docker_user_env):
    v1, v2 = versions
    proc = start(docker_user_env, "--no-progress", "--force", "layered:v2")
    journal = journal_file(docker_user_env, v2)
    wait_for_journal(journal, proc, 1)
    proc.kill()
    proc.communicate()
    rerun = fresh("--batch-progress", "--force", "--no-resume", "layered:v2")
    uploaded_uuid(rerun)
    counts = progress_counts(rerun.stderr)
    assert counts["reused"] == 0 and counts["uploaded"] == counts["written"]
