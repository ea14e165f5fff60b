"""``arv``: our subcommand, its aliases, and the SDK's subcommands kept working."""

import subprocess
import sys

import pytest
from arv_keepdocker_testkit.scripts import BIN, script

from arv_keepdocker_plugin import __version__

ARV = BIN / "arv"


def run(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def arv_installed():
    script("arv")


@pytest.mark.parametrize("command", [
    [str(ARV), "keepdocker"], [str(ARV), "keep", "docker"],
    [sys.executable, "-m", "arv_keepdocker_plugin"]])
def test_every_spelling_is_our_command(command):
    proc = run(*command, "--version")
    assert proc.returncode == 0
    assert proc.stdout.strip().endswith(" " + __version__)
    helptext = run(*command, "--help").stdout
    assert "--list-plugins" in helptext and "--force-image-format" in helptext


def test_other_subcommands_go_to_the_sdk_dispatcher():
    proc = run(str(ARV), "keep", "ls", "--help")
    assert proc.returncode == 0
    assert "usage:" in proc.stdout and "--retries" in proc.stdout  # arv-ls's own help
    proc = run(str(ARV), "nosuchcommand")
    assert proc.returncode == 2 and "nosuchcommand" in proc.stderr


def test_help_lists_plugin_subcommands():
    proc = run(str(ARV), "--help")
    assert proc.returncode == 0 and "keepdocker" in proc.stdout


def test_version_matches_3_2_1_shape():
    """--version prints a version on stdout, nothing on stderr (as
    sdk/python/tests/test_arv_keepdocker.py pins for 3.2.1)."""
    proc = run(sys.executable, "-m", "arv_keepdocker_plugin", "--version")
    assert proc.stderr == ""
    assert proc.stdout.endswith(__version__ + "\n")
