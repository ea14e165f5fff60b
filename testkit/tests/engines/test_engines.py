"""The private engines shipped for tests and hook authors (arv_keepdocker_testkit/engines.py)."""

import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
import uuid

import pytest
from arv_keepdocker_testkit import engines_fixtures
from arv_keepdocker_testkit.engines import (
    DOCKER26_ENV,
    Docker26Engine,
    DockerEngine,
    EngineStartError,
    PodmanStore,
    build_layered_image,
    docker26_root,
)


def unique(name):
    return "eng-%s-%s" % (uuid.uuid4().hex[:8], name)


@pytest.mark.engines  # starts a Docker engine of its own
def test_docker_engine_starts_privately_and_stops_by_pidfile():
    directory = tempfile.mkdtemp(prefix="akd-t-", dir="/tmp")
    try:
        engine = DockerEngine(directory)
        try:
            engine.start()
        except EngineStartError as error:
            engines_fixtures.skip_or_fail("Docker engine", error)
        try:
            assert engine.host == "unix://%s/docker.sock" % directory
            assert engine.env()["DOCKER_HOST"] == engine.host
            root = engine.docker("info", "--format", "{{.DockerRootDir}}", text=True).stdout
            assert root.strip() == os.path.join(directory, "root")
            with open(engine.pidfile) as f:
                pid = int(f.read())
            assert engine.docker("images", "-q", text=True).stdout == ""  # a fresh engine
        finally:
            engine.stop()
        assert not os.path.exists("/proc/%d" % pid)
        assert subprocess.run(["docker", "info"], env=engine.env(), capture_output=True,
                              timeout=30).returncode != 0
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_docker_engine_refuses_a_socket_path_too_long_for_unix_sockets(tmp_path):
    with pytest.raises(EngineStartError, match="socket path too long"):
        DockerEngine(str(tmp_path / ("x" * 120)))


@pytest.mark.engines  # runs dockerd
def test_docker_engine_start_failure_shows_the_log():
    # dockerd present but unusable: its data root is a file.
    directory = tempfile.mkdtemp(prefix="akd-f-", dir="/tmp")
    try:
        open(os.path.join(directory, "root"), "w").close()
        engine = DockerEngine(directory)
        if shutil.which("dockerd") is None:
            pytest.skip("dockerd not installed")
        with pytest.raises(EngineStartError) as caught:
            engine.start(timeout=20)
        assert "dockerd" in str(caught.value)
        assert engine.log in str(caught.value)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_docker26_fixtures_run_the_classic_and_the_containerd_store(
        keepdocker_docker26, keepdocker_docker26_containerd):
    stores = {}
    for engine in (keepdocker_docker26, keepdocker_docker26_containerd):
        info = json.loads(engine.docker("info", "--format", "{{json .}}").stdout)
        assert info["ServerVersion"].startswith("26.")
        assert info["DockerRootDir"] == os.path.join(engine.dir, "root")
        assert engine.containerd_socket.startswith(engine.dir)
        assert len(engine.containerd_socket + ".ttrpc") < 108
        stores[engine.containerd_store] = (info["Driver"], info["DriverStatus"])
    assert stores == {False: ("vfs", None),
                      True: ("native", [["driver-type", "io.containerd.snapshotter.v1"]])}


@pytest.mark.engines  # starts Docker 26 and its containerd
def test_docker26_engine_stops_dockerd_and_containerd_and_names_its_root(monkeypatch):
    monkeypatch.setenv(DOCKER26_ENV, "/nonexistent/docker26")
    with pytest.raises(EngineStartError, match=DOCKER26_ENV + "=/nonexistent/docker26"):
        docker26_root()
    monkeypatch.delenv(DOCKER26_ENV)
    try:
        root = docker26_root()  # .engines/docker26/root, from the repository
    except EngineStartError as error:
        engines_fixtures.skip_or_fail("Docker 26 engine", error)
    assert root.endswith(os.path.join(".engines", "docker26", "root"))
    monkeypatch.setenv(DOCKER26_ENV, root)
    with pytest.raises(EngineStartError, match="socket path too long"):
        Docker26Engine("/tmp/" + "x" * 84)  # docker.sock fits, containerd.sock.ttrpc not
    directory = tempfile.mkdtemp(prefix="akd-t26-", dir="/tmp")
    try:
        engine = Docker26Engine(directory, containerd_store=True)
        engine.start()
        try:
            assert engine.root == root
            with open(engine.pidfile) as f:
                pids = [int(f.read()), engine._containerd.pid]
            for pid in pids:
                assert os.path.exists("/proc/%d" % pid)
        finally:
            engine.stop()
        for pid in pids:
            assert not os.path.exists("/proc/%d" % pid)
        assert engine._containerd is None
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert not os.path.exists(directory)


def test_build_layered_image_on_docker_shares_the_base(keepdocker_docker_engine):
    base_tag, child_tag = unique("base:1"), unique("child:1")
    base = build_layered_image(keepdocker_docker_engine, base_tag,
                               [{"a.txt": b"a"}, {"d/b.txt": b"b"}])
    child = build_layered_image(keepdocker_docker_engine, child_tag, [{"c.txt": b"c"}],
                                base=base_tag, labels={"k": "v w", "q": 'has "quotes"'})
    info = json.loads(keepdocker_docker_engine.docker("image", "inspect", child).stdout)[0]
    base_info = json.loads(keepdocker_docker_engine.docker("image", "inspect", base).stdout)[0]
    assert base.startswith("sha256:") and child.startswith("sha256:")
    assert info["RootFS"]["Layers"][:2] == base_info["RootFS"]["Layers"]
    assert len(info["RootFS"]["Layers"]) == 3
    assert info["Config"]["Labels"] == {"k": "v w", "q": 'has "quotes"'}
    assert child_tag in info["RepoTags"]


def test_build_layered_image_on_podman_shares_the_base(keepdocker_podman_store):
    base_tag, child_tag = unique("base:1"), unique("child:1")
    base = build_layered_image(keepdocker_podman_store, base_tag, [{"a.txt": b"a"}])
    child = build_layered_image(keepdocker_podman_store, child_tag, [{"c.txt": b"c"}, {"e": b"e"}],
                                base=base_tag, labels={"k": "v"})
    info = json.loads(keepdocker_podman_store.podman("image", "inspect", child).stdout)[0]
    base_info = json.loads(keepdocker_podman_store.podman("image", "inspect", base).stdout)[0]
    assert "sha256:" + info["Id"] == child
    assert info["RootFS"]["Layers"][:1] == base_info["RootFS"]["Layers"]
    assert len(info["RootFS"]["Layers"]) == 3
    assert info["Config"]["Labels"]["k"] == "v"


def test_podman_storage_conf_selects_the_same_store(keepdocker_podman_store):
    tag = unique("conf:1")
    image = build_layered_image(keepdocker_podman_store, tag, [{"f": b"f"}])
    with open(keepdocker_podman_store.storage_conf) as f:
        text = f.read()
    assert 'graphroot = "%s"' % keepdocker_podman_store.root in text
    plain = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", tag],
                           env=keepdocker_podman_store.env(), capture_output=True, text=True,
                           check=True)
    assert "sha256:" + plain.stdout.strip() == image


def test_podman_store_args_are_private(keepdocker_podman_store):
    assert keepdocker_podman_store.args == [
        "--root", keepdocker_podman_store.root, "--runroot", keepdocker_podman_store.runroot,
        "--storage-driver", "vfs"]
    assert keepdocker_podman_store.root.startswith(keepdocker_podman_store.dir)


def test_registry_answers_v2_on_loopback(keepdocker_registry):
    host, port = keepdocker_registry.address.split(":")
    assert host == "127.0.0.1" and int(port) > 0
    url = "http://%s/v2/" % keepdocker_registry.address
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200


def test_docker_env_points_docker_at_the_private_engine(keepdocker_docker_env):
    assert os.environ["DOCKER_HOST"] == keepdocker_docker_env.host
    answer = subprocess.run(["docker", "info", "--format", "{{.DockerRootDir}}"],
                            capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == os.path.join(keepdocker_docker_env.dir, "root")


def test_podman_env_points_podman_at_the_private_store(keepdocker_podman_env):
    assert os.environ["CONTAINERS_STORAGE_CONF"] == keepdocker_podman_env.storage_conf
    answer = subprocess.run(["podman", "info", "--format", "{{.Store.GraphRoot}}"],
                            capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == keepdocker_podman_env.root


def test_engine_that_cannot_start_skips_locally(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="podman unavailable: boom"):
        engines_fixtures.skip_or_fail("podman", EngineStartError("boom"))


def test_engine_that_cannot_start_fails_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Docker engine unavailable: boom"):
        engines_fixtures.skip_or_fail("Docker engine", EngineStartError("boom"))


def test_podman_store_start_reports_a_missing_podman(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineStartError, match="podman not found"):
        PodmanStore(str(tmp_path / "store")).start()
