"""End-to-end fixtures: run ``arv keepdocker`` for real against the local
cluster and a real Docker engine, and look at what it left in Arvados."""

import os
import subprocess
import sys
import uuid

import pytest
from arv_keepdocker_testkit.scripts import script


@pytest.fixture
def unique():
    """A fresh lowercase name part, so tests sharing the session cluster never collide."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def base_env(tmp_path):
    """os.environ with a private HOME and cache, no Arvados or Docker settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARVADOS_", "DOCKER_", "ARV_KEEPDOCKER_"))}
    home = tmp_path / "home"
    home.mkdir()
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_CONFIG_HOME=str(home / ".config"),
               # The hooks/ package is installed beside us; these tests pin the
               # default plugins' behaviour (3.2.1's), so leave it out.
               ARV_KEEPDOCKER_DISABLE_PLUGINS="oci_labels")
    return env


@pytest.fixture
def user_env(base_env, arv_cluster):
    """Environment for alice: cluster settings, private HOME (no Docker)."""
    return dict(base_env, **arv_cluster.env("alice"))


@pytest.fixture
def docker_user_env(user_env, keepdocker_docker_engine):
    """alice's environment with DOCKER_HOST pointing at the test engine."""
    return dict(user_env, DOCKER_HOST=keepdocker_docker_engine.host)


class Runner:
    def __init__(self, env):
        self.env = env

    def __call__(self, *args, env=None, command=None, timeout=600, input=None):
        command = command or [sys.executable, "-m", "arv_keepdocker_plugin"]
        return subprocess.run(command + list(args), env=dict(self.env, **(env or {})),
                              capture_output=True, text=True, timeout=timeout, input=input)


@pytest.fixture
def keepdocker(docker_user_env):
    """Run ``arv keepdocker ARGS`` (``python -m arv_keepdocker_plugin``) as alice."""
    return Runner(docker_user_env)


@pytest.fixture
def arv_keepdocker_321(docker_user_env):
    """Run Arvados' own, unmodified ``arv-keepdocker`` 3.2.1 as alice."""
    runner = Runner(docker_user_env)
    return lambda *args, **kw: runner(*args, command=[script("arv-keepdocker")], **kw)


def error_lines(stderr: str):
    """Non-empty stderr lines that are not progress output."""
    return [line for line in stderr.splitlines() if line.strip()]


class ArvadosState:
    """Every collection (trash included) and link on the cluster, seen by admin."""

    def __init__(self, admin):
        self.admin = admin

    def snapshot(self):
        import arvados.util
        collections = {c["uuid"] for c in arvados.util.keyset_list_all(
            self.admin.collections().list, include_trash=False, select=["uuid"])}
        links = {l["uuid"] for l in arvados.util.keyset_list_all(
            self.admin.links().list, select=["uuid"])}
        return collections, links


@pytest.fixture
def arvados_state(arv_api_admin):
    return ArvadosState(arv_api_admin)


@pytest.fixture
def unchanged(arvados_state):
    """Assert, at the end of the test, that Arvados holds no new collection or link and
    lost none."""
    before = arvados_state.snapshot()
    yield
    assert arvados_state.snapshot() == before


@pytest.fixture
def nothing_written(arvados_state):
    """Assert, at the end of the test, that no collection or link was added."""
    before = arvados_state.snapshot()
    yield
    after = arvados_state.snapshot()
    assert after[0] - before[0] == set(), "collections were left behind"
    assert after[1] - before[1] == set(), "links were left behind"


def image_links(api, collection_uuid):
    """The links arv-keepdocker 3.2.1 would make (the layer index's are apart)."""
    return sorted(
        (l["link_class"], l["name"], l["owner_uuid"], l["properties"].get("image_timestamp"))
        for l in api.links().list(filters=[["head_uuid", "=", collection_uuid],
                                           ["link_class", "!=", "docker_image_layer"]],
                                  limit=100).execute()["items"])


def layer_links(api, collection_uuid):
    """``{digest: (offset, size)}`` recorded by the layer index for a collection."""
    return {l["name"]: (l["properties"]["offset"], l["properties"]["size"])
            for l in api.links().list(filters=[["head_uuid", "=", collection_uuid],
                                               ["link_class", "=", "docker_image_layer"]],
                                      limit=1000).execute()["items"]}


def collection_files(api, collection_uuid):
    import arvados.collection
    reader = arvados.collection.CollectionReader(collection_uuid, api_client=api)
    return {name: reader.find(name).size() for name in reader.keys()}


def load_from_keep(api, collection_uuid, engine):
    """What crunch-run does: exactly one ``<id>.tar``; ``docker load`` its bytes.

    Call it after removing the image from ``engine``. Returns the tar name's
    image id after checking the engine now reports that same id.
    """
    import arvados.collection
    reader = arvados.collection.CollectionReader(collection_uuid, api_client=api)
    names = [name for name in reader.keys()]
    assert len(names) == 1 and names[0].endswith(".tar"), names
    image_id = names[0][:-len(".tar")]
    proc = subprocess.Popen(["docker", "load"], env=engine.env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with reader.open(names[0], "rb") as f:
        while True:
            chunk = f.read(8 << 20)
            if not chunk:
                break
            proc.stdin.write(chunk)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert engine.image_id(image_id) == image_id
    return image_id


@pytest.fixture
def project(arv_project):
    """The UUID of a fresh project owned by alice."""
    return arv_project["uuid"]


@pytest.fixture
def nothing_written_but_the_upload(arvados_state):
    """Call with the uploaded collection's UUID: only it and its links were added."""
    before = arvados_state.snapshot()

    def check(uuid):
        collections, links = arvados_state.snapshot()
        assert collections - before[0] == {uuid}
        heads = {l["head_uuid"] for l in arvados_state.admin.links().list(
            filters=[["uuid", "in", sorted(links - before[1])]]).execute()["items"]}
        assert heads <= {uuid}
    return check
