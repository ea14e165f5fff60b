"""Console scripts installed beside the running Python.

Tests run ``arv-put``, ``arv-keepdocker``, ``arv`` or ``arv-keepdocker-cluster``
by path, from the ``bin`` directory of the Python that runs them (the venv's),
so they work whether or not that directory is on ``PATH``::

    from arv_keepdocker_testkit.scripts import script

    subprocess.run([script("arv-put"), "--no-progress", path], ...)
"""

import sys
from pathlib import Path

__all__ = ["BIN", "script"]

#: The directory of ``sys.executable``, where pip puts console scripts.
BIN = Path(sys.executable).parent


def script(name: str) -> str:
    """The path of console script ``name`` beside this Python; fails the test if absent."""
    path = BIN / name
    if not path.exists():
        import pytest

        pytest.fail(f"console script {name} is not installed beside {sys.executable}")
    return str(path)
