"""Fixtures for every test of the repository: tests/, hooks/ and testkit/tests/.

At the top level so that it applies to all three test paths; it is not shipped
in any distribution.
"""

from pathlib import Path

import pytest
from arv_keepdocker_testkit.engines_fixtures import skip_or_fail

#: ``../shared`` beside the repository: Docker's hello-world archives
#: (``testdata/``) and Arvados' real discovery document (``arvados/``).
SHARED_DIR = Path(__file__).resolve().parent.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared test data directory ``../shared`` (a :class:`~pathlib.Path`).

    It lives beside the project: CI has it, a user's fresh clone does not. Tests
    that use it are skipped when it is absent, or fail when ``CI`` is set (the
    rule of :func:`~arv_keepdocker_testkit.engines_fixtures.skip_or_fail`).
    """
    if not SHARED_DIR.is_dir():
        skip_or_fail("shared test data", FileNotFoundError(
            "%s is absent (it lives beside the project as ../shared: CI has it, "
            "a fresh clone does not)" % SHARED_DIR))
    return SHARED_DIR


@pytest.fixture(autouse=True)
def tool_peak_memory(request, record_property):
    """Reliability tests: record the peak process-tree RSS of the tool's runs (MiB).

    ``bench/reliability_report.py`` reads it (``peak_tree_rss_mib``, or for a
    test without runs of its own ``peak_test_process_rss_mib``) from the JUnit
    XML; other tests pay nothing.
    """
    if request.node.get_closest_marker("reliability") is None:
        yield
        return
    from reliability.memory import ToolMemory

    sampler = ToolMemory()
    sampler.start()
    try:
        yield
    finally:
        peak = sampler.stop()
        if peak is not None:
            record_property("peak_tree_rss_mib", round(peak / (1 << 20), 1))
        else:  # the tool ran in-process, if at all
            record_property("peak_test_process_rss_mib", round(sampler.own_peak / (1 << 20), 1))
