"""pytest fixtures over real, private container engines (:mod:`.engines`).

Session fixtures (started once per test session, stopped and removed after):

``docker_engine``
    A :class:`~.engines.DockerEngine`: a private ``dockerd`` (vfs, no
    networking). Use ``docker_engine.docker("images")``,
    ``docker_engine.host`` (a ``DOCKER_HOST`` value), ``docker_engine.env()``.
``podman_store``
    A :class:`~.engines.PodmanStore`: a private containers-storage store for
    ``podman`` (``.args``, ``.storage_conf``, ``.env()``, ``.podman(...)``).
``registry``
    A :class:`~.engines.Registry`: ``docker-registry`` on
    ``registry.address`` (``127.0.0.1:PORT``), no TLS.

Function fixtures:

``docker_env``
    Sets ``DOCKER_HOST`` to ``docker_engine`` for the test (monkeypatch) and
    returns the engine, so code that simply runs ``docker`` uses it.
``podman_env``
    Sets ``CONTAINERS_STORAGE_CONF`` to ``podman_store``'s storage.conf for the
    test and returns the store, so a plain ``podman`` uses it.

When an engine's binary is missing or the engine fails to start, tests using
it are skipped with the reason; when the environment variable ``CI`` is set
they fail instead (in CI an engine that cannot start is a failure).
:func:`skip_or_fail` applies the same rule to engines you start yourself.
Images are shared by the whole session: give them names unique to your test.
"""

import os
import shutil
import tempfile

import pytest

__all__ = ["docker_engine", "podman_store", "registry", "docker_env", "podman_env"]


def _short_dir(kind: str) -> str:
    # Unix socket paths must stay under 108 bytes: keep engine dirs short.
    return tempfile.mkdtemp(prefix="akd-%s-" % kind, dir="/tmp")


def skip_or_fail(what: str, error: Exception):
    """Skip the test (locally) or fail it (``CI`` set): ``what`` cannot start."""
    message = "%s unavailable: %s" % (what, error)
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _started(factory, kind: str, what: str):
    """Start ``factory(dir)`` or skip/fail; return ``(engine, dir)``."""
    from .engines import EngineStartError

    directory = _short_dir(kind)
    engine = factory(directory)
    try:
        engine.start()
    except (EngineStartError, OSError) as error:
        shutil.rmtree(directory, ignore_errors=True)
        skip_or_fail(what, error)
    return engine, directory


def _running(class_name: str, kind: str, what: str):
    """Start an engine of :mod:`.engines` for a session fixture; stop and remove it after."""
    from . import engines

    engine, directory = _started(getattr(engines, class_name), kind, what)
    try:
        yield engine
    finally:
        engine.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_engine():
    """A private Docker engine for the session (see the module docstring)."""
    yield from _running("DockerEngine", "d", "Docker engine")


@pytest.fixture(scope="session")
def podman_store():
    """A private podman store for the session (see the module docstring)."""
    yield from _running("PodmanStore", "p", "podman")


@pytest.fixture(scope="session")
def registry():
    """A private loopback registry for the session (see the module docstring)."""
    yield from _running("Registry", "r", "docker-registry")


@pytest.fixture
def docker_env(docker_engine, monkeypatch):
    """``DOCKER_HOST`` set to ``docker_engine`` for one test; returns the engine."""
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    return docker_engine


@pytest.fixture
def podman_env(podman_store, monkeypatch):
    """``CONTAINERS_STORAGE_CONF`` set to ``podman_store`` for one test; returns it."""
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", podman_store.storage_conf)
    return podman_store
