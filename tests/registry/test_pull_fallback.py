"""``arv keepdocker --pull NAME`` with no engine answering: the name's registry.

With neither ``docker`` nor ``podman`` on PATH the command resolves the name in its
registry through the ``docker://`` source (registries.conf, certs.d, auth files,
policy) and links it as typed, as arv-keepdocker 3.2.1 links ``--pull NAME``;
one line says where the image came from. Without ``--pull`` no registry is asked;
an engine that answers wins.
"""

import os
import shutil

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from .source_fixtures import links_of, one_error, uploaded

pytestmark = [pytest.mark.engines, pytest.mark.cluster]

HASH, TAG = "docker_image_hash", "docker_image_repo+tag"
FROM_REGISTRY = "no Docker engine or podman answers; taking it from its registry, docker://"


@pytest.fixture
def no_engine(source_run, tmp_path):
    """``source_run`` with a PATH holding no engine CLI at all."""
    empty = tmp_path / "no-engines"
    empty.mkdir()
    source_run.env["PATH"] = str(empty)
    return source_run


def hub_through(run, address, prefix="docker.io"):
    """registries.conf sending ``prefix`` (Docker Hub) to the loopback ``address``."""
    run.conf('[[registry]]\nprefix = "%s"\nlocation = "%s"\ninsecure = true\n'
             % (prefix, address))


def test_pull_takes_a_bare_name_from_its_registry_linked_as_typed(
        no_engine, push, registry_images, arv_api, arvados_state, unique):
    address = registry_images.plain.address
    image = ib.build_image([{"fb": unique.encode() * 40}], compression="gzip")
    push(address, "fb/%s:1" % unique, image)
    hub_through(no_engine, address)

    # NAME TAG, as typed: the link is fb/<u>:1 (3.2.1's rule), from docker.io/fb/<u>:1
    proc = no_engine("--no-progress", "--pull", "fb/%s" % unique, "1")
    uuid = uploaded(proc)
    assert links_of(arv_api, uuid).keys() == {(HASH, image.image_id),
                                              (TAG, "fb/%s:1" % unique)}
    lines = [l for l in proc.stderr.splitlines() if FROM_REGISTRY in l]
    assert len(lines) == 1 and lines[0].endswith(
        "fb/%s:1: %sdocker.io/fb/%s:1" % (unique, FROM_REGISTRY, unique)), proc.stderr
    properties = arv_api.collections().get(uuid=uuid).execute()["properties"]
    assert properties["docker-image-repo-tag"] == "fb/%s:1" % unique
    assert properties["docker-image-reference"].startswith("docker.io/fb/%s@sha256:" % unique)

    # the fully qualified name is linked so too, never as its familiar form
    qualified = "docker.io/fb/%s:1" % unique
    again = uploaded(no_engine("--no-progress", "--pull", qualified))
    assert again == uuid
    assert (TAG, qualified) in links_of(arv_api, uuid)

    # a third run writes nothing
    before = arvados_state.snapshot()
    assert uploaded(no_engine("--no-progress", "--pull", qualified)) == uuid
    assert arvados_state.snapshot() == before


def test_a_registry_port_in_the_name(no_engine, push, registry_images, arv_api, unique):
    address = registry_images.plain.address
    image = ib.build_image([{"port": unique.encode()}], compression="gzip")
    name = "%s/fbport/%s:2" % (address, unique)
    push(address, "fbport/%s:2" % unique, image)
    no_engine.insecure(address)
    uuid = uploaded(no_engine("--no-progress", "--pull", name))
    assert links_of(arv_api, uuid).keys() == {(HASH, image.image_id), (TAG, name)}


def test_without_pull_no_registry_is_asked(no_engine, registry_proxy, arvados_state, unique):
    hub_through(no_engine, registry_proxy.address)
    before = arvados_state.snapshot()
    message = one_error(no_engine("--no-progress", "fbnopull/%s:1" % unique))
    assert message == "cannot find the docker command ('docker' or 'docker.io') in PATH"
    assert registry_proxy.seen == []
    assert arvados_state.snapshot() == before


def test_a_failing_registry_is_one_line(no_engine, registry_images, arvados_state, unique):
    no_engine.insecure(registry_images.plain.address)
    before = arvados_state.snapshot()
    message = one_error(no_engine("--no-progress", "--pull",
                                  "%s/fbnone/%s:1" % (registry_images.plain.address, unique)))
    assert "fbnone/%s" % unique in message
    assert arvados_state.snapshot() == before


def test_an_engine_that_answers_wins(source_run, push, registry_images, keepdocker_podman_store,
                                     arv_api, unique, tmp_path):
    """podman holds its own image under the name: --pull stores podman's, not the registry's."""
    address = registry_images.plain.address
    name = "fbengine/%s:1" % unique
    push(address, name, ib.build_image([{"registry": unique.encode()}], compression="gzip"))
    hub_through(source_run, address)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "local.txt").write_text("built here " + unique)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY local.txt /local.txt\n")
    local_id = keepdocker_podman_store.build(str(context), name)
    only_podman = tmp_path / "only-podman"
    only_podman.mkdir()
    os.symlink(shutil.which("podman"), only_podman / "podman")
    source_run.env.update(CONTAINERS_STORAGE_CONF=keepdocker_podman_store.storage_conf,
                          PATH=str(only_podman))
    proc = source_run("--no-progress", "--pull", name)
    uuid = uploaded(proc)
    assert (HASH, local_id) in links_of(arv_api, uuid)
    assert FROM_REGISTRY not in proc.stderr
