"""Arvados' own, unmodified arv-keepdocker 3.2.1 against the local cluster.

The cluster must be faithful enough for the real tool: with a real Docker
engine and alice's environment, ``arv-keepdocker`` uploads a multi-layer image
(one ``<image id>.tar`` plus its links) and then lists it.
"""

import os
import re
import subprocess
import uuid

import pytest
from arv_keepdocker_testkit.engines import build_layered_image
from arv_keepdocker_testkit.scripts import script

UUID = re.compile(r"^[a-z0-9]{5}-4zz18-[a-z0-9]{15}$")


@pytest.fixture
def alice_docker_env(arv_env, keepdocker_docker_engine):
    """alice's environment (private HOME from ``arv_env``) with DOCKER_HOST set."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}
    env.update(arv_env)
    env["DOCKER_HOST"] = keepdocker_docker_engine.host
    return env


@pytest.fixture
def layered_image(keepdocker_docker_engine):
    """A 3-layer COPY-only image ``<unique>:v1``; its base is shared by a sibling."""
    name = "real" + uuid.uuid4().hex[:10]
    build_layered_image(keepdocker_docker_engine, name + "-base:1",
                        [{"etc/base.txt": b"base"}, {"lib/blob": bytes(range(256)) * 64}])
    image_id = build_layered_image(keepdocker_docker_engine, name + ":v1",
                                   [{"app/run.sh": b"echo " + name.encode()}],
                                   base=name + "-base:1")
    build_layered_image(keepdocker_docker_engine, name + "-sibling:1", [{"other": b"o"}],
                        base=name + "-base:1")
    yield name, image_id
    for tag in (name + ":v1", name + "-base:1", name + "-sibling:1"):
        keepdocker_docker_engine.docker("rmi", tag, check=False)


def run(env, *args):
    return subprocess.run([script("arv-keepdocker"), *args], env=env, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_real_arv_keepdocker_uploads_and_lists_a_layered_image(
        alice_docker_env, layered_image, arv_api):
    import arvados.collection

    name, image_id = layered_image
    upload = run(alice_docker_env, name, "v1")
    assert upload.returncode == 0, upload.stderr
    lines = upload.stdout.splitlines()
    assert len(lines) == 1 and UUID.match(lines[0]), upload.stdout
    collection_uuid = lines[0]

    reader = arvados.collection.CollectionReader(collection_uuid, api_client=arv_api)
    assert list(reader.keys()) == [image_id + ".tar"]

    links = arv_api.links().list(filters=[["head_uuid", "=", collection_uuid]]).execute()
    found = {(link["link_class"], link["name"]) for link in links["items"]}
    assert found == {("docker_image_hash", image_id),
                     ("docker_image_repo+tag", name + ":v1")}

    listing = run(alice_docker_env)
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines()[1:]]
    assert [name, "v1", image_id[:12], collection_uuid] in [row[:4] for row in rows]
