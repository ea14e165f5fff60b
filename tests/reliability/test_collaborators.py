"""A collaborator (bob, with ``can_write`` on alice's project) against alice's uploads.

Labs share projects with ``can_write``; a record in a project is owned by the
project, whoever wrote it. bob plants layer records, image records, pending
markers and lock records in the destination itself, stamped as this tool
stamps its own, and rewrites a pending collection in the middle of an upload.
Each case "holds" when alice's image is exactly hers (read back and checked),
or her run is refused with one line and nothing of it is kept; never when her
run succeeds with bob's bytes, trashes bob's or her own work, or waits for a
squatter. Also: two runs in separate PID namespaces on one host.
"""

import datetime
import hashlib
import io
import os
import subprocess
import sys
import threading
import time

import arvados.collection
import pytest
from arv_keepdocker_testkit import imagebuild as ib
from e2e.conftest import Runner

from arv_keepdocker_plugin import LayerRecord
from arv_keepdocker_plugin.image import Layer
from arv_keepdocker_plugin.keep.arvados_lock import HOLDER_PROPERTY, ArvadosLock, lock_name
from arv_keepdocker_plugin.keep.layer_links import locators_for_range
from arv_keepdocker_plugin.keep.locators import block_key
from arv_keepdocker_plugin.keep.trust_records import WriterRule, stamp
from arv_keepdocker_plugin.steps.layer_trust import TrustRule, reusable_layers
from arv_keepdocker_plugin.steps.record import PENDING_PROPERTY

from .world import (
    ImageLike,
    assert_potent,
    check_end_state,
    image_collections,
    new_project,
    plant_image,
    plant_layer_record,
)

MiB = 1 << 20


@pytest.fixture
def project(arv_api, arv_cluster):
    """alice's lab project; bob may write to it (the ordinary way labs work)."""
    uuid = new_project(arv_api, "alice's lab")
    arv_api.links().create(body={
        "link_class": "permission", "name": "can_write", "head_uuid": uuid,
        "tail_uuid": arv_cluster.user_uuid("bob")}).execute()
    return uuid


@pytest.fixture
def alice(user_env):
    return Runner(user_env)


@pytest.fixture
def bob(base_env, arv_cluster, tmp_path):
    home = tmp_path / "bob"
    (home / ".cache").mkdir(parents=True)
    return Runner(dict(base_env, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
                       **arv_cluster.env("bob")))


def lab_image(unique, own_base=False):
    """An image with a well-known base layer (as a lab's images share one) and a top.

    ``own_base``: a base of its own instead (bob's planted records in other tests
    name the well-known one, and a user's own records are trusted by that user).
    """
    data = unique.encode() * (2 * MiB // len(unique)) if own_base else bytes(range(256)) * (
        2 * MiB // 256)
    return ib.build_image([{"usr/lib/base.bin": data}, {"app": unique.encode()}],
                          repo_tags=[unique + ":1"])


def archive(tmp_path, image, name="image.tar"):
    path = tmp_path / name
    ib.write_docker_archive(str(path), [image])
    return f"docker-archive:{path}"


def uploaded(proc):
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def one_line(proc):
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert (proc.returncode, proc.stdout, len(lines)) == (1, "", 1), proc.stderr
    return lines[0]


def bytes_read(stderr):
    """The last ``--batch-progress`` figure of bytes read."""
    last = [l for l in stderr.splitlines() if " read " in l][-1]
    return int(last.split(" read ")[0].split()[-1])


def links_written_by(admin, user, **filters):
    wanted = [["modified_by_user_uuid", "=", user]] + [[k, "=", v] for k, v in filters.items()]
    return admin.links().list(filters=wanted, limit=1000).execute()["items"]


def junk_manifest(api, filename, size):
    """A manifest of ``size`` junk bytes as ``filename``, signed for ``api``'s user."""
    writer = arvados.collection.Collection(api_client=api)
    with writer.open(filename, "wb") as f:
        f.write(b"\xbb" * size)
    return writer.manifest_text()


# -- planted records in the destination itself -----------------------------------------

def test_bobs_stamped_layer_records_in_alices_project_never_stand_in_for_her_layers(
        alice, arv_api, arv_api_bob, arv_api_admin, arv_cluster, project, unique, tmp_path):
    image = lab_image(unique)
    for layer in image.layers:
        for stamped in (True, False):  # as this tool stamps now, and as it did before
            plant_layer_record(arv_api_bob, project, layer.diff_id, layer.diff_id,
                               layer.size, stamped)
    assert_potent(arv_api, [(l.diff_id, l.size) for l in image.layers], project)
    uuid = uploaded(alice("--no-progress", "--project-uuid", project, archive(tmp_path, image)))
    assert check_end_state(arv_api_admin, arv_api, project, image.image_id,
                           unique + ":1") == uuid
    # Her layer records point at her own collection only: later uploads into the
    # project can never be led to bob's junk through them.
    alices = links_written_by(arv_api_admin, arv_cluster.user_uuid("alice"),
                              link_class="docker_image_layer", owner_uuid=project)
    assert alices and {l["head_uuid"] for l in alices} == {uuid}
    # Her next version reuses her own base unread, with bob's records newer still.
    for layer in image.layers:
        plant_layer_record(arv_api_bob, project, layer.diff_id, layer.diff_id, layer.size)
    v2 = ib.build_image([{"usr/lib/base.bin": bytes(range(256)) * (8 << 10)},
                         {"app": b"v2 " + unique.encode()}], repo_tags=[unique + ":2"])
    proc = alice("--batch-progress", "--project-uuid", project, archive(tmp_path, v2, "v2.tar"))
    uploaded(proc)
    check_end_state(arv_api_admin, arv_api, project, v2.image_id, unique + ":2")
    assert bytes_read(proc.stderr) < image.layers[0].size


def test_bobs_stamped_image_in_alices_project_is_checked_and_skipped(
        alice, arv_api, arv_api_bob, arv_api_admin, project, unique, tmp_path):
    image = lab_image(unique)
    evil = io.BytesIO()
    ib.write_docker_archive(evil, [ib.build_image([{"evil": b"bob was here"}])])
    planted = plant_image(arv_api_bob, project, image.image_id, evil.getvalue())
    arv_api_bob.links().create(body={
        "link_class": "docker_image_repo+tag", "name": unique + ":1", "owner_uuid": project,
        "head_uuid": planted["uuid"], "properties": stamp(planted["portable_data_hash"]),
    }).execute()
    proc = alice("--no-progress", "--project-uuid", project, archive(tmp_path, image))
    uuid = uploaded(proc)
    assert uuid != planted["uuid"]
    assert "not reusing collection {}".format(planted["uuid"]) in proc.stderr
    assert check_end_state(arv_api_admin, arv_api, project, image.image_id, unique + ":1",
                           planted=[planted["uuid"]]) == uuid
    assert arv_api_admin.links().list(filters=[
        ["head_uuid", "=", planted["uuid"]], ["link_class", "=", "docker_image_checked"]]
    ).execute()["items"] == []


def test_a_colleagues_copy_is_read_back_once_then_trusted_until_it_changes(
        alice, bob, arv_api, arv_api_bob, arv_api_admin, arv_cluster, project, unique,
        tmp_path):
    """The bench's "copy written by a colleague" case, as a test."""
    image = lab_image(unique, own_base=True)
    path = archive(tmp_path, image)
    theirs = uploaded(bob("--no-progress", "--project-uuid", project, path))
    listing = alice().stdout
    proc = alice("--no-progress", "--project-uuid", project, path)
    assert uploaded(proc) == theirs, proc.stderr
    assert f"checking {theirs} before reusing it" in proc.stderr
    checked = links_written_by(arv_api_admin, arv_cluster.user_uuid("alice"), head_uuid=theirs)
    assert [(l["link_class"], l["head_uuid"], l["owner_uuid"]) for l in checked] == [
        ("docker_image_checked", theirs, arv_cluster.user_uuid("alice"))]
    assert alice().stdout == listing
    # Her record vouches for it now: no read.
    proc = alice("--no-progress", "--project-uuid", project, path)
    assert uploaded(proc) == theirs and "before reusing it" not in proc.stderr
    # bob rewrites his collection: her record no longer vouches for it, the copy is
    # checked again, fails, and she gets her own.
    arv_api_bob.collections().update(uuid=theirs, body={
        "manifest_text": junk_manifest(arv_api_bob, image.image_id + ".tar", 4096)}).execute()
    proc = alice("--no-progress", "--project-uuid", project, path)
    mine = uploaded(proc)
    assert mine != theirs and f"not reusing collection {theirs}" in proc.stderr
    assert check_end_state(arv_api_admin, arv_api, project, image.image_id, unique + ":1",
                           planted=[theirs]) == mine


def test_what_an_index_plugin_says_about_writers_and_places_is_not_believed(
        alice, arv_api, arv_api_bob, arv_cluster, project, unique, tmp_path):
    """A ``keepdocker_stored_layers`` answer only names a link: the core reads the link
    (its writer, recorded hash, collection, offset and size) and the collection itself."""
    image = lab_image(unique, own_base=True)
    layer = image.layers[0]
    like = ImageLike([Layer(layer.diff_id, layer.size)])
    rule = TrustRule(WriterRule(arv_cluster.user_uuid("alice")), time.time())
    bobs = plant_layer_record(arv_api_bob, project, layer.diff_id, layer.diff_id, layer.size)
    # A record calling bob's link alice's own and checked: blocks only compared.
    claims = LayerRecord(digest=layer.diff_id, collection_uuid=bobs["head_uuid"], offset=0,
                         size=layer.size, owner_uuid=arv_cluster.user_uuid("alice"),
                         checked=True, diff_id=layer.diff_id, link_uuid=bobs["uuid"])
    found = reusable_layers([claims], like, arv_api, 0, rule)
    assert found.skip == {} and found.known_blocks
    # alice's own link, named by a record that places it in bob's junk: the core
    # takes the blocks from where her link says, in her collection.
    mine = uploaded(alice("--no-progress", "--project-uuid", project, archive(tmp_path, image)))
    (link,) = arv_api.links().list(filters=[
        ["head_uuid", "=", mine], ["link_class", "=", "docker_image_layer"],
        ["name", "=", layer.diff_id]]).execute()["items"]
    misplaced = LayerRecord(digest=layer.diff_id, collection_uuid=bobs["head_uuid"], offset=0,
                            size=layer.size, owner_uuid=project, link_uuid=link["uuid"])
    found = reusable_layers([misplaced], like, arv_api, 0, rule)
    stored = arv_api.collections().get(uuid=mine).execute()["manifest_text"]
    assert [block_key(l) for l in found.skip[layer.diff_id].locators] == [
        block_key(l) for l in locators_for_range(stored, link["properties"]["offset"],
                                                 layer.size)]


# -- the pending sweep ------------------------------------------------------------------

def test_a_pending_marker_bob_adds_is_no_licence_to_trash(
        alice, arv_api, arv_api_bob, arv_api_admin, project, unique, tmp_path):
    image = lab_image(unique)
    path = archive(tmp_path, image)
    first = uploaded(alice("--no-progress", "--project-uuid", project, path))
    properties = arv_api_bob.collections().get(uuid=first).execute()["properties"]
    arv_api_bob.collections().update(uuid=first, body={
        "properties": dict(properties, **{PENDING_PROPERTY: image.image_id})}).execute()
    # bob's own collection, marked, due for the trash, holding <id>.tar.
    decoy = arv_api_bob.collections().create(body={
        "owner_uuid": project, "name": "decoy " + unique,
        "manifest_text": junk_manifest(arv_api_bob, image.image_id + ".tar", 1000),
        "trash_at": (datetime.datetime.now(datetime.timezone.utc)
                     + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "properties": {PENDING_PROPERTY: image.image_id}}).execute()
    proc = alice("--no-progress", "--force", "--project-uuid", project, path)
    second = uploaded(proc)
    for uuid in (first, decoy["uuid"]):
        assert f"leaving collection {uuid} alone" in proc.stderr
    assert "last modified by {}".format(arv_api_bob.users().current().execute()["uuid"]) \
        in proc.stderr
    record = arv_api_admin.collections().get(uuid=first).execute()
    assert record["is_trashed"] is False and record["trash_at"] is None
    assert {l["link_class"] for l in arv_api_admin.links().list(
        filters=[["head_uuid", "=", first]]).execute()["items"]} >= {
        "docker_image_hash", "docker_image_repo+tag"}
    assert arv_api_admin.collections().get(uuid=decoy["uuid"]).execute()["is_trashed"] is False
    assert second not in (first, decoy["uuid"])


def test_bob_rewriting_the_pending_collection_mid_upload_fails_the_run_cleanly(
        user_env, arv_api, arv_api_bob, arv_api_admin, arv_cluster, project, unique,
        tmp_path):
    image = lab_image(unique)
    args = ["--no-progress", "--project-uuid", project, archive(tmp_path, image)]
    arv_cluster.inject_fault("api:POST:links", 1, stall=6.0)
    run = subprocess.Popen([sys.executable, "-m", "arv_keepdocker_plugin", *args],
                           env=user_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        deadline = time.monotonic() + 120
        while "api:POST:links" in arv_cluster.pending_faults():
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the upload never reached its links"
            time.sleep(0.05)
        pending = arv_api_admin.collections().list(filters=[
            ["owner_uuid", "=", project], ["properties." + PENDING_PROPERTY, "=", image.image_id]],
            select=["uuid"]).execute()["items"]
        assert len(pending) == 1
        arv_api_bob.collections().update(uuid=pending[0]["uuid"], body={
            "manifest_text": junk_manifest(arv_api_bob, image.image_id + ".tar", 4096)}
        ).execute()
        out, err = run.communicate(timeout=300)
    finally:
        arv_cluster.clear_faults()
        if run.poll() is None:
            run.kill()
    proc = subprocess.CompletedProcess(run.args, run.returncode, out, err)
    line = one_line(proc)
    assert pending[0]["uuid"] in line and arv_cluster.user_uuid("bob") in line
    assert image_collections(arv_api_admin, project, image.image_id) == []
    assert arv_api_admin.links().list(filters=[["head_uuid", "=", pending[0]["uuid"]]]
                                      ).execute()["items"] == []
    again = subprocess.run([sys.executable, "-m", "arv_keepdocker_plugin", *args],
                           env=user_env, capture_output=True, text=True, timeout=600)
    assert check_end_state(arv_api_admin, arv_api, project, image.image_id,
                           unique + ":1") == uploaded(again)


# -- lock records -----------------------------------------------------------------------

def holder(**changes):
    return dict({"host": "bobs-laptop", "boot": "b0", "pidns": "pid:[4026531836]", "pid": 4242,
                 "start": "1"}, **changes)


def ahead(seconds):
    return (datetime.datetime.now(datetime.timezone.utc)
            + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


SQUATS = {
    "no trash_at": lambda: {"properties": {HOLDER_PROPERTY: holder()}},
    "trash_at a year ahead": lambda: {"trash_at": ahead(365 * 86400),
                                      "properties": {HOLDER_PROPERTY: holder()}},
    "no holder": lambda: {"trash_at": ahead(300)},
    "malformed holder": lambda: {"trash_at": ahead(300),
                                 "properties": {HOLDER_PROPERTY: holder(pid="4242")}},
}


def blocks_in_keep(arv_cluster, image):
    """Which of the image's layers have a block (the whole layer, as stored) in Keep."""
    keep = arv_cluster.dir / "keep"
    found = []
    for layer in image.layers:
        md5 = hashlib.md5(b"".join(layer.chunks())).hexdigest()
        if (keep / md5[:3] / md5).exists():
            found.append(layer.digest)
    return found


@pytest.mark.parametrize("kind", sorted(SQUATS))
def test_a_lock_bob_squats_costs_seconds_and_names_him(
        alice, arv_api, arv_api_bob, arv_api_admin, arv_cluster, project, unique, tmp_path,
        kind):
    image = ib.build_image([{"big.bin": unique.encode() * (MiB // len(unique))},
                            {"top": kind.encode() + unique.encode()}],
                           repo_tags=[unique + ":1"])
    squat = arv_api_bob.collections().create(body=dict(
        SQUATS[kind](), owner_uuid=project, name=lock_name(image.image_id))).execute()
    path = archive(tmp_path, image)
    line = one_line(alice("--no-progress", "--project-uuid", project, path))
    assert squat["uuid"] in line and arv_cluster.user_uuid("bob") in line
    assert blocks_in_keep(arv_cluster, image) == [], "blocks were uploaded before the refusal"
    assert arv_api_admin.collections().get(uuid=squat["uuid"]).execute()["is_trashed"] is False
    # Once bob removes it, the same upload stores the layer (so the check above means
    # something) and ends complete.
    arv_api_bob.collections().delete(uuid=squat["uuid"]).execute()
    uuid = uploaded(alice("--no-progress", "--project-uuid", project, path))
    assert image.layers[0].digest in blocks_in_keep(arv_cluster, image)
    assert check_end_state(arv_api_admin, arv_api, project, image.image_id,
                           unique + ":1") == uuid


def test_a_non_lease_alice_left_herself_is_removed(alice, arv_api, arv_api_admin, project,
                                                  unique, tmp_path):
    image = lab_image(unique)
    mine = arv_api.collections().create(body={
        "owner_uuid": project, "name": lock_name(image.image_id)}).execute()
    proc = alice("--no-progress", "--project-uuid", project, archive(tmp_path, image))
    uuid = uploaded(proc)
    assert "removing collection {}".format(mine["uuid"]) in proc.stderr
    assert check_end_state(arv_api_admin, arv_api, project, image.image_id,
                           unique + ":1") == uuid


def test_a_lease_held_on_another_host_is_waited_for(alice, arv_api, arv_api_bob,
                                                    arv_api_admin, project, unique, tmp_path):
    image = lab_image(unique)
    arv_api_bob.collections().create(body={
        "owner_uuid": project, "name": lock_name(image.image_id),
        "trash_at": (datetime.datetime.now(datetime.timezone.utc)
                     + datetime.timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "properties": {HOLDER_PROPERTY: holder()}}).execute()
    proc = alice("--no-progress", "--project-uuid", project, archive(tmp_path, image))
    uuid = uploaded(proc)
    assert "waiting for another upload" in proc.stderr and "bobs-laptop" in proc.stderr
    assert check_end_state(arv_api_admin, arv_api, project, image.image_id,
                           unique + ":1") == uuid


def test_a_lock_released_and_retaken_between_two_calls_is_waited_for(
        arv_api, arv_api_bob, arv_cluster, project, unique, caplog):
    """Among several runs, the holder releases the lock and a third run takes it
    between alice's refused create and her look at who holds it: she waits for the
    new holder, as for any other (this interleaving once failed a five-run upload
    with the server's 422 as its one line)."""
    name = lock_name("sha256:" + hashlib.sha256(unique.encode()).hexdigest())

    def lease(host):
        return arv_api_bob.collections().create(body={
            "owner_uuid": project, "name": name, "trash_at": ahead(60),
            "properties": {HOLDER_PROPERTY: holder(host=host)}}).execute()

    first = lease("first-holder")
    retaken = []
    release = threading.Timer(1.5, lambda: arv_api_bob.collections().delete(
        uuid=retaken[0]["uuid"]).execute())

    class Interleaved(ArvadosLock):
        def _current(self):
            if retaken:
                return super()._current()
            arv_api_bob.collections().delete(uuid=first["uuid"]).execute()
            seen = super()._current()  # released: nothing of that name
            retaken.append(lease("third-run"))
            release.start()
            return seen

    caplog.set_level("INFO", logger="arvados.keepdocker")
    lock = Interleaved(arv_api, project, name.rsplit(" ", 1)[1], 0,
                       arv_cluster.user_uuid("alice"), wait=60)
    try:
        with lock:
            held = arv_api.collections().get(uuid=lock.uuid).execute()
            assert held["properties"][HOLDER_PROPERTY]["pid"] == os.getpid()
    finally:
        release.cancel()
    assert "third-run" in caplog.text and "waiting for another upload" in caplog.text
    assert arv_api.collections().list(filters=[
        ["owner_uuid", "=", project], ["name", "=", name]]).execute()["items"] == []


# -- two containers on one host ---------------------------------------------------------

def unshare_works():
    try:
        return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_two_runs_in_separate_pid_namespaces_make_one_collection(
        base_env, arv_cluster, arv_api, arv_api_admin, project, unique, tmp_path):
    """Same host name and boot id, separate PID namespaces and HOMEs: neither may take
    the other's live lock for an ended one (both are pid 1 in their namespace)."""
    if not unshare_works():
        pytest.skip("unshare --pid --fork --mount-proc is refused here (needs root or "
                    "user namespaces)")
    image = lab_image(unique)
    path = archive(tmp_path, image)

    def start(name):
        home = tmp_path / name
        (home / ".cache").mkdir(parents=True)
        env = dict(base_env, HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
                   **arv_cluster.env("alice"))
        return subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m",
             "arv_keepdocker_plugin", "--no-progress", "--project-uuid", project, path],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # The first run holds the lock a while: its first link is stalled.
    arv_cluster.inject_fault("api:POST:links", 1, stall=12.0)
    runs = [start("container1")]
    try:
        deadline = time.monotonic() + 120
        while "api:POST:links" in arv_cluster.pending_faults():
            assert runs[0].poll() is None, runs[0].communicate()
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        lock = arv_api_admin.collections().list(filters=[
            ["owner_uuid", "=", project], ["name", "=", lock_name(image.image_id)]],
            select=["properties"]).execute()["items"]
        assert len(lock) == 1 and lock[0]["properties"][HOLDER_PROPERTY]["pid"] == 1
        runs.append(start("container2"))
        results = [run.communicate(timeout=600) for run in runs]
    finally:
        arv_cluster.clear_faults()
        for run in runs:
            if run.poll() is None:
                run.kill()
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in results]
    assert "waiting for another upload" in results[1][1]
    uuid = check_end_state(arv_api_admin, arv_api, project, image.image_id, unique + ":1")
    assert {out.strip() for out, _ in results} == {uuid}
    hash_links = arv_api_admin.links().list(filters=[
        ["owner_uuid", "=", project], ["link_class", "=", "docker_image_hash"]]
    ).execute()["items"]
    assert len(hash_links) == 1
    assert lock[0]["properties"][HOLDER_PROPERTY]["pidns"].startswith("pid:[")
