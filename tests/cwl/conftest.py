"""arvados-cwl-runner 3.2.1 (the real one, from PyPI) with and without the launcher.

The local cluster has no workflows or containers API, so a full submit is out
of reach: these tests call a-c-r's own ``arvados_cwl.arvdocker.arv_docker_get_image``,
the function every a-c-r path (submit, --create-workflow, container requests)
uses to find or store an image, and run the launcher command for what needs
no containers API (--version, --validate).

Every test here needs arvados-cwl-runner: without it they are skipped, or fail
when ``CI`` is set (install it with ``pip install -e '.[cwl]'``; dev/setup does).
"""

import os
import shutil
import subprocess

import pytest
from arv_keepdocker_testkit.scripts import BIN, script  # noqa: F401  (used by the tests)
from e2e.conftest import ArvadosState, unique  # noqa: F401  (fixture re-exported)

#: Where no Docker engine listens: the docker CLI fails to connect.
DEAD_DOCKER_HOST = "unix:///nonexistent-akd-cwl/docker.sock"


def skip_or_fail(message: str) -> None:
    """Skip (locally) or fail (``CI`` set), as the project's engine fixtures do."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def arvados_cwl_runner():
    """arvados-cwl-runner's ``arvdocker`` module; skip or fail when it is missing."""
    try:
        import arvados_cwl
        import arvados_cwl.arvdocker
    except ImportError as error:
        skip_or_fail("arvados-cwl-runner is not importable ({}); install the [cwl] extra: "
                     "pip install -e '.[cwl]'".format(error))
    assert arvados_cwl.__version__ == "3.2.1", arvados_cwl.__version__
    return arvados_cwl.arvdocker


@pytest.fixture
def launcher():
    """The launcher's set-up (``cwl_runner.install()``) for one test, undone after."""
    from arv_keepdocker_plugin import cwl_runner

    assert not cwl_runner.installed(), "a previous test left the launcher installed"
    cwl_runner.install()
    yield cwl_runner
    cwl_runner.uninstall()


def runtime_context(**settings):
    """A fresh a-c-r runtime context (so a-c-r's own lookup cache starts empty)."""
    from arvados_cwl.context import ArvRuntimeContext

    return ArvRuntimeContext(settings)


@pytest.fixture
def engine_path(tmp_path):
    """``engine_path("podman", "docker")``: a PATH with only those engine CLIs on it."""
    directory = tmp_path / "engine-bin"
    directory.mkdir()

    def make(*names):
        for name in names:
            found = shutil.which(name) or (shutil.which("docker.io") if name == "docker" else None)
            if found is None:
                skip_or_fail("{} is not installed".format(name))
            os.symlink(found, directory / name)
        return str(directory)
    return make


@pytest.fixture
def only_podman(engine_path, keepdocker_podman_store, monkeypatch):
    """podman (the session store) is the only engine CLI on PATH."""
    monkeypatch.setenv("PATH", engine_path("podman"))
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", keepdocker_podman_store.storage_conf)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return keepdocker_podman_store


@pytest.fixture
def podman_and_dead_docker(engine_path, keepdocker_podman_store, monkeypatch):
    """podman and a docker CLI on PATH; DOCKER_HOST is a socket nobody listens on."""
    monkeypatch.setenv("PATH", engine_path("podman", "docker"))
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", keepdocker_podman_store.storage_conf)
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER_HOST)
    return keepdocker_podman_store


@pytest.fixture
def snapshot(arv_api_admin):
    """``snapshot()``: every collection and link on the cluster, seen by admin."""
    return ArvadosState(arv_api_admin).snapshot


def run(args, env, timeout=600, cwd=None):
    """Run a command beside this Python, output captured as text."""
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)


