"""pytest fixtures over real, private container engines (:mod:`.engines`).

Session fixtures (started once per test session, stopped and removed after):

``keepdocker_docker_engine``
    A :class:`~.engines.DockerEngine`: a private ``dockerd`` (vfs, no
    networking). Use ``keepdocker_docker_engine.docker("images")``,
    ``keepdocker_docker_engine.host`` (a ``DOCKER_HOST`` value),
    ``keepdocker_docker_engine.env()``.
``keepdocker_docker_overlay2``
    The same engine with the ``overlay2`` storage driver (the usual one on
    servers; it mounts overlayfs, so it needs root).
``keepdocker_docker26``, ``keepdocker_docker26_containerd``
    A :class:`~.engines.Docker26Engine`: Docker 26 with a containerd of its
    own, in the classic image store (vfs) or in the containerd image store
    (Docker 29's default: ``Id`` is the manifest or index digest,
    ``docker save`` writes an OCI layout with the layers as pulled). Run from
    ``.engines/docker26/root`` (``.ci/install-engines`` unpacks it there) or
    from the unpacked root named by ``$ARV_KEEPDOCKER_DOCKER26``; no container
    can run in them. ``.config_digest(ref)`` gives the config digest in either.
``keepdocker_podman_store``
    A :class:`~.engines.PodmanStore`: a private containers-storage store for
    ``podman`` (``.args``, ``.storage_conf``, ``.env()``, ``.podman(...)``).
``keepdocker_registry``
    A :class:`~.engines.Registry`: ``docker-registry`` on
    ``keepdocker_registry.address`` (``127.0.0.1:PORT``), no TLS.

Function fixtures:

``keepdocker_docker_env``
    Sets ``DOCKER_HOST`` to ``keepdocker_docker_engine`` for the test
    (monkeypatch) and returns the engine, so code that simply runs ``docker``
    uses it.
``keepdocker_podman_env``
    Sets ``CONTAINERS_STORAGE_CONF`` to ``keepdocker_podman_store``'s
    storage.conf for the test and returns the store, so a plain ``podman``
    uses it.

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

__all__ = [
    "keepdocker_docker_engine",
    "keepdocker_docker_overlay2",
    "keepdocker_docker26",
    "keepdocker_docker26_containerd",
    "keepdocker_podman_store",
    "keepdocker_registry",
    "keepdocker_docker_env",
    "keepdocker_podman_env",
]


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


def _running(class_name: str, kind: str, what: str, **options):
    """Start an engine of :mod:`.engines` for a session fixture; stop and remove it after."""
    from . import engines

    factory = getattr(engines, class_name)
    engine, directory = _started(lambda d: factory(d, **options), kind, what)
    try:
        yield engine
    finally:
        engine.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def keepdocker_docker_engine():
    """A private Docker engine for the session (see the module docstring)."""
    yield from _running("DockerEngine", "d", "Docker engine")


@pytest.fixture(scope="session")
def keepdocker_docker_overlay2():
    """A private Docker engine (20.10) with the ``overlay2`` storage driver, for the session."""
    yield from _running("DockerEngine", "do", "Docker engine (overlay2)",
                        storage_driver="overlay2")


@pytest.fixture(scope="session")
def keepdocker_docker26():
    """Docker 26 in its classic image store, for the session (see the module docstring)."""
    yield from _running("Docker26Engine", "d26", "Docker 26 engine (classic store)",
                        containerd_store=False)


@pytest.fixture(scope="session")
def keepdocker_docker26_containerd():
    """Docker 26 in its containerd image store, for the session (see the module docstring)."""
    yield from _running("Docker26Engine", "d26c", "Docker 26 engine (containerd store)",
                        containerd_store=True)


@pytest.fixture(scope="session")
def keepdocker_podman_store():
    """A private podman store for the session (see the module docstring)."""
    yield from _running("PodmanStore", "p", "podman")


@pytest.fixture(scope="session")
def keepdocker_registry():
    """A private loopback registry for the session (see the module docstring)."""
    yield from _running("Registry", "r", "docker-registry")


@pytest.fixture
def keepdocker_docker_env(keepdocker_docker_engine, monkeypatch):
    """``DOCKER_HOST`` set to ``keepdocker_docker_engine`` for one test; returns the engine."""
    monkeypatch.setenv("DOCKER_HOST", keepdocker_docker_engine.host)
    return keepdocker_docker_engine


@pytest.fixture
def keepdocker_podman_env(keepdocker_podman_store, monkeypatch):
    """``CONTAINERS_STORAGE_CONF`` set to ``keepdocker_podman_store`` for one test; returns it."""
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", keepdocker_podman_store.storage_conf)
    return keepdocker_podman_store
