import pytest


@pytest.fixture
def installed_distribution(keepdocker_installed):
    """``installed_distribution(name, entry_points={ep: module}, modules={name: source})``:
    a real distribution (dist-info and modules) that plugin discovery sees, and
    nothing else of the environment (see tests/conftest.py)."""
    return keepdocker_installed.add
