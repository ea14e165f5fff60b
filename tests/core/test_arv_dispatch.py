"""``arv``: our subcommand, its spellings, and every other ``arv`` kept working.

The Arvados SDK installed here is 3.2.1 (its dispatcher knows ``keep``,
``ws`` and ``copy``). Arvados' Ruby CLI is played by a stand-in script named
``arv`` later on PATH that prints what it was given; the 3.3-style SDK
dispatcher is tested against the local cluster in ``tests/e2e/test_arv_33.py``.
"""

import os
import stat
import subprocess
import sys

import pytest
from arv_keepdocker_testkit.scripts import BIN, script

from arv_keepdocker_plugin import __version__
from arv_keepdocker_plugin.arv import UsageError, passed_on, split_command_line

ARV = BIN / "arv"


def run(*args, env=None):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120,
                          env=env)


@pytest.fixture(scope="module", autouse=True)
def arv_installed():
    script("arv")
    script("arv-keepdocker-plugin")


@pytest.fixture
def ruby_arv(tmp_path):
    """A stand-in for Arvados' Ruby ``arv`` in a directory of its own."""
    other = tmp_path / "ruby-bin"
    other.mkdir()
    program = other / "arv"
    program.write_text('#!/bin/sh\necho "ruby arv: $*"\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return other


def path_env(*directories):
    return dict(os.environ, PATH=os.pathsep.join([str(d) for d in directories]
                                                 + ["/usr/bin", "/bin"]))


@pytest.mark.parametrize("command", [
    [str(ARV), "keepdocker"], [str(ARV), "keep", "docker"], [str(ARV), "-v", "keep", "docker"],
    [str(ARV), "-s", "keepdocker"], [str(BIN / "arv-keepdocker-plugin")],
    [sys.executable, "-m", "arv_keepdocker_plugin"]])
def test_every_spelling_is_our_command(command):
    proc = run(*command, "--version")
    assert proc.returncode == 0
    # One line (scripts parse it): the program and our version.
    assert proc.stdout.count("\n") == 1 and proc.stdout.strip().endswith(" " + __version__)
    helptext = run(*command, "--help").stdout
    assert "--list-plugins" in helptext and "--force-image-format" in helptext


def test_arv_verbose_keep_docker_is_not_the_sdks_keepdocker():
    # The SDK 3.2.1 dispatcher would have run arvados.commands.keepdocker.
    proc = run(str(ARV), "-v", "keep", "docker", "--version")
    assert proc.stdout == f"arv keepdocker {__version__}\n"


def test_keep_ws_copy_go_to_the_sdk_dispatcher():
    proc = run(str(ARV), "keep", "ls", "--help")
    assert proc.returncode == 0
    assert "usage:" in proc.stdout and "--retries" in proc.stdout  # arv-ls's own help


def test_resource_commands_reach_the_ruby_arv_on_path(ruby_arv):
    # The SDK 3.2.1 dispatcher would refuse: invalid choice: 'user'.
    proc = run(str(ARV), "user", "current", env=path_env(BIN, ruby_arv))
    assert (proc.returncode, proc.stdout) == (0, "ruby arv: user current\n")
    # Global options are the Ruby CLI's as much as ours: passed on unchanged.
    proc = run(str(ARV), "-s", "--format", "uuid", "collection", "list",
               env=path_env(BIN, ruby_arv))
    assert proc.stdout == "ruby arv: -s --format uuid collection list\n"


def test_check_install_tells_another_installation_of_ours_apart(tmp_path):
    copy = tmp_path / "other-venv"
    copy.mkdir()
    (copy / "arv").write_text(ARV.read_text())
    (copy / "arv").chmod(0o755)
    proc = run(str(BIN / "arv-keepdocker-plugin"), "--check-install", env=path_env(copy, BIN))
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == (
        "arv on PATH: {} (arv-keepdocker-plugin's, from another installation): `arv "
        "keepdocker` does not reach this tool".format(copy / "arv"))


def test_with_no_other_arv_an_unknown_subcommand_is_a_usage_error(tmp_path):
    # Another copy of our own arv on PATH is skipped, not called back and forth.
    copy = tmp_path / "other-venv"
    copy.mkdir()
    (copy / "arv").write_text(ARV.read_text())
    (copy / "arv").chmod(0o755)
    proc = run(str(ARV), "nosuchcommand", env=path_env(BIN, copy))
    assert proc.returncode == 2 and "nosuchcommand" in proc.stderr
    assert "keepdocker" in proc.stderr  # the usage names what there is


def test_arv_alone_is_a_usage_error_and_help_is_not(ruby_arv):
    proc = run(str(ARV), env=path_env(BIN))
    assert proc.returncode == 2 and proc.stderr.startswith("usage: arv ")
    proc = run(str(ARV), "--help", env=path_env(BIN, ruby_arv))
    assert proc.returncode == 0 and "keepdocker" in proc.stdout
    assert str(ruby_arv / "arv") in proc.stdout  # who gets the rest...
    assert proc.stdout.endswith("\nruby arv: --help\n")  # ...and its own help
    proc = run(str(ARV), "--help", env=path_env(BIN))
    assert proc.returncode == 0 and proc.stdout.startswith("usage: arv ")


def test_the_plugin_command_works_when_bin_arv_is_someone_elses(ruby_arv, tmp_path):
    env = path_env(ruby_arv, BIN)
    # arv is the Ruby one: it answers `arv keepdocker` itself.
    assert run("arv", "keepdocker", "--version", env=env).stdout == (
        "ruby arv: keepdocker --version\n")
    proc = run("arv-keepdocker-plugin", "--version", env=env)
    assert proc.stdout == f"arv-keepdocker-plugin {__version__}\n"
    check = run("arv-keepdocker-plugin", "--check-install", env=env)
    assert check.returncode == 1
    assert check.stdout.splitlines()[0] == (
        "arv on PATH: {} (not arv-keepdocker-plugin's): `arv keepdocker` does not reach "
        "this tool".format(ruby_arv / "arv"))
    assert "run `{}`".format(BIN / "arv-keepdocker-plugin") in check.stdout
    assert f"put {BIN} first in PATH" in check.stdout
    ours = run(str(ARV), "keepdocker", "--check-install", env=path_env(BIN, ruby_arv))
    assert ours.returncode == 0
    assert ours.stdout.splitlines() == [
        f"arv on PATH: {ARV} (arv-keepdocker-plugin's): `arv keepdocker` runs this tool"
        ,
        "other arv subcommands go to: the Arvados SDK's dispatcher (keep, ws, copy); "
        "{} (everything else)".format(ruby_arv / "arv")]


@pytest.mark.parametrize("argv, flags, rest", [
    (["keepdocker", "x"], [], ["keepdocker", "x"]),
    (["-n", "keepdocker", "x"], ["--dry-run"], ["keepdocker", "x"]),
    (["--dry-run", "-v", "--format=json", "keep", "docker"], ["--dry-run", "--json"],
     ["keep", "docker"]),
    (["-f", "json", "keepdocker"], ["--json"], ["keepdocker"]),
    (["-f", "uuid", "-s", "keepdocker", "-f"], [], ["keepdocker", "-f"]),  # keepdocker's -f
])
def test_global_options_become_our_flags(argv, flags, rest):
    line = split_command_line(argv)
    assert line.words == rest
    assert passed_on(line, "keepdocker") == flags


@pytest.mark.parametrize("argv", [["-f"], ["--format", "xml", "keepdocker"],
                                  ["-f", "yaml", "keepdocker"]])
def test_global_options_we_cannot_honour_are_usage_errors(argv):
    with pytest.raises(UsageError):
        passed_on(split_command_line(argv), "keepdocker")
    proc = run(str(ARV), *argv)
    assert proc.returncode == 2 and proc.stderr.startswith("arv: ")


def test_version_matches_3_2_1_shape():
    """--version prints a version on stdout, nothing on stderr (as
    sdk/python/tests/test_arv_keepdocker.py pins for 3.2.1)."""
    proc = run(sys.executable, "-m", "arv_keepdocker_plugin", "--version")
    assert proc.stderr == ""
    assert proc.stdout.endswith(__version__ + "\n")
