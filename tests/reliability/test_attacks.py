"""A hostile user of the same cluster (bob) against alice's uploads.

Sharing needs no consent: bob shares a project of his with alice, and
whatever he puts there is readable by her. Each attack "holds" when alice's
stored tar is exactly her image (read back and checked: its config digest is
the id, every layer its diff id; and loaded by a real engine where one is at
hand), or her upload is refused; never when her upload succeeds with bob's bytes.
"""

import io
import os
import tracemalloc

import pytest
from arv_keepdocker_testkit import imagebuild as ib
from arv_keepdocker_testkit.engines import build_layered_image

from arv_keepdocker_plugin import Image
from arv_keepdocker_plugin.steps.reuse import Reuser

from .world import (
    assert_potent,
    check_end_state,
    new_project,
    plant_image,
    plant_layer_record,
    share,
    tar_with,
)

MiB = 1 << 20


@pytest.fixture
def bob_project(arv_api_bob, arv_cluster):
    """A project of bob's, shared with alice."""
    project = new_project(arv_api_bob, "bob's trap")
    share(arv_api_bob, project, arv_cluster.user_uuid("alice"))
    return project


@pytest.fixture
def alice_project(arv_api):
    return new_project(arv_api, "alice's images")


def victim_image(unique, compression="none"):
    """alice's image: a well-known 2 MiB base layer and a small top layer."""
    base = {"usr/lib/base.bin": bytes(range(256)) * (8 << 10)}
    return ib.build_image([base, {"app": unique.encode()}], repo_tags=[unique + ":1"],
                          compression=compression)


def uploaded(proc):
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def plant_for_every_layer(api, project, image, by):
    for layer in image.layers:
        plant_layer_record(api, project, getattr(layer, by), layer.diff_id, layer.size)


# -- planted layer records, through each source -------------------------------------

@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_planted_layer_records_never_reach_an_archive_upload(
        keepdocker, arv_api, arv_api_bob, arv_api_admin, bob_project, alice_project, unique,
        tmp_path, layout):
    image = victim_image(unique)
    path = tmp_path / "image.tar"
    ib.write_docker_archive(str(path), [image], layout=layout)
    # bob indexes junk under both names the layers are looked up by.
    plant_for_every_layer(arv_api_bob, bob_project, image, "diff_id")
    if layout == "docker25":
        plant_for_every_layer(arv_api_bob, bob_project, image, "digest")
    assert_potent(arv_api, [(l.diff_id, l.size) for l in image.layers], bob_project)
    uploaded(keepdocker("--no-progress", "--project-uuid", alice_project,
                        f"docker-archive:{path}"))
    check_end_state(arv_api_admin, arv_api, alice_project, image.image_id, unique + ":1")


@pytest.mark.parametrize("transport", ["oci-archive", "oci"])
def test_planted_layer_records_never_reach_an_oci_upload(
        keepdocker, arv_api, arv_api_bob, arv_api_admin, bob_project, alice_project, unique,
        tmp_path, transport):
    image = victim_image(unique, compression="gzip")
    path = tmp_path / "layout"
    ib.write_oci_layout(str(path), [(unique + ":1", image)], as_tar=transport == "oci-archive")
    plant_for_every_layer(arv_api_bob, bob_project, image, "digest")
    plant_for_every_layer(arv_api_bob, bob_project, image, "diff_id")
    assert_potent(arv_api, [(l.digest, l.size) for l in image.layers], bob_project)
    uploaded(keepdocker("--no-progress", "--project-uuid", alice_project,
                        f"{transport}:{path}:{unique}:1"))
    check_end_state(arv_api_admin, arv_api, alice_project, image.image_id, unique + ":1")


def test_a_planted_record_newer_than_alices_own_copy_loses(
        keepdocker, arv_api, arv_api_bob, arv_api_admin, bob_project, alice_project, unique,
        tmp_path):
    """alice's own checked copy stands in for her new version; bob's newer junk never."""
    v1 = victim_image(unique)
    v2 = ib.build_image([{"usr/lib/base.bin": bytes(range(256)) * (8 << 10)}, {"app": b"v2"}],
                        repo_tags=[unique + ":2"])
    assert v2.layers[0].diff_id == v1.layers[0].diff_id
    for version, image in (("1", v1), ("2", v2)):
        path = tmp_path / f"v{version}.tar"
        ib.write_docker_archive(str(path), [image])
        if version == "2":
            plant_for_every_layer(arv_api_bob, bob_project, v1, "diff_id")
        proc = keepdocker("--batch-progress", "--project-uuid", alice_project,
                          f"docker-archive:{path}")
        uploaded(proc)
    check_end_state(arv_api_admin, arv_api, alice_project, v2.image_id, unique + ":2")
    # The base layer came from alice's own copy, unread: the fast path held.
    last = [l for l in proc.stderr.splitlines() if " read " in l][-1]
    read = int(last.split(" read ")[0].split()[-1])
    assert read < v1.layers[0].size


def test_planted_layer_records_never_reach_an_engine_upload(
        keepdocker, arv_api, arv_api_bob, arv_api_admin, bob_project, alice_project, unique,
        keepdocker_docker_engine):
    tag = unique + ":e1"
    image_id = build_layered_image(keepdocker_docker_engine, tag, [
        {"base.bin": bytes(range(256)) * 4096}, {"top": unique.encode()}])
    diff_ids = keepdocker_docker_engine.docker(
        "image", "inspect", "--format", "{{json .RootFS.Layers}}", image_id,
        text=True).stdout
    import json
    for diff_id in json.loads(diff_ids):
        plant_layer_record(arv_api_bob, bob_project, diff_id, diff_id, 1 << 20)
    uuid = uploaded(keepdocker("--no-progress", "--project-uuid", alice_project, tag))
    assert check_end_state(arv_api_admin, arv_api, alice_project, image_id, tag) == uuid
    from e2e.conftest import load_from_keep
    keepdocker_docker_engine.docker("rmi", "-f", image_id)
    assert load_from_keep(arv_api, uuid, keepdocker_docker_engine) == image_id


def test_planted_layer_records_never_reach_a_podman_upload(
        keepdocker, arv_api, arv_api_bob, arv_api_admin, bob_project, alice_project, unique,
        keepdocker_podman_store):
    tag = unique + ":p1"
    image_id = build_layered_image(keepdocker_podman_store, tag, [
        {"base.bin": bytes(range(256)) * 4096}, {"top": unique.encode()}])
    info = keepdocker_podman_store.podman("image", "inspect", image_id, text=True).stdout
    import json
    for diff_id in json.loads(info)[0]["RootFS"]["Layers"]:
        plant_layer_record(arv_api_bob, bob_project, diff_id, diff_id, 1 << 20)
    uploaded(keepdocker("--no-progress", "--project-uuid", alice_project,
                        "containers-storage:" + tag,
                        "--podman-root", keepdocker_podman_store.root,
                        "--podman-runroot", keepdocker_podman_store.runroot,
                        "--podman-storage-driver", keepdocker_podman_store.driver))
    check_end_state(arv_api_admin, arv_api, alice_project,
                    image_id if image_id.startswith("sha256:") else "sha256:" + image_id, tag)


# -- planted images -------------------------------------------------------------------

def test_a_planted_hash_link_over_junk_is_checked_and_skipped(
        keepdocker, arv_api, arv_api_bob, arv_api_admin, bob_project, alice_project, unique,
        tmp_path):
    image = victim_image(unique)
    other = ib.build_image([{"evil": b"bob was here"}])
    evil = io.BytesIO()
    ib.write_docker_archive(evil, [other])
    # bob's collection claims alice's image id, holds his own image.
    planted = plant_image(arv_api_bob, bob_project, image.image_id, evil.getvalue())
    path = tmp_path / "image.tar"
    ib.write_docker_archive(str(path), [image])
    proc = keepdocker("--no-progress", "--project-uuid", alice_project,
                      f"docker-archive:{path}")
    uuid = uploaded(proc)
    assert uuid != planted["uuid"]
    assert "not reusing collection {}".format(planted["uuid"]) in proc.stderr
    check_end_state(arv_api_admin, arv_api, alice_project, image.image_id, unique + ":1")


def test_a_planted_name_without_the_image_locally_is_checked_too(
        user_env, arv_api, arv_api_bob, arv_api_admin, bob_project, alice_project, unique):
    """No engine has the image: 3.2.1 takes the newest copy in Arvados; we check it."""
    from e2e.conftest import Runner
    image = victim_image(unique)
    planted = plant_image(arv_api_bob, bob_project, image.image_id, tar_with({"x": b"junk"}))
    arv_api_bob.links().create(body={
        "link_class": "docker_image_repo+tag", "name": unique + ":1",
        "head_uuid": planted["uuid"], "owner_uuid": bob_project,
        "properties": {"image_timestamp": "2099-01-01T00:00:00Z"}}).execute()
    empty = os.path.join(user_env["HOME"], "no-engines")
    os.mkdir(empty)
    proc = Runner(dict(user_env, PATH=empty))("--no-progress", "--project-uuid",
                                              alice_project, unique + ":1")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "not reusing collection {}".format(planted["uuid"]) in proc.stderr
    assert [c for c in arv_api_admin.collections().list(
        filters=[["owner_uuid", "=", alice_project]]).execute()["items"]] == []


def test_a_planted_claim_to_alices_manifest_digest_is_checked(
        arv_api, arv_api_bob, arv_api_admin, arv_cluster, bob_project, alice_project,
        unique, record_property):
    """Docker's containerd store names images by manifest digest: bob claims alice's."""
    image = victim_image(unique)
    manifest_digest = "sha256:" + ib.sha256_hex(image.manifest_bytes)
    other = ib.build_image([{"evil": b"bob"}])
    evil = io.BytesIO()
    ib.write_docker_archive(evil, [other], layout="docker25")
    plant_image(arv_api_bob, bob_project, other.image_id, evil.getvalue(),
                properties={"image_manifest_digest": manifest_digest})
    # What the docker-daemon source hands over for a containerd-store image.
    engine_image = Image(image_id=manifest_digest, source="docker-daemon",
                         repo_tag=unique + ":1", provisional_id=True)
    locks = []

    def lock(image_id):
        locks.append(image_id)
        raise AssertionError("nothing may be written")

    import argparse

    from arv_keepdocker_plugin.plugins import get_plugin_manager
    from arv_keepdocker_plugin.steps.context import RunContext
    from arv_keepdocker_plugin.steps.record import Recorder
    options = argparse.Namespace(retries=0, project_uuid=alice_project)
    ctx = RunContext.build(arv_api, get_plugin_manager(False), options)
    assert ctx.writer_rule.user_uuid == arv_cluster.user_uuid("alice")
    reuser = Reuser(ctx, Recorder(ctx), lock)
    tracemalloc.start()
    try:
        assert reuser.reuse(engine_image, unique + ":1", lambda image: "x") is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert locks == []
    record_property("peak_traced_mib", round(peak / MiB, 1))  # in-process


def corrupt_archive(image, path):
    """``image`` as a docker-archive at ``path``, one bit of its first layer flipped."""
    data = io.BytesIO()
    ib.write_docker_archive(data, [image])
    raw = bytearray(data.getvalue())
    with __import__("tarfile").open(fileobj=io.BytesIO(bytes(raw))) as tar:
        member = next(m for m in tar if m.name.endswith("layer.tar"))
    raw[member.offset_data + 1000] ^= 0x40
    path.write_bytes(bytes(raw))
    return f"docker-archive:{path}"


def test_a_corrupt_layer_tar_is_refused_and_indexes_nothing(
        keepdocker, arv_api, arv_api_admin, alice_project, unique, tmp_path):
    """A layer no record of alice's covers is read, and its corruption refused. A layer
    her own records cover is not read at all: a corrupt local copy of it cannot reach
    Keep, and the image stored is exactly hers."""
    fresh = ib.build_image([{"usr/lib/base.bin": unique.encode() * (MiB // len(unique))},
                            {"app": b"fresh"}], repo_tags=[unique + ":0"])
    proc = keepdocker("--no-progress", "--project-uuid", alice_project,
                      corrupt_archive(fresh, tmp_path / "corrupt.tar"))
    assert proc.returncode == 1 and proc.stdout == ""
    assert "does not match its diff id" in proc.stderr
    assert len([l for l in proc.stderr.splitlines() if l.strip()]) == 1
    assert arv_api_admin.links().list(filters=[["owner_uuid", "=", alice_project]]
                                      ).execute()["items"] == []
    image = victim_image(unique)
    path = tmp_path / "clean.tar"
    ib.write_docker_archive(str(path), [image])
    uploaded(keepdocker("--no-progress", "--project-uuid", alice_project,
                        f"docker-archive:{path}"))
    v2 = ib.build_image([{"usr/lib/base.bin": bytes(range(256)) * (8 << 10)},
                         {"app": b"v2 " + unique.encode()}], repo_tags=[unique + ":2"])
    uuid = uploaded(keepdocker("--no-progress", "--project-uuid", alice_project,
                               corrupt_archive(v2, tmp_path / "v2.tar")))
    assert check_end_state(arv_api_admin, arv_api, alice_project, v2.image_id,
                           unique + ":2") == uuid
