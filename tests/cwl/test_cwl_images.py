"""arvados-cwl-runner 3.2.1's own ``arv_docker_get_image`` with the launcher's set-up.

The function takes ``(api_client, dockerRequirement, pull_image,
runtimeContext)``; every a-c-r path that needs an image (submit, workflow
registration, container requests) goes through it. It is called here exactly
as a-c-r calls it, against the local cluster and real engines, with the
session's podman store and Docker engine and no other engine on ``PATH``.
"""

import json
import os
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from .conftest import run, runtime_context

pytestmark = [pytest.mark.engines, pytest.mark.cluster]


def get_image(api, requirement, pull_image=True, **settings):
    """a-c-r's own lookup-or-upload; returns the image collection's PDH."""
    from arvados_cwl.arvdocker import arv_docker_get_image

    return arv_docker_get_image(api, dict(requirement), pull_image, runtime_context(**settings))


def build(engine, tmp_path, tag, content):
    """Build ``tag`` (one file) with ``engine`` (a podman store or Docker engine); its id."""
    context = Path(tempfile.mkdtemp(prefix="ctx-", dir=str(tmp_path)))
    (context / "content.txt").write_text(content)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY content.txt /content.txt\n")
    return engine.build(str(context), tag)


def added(before, after):
    """``(collections, links)`` that appeared between two snapshots."""
    return after[0] - before[0], after[1] - before[1]


def assert_uploaded(admin, before, after, pdh, image_id, repo_tag, owner=None):
    """Exactly one image collection was added, holding ``<image_id>.tar``, with 3.2.1's links.

    ``pdh`` is what a-c-r returned for it (``None``: a-c-r returned nothing).
    """
    collections, links = added(before, after)
    assert len(collections) == 1, collections
    import arvados.collection

    record = admin.collections().get(uuid=collections.pop()).execute()
    if pdh is not None:
        assert record["portable_data_hash"] == pdh
    files = list(arvados.collection.CollectionReader(record["uuid"], api_client=admin).keys())
    assert files == [f"{image_id}.tar"]
    if owner is not None:
        assert record["owner_uuid"] == owner
    names = {(l["link_class"], l["name"]) for l in admin.links().list(
        filters=[["uuid", "in", sorted(links)]], limit=1000).execute()["items"]
        if l["head_uuid"] == record["uuid"]}
    assert ("docker_image_hash", image_id) in names
    assert ("docker_image_repo+tag", repo_tag) in names
    return record


# -- an image only in podman's store -------------------------------------------

@pytest.mark.parametrize("engines", ["only_podman", "podman_and_dead_docker"])
def test_podman_image_is_uploaded_then_found(engines, request, launcher, arv_env, arv_api,
                                             arv_api_admin, snapshot, unique, tmp_path):
    store = request.getfixturevalue(engines)
    tag = f"cwl/{unique}:1"
    image_id = build(store, tmp_path, tag, unique)
    requirement = {"class": "DockerRequirement", "dockerPull": tag}

    before = snapshot()
    pdh = get_image(arv_api, requirement)  # pull_image=True, as a submit does
    assert_uploaded(arv_api_admin, before, snapshot(), pdh, image_id, tag)

    before = snapshot()
    assert get_image(arv_api, requirement) == pdh
    assert get_image(arv_api, requirement, pull_image=False) == pdh
    assert snapshot() == before, "finding a stored image wrote to Arvados"


def test_docker_engine_image_is_uploaded(launcher, keepdocker_docker_engine, engine_path,
                                         monkeypatch, arv_env, arv_api, arv_api_admin, snapshot,
                                         unique, tmp_path):
    monkeypatch.setenv("PATH", engine_path("docker"))
    monkeypatch.setenv("DOCKER_HOST", keepdocker_docker_engine.host)
    tag = f"cwl/{unique}:d"
    image_id = build(keepdocker_docker_engine, tmp_path, tag, unique)

    before = snapshot()
    pdh = get_image(arv_api, {"dockerPull": tag})
    assert_uploaded(arv_api_admin, before, snapshot(), pdh, image_id, tag)
    before = snapshot()
    assert get_image(arv_api, {"dockerImageId": tag}) == pdh
    assert snapshot() == before


# -- an image nowhere ----------------------------------------------------------

def test_absent_image_is_a_c_rs_own_error(launcher, only_podman, arv_env, arv_api, snapshot,
                                          unique, caplog):
    from cwltool.errors import WorkflowException

    tag = f"cwl/{unique}-absent:1"
    before = snapshot()
    with pytest.raises(WorkflowException, match=f"Docker image '{tag}' not available"):
        get_image(arv_api, {"dockerPull": tag}, pull_image=False)
    assert snapshot() == before
    # Our sources answered (podman's store), not cwltool's `docker inspect`.
    assert f"image {tag} not found locally: no matching image found" in caplog.text


def test_failed_pull_is_a_c_rs_own_error(launcher, only_podman, arv_env, arv_api, snapshot,
                                         unique, caplog):
    """pull_image with an unreachable registry: a-c-r's message, nothing written."""
    from cwltool.errors import WorkflowException

    reference = f"127.0.0.1:1/cwl/{unique}:1"  # a closed loopback port
    before = snapshot()
    with pytest.raises(WorkflowException, match="not available"):
        get_image(arv_api, {"dockerPull": reference}, pull_image=True)
    assert snapshot() == before
    assert f"image {reference} pull failed: podman pull" in caplog.text


# -- an image already stored ---------------------------------------------------

@pytest.fixture
def no_engines(engine_path, monkeypatch):
    """No engine CLI on PATH at all: only Arvados can answer."""
    def enter():
        monkeypatch.setenv("PATH", engine_path())
        monkeypatch.delenv("DOCKER_HOST", raising=False)
    return enter


def test_stored_image_is_found_with_no_engine(launcher, only_podman, no_engines, arv_env,
                                              arv_api, arv_project, snapshot, unique, tmp_path):
    """By dockerPull, by repo:tag dockerImageId, and inside a project (project_uuid)."""
    tag = f"cwl/{unique}:s"
    image_id = build(only_podman, tmp_path, tag, unique)
    project = arv_project["uuid"]
    home_pdh = get_image(arv_api, {"dockerPull": tag})
    project_pdh = get_image(arv_api, {"dockerPull": tag}, project_uuid=project, copy_deps=True)
    only_podman.podman("rmi", "-f", image_id)
    no_engines()

    before = snapshot()
    assert get_image(arv_api, {"dockerPull": tag}) == home_pdh
    assert get_image(arv_api, {"dockerImageId": tag}) == home_pdh
    assert get_image(arv_api, {"dockerImageId": tag}, pull_image=False) == home_pdh
    assert get_image(arv_api, {"dockerPull": tag}, project_uuid=project,
                     copy_deps=True) == project_pdh
    assert snapshot() == before, "finding stored images wrote to Arvados"


def test_stored_image_is_copied_into_a_project(launcher, only_podman, no_engines, arv_env,
                                               arv_api, arv_api_admin, arv_project, snapshot,
                                               unique, tmp_path):
    """copy_deps: a-c-r asks keepdocker (ours) to copy the Arvados copy; no engine needed."""
    tag = f"cwl/{unique}:c"
    image_id = build(only_podman, tmp_path, tag, unique)
    pdh = get_image(arv_api, {"dockerPull": tag})
    only_podman.podman("rmi", "-f", image_id)
    no_engines()
    project = arv_project["uuid"]

    before = snapshot()
    copied = get_image(arv_api, {"dockerPull": tag}, project_uuid=project, copy_deps=True)
    assert copied == pdh
    assert_uploaded(arv_api_admin, before, snapshot(), pdh, image_id, tag, owner=project)
    before = snapshot()
    assert get_image(arv_api, {"dockerPull": tag}, project_uuid=project, copy_deps=True) == pdh
    assert snapshot() == before


def test_match_local_image(launcher, only_podman, arv_env, arv_api, arv_api_admin, snapshot,
                           unique, tmp_path):
    """match_local_docker (--create-workflow turns it on) asks podman, not ``docker images``."""
    tag = f"cwl/{unique}:m"
    first_id = build(only_podman, tmp_path, tag, unique + "-first")
    first = get_image(arv_api, {"dockerPull": tag})

    before = snapshot()
    assert get_image(arv_api, {"dockerPull": tag}, match_local_docker=True) == first
    assert snapshot() == before

    second_id = build(only_podman, tmp_path, tag, unique + "-second")  # the tag moves
    assert second_id != first_id
    before = snapshot()
    second = get_image(arv_api, {"dockerPull": tag}, match_local_docker=True)
    assert second != first
    assert_uploaded(arv_api_admin, before, snapshot(), second, second_id, tag)


# -- what a-c-r 3.2.1 gets wrong, and the launcher reads right ---------------

def test_sha256_image_id_finds_that_image(launcher, only_podman, arv_env, arv_api, snapshot,
                                          unique, tmp_path, caplog):
    """``dockerImageId: sha256:<hex>`` is that image, older or newer, or one line naming it.

    a-c-r 3.2.1 splits it into name ``sha256`` and tag ``<hex>``, which lists
    every image and takes the newest, whatever the hex
    (docs/arvados-cwl-runner.md); the launcher looks the id up.
    """
    from cwltool.errors import WorkflowException

    older_id = build(only_podman, tmp_path, f"cwl/{unique}:old", unique + "-old")
    older = get_image(arv_api, {"dockerPull": f"cwl/{unique}:old"})
    newer_id = build(only_podman, tmp_path, f"cwl/{unique}:new", unique + "-new")
    newer = get_image(arv_api, {"dockerPull": f"cwl/{unique}:new"})
    assert newer != older

    before = snapshot()
    assert get_image(arv_api, {"dockerImageId": older_id}, pull_image=False) == older
    assert get_image(arv_api, {"dockerImageId": newer_id}, pull_image=False) == newer
    assert get_image(arv_api, {"dockerImageId": older_id[:20]}, pull_image=False) == older
    assert snapshot() == before

    absent = "sha256:" + "0" * 64
    with pytest.raises(WorkflowException, match=f"Docker image '{absent}' not available"):
        get_image(arv_api, {"dockerImageId": absent}, pull_image=True)
    assert snapshot() == before


def test_sha256_image_id_only_in_the_engine_is_stored_by_id(launcher, only_podman, arv_env,
                                                            arv_api, arv_api_admin, snapshot,
                                                            unique, tmp_path):
    image_id = build(only_podman, tmp_path, f"cwl/{unique}:id", unique + "-id")
    before = snapshot()
    pdh = get_image(arv_api, {"dockerImageId": image_id}, pull_image=False)
    collections, links = added(before, snapshot())
    (uuid,) = collections
    record = arv_api_admin.collections().get(uuid=uuid).execute()
    assert record["portable_data_hash"] == pdh
    names = {(l["link_class"], l["name"]) for l in arv_api_admin.links().list(
        filters=[["head_uuid", "=", uuid], ["link_class", "!=", "docker_image_layer"]]
    ).execute()["items"]}
    assert names == {("docker_image_hash", image_id)}  # by id: no repo+tag link (3.2.1's rule)


def test_registry_port_name_is_one_name(launcher, only_podman, arv_env, arv_api, arv_api_admin,
                                        snapshot, unique, tmp_path, caplog):
    """``h:5000/x:1`` is name ``h:5000/x``, tag ``1``: looked up, stored and linked so.

    a-c-r 3.2.1 splits it at each ``:`` into ``h``, ``5000/x`` and the upload
    failed ("keepdocker exited with code 1").
    """
    reference = f"localhost:5000/cwl/{unique}:1"
    image_id = build(only_podman, tmp_path, reference, unique)
    before = snapshot()
    pdh = get_image(arv_api, {"dockerPull": reference})
    assert_uploaded(arv_api_admin, before, snapshot(), pdh, image_id, reference)
    assert f"Uploading Docker image {reference}" in caplog.text

    before = snapshot()
    assert get_image(arv_api, {"dockerPull": reference}) == pdh
    assert get_image(arv_api, {"dockerImageId": reference}, pull_image=False) == pdh
    assert snapshot() == before


# -- without the launcher ------------------------------------------------------

WITHOUT_LAUNCHER = textwrap.dedent("""
    import json, sys
    import arvados
    import arv_keepdocker_plugin, arv_keepdocker_plugin.compat, arv_keepdocker_plugin.cwl_runner
    from arvados_cwl.arvdocker import arv_docker_get_image
    from arvados_cwl.context import ArvRuntimeContext
    try:
        arv_docker_get_image(arvados.api("v1"), {"dockerPull": sys.argv[1]}, True,
                             ArvRuntimeContext({}))
    except Exception as error:
        print(json.dumps([type(error).__name__, str(error)]))
    else:
        print(json.dumps(["stored", ""]))
""")


@pytest.mark.parametrize("engines", ["only_podman", "podman_and_dead_docker"])
def test_without_the_launcher_arvados_own_keepdocker_runs(engines, request, arv_cluster,
                                                          snapshot, unique, tmp_path):
    """No silent patch: importing this package leaves a-c-r on Arvados' keepdocker and docker."""
    store = request.getfixturevalue(engines)
    tag = f"cwl/{unique}:n"
    build(store, tmp_path, tag, unique)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARVADOS_")}
    env.update(arv_cluster.env("alice"), HOME=str(tmp_path))

    before = snapshot()
    result = run([sys.executable, "-c", WITHOUT_LAUNCHER, tag], env=env)
    assert result.returncode == 0, result.stderr
    kind, message = json.loads(result.stdout)
    if engines == "only_podman":
        # cwltool's `docker pull` cannot start; a-c-r wraps the OSError.
        assert kind == "WorkflowException"
        assert "failed to execute 'docker'" in message
    else:
        # `docker pull` runs and fails; a-c-r 3.2.1 does not catch that
        # CalledProcessError (only its SourceLine wrapper retypes it).
        assert kind == "WorkflowException"
        assert "'docker', 'pull'" in message and "returned non-zero exit status" in message
    assert snapshot() == before
