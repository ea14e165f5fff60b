"""A workflow is untrusted input: what it may make the submitter's launcher read and store.

arvados-cwl-runner 3.2.1 hands a ``DockerRequirement``'s names to the image
lookups and to keepdocker (split at every ``:``, without ``--``). These tests
play the workflow author: each hostile requirement goes through a-c-r's own
``arvados_cwl.arvdocker.arv_docker_get_image`` with the launcher installed,
against the local cluster, the session's podman store and the submitter's
private files. Every file access under the private directory is watched with
an audit hook (``open``, ``os.listdir``, ``os.scandir``, any subprocess whose
arguments name it) plus ``os.stat``/``os.lstat``; the trusted runs show the
watch sees the same files being read.
"""

import logging
import os
import re
import sys

import pytest
from arv_keepdocker_testkit import imagebuild

from arv_keepdocker_plugin import ImageSource, Reference, hookimpl

from .test_cwl_images import assert_uploaded, get_image

#: The audit hook's current listeners (a hook cannot be removed, so one hook serves all).
_LISTENERS = []
_HOOKED = []


def _audit(event, args):
    for listener in list(_LISTENERS):
        listener(event, args)


def _strings(value):
    """Every str in ``value`` (str, bytes, os.PathLike, or a list/tuple of them)."""
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif isinstance(value, (str, os.PathLike)):
        yield os.fspath(value)


@pytest.fixture
def private(tmp_path, unique):
    """The submitter's private images: a docker-archive and an OCI layout directory."""
    directory = tmp_path / "private"
    directory.mkdir()
    archive_image = imagebuild.build_image([{"secret.txt": b"archive " + unique.encode()}],
                                           repo_tags=[f"private/{unique}:1"])
    imagebuild.write_docker_archive(directory / "app.tar", [archive_image])
    layout_image = imagebuild.build_image([{"secret.txt": b"layout " + unique.encode()}])
    imagebuild.write_oci_layout(directory / "layout",
                                [(f"private/{unique}-oci:1", layout_image)], as_tar=False)

    class Private:
        root = str(directory)
        archive = str(directory / "app.tar")
        layout = str(directory / "layout")
        archive_id = archive_image.image_id
        archive_name = f"private/{unique}:1"
        layout_id = layout_image.image_id
        layout_name = f"private/{unique}-oci:1"
    return Private


@pytest.fixture
def accesses(private, monkeypatch):
    """Every access to a path under ``private.root`` while the test runs: ``[(event, path)]``."""
    seen = []

    def note(event, values):
        for text in _strings(values):
            if private.root in text:
                seen.append((event, text))

    def listener(event, args):
        if event in ("open", "os.listdir", "os.scandir") and args:
            note(event, args[0])
        elif event == "subprocess.Popen":
            note(event, args[1])

    for name in ("stat", "lstat"):
        original = getattr(os, name)

        def watched(path, *args, _original=original, _name=name, **kwargs):
            if not isinstance(path, int):
                note("os." + _name, path)
            return _original(path, *args, **kwargs)
        monkeypatch.setattr(os, name, watched)
    if not _HOOKED:
        sys.addaudithook(_audit)
        _HOOKED.append(True)
    _LISTENERS.append(listener)
    yield seen
    _LISTENERS.remove(listener)


@pytest.fixture
def trusting_launcher():
    """The launcher installed as ``arv-keepdocker-cwl-runner --trust-workflow-sources`` does."""
    from arv_keepdocker_plugin import cwl_runner

    assert not cwl_runner.installed(), "a previous test left the launcher installed"
    cwl_runner.install(trust_workflow_sources=True)
    yield cwl_runner
    cwl_runner.uninstall()


def refusals(caplog):
    """The launcher's refusal lines."""
    return [r for r in caplog.records
            if r.name == "arvados.keepdocker" and r.getMessage().startswith("refused")]


#: ``(id, requirement, pull_image, a-c-r settings, what the one line says)``; ``{archive}``
#: and ``{layout}`` are the submitter's private files.
HOSTILE = [
    ("option-in-dockerImageId",
     {"dockerImageId": "--source=docker-archive:{archive}"}, True, {}, "cannot start with '-'"),
    # a-c-r 3.2.1 checks dockerPull, then uploads the split dockerImageId:
    # before the launcher refused it, keepdocker got --source=docker-archive PATH.
    ("option-in-dockerImageId-with-a-loadable-dockerPull",
     {"dockerImageId": "--source=docker-archive:{archive}",
      "dockerPull": "docker-archive:{archive}"}, True, {}, "cannot start with '-'"),
    ("oci-option-on-create-workflow",  # --create-workflow: copy_deps and match_local_docker
     {"dockerImageId": "--source=oci:{layout}", "dockerPull": "oci:{layout}"}, True,
     {"copy_deps": True, "match_local_docker": True}, "cannot start with '-'"),
    ("oci-option-on-workflow-registration",  # arvworkflow.py: pull_image False
     {"dockerImageId": "--source=oci:{layout}", "dockerPull": "oci:{layout}"}, False,
     {"copy_deps": True, "match_local_docker": True}, "cannot start with '-'"),
    ("docker-archive-dockerPull",
     {"dockerPull": "docker-archive:{archive}"}, True, {}, "not the 'docker-archive' source"),
    ("docker-archive-dockerImageId-on-create-workflow",
     {"dockerImageId": "docker-archive:{archive}"}, False,
     {"copy_deps": True, "match_local_docker": True}, "not the 'docker-archive' source"),
    ("oci-dockerPull", {"dockerPull": "oci:{layout}"}, True, {}, "not the 'oci' source"),
    ("oci-archive-dockerPull",
     {"dockerPull": "oci-archive:{archive}"}, True, {}, "not the 'oci-archive' source"),
    ("containers-storage-store-spec",
     {"dockerPull": "containers-storage:[vfs@{layout}+{layout}]{name}"}, True, {},
     "cannot choose the containers-storage store"),
    ("dockerLoad", {"dockerLoad": "{archive}", "dockerImageId": "{name}"}, True, {},
     "cwltool would load it from a file or URL"),
    ("dockerImport", {"dockerImport": "{archive}", "dockerImageId": "{name}"}, True,
     {}, "cwltool would load it from a file or URL"),
]


def fill(requirement, private):
    return {key: value.format(archive=private.archive, layout=private.layout,
                              name=private.archive_name)
            for key, value in requirement.items()}


@pytest.mark.engines
@pytest.mark.cluster
@pytest.mark.reliability
@pytest.mark.parametrize("requirement, pull_image, settings, says",
                         [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_a_hostile_docker_requirement(requirement, pull_image, settings, says, launcher,
                                      only_podman, arv_env, arv_api, arv_project, snapshot,
                                      private, accesses, caplog):
    """Nothing of the submitter's local images is read or stored; one line says why."""
    from cwltool.errors import WorkflowException

    project = arv_project["uuid"]
    before = snapshot()
    with pytest.raises(WorkflowException, match="not available|keepdocker exited with code"):
        get_image(arv_api, fill(requirement, private), pull_image=pull_image,
                  project_uuid=project, **settings)
    assert snapshot() == before, "a hostile workflow wrote to Arvados"
    assert accesses == [], "the launcher touched the submitter's private files"
    lines = refusals(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    message = lines[0].getMessage()
    assert says in message
    assert "\n" not in message
    if "'-'" not in says:  # what the person running the launcher can do about it
        assert "--trust-workflow-sources" in message
        assert "ARV_KEEPDOCKER_TRUST_WORKFLOW_SOURCES=1" in message


# -- with the submitter's opt-in ----------------------------------------------

@pytest.mark.engines
@pytest.mark.cluster
@pytest.mark.parametrize("kind", ["docker-archive", "oci"])
def test_trusted_local_source_is_stored(kind, trusting_launcher, only_podman, arv_env, arv_api,
                                        arv_api_admin, arv_project, snapshot, private,
                                        accesses, caplog):
    """With the opt-in a workflow may name a local archive: the image the check found is stored.

    a-c-r 3.2.1 then looks the image up under the name it split
    (``docker-archive``, ``PATH``), which no link carries: its own error.
    """
    from cwltool.errors import WorkflowException

    path, image_id, repo_tag = ((private.archive, private.archive_id, private.archive_name)
                                if kind == "docker-archive" else
                                (private.layout, private.layout_id, private.layout_name))
    reference = f"{kind}:{path}"
    project = arv_project["uuid"]
    before = snapshot()
    with pytest.raises(WorkflowException, match=f"Could not find Docker image {reference}"):
        get_image(arv_api, {"dockerPull": reference}, project_uuid=project)
    assert_uploaded(arv_api_admin, before, snapshot(), None, image_id, repo_tag, owner=project)
    assert accesses, "the watch saw no access: it would not have seen one above either"
    assert refusals(caplog) == []


@pytest.mark.engines
@pytest.mark.cluster
def test_an_option_stays_refused_when_trusted(trusting_launcher, only_podman, arv_env, arv_api,
                                              arv_project, snapshot, private, accesses, caplog):
    """The opt-in lets a workflow name sources, never pass keepdocker an option."""
    from cwltool.errors import WorkflowException

    before = snapshot()
    with pytest.raises(WorkflowException, match="not available"):
        get_image(arv_api, {"dockerImageId": "--source=docker-archive:" + private.archive,
                            "dockerPull": "docker-archive:" + private.archive},
                  project_uuid=arv_project["uuid"])
    assert snapshot() == before
    assert accesses == []
    [line] = refusals(caplog)
    assert "cannot start with '-'" in line.getMessage()


# -- keepdocker.main as a-c-r calls it ------------------------------------------

@pytest.mark.parametrize("arguments, status, says", [
    (["--project-uuid=zzzzz-j7d0g-000000000000000", "--source=docker-archive", "{archive}"],
     1, "cannot start with '-'"),
    (["--source=oci", "{layout}"], 1, "cannot start with '-'"),
    (["docker", "--pull"], 1, "cannot start with '-'"),
    # a-c-r's split of a name the lookups never let through (Arvados had
    # something under that split name): still the workflow rule.
    (["--project-uuid=zzzzz-j7d0g-000000000000000", "docker-archive", "{archive}"],
     1, "not the 'docker-archive' source"),
    (["oci-archive", "{archive}"], 1, "not the 'oci-archive' source"),
    (["--force", "private/app", "1"], 2, "[--project-uuid=UUID] IMAGE [TAG]; got 3"),
    ([], 2, "got 0"),
    (["--project-uuid=--source=oci", "x"], 2, "not a project uuid"),
], ids=["project-and-option", "option", "option-as-tag", "archive-split", "oci-archive-split",
        "three-arguments", "none", "bad-project"])
def test_keepdocker_main_takes_only_what_a_c_r_passes(arguments, status, says, launcher, private,
                                                       accesses, caplog):
    """Refused before any source, engine or Arvados is asked: one line, 1 or 2 (a usage error)."""
    import arvados.commands.keepdocker

    filled = [a.format(archive=private.archive, layout=private.layout) for a in arguments]
    with pytest.raises(SystemExit) as exit_info:
        arvados.commands.keepdocker.main(filled, stdout=sys.stderr, install_sig_handlers=False,
                                         api=None)
    assert exit_info.value.code == status
    lines = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert says in lines[0].getMessage()
    assert accesses == []


def test_keepdocker_main_arguments_put_the_image_after_double_dash(launcher, monkeypatch):
    """What reaches the tool's own parser: the project, ``--``, then IMAGE and TAG."""
    from arv_keepdocker_plugin.cwl_runner.keepdocker_call import upload_arguments

    monkeypatch.setenv("PATH", "/nonexistent-akd-cwl")
    monkeypatch.delenv("DOCKER_HOST", raising=False)  # no engine to probe for bare names
    project = "--project-uuid=zzzzz-j7d0g-000000000000000"
    assert upload_arguments([project, "private/app", "1"]) == [project, "--", "private/app", "1"]
    assert upload_arguments(["app"]) == ["--", "app"]
    assert upload_arguments(["docker-daemon", "app"]) == ["--", "docker-daemon", "app"]


def test_a_split_transport_name_is_put_back_together(trusting_launcher, private, monkeypatch):
    """A name the lookups let through reaches the upload whole; two that split alike: refused."""
    from arv_keepdocker_plugin.cwl_runner import local_image_id
    from arv_keepdocker_plugin.cwl_runner.keepdocker_call import upload_arguments
    from arv_keepdocker_plugin.cwl_runner.workflow_images import Refused

    monkeypatch.setenv("PATH", "/nonexistent-akd-cwl")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    reference = f"docker-archive:{private.archive}:{private.archive_name}"
    assert local_image_id(reference) == private.archive_id
    assert upload_arguments(["docker-archive", private.archive]) == ["--", reference]
    assert local_image_id(f"docker-archive:{private.archive}") == private.archive_id
    with pytest.raises(Refused, match="under that same name"):
        upload_arguments(["docker-archive", private.archive])


def test_the_rule_without_the_opt_in(launcher, private, monkeypatch, accesses, caplog):
    """Which names a workflow may use: bare names, docker://, engine stores; nothing local."""
    from arv_keepdocker_plugin.cwl_runner import local_image_id

    monkeypatch.setenv("PATH", "/nonexistent-akd-cwl")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    for allowed in ("private/app:1", "docker-daemon:private/app:1",
                    "containers-storage:private/app:1"):
        caplog.clear()
        assert local_image_id(allowed) is None  # no engine answers here
        assert refusals(caplog) == [], allowed
        assert "not found locally" in caplog.text
    caplog.clear()
    assert local_image_id("docker-archive:" + private.archive) is None
    assert local_image_id("docker-archive:" + private.archive) is None
    assert len(refusals(caplog)) == 1, "a refusal is said once per launcher run"
    assert accesses == []


def test_the_documented_line_is_the_real_one(launcher, caplog):
    from pathlib import Path

    from arv_keepdocker_plugin.cwl_runner import local_image_id

    assert local_image_id("docker-archive:/home/you/private.tar") is None
    [line] = refusals(caplog)
    docs = Path(__file__).resolve().parents[2] / "docs" / "arvados-cwl-runner.md"
    assert f"\narvados.keepdocker WARNING: {line.getMessage()}\n" in docs.read_text()


# -- third-party sources ----------------------------------------------------------

class SiteSource(ImageSource):
    """A third-party source that remembers every name it was asked to parse."""

    serves_bare_names = True

    def __init__(self, name):
        self.name = name
        self.parsed = []

    def parse(self, details, tag):
        self.parsed.append(details)
        return Reference(raw=details, name=details, tag=tag or "latest")


def site_plugin_manager(source_name, takes_bare=None, replaces=None):
    """The default plugins (less ``replaces``) plus a site plugin registering ``source_name``."""
    from arv_keepdocker_plugin.plugins import get_plugin_manager

    source = SiteSource(source_name)

    class Site:
        @hookimpl
        def keepdocker_register_sources(self, register):
            register(source)

        @hookimpl
        def keepdocker_default_source(self, reference):
            return source_name if takes_bare and reference.startswith(takes_bare) else None

    pm = get_plugin_manager(load_entrypoints=False)
    if replaces:
        pm.unregister(name=replaces)
    pm.register(Site(), name="site")
    return pm, source


@pytest.mark.parametrize("source_name, reference, takes_bare, replaces, says", [
    ("site-store", "site-store:app:1", None, None, "not the 'site-store' source"),
    ("site-store", "site/app:1", "site/", None, "not the 'site-store' source"),
    ("docker-daemon", "docker-daemon:app:1", None, "docker_daemon",
     "not the 'docker-daemon' source (served by plugin 'site')"),
], ids=["by-prefix", "bare-name-sent-to-it", "replacing-a-default"])
def test_third_party_sources_need_the_opt_in(source_name, reference, takes_bare, replaces, says):
    from arv_keepdocker_plugin.cwl_runner.workflow_images import Refused, WorkflowImages

    pm, source = site_plugin_manager(source_name, takes_bare, replaces)
    with pytest.raises(Refused, match=re.escape(says)):
        WorkflowImages().admit(pm, reference)
    assert source.parsed == [], "a refused name reached the source"
    _options, picked = WorkflowImages(trust_sources=True).admit(pm, reference)
    assert picked.name == source_name


def test_the_registry_fallback_is_only_this_packages_docker_source():
    """With no engine, a dockerPull is fetched only through our own docker:// source: a
    plugin that replaces it needs the opt-in (and is never handed the name before)."""
    from arv_keepdocker_plugin.cwl_runner.workflow_images import Refused, WorkflowImages

    pm, source = site_plugin_manager("docker", replaces="registry")
    with pytest.raises(Refused, match=re.escape("the docker:// source that would take it "
                                                "from its registry is served by plugin "
                                                "'site'")):
        WorkflowImages().admit_registry_fallback(pm, "quay.io/org/app:1")
    assert source.parsed == []
    WorkflowImages(trust_sources=True).admit_registry_fallback(pm, "quay.io/org/app:1")
    from arv_keepdocker_plugin.plugins import get_plugin_manager
    WorkflowImages().admit_registry_fallback(get_plugin_manager(load_entrypoints=False),
                                             "quay.io/org/app:1")
