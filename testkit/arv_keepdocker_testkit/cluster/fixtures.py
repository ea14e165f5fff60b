"""pytest fixtures over a local Arvados-compatible cluster (re-exported by the pytest11 plugin).

Session fixture:

``arv_cluster``
    A running :class:`~.cluster.Cluster` in a private temporary directory,
    started once per test session and stopped at its end (it also stops by
    itself if the pytest process dies). Users ``alice``,
    ``bob`` and ``admin`` (is_admin) each have a token:
    ``arv_cluster.token("bob")``, ``.env("bob")``, ``.api("bob")``,
    ``.user_uuid("bob")``, ``.inject_fault("keep_put", 1, status=503)``.

Function fixtures:

``arv_env``
    Points the process at the cluster as alice: sets ``ARVADOS_API_HOST``,
    ``ARVADOS_API_TOKEN``, ``ARVADOS_API_HOST_INSECURE`` (any other
    ``ARVADOS_*`` variable removed), a private ``HOME`` and
    ``XDG_CACHE_HOME`` under ``tmp_path`` (so arv-put/keepdocker caches are
    per test), and resets ``arvados.config._settings`` so the SDK rereads
    the environment. Yields the three ``ARVADOS_*`` variables as a dict (add
    it to a subprocess environment).
``arv_api`` / ``arv_api_bob`` / ``arv_api_admin``
    ``arvados.api('v1')`` clients for alice, bob and admin (no discovery
    cache, ``num_retries=0`` so a failure shows at once).
``arv_project``
    A fresh project owned by alice (its record as a dict), so tests do not
    see each other's collections and links: pass ``arv_project["uuid"]`` as
    ``owner_uuid`` / ``--project-uuid``.

Imports stay light: this module is loaded in every pytest run.
"""

import os
import shutil
import tempfile
import uuid as _uuid

import pytest

__all__ = ["arv_cluster", "arv_env", "arv_api", "arv_api_bob", "arv_api_admin", "arv_project"]


@pytest.fixture(scope="session")
def arv_cluster():
    """A local cluster for the whole session (private directory, free port)."""
    from .cluster import Cluster

    directory = tempfile.mkdtemp(prefix="akd-cluster-", dir="/tmp")
    cluster = Cluster(directory, owner_pid=os.getpid())
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()
    shutil.rmtree(directory, ignore_errors=True)


def _reset_arvados_config():
    try:
        import arvados.config
    except ImportError:
        return
    arvados.config._settings = None


@pytest.fixture
def arv_env(arv_cluster, monkeypatch, tmp_path):
    """alice's ARVADOS_* environment, a private HOME/XDG_CACHE_HOME; yields the env dict."""
    for name in list(os.environ):
        if name.startswith("ARVADOS_"):
            monkeypatch.delenv(name)
    env = arv_cluster.env("alice")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    _reset_arvados_config()
    yield env
    _reset_arvados_config()


@pytest.fixture
def arv_api(arv_cluster):
    """An API client for alice."""
    return arv_cluster.api("alice")


@pytest.fixture
def arv_api_bob(arv_cluster):
    """An API client for bob."""
    return arv_cluster.api("bob")


@pytest.fixture
def arv_api_admin(arv_cluster):
    """An API client for admin."""
    return arv_cluster.api("admin")


@pytest.fixture
def arv_project(arv_api):
    """A fresh project owned by alice (dict with ``uuid``, ``name``...)."""
    body = {"name": "test project %s" % _uuid.uuid4().hex[:12], "group_class": "project"}
    return arv_api.groups().create(body=body).execute()
