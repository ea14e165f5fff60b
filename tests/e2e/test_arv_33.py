"""``arv`` with the SDK's next dispatcher (3.3-style, not released yet), against the
local cluster: its resource commands reach it, ``keepdocker`` stays ours.

The dispatcher is the stand-in :mod:`.arvcli33`, put in the place of
``arvados.commands.arvcli`` before our ``arv`` starts.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from arv_keepdocker_plugin import __version__

LAUNCH = ("import sys, arvados.commands, arvcli33; "
          "sys.modules['arvados.commands.arvcli'] = arvados.commands.arvcli = arvcli33; "
          "from arv_keepdocker_plugin.arv import main; sys.exit(main())")


@pytest.fixture
def arv(user_env):
    # This environment's `arv` first on PATH, as after installing it (the test
    # must not depend on how pytest was started).
    bindir = str(Path(sys.executable).parent)
    env = dict(user_env, PYTHONPATH=str(Path(__file__).parent),
               PATH=bindir + os.pathsep + user_env.get("PATH", ""))

    def run(*args):
        return subprocess.run([sys.executable, "-c", LAUNCH, *args], env=env,
                              capture_output=True, text=True, timeout=120)
    return run


def test_resource_commands_reach_the_sdk_dispatcher(arv, arv_api):
    proc = arv("collection", "list", "--limit", "1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["kind"] == "arvados#collectionList"
    proc = arv("-s", "user", "current")
    assert proc.stdout == arv_api.users().current().execute()["uuid"] + "\n"


@pytest.mark.parametrize("words", [["keepdocker"], ["keep", "docker"], ["-v", "keep", "docker"]])
def test_keepdocker_stays_ours(arv, words):
    # The stand-in would run the SDK's own keepdocker for "keep docker".
    proc = arv(*words, "--version")
    assert proc.stdout == f"arv keepdocker {__version__}\n"


def test_keep_ls_goes_to_the_sdk_dispatcher(arv):
    proc = arv("keep", "ls", "--help")
    assert proc.returncode == 0 and "--retries" in proc.stdout


def test_check_install_names_the_sdk_dispatcher(arv):
    proc = arv("keepdocker", "--check-install")
    assert proc.stdout.splitlines()[-1] == (
        "other arv subcommands go to: the Arvados SDK's arv dispatcher (every other "
        "subcommand)")


def test_help_is_ours_then_the_sdk_dispatchers(arv):
    proc = arv("--help")
    assert proc.returncode == 0
    ours, theirs = proc.stdout.split("\n\n", 1)
    assert ours.startswith("usage: arv ") and "keepdocker" in ours
    assert "Arvados command line client" in theirs and "collection" in theirs
