"""The real arv-put / arv-get / arv-ls console scripts against the local cluster."""

import hashlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from arv_keepdocker_testkit.scripts import script

MiB = 1 << 20
BLOCK = 64 * MiB


def make_file(path, size, seed):
    """Write ``size`` pseudo-random bytes (1 MiB of urandom, stamped per MiB); return block md5s.

    Returns ``(md5 of the whole file, [md5 of each 64 MiB block])``.
    """
    base = bytearray(os.urandom(MiB))
    whole = hashlib.md5()
    blocks, block = [], hashlib.md5()
    written = 0
    with open(path, "wb") as out:
        while written < size:
            n = min(MiB, size - written)
            base[:16] = b"%08d%08d" % (seed, written // MiB)
            chunk = memoryview(base)[:n]
            out.write(chunk)
            whole.update(chunk)
            block.update(chunk)
            written += n
            if written % BLOCK == 0 or written == size:
                blocks.append(block.hexdigest())
                block = hashlib.md5()
    return whole.hexdigest(), blocks


def md5_of(path):
    digest = hashlib.md5()
    with open(path, "rb") as src:
        for chunk in iter(lambda: src.read(MiB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run(args, timeout=300, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def put_lines(cluster, offset, hashes):
    """Keep PUT requests logged by the cluster since ``offset`` for any of ``hashes``."""
    with open(cluster.log_file, "rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return [h for h in re.findall(r'"PUT /([0-9a-f]{32})\S* HTTP', text) if h in hashes]


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "data" / "big.bin"
    path.parent.mkdir()
    size = 2 * BLOCK + 3 * MiB + 12345  # three blocks, the last one partial
    whole, blocks = make_file(path, size, seed=int(time.time() * 1000) % 10**8)
    return path, size, whole, blocks


def test_arv_put_arv_get_round_trip_multi_block(arv_env, arv_api, big_file, tmp_path):
    path, size, whole, blocks = big_file
    out = run([script("arv-put"), "--no-progress", str(path)])
    assert out.returncode == 0, out.stderr
    uuid = out.stdout.strip()
    coll = arv_api.collections().get(uuid=uuid).execute()
    locators = re.findall(r" ([0-9a-f]{32})\+(\d+)", coll["manifest_text"])
    assert [h for h, _ in locators] == blocks
    assert sum(int(n) for _, n in locators) == size

    listing = run([script("arv-ls"), uuid])
    assert listing.returncode == 0, listing.stderr
    assert [line.strip() for line in listing.stdout.splitlines()] == ["./big.bin"]

    dest = tmp_path / "back.bin"
    got = run([script("arv-get"), "%s/big.bin" % uuid, str(dest)])
    assert got.returncode == 0, got.stderr
    assert dest.stat().st_size == size
    assert md5_of(dest) == whole


def test_arv_put_into_project(arv_env, arv_api, arv_project, tmp_path):
    src = tmp_path / "small.txt"
    src.write_bytes(b"hello project\n")
    out = run([script("arv-put"), "--no-progress", "--project-uuid", arv_project["uuid"],
               "--name", "in project", str(src)])
    assert out.returncode == 0, out.stderr
    coll = arv_api.collections().get(uuid=out.stdout.strip()).execute()
    assert coll["owner_uuid"] == arv_project["uuid"]
    assert coll["name"] == "in project"
    dest = tmp_path / "small.back"
    assert run([script("arv-get"), out.stdout.strip() + "/small.txt", str(dest)]).returncode == 0
    assert dest.read_bytes() == b"hello project\n"


def _cached_manifest(cache_dir):
    entries = list(cache_dir.glob("*"))
    assert len(entries) == 1, entries
    return json.loads(entries[0].read_text())["manifest"]


def _wait_for(predicate, timeout, poll=0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


def _manifest_or_empty(cache_dir):
    try:
        return _cached_manifest(cache_dir)
    except (AssertionError, OSError, ValueError, KeyError):
        return ""


def test_arv_put_resumes_after_a_failed_run_without_resending_blocks(
        arv_env, arv_cluster, arv_api, arv_api_bob, arv_project, big_file, tmp_path):
    """A run that uploads every block but cannot save its collection leaves a resume
    cache; the next run reuses those blocks (no Keep PUT for them) and finishes.

    The failure is the collection save at the very end: alice may read bob's
    project (arv-put checks that first) but not write to it.
    """
    path, size, whole, blocks = big_file
    readonly = arv_api_bob.groups().create(
        body={"name": "read-only for alice %s" % time.time(), "group_class": "project"}).execute()
    arv_api_bob.links().create(body={
        "link_class": "permission", "name": "can_read",
        "tail_uuid": arv_cluster.user_uuid("alice"), "head_uuid": readonly["uuid"]}).execute()

    offset = arv_cluster.log_file.stat().st_size
    first = run([script("arv-put"), "--no-progress", "--project-uuid", readonly["uuid"], str(path)])
    assert first.returncode == 1
    assert "arv-put: " in first.stderr
    assert sorted(put_lines(arv_cluster, offset, set(blocks))) == sorted(blocks)
    cache_dir = Path(os.environ["XDG_CACHE_HOME"]) / "arvados" / "arv-put"
    cached = _cached_manifest(cache_dir)
    assert all(block in cached for block in blocks)

    offset = arv_cluster.log_file.stat().st_size
    second = run([script("arv-put"), "--no-progress", "--project-uuid", arv_project["uuid"],
                  str(path)])
    assert second.returncode == 0, second.stderr
    assert "Resuming upload from cache file" in second.stderr
    assert put_lines(arv_cluster, offset, set(blocks)) == []
    coll = arv_api.collections().get(uuid=second.stdout.strip()).execute()
    assert coll["owner_uuid"] == arv_project["uuid"]
    dest = tmp_path / "resumed.bin"
    got = run([script("arv-get"), coll["uuid"] + "/big.bin", str(dest)])
    assert got.returncode == 0, got.stderr
    assert dest.stat().st_size == size
    assert md5_of(dest) == whole


def test_arv_put_resumes_an_interrupted_upload(arv_env, arv_cluster, arv_api, tmp_path):
    """Kill arv-put mid-upload after a checkpoint; the next run sends only what is missing.

    arv-put is given ``a.bin`` (40 MiB: over 32 MiB, so its block is committed
    when the file is closed) and then a named pipe that never delivers data,
    so the upload stalls, holding no lock, after ``a.bin``. arv-put's
    checkpoint one second after it starts then records ``a.bin``; it is
    killed there. The next run, with the pipe replaced by a regular file,
    must skip ``a.bin`` (no PUT of its block) and upload only the new file.
    """
    cache_dir = Path(os.environ["XDG_CACHE_HOME"]) / "arvados" / "arv-put"
    a_path, c_path = tmp_path / "a.bin", tmp_path / "c.bin"
    a_md5, a_blocks = make_file(a_path, 40 * MiB, int(time.time() * 1000) % 10**8)
    os.mkfifo(c_path)
    writer = os.open(c_path, os.O_RDWR)  # a writer that never writes: arv-put's read blocks
    proc = subprocess.Popen([script("arv-put"), "--no-progress", str(a_path), str(c_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The checkpoint comes 1 s after the upload starts (next one 60 s later).
        checkpointed = _wait_for(lambda: a_blocks[0] in _manifest_or_empty(cache_dir), 75)
    finally:
        proc.kill()
        _out, first_err = proc.communicate()
        os.close(writer)
    assert checkpointed, first_err.decode()[-2000:]
    assert proc.returncode == -9  # it was still uploading when killed

    c_path.unlink()
    c_path.write_bytes(b"the rest of the upload\n")
    offset = arv_cluster.log_file.stat().st_size
    second = run([script("arv-put"), "--no-progress", str(a_path), str(c_path)])
    assert second.returncode == 0, second.stderr
    assert "Resuming upload from cache file" in second.stderr
    sent = put_lines(arv_cluster, offset, set(a_blocks))
    assert sent == []                                   # a.bin was not sent again
    coll = arv_api.collections().get(uuid=second.stdout.strip()).execute()
    assert a_blocks[0] in coll["manifest_text"]
    dest = tmp_path / "back-a.bin"
    got = run([script("arv-get"), "%s/a.bin" % coll["uuid"], str(dest)])
    assert got.returncode == 0, got.stderr
    assert md5_of(dest) == a_md5
    got = run([script("arv-get"), "%s/c.bin" % coll["uuid"], "-"])
    assert got.returncode == 0, got.stderr
    assert got.stdout == "the rest of the upload\n"
