"""pytest fixtures and markers for hook authors and this project's own tests.

Registered through the ``pytest11`` entry point of arv-keepdocker-testkit, so
any test suite in an environment where it is installed can use them with no
setup. Two tiers:

* light, no services: ``keepdocker_installed`` (plugin discovery sees
  arv-keepdocker-plugin and the distributions a test adds, nothing else of
  the environment) and ``keepdocker_run`` (``arv keepdocker ARGS``
  in-process, with a private cache); with :mod:`.plugin_kit`'s
  ``plugin_manager`` and :mod:`.fakes`;
* heavy: the local cluster and per-user API clients (:mod:`.cluster.fixtures`)
  and real container engines (:mod:`.engines_fixtures`).

Markers, so a quick run can leave out what needs services::

    pytest -m "not engines and not cluster and not reliability"

``engines``
    The test needs a real Docker engine, podman or a registry. Added to every
    test that uses (directly or through other fixtures) one of
    :data:`ENGINE_FIXTURES`; mark tests that start engines themselves.
``cluster``
    The test needs the local Arvados cluster. Added to every test that uses
    one of :data:`CLUSTER_FIXTURES` (``arv_env``, ``arv_api``... use it);
    mark tests that start a cluster themselves.
``reliability``
    A slow fault suite; registered only, tests apply it themselves.
"""

import pytest

from .cluster.fixtures import *  # noqa: F401,F403
from .engines_fixtures import *  # noqa: F401,F403

#: Fixtures that start a real engine: a test using any of them is marked ``engines``.
ENGINE_FIXTURES = frozenset({
    "keepdocker_docker_engine",
    "keepdocker_docker_overlay2",
    "keepdocker_docker26",
    "keepdocker_docker26_containerd",
    "keepdocker_podman_store",
    "keepdocker_registry",
})
#: Fixtures that start the local cluster: a test using any of them is marked ``cluster``.
CLUSTER_FIXTURES = frozenset({"arv_cluster"})

MARKERS = (
    "engines: the test needs a real Docker engine, podman or a registry "
    "(added for the keepdocker_* engine fixtures)",
    "cluster: the test needs the local Arvados cluster (added for arv_cluster and "
    "the fixtures over it)",
    "reliability: a slow fault suite (applied by the tests themselves)",
)


@pytest.fixture
def keepdocker_installed(tmp_path, monkeypatch):
    """Only arv-keepdocker-plugin and what the test adds are installed, as plugin
    discovery sees it: ``keepdocker_installed.add(name, entry_points, modules)``
    (see :class:`~.plugin_kit.InstalledDistributions`)."""
    from .plugin_kit import installed_only
    return installed_only(monkeypatch, tmp_path / "keepdocker-site")


@pytest.fixture
def keepdocker_run(tmp_path, monkeypatch):
    """``keepdocker_run(pm, *args, api=...)``: :func:`~.plugin_kit.run_keepdocker`
    with ``XDG_CACHE_HOME`` in the test's own directory; returns a
    :class:`~.plugin_kit.RunResult`."""
    from .plugin_kit import run_keepdocker
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "keepdocker-cache"))
    return run_keepdocker


def pytest_configure(config):
    for line in MARKERS:
        config.addinivalue_line("markers", line)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    # tryfirst: the markers must be there before -m deselects.
    for item in items:
        used = set(getattr(item, "fixturenames", ()))  # the whole closure
        if used & ENGINE_FIXTURES and item.get_closest_marker("engines") is None:
            item.add_marker(pytest.mark.engines)
        if used & CLUSTER_FIXTURES and item.get_closest_marker("cluster") is None:
            item.add_marker(pytest.mark.cluster)
