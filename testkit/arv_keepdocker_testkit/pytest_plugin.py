"""pytest fixtures for hook authors and this project's own tests.

Registered through the ``pytest11`` entry point, so any test suite in an
environment where arv-keepdocker-plugin is installed can use them with no setup:
the local cluster and per-user API clients (:mod:`.cluster.fixtures`) and real
container engines (:mod:`.engines_fixtures`).
"""

from .cluster.fixtures import *  # noqa: F401,F403
from .engines_fixtures import *  # noqa: F401,F403
