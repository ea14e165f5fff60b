"""The reliability suite: hostile users, kills, faults and bad input, against the
local cluster and real engines. Every test here carries the ``reliability``
marker (slow; excluded from the fast selection, run by .ci/run)."""

import pytest
from e2e.conftest import (  # noqa: F401
    ArvadosState,
    Runner,
    arvados_state,
    base_env,
    docker_user_env,
    image_links,
    keepdocker,
    unique,
    user_env,
)


def pytest_collection_modifyitems(items):
    for item in items:
        if "/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)
