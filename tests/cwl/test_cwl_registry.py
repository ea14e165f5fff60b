"""arvados-cwl-runner 3.2.1's image step on a machine with no engine: the registry.

a-c-r's own ``arv_docker_get_image`` through the launcher, with no ``docker`` or
``podman`` on PATH and no ``DOCKER_HOST``: each ``dockerPull`` is resolved in its
registry (loopback ``docker-registry`` servers: plain HTTP marked insecure in
registries.conf, and HTTPS with htpasswd, its CA in certs.d and its credentials
in ``REGISTRY_AUTH_FILE``), stored from there under the name a-c-r looks up, and
found again with no registry traffic. The proxy in front of the plain registry
sees every request.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from .conftest import ORIGINAL_PATH, run, runtime_context

pytestmark = [pytest.mark.engines, pytest.mark.cluster]

HASH, TAG = "docker_image_hash", "docker_image_repo+tag"
FROM_REGISTRY = "no Docker engine or podman answers; taking it from its registry, docker://"


def get_image(api, requirement, pull_image=True, **settings):
    from arvados_cwl.arvdocker import arv_docker_get_image

    return arv_docker_get_image(api, dict(requirement), pull_image, runtime_context(**settings))


def image(unique, content, created=ib.DEFAULT_CREATED):
    return ib.build_image([{"content.txt": (unique + content).encode() * 20}],
                          compression="gzip", created=created)


def stored(admin, before, after):
    """The one collection added, and ``{(link_class, name)}`` of its image links."""
    collections = after[0] - before[0]
    assert len(collections) == 1, collections
    (uuid,) = collections
    record = admin.collections().get(uuid=uuid).execute()
    links = {(l["link_class"], l["name"]) for l in admin.links().list(
        filters=[["head_uuid", "=", uuid], ["link_class", "!=", "docker_image_layer"]],
        limit=100).execute()["items"]}
    return record, links


def requests_seen(registries):
    with registries.proxy.lock:
        return len(registries.proxy.seen)


def blob_gets(registries, since):
    with registries.proxy.lock:
        return [r["path"] for r in registries.proxy.seen[since:]
                if r["method"] == "GET" and "/blobs/" in str(r["path"])]


# -- dockerPull from a registry, no engine --------------------------------------

def test_plain_registry_with_a_port_is_stored_then_found_with_no_traffic(
        launcher, no_engine_machine, cwl_registries, arv_env, arv_api, arv_api_admin,
        snapshot, unique, caplog):
    address = cwl_registries.proxy.address
    built = image(unique, "plain")
    cwl_registries.push(address, "cwlplain/%s:1" % unique, built)
    reference = "%s/cwlplain/%s:1" % (address, unique)

    before, seen = snapshot(), requests_seen(cwl_registries)
    pdh = get_image(arv_api, {"dockerPull": reference})
    record, links = stored(arv_api_admin, before, snapshot())
    assert record["portable_data_hash"] == pdh
    assert links == {(HASH, built.image_id), (TAG, reference)}
    # each layer fetched once: the check's resolution is what the upload stored
    assert len(blob_gets(cwl_registries, seen)) == len(built.layers) + 1  # and the config
    lines = [r.getMessage() for r in caplog.records if FROM_REGISTRY in r.getMessage()]
    assert lines == ["%s: %s%s" % (reference, FROM_REGISTRY, reference)]

    before, seen = snapshot(), requests_seen(cwl_registries)
    assert get_image(arv_api, {"dockerPull": reference}) == pdh
    assert get_image(arv_api, {"dockerImageId": reference}, pull_image=False) == pdh
    assert snapshot() == before
    assert requests_seen(cwl_registries) == seen, "a stored tag reached the registry"


def test_tls_registry_with_htpasswd_and_the_auth_file(
        launcher, no_engine_machine, cwl_registries, arv_env, arv_api, arv_api_admin,
        snapshot, unique):
    address = cwl_registries.secure.address
    built = image(unique, "secure")
    cwl_registries.push(address, "cwlsecure/%s:1" % unique, built)
    reference = "%s/cwlsecure/%s:1" % (address, unique)

    before = snapshot()
    pdh = get_image(arv_api, {"dockerPull": reference})
    record, links = stored(arv_api_admin, before, snapshot())
    assert record["portable_data_hash"] == pdh
    assert links == {(HASH, built.image_id), (TAG, reference)}

    # found again without the registry: blocked, any request to it would fail
    no_engine_machine.usual_conf(blocked=[address])
    before = snapshot()
    assert get_image(arv_api, {"dockerPull": reference}) == pdh
    assert snapshot() == before


def test_wrong_credentials_are_a_c_rs_error_and_one_line(
        launcher, no_engine_machine, cwl_registries, arv_env, arv_api, snapshot, unique,
        caplog, tmp_path):
    from cwltool.errors import WorkflowException

    address = cwl_registries.secure.address
    cwl_registries.push(address, "cwlsecure/%s:2" % unique, image(unique, "denied"))
    auth = tmp_path / "wrong-auth.json"
    auth.write_text(json.dumps({"auths": {address: {"auth": "Y2Fyb2w6bm9wZQ=="}}}))  # carol:nope
    no_engine_machine.monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    reference = "%s/cwlsecure/%s:2" % (address, unique)
    before = snapshot()
    with pytest.raises(WorkflowException, match="Docker image '%s' not available" % reference):
        get_image(arv_api, {"dockerPull": reference})
    assert snapshot() == before
    failed = [r.getMessage() for r in caplog.records if "pull failed" in r.getMessage()]
    assert len(failed) == 1 and "\n" not in failed[0], failed
    assert cwl_registries.password not in caplog.text


@pytest.mark.parametrize("spelling", ["cwlhub/{u}:1", "docker.io/cwlhub/{u}:1"])
def test_docker_hub_names_are_linked_as_a_c_r_looks_them_up(
        spelling, launcher, no_engine_machine, cwl_registries, arv_env, arv_api,
        arv_api_admin, snapshot, unique):
    """No port, so a-c-r's own lookup runs; the link is the name as written, never
    its familiar form (``docker.io/cwlhub/x:1`` is not linked as ``cwlhub/x:1``)."""
    built = image(unique, spelling)
    cwl_registries.push(cwl_registries.proxy.address, "cwlhub/%s:1" % unique, built)
    reference = spelling.format(u=unique)
    before = snapshot()
    pdh = get_image(arv_api, {"dockerPull": reference})
    record, links = stored(arv_api_admin, before, snapshot())
    assert links == {(HASH, built.image_id), (TAG, reference)}
    before = snapshot()
    assert get_image(arv_api, {"dockerPull": reference}) == pdh
    assert snapshot() == before


def test_a_digest_reference(launcher, no_engine_machine, cwl_registries, arv_env, arv_api,
                            arv_api_admin, snapshot, unique):
    address = cwl_registries.proxy.address
    built = image(unique, "digest")
    digest = cwl_registries.push(address, "cwldigest/%s:1" % unique, built)
    reference = "%s/cwldigest/%s@%s" % (address, unique, digest)
    before = snapshot()
    pdh = get_image(arv_api, {"dockerPull": reference})
    record, links = stored(arv_api_admin, before, snapshot())
    assert links == {(HASH, built.image_id)}  # by digest: no repo+tag link
    hash_link = arv_api_admin.links().list(filters=[
        ["head_uuid", "=", record["uuid"]], ["link_class", "=", HASH]]).execute()["items"][0]
    assert hash_link["properties"]["image_manifest_digest"] == digest

    before, seen = snapshot(), requests_seen(cwl_registries)
    assert get_image(arv_api, {"dockerPull": reference}) == pdh
    assert snapshot() == before and requests_seen(cwl_registries) == seen


def test_an_older_image_by_id_when_a_newer_exists(launcher, no_engine_machine, cwl_registries,
                                                  arv_env, arv_api, snapshot, unique):
    address = cwl_registries.proxy.address
    old = image(unique, "old", created="2021-01-01T00:00:00Z")
    new = image(unique, "new", created="2024-01-01T00:00:00Z")
    cwl_registries.push(address, "cwlid/%s:old" % unique, old)
    cwl_registries.push(address, "cwlid/%s:new" % unique, new)
    older = get_image(arv_api, {"dockerPull": "%s/cwlid/%s:old" % (address, unique)})
    newer = get_image(arv_api, {"dockerPull": "%s/cwlid/%s:new" % (address, unique)})
    assert older != newer
    before = snapshot()
    assert get_image(arv_api, {"dockerImageId": old.image_id}, pull_image=False) == older
    assert get_image(arv_api, {"dockerImageId": new.image_id}, pull_image=False) == newer
    assert snapshot() == before


def test_a_tag_that_moved(launcher, no_engine_machine, cwl_registries, arv_env, arv_api,
                          arv_api_admin, snapshot, unique):
    """Not re-resolved while Arvados has the tag; --force-docker-pull resolves it
    again and stores a new image only if it moved."""
    address = cwl_registries.proxy.address
    reference = "%s/cwlmoved/%s:1" % (address, unique)
    first = image(unique, "first", created="2022-01-01T00:00:00Z")
    second = image(unique, "second", created="2023-01-01T00:00:00Z")
    cwl_registries.push(address, "cwlmoved/%s:1" % unique, first)
    first_pdh = get_image(arv_api, {"dockerPull": reference})

    # unchanged tag, forced: resolved (the manifest), nothing stored
    before, seen = snapshot(), requests_seen(cwl_registries)
    assert get_image(arv_api, {"dockerPull": reference}, force_docker_pull=True) == first_pdh
    assert snapshot() == before
    assert requests_seen(cwl_registries) > seen and blob_gets(cwl_registries, seen) == [
        r for r in blob_gets(cwl_registries, seen) if first.config_digest in r]

    cwl_registries.push(address, "cwlmoved/%s:1" % unique, second)
    before, seen = snapshot(), requests_seen(cwl_registries)
    assert get_image(arv_api, {"dockerPull": reference}) == first_pdh  # not re-resolved
    assert snapshot() == before and requests_seen(cwl_registries) == seen

    second_pdh = get_image(arv_api, {"dockerPull": reference}, force_docker_pull=True)
    assert second_pdh != first_pdh
    record, links = stored(arv_api_admin, before, snapshot())
    assert links == {(HASH, second.image_id), (TAG, reference)}
    before = snapshot()
    assert get_image(arv_api, {"dockerPull": reference}, force_docker_pull=True) == second_pdh
    assert get_image(arv_api, {"dockerPull": reference}) == second_pdh
    assert snapshot() == before


# -- against arvados-cwl-runner 3.2.1 with Arvados' keepdocker and an engine ----

WITH_AN_ENGINE = textwrap.dedent("""
    import json, sys
    import arvados
    from arvados_cwl.arvdocker import arv_docker_get_image
    from arvados_cwl.context import ArvRuntimeContext
    print(json.dumps(arv_docker_get_image(arvados.api("v1"), {"dockerPull": sys.argv[1]},
                                          True, ArvRuntimeContext({}))))
""")


class WithAnEngine:
    """a-c-r 3.2.1 with Arvados' own keepdocker (no launcher) and a Docker engine."""

    def __init__(self, engine, registries, env, docker):
        self.engine, self.registries, self.env, self.binary = engine, registries, env, docker

    def docker(self, *args):
        return subprocess.run([self.binary, *args], env=self.env, capture_output=True,
                              text=True, check=True, timeout=300)

    def get_image(self, name, repository):
        """Give the engine ``name`` (``repository`` pulled from the plain registry and
        retagged), run a-c-r's ``arv_docker_get_image`` for it; the PDH it records."""
        pulled = "%s/%s" % (self.registries.plain.address, repository)
        self.docker("pull", pulled)
        self.docker("tag", pulled, name)
        result = run([sys.executable, "-c", WITH_AN_ENGINE, name], env=self.env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def a_c_r_321_with_docker(keepdocker_docker_engine, cwl_registries, arv_cluster, tmp_path):
    docker = shutil.which("docker", path=ORIGINAL_PATH) or shutil.which("docker.io",
                                                                         path=ORIGINAL_PATH)
    assert docker, "no docker CLI"
    bin_dir = tmp_path / "bin-docker"
    bin_dir.mkdir()
    os.symlink(docker, bin_dir / "docker")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARVADOS_", "DOCKER_"))}
    env.update(arv_cluster.env("alice"), HOME=str(tmp_path / "home-321"), PATH=str(bin_dir),
               DOCKER_HOST=keepdocker_docker_engine.host)
    os.makedirs(env["HOME"], exist_ok=True)
    return WithAnEngine(keepdocker_docker_engine, cwl_registries, env, str(bin_dir / "docker"))


def test_what_a_c_r_records_meets_3_2_1s_with_an_engine(
        a_c_r_321_with_docker, launcher, no_engine_machine,
        cwl_registries, arv_env, arv_api, arv_api_admin, snapshot, unique):
    """The dockerCollectionPDH a-c-r records is the same either way round: 3.2.1 with an
    engine finds what the launcher stored from the registry, and the reverse."""
    # 3.2.1 with an engine first, then the launcher with none: found, no registry traffic
    first = image(unique, "321-first")
    cwl_registries.push(cwl_registries.plain.address, "cwlhub/%s:a" % unique, first)
    name = "cwlhub/%s:a" % unique
    before = snapshot()
    pdh_321 = a_c_r_321_with_docker.get_image(name, "cwlhub/%s:a" % unique)
    record, links = stored(arv_api_admin, before, snapshot())  # 3.2.1 stored it
    assert record["portable_data_hash"] == pdh_321
    assert links == {(HASH, first.image_id), (TAG, name)}
    before, seen = snapshot(), requests_seen(cwl_registries)
    assert get_image(arv_api, {"dockerPull": name}) == pdh_321
    assert snapshot() == before and requests_seen(cwl_registries) == seen
    image_id = a_c_r_321_with_docker.docker("image", "inspect", "--format", "{{.Id}}",
                                            name).stdout.strip()
    assert image_id == first.image_id  # the engine's image is the registry's

    # the launcher with no engine first, then 3.2.1 with one: it records ours
    second = image(unique, "ours-first")
    cwl_registries.push(cwl_registries.plain.address, "cwlhub/%s:b" % unique, second)
    name = "cwlhub/%s:b" % unique
    before = snapshot()
    ours = get_image(arv_api, {"dockerPull": name})
    record, links = stored(arv_api_admin, before, snapshot())
    assert links == {(HASH, second.image_id), (TAG, name)}
    before = snapshot()
    assert a_c_r_321_with_docker.get_image(name, "cwlhub/%s:b" % unique) == ours
    assert snapshot() == before
