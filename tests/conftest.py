"""Fixtures for every test under tests/.

What else happens to be installed beside the product (hook packages such as
hooks/arv-keepdocker-oci-labels, other ``arv_keepdocker`` plugins, other
``arv.commands`` subcommands) changes no result here: plugin discovery sees
arv-keepdocker-plugin and what a test installs with ``keepdocker_installed``
(the test kit's fixture), as pytest's and pluggy's own tests fake
``importlib.metadata``. Commands run in a subprocess see the real
environment; their tests disable what they must (``ARV_KEEPDOCKER_DISABLE_PLUGINS``).
"""

import pytest


@pytest.fixture(autouse=True)
def only_our_plugins_are_installed(keepdocker_installed):
    return keepdocker_installed
