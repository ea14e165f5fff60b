"""``--help`` says what a newcomer needs; the SDK's own option texts stay as they are;
output cut short by a closed pipe ends quietly."""

import argparse
import os
import signal
import subprocess
import sys

import arvados.commands._util as arv_cmd
import arvados.commands.put as arv_put

from arv_keepdocker_plugin.cli import build_parser
from arv_keepdocker_plugin.plugins import get_plugin_manager


def helptext():
    return build_parser(get_plugin_manager(), "arv keepdocker").format_help()


def test_help_has_examples_environment_and_exit_codes():
    text = helptext()
    assert 'With no IMAGE (or the word "images"), list the images stored in Arvados' in text
    assert "\nexamples:\n  arv keepdocker debian:12 " in text
    for variable in ("ARVADOS_API_HOST", "ARVADOS_DEBUG", "ARV_KEEPDOCKER_DISABLE_PLUGINS",
                     "DOCKER_HOST", "REGISTRY_AUTH_FILE", "CONTAINERS_REGISTRIES_CONF"):
        assert variable in text.split("\nenvironment variables:\n", 1)[1]
    exit_codes = text.split("\nexit status:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in exit_codes if line.strip()] == ["0", "1", "2", "130"]
    assert "running the same command again\n  resumes it" in text


def test_the_sdks_option_texts_are_unchanged():
    ours = {tuple(a.option_strings): a.help for a in build_parser(
        get_plugin_manager(), "arv keepdocker")._actions}
    run_opts = getattr(arv_put, "run_opts", None) or arv_put.get_run_opts()
    for parent in (run_opts, arv_cmd.retry_opt):
        for action in parent._actions:
            if action.help is not argparse.SUPPRESS:
                assert ours[tuple(action.option_strings)] == action.help


def test_a_closed_pipe_ends_quietly():
    """`arv keepdocker --list-plugins --json | head`, the reader already gone (as ls | head)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "arv_keepdocker_plugin", "--list-plugins",
                               "--json"], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.stderr == ""  # no BrokenPipeError traceback
    assert proc.returncode == 128 + signal.SIGPIPE
