"""The launcher itself: what it replaces, that nothing changes without it, and
that ``arv-keepdocker-cwl-runner`` runs arvados-cwl-runner's own ``main``."""

import os
import sys
import textwrap

import pytest

from .conftest import run, script

#: Prints, as JSON, the defining module of every attribute the launcher replaces.
ORIGINS = textwrap.dedent("""
    import json, sys
    import arvados.commands.keepdocker, arvados_cwl.arvdocker, cwltool.docker
    import arvados_cwl.arvcontainer, arvados_cwl.arvworkflow
    def origins():
        return {
            "main": arvados.commands.keepdocker.main.__module__,
            "list_images_in_arv": arvados.commands.keepdocker.list_images_in_arv.__module__,
            "determine_image_id": arvados_cwl.arvdocker.determine_image_id.__module__,
            "DockerCommandLineJob": cwltool.docker.DockerCommandLineJob.__module__,
            "arv_docker_get_image": [m.arv_docker_get_image.__code__.co_filename.rsplit(
                "/", 2)[-2] for m in (arvados_cwl.arvdocker, arvados_cwl.arvcontainer,
                                      arvados_cwl.arvworkflow)],
        }
""")

ARVADOS_OWN = {
    "main": "arvados.commands.keepdocker",
    "list_images_in_arv": "arvados.commands.keepdocker",
    "determine_image_id": "arvados_cwl.arvdocker",
    "DockerCommandLineJob": "cwltool.docker",
    "arv_docker_get_image": ["arvados_cwl"] * 3,
}


def test_importing_patches_nothing():
    """Importing this package, the launcher module and every plugin changes nothing in a-c-r."""
    code = ORIGINS + textwrap.dedent("""
        before = origins()
        import arv_keepdocker_plugin, arv_keepdocker_plugin.compat
        import arv_keepdocker_plugin.cwl_runner as cwl_runner
        from arv_keepdocker_plugin.plugins import get_plugin_manager
        get_plugin_manager().sources  # every installed plugin, loaded
        print(json.dumps([before, origins(), cwl_runner.installed()]))
    """)
    result = run([sys.executable, "-c", code], env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    import json
    before, after, installed = json.loads(result.stdout)
    assert before == after == ARVADOS_OWN
    assert installed is False


def test_install_replaces_each_attribute_and_uninstall_restores():
    import arvados.commands.keepdocker as keepdocker
    import arvados_cwl.arvcontainer as arvcontainer
    import arvados_cwl.arvdocker as arvdocker
    import arvados_cwl.arvworkflow as arvworkflow
    import cwltool.docker

    from arv_keepdocker_plugin import compat, cwl_runner

    get_image_modules = (arvdocker, arvcontainer, arvworkflow)

    def current():
        return (keepdocker.main, keepdocker.list_images_in_arv, arvdocker.determine_image_id,
                cwltool.docker.DockerCommandLineJob) + tuple(
                    m.arv_docker_get_image for m in get_image_modules)

    originals = current()
    assert len(set(originals[4:])) == 1  # a-c-r's one function, imported by name
    assert not cwl_runner.installed()
    cwl_runner.install()
    try:
        cwl_runner.install()  # idempotent: the originals are kept once
        assert keepdocker.main is cwl_runner.keepdocker_main
        assert keepdocker.list_images_in_arv is compat.list_images_in_arv
        assert arvdocker.determine_image_id is cwl_runner.determine_image_id
        check = cwltool.docker.DockerCommandLineJob
        assert check.__bases__ == (originals[3],)
        # a-c-r builds it with six Nones; it must still be a Docker job class.
        assert isinstance(check(None, None, None, None, None, None), originals[3])
        wrapped = {m.arv_docker_get_image for m in get_image_modules}
        assert len(wrapped) == 1 and wrapped.pop().__wrapped__ is originals[4]
    finally:
        cwl_runner.uninstall()
    assert current() == originals
    assert not cwl_runner.installed()
    cwl_runner.uninstall()  # a second uninstall is harmless


@pytest.mark.parametrize("command", [
    [script("arv-keepdocker-cwl-runner")],
    [sys.executable, "-m", "arv_keepdocker_plugin.cwl_runner"],
], ids=["console-script", "python-m"])
def test_version_runs_arvados_cwl_runner(command):
    result = run(command + ["--version"], env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "3.2.1" in out and "cwltool 3.1.20240508115724" in out, out


def test_usage_error_is_arvados_cwl_runners():
    """a-c-r's own argparse answers (status 2), under the launcher's name."""
    result = run([script("arv-keepdocker-cwl-runner")], env=dict(os.environ))
    assert result.returncode == 2
    assert "arv-keepdocker-cwl-runner: error: the following arguments are required: " \
        "workflow" in result.stderr


def test_missing_arvados_cwl_runner_is_one_line():
    """Without arvados-cwl-runner the launcher says so in one line, exit status 1."""
    code = textwrap.dedent("""
        import sys
        sys.modules["arvados_cwl"] = None  # what an uninstalled package looks like to import
        from arv_keepdocker_plugin.cwl_runner import main
        sys.exit(main(["--version"]))
    """)
    result = run([sys.executable, "-c", code], env=dict(os.environ))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("arv-keepdocker-cwl-runner: arvados-cwl-runner is not installed")
    assert "[cwl]" in lines[0]


TOOL = textwrap.dedent("""\
    cwlVersion: v1.2
    class: CommandLineTool
    requirements:
      DockerRequirement:
        dockerPull: cwl-launcher/hello:1
    baseCommand: echo
    inputs:
      message:
        type: string
        inputBinding: {position: 1}
    outputs: []
""")


@pytest.mark.cluster
def test_validate_through_the_launcher(arv_cluster, tmp_path):
    """``--validate`` on a CommandLineTool with a DockerRequirement, against the local cluster."""
    tool = tmp_path / "hello.cwl"
    tool.write_text(TOOL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARVADOS_")}
    env.update(arv_cluster.env("alice"), HOME=str(tmp_path))
    result = run([script("arv-keepdocker-cwl-runner"), "--validate", str(tool)], env=env,
                 cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "hello.cwl is valid CWL" in result.stdout + result.stderr


@pytest.mark.cluster
def test_invalid_workflow_fails_through_the_launcher(arv_cluster, tmp_path):
    tool = tmp_path / "broken.cwl"
    tool.write_text(TOOL.replace("baseCommand: echo\n", "baseCommand: echo\nbogus: [\n"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARVADOS_")}
    env.update(arv_cluster.env("alice"), HOME=str(tmp_path))
    result = run([script("arv-keepdocker-cwl-runner"), "--validate", str(tool)], env=env,
                 cwd=str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr


# -- the launcher's own options --------------------------------------------------

def test_launcher_options_are_the_leading_ones():
    from arv_keepdocker_plugin.cwl_runner import split_launcher_options

    assert split_launcher_options(["--trust-workflow-sources", "--submit", "wf.cwl"]) == (
        {"trust_workflow_sources": True}, ["--submit", "wf.cwl"])
    # After the first a-c-r argument everything is a-c-r's, workflow inputs included.
    assert split_launcher_options(["wf.cwl", "--trust-workflow-sources"]) == (
        {}, ["wf.cwl", "--trust-workflow-sources"])
    assert split_launcher_options([]) == ({}, [])


def test_the_trust_flag_is_removed_before_arvados_cwl_runner_parses(capsys, monkeypatch):
    """In-process: a-c-r's ``--version`` runs (an unknown flag would be a usage error)."""
    from arv_keepdocker_plugin import cwl_runner
    from arv_keepdocker_plugin.cwl_runner import workflow_images

    monkeypatch.delenv("ARV_KEEPDOCKER_TRUST_WORKFLOW_SOURCES", raising=False)
    assert not cwl_runner.installed()
    try:
        with pytest.raises(SystemExit) as exit_info:
            cwl_runner.main(["--trust-workflow-sources", "--version"])
        assert exit_info.value.code == 0
        assert cwl_runner.installed() and workflow_images.current().trust_sources
    finally:
        cwl_runner.uninstall()
    assert "3.2.1" in capsys.readouterr().out
    try:
        with pytest.raises(SystemExit):
            cwl_runner.main(["--version"])
        assert cwl_runner.installed() and not workflow_images.current().trust_sources
    finally:
        cwl_runner.uninstall()


@pytest.mark.parametrize("value, trusted", [("1", True), ("0", False), ("", False)])
def test_the_trust_environment_variable(value, trusted, monkeypatch):
    from arv_keepdocker_plugin import cwl_runner
    from arv_keepdocker_plugin.cwl_runner import workflow_images

    monkeypatch.setenv("ARV_KEEPDOCKER_TRUST_WORKFLOW_SOURCES", value)
    cwl_runner.install()
    try:
        assert workflow_images.current().trust_sources is trusted
    finally:
        cwl_runner.uninstall()
    assert workflow_images.current().trust_sources is False  # uninstalled: trusts nothing


def test_a_misplaced_trust_flag_is_arvados_cwl_runners_usage_error(tmp_path):
    """Only leading flags are the launcher's: later, a-c-r refuses it (status 2)."""
    result = run([script("arv-keepdocker-cwl-runner"), "--validate", "--trust-workflow-sources",
                  str(tmp_path / "wf.cwl")], env=dict(os.environ))
    assert result.returncode == 2
    assert "unrecognized arguments: --trust-workflow-sources" in result.stderr


def test_a_malformed_trust_variable_is_one_line():
    env = dict(os.environ, ARV_KEEPDOCKER_TRUST_WORKFLOW_SOURCES="yes")
    result = run([script("arv-keepdocker-cwl-runner"), "--version"], env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["arv-keepdocker-cwl-runner: ARV_KEEPDOCKER_TRUST_WORKFLOW_SOURCES='yes': "
                     "use 1 to let workflows name any image source, or 0"], result.stderr
