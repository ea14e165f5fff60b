"""Hooks take effect: a plugin registered in a test changes what gets linked,
and every hook specification is called during a real upload."""

import io

import pytest
from arv_keepdocker_testkit import imagebuild

from arv_keepdocker_plugin import FormatVerdict, cli, hookimpl, hookspecs
from arv_keepdocker_plugin.plugins import get_plugin_manager

from .conftest import image_links


@pytest.fixture
def archive(tmp_path, unique):
    image = imagebuild.build_image(
        [{"etc/hello": unique.encode()}, {"bin/app": b"#!/bin/sh\n"}],
        repo_tags=[f"{unique}:1"],
        labels={"org.opencontainers.image.revision": "abc123", "other": "x"})
    path = tmp_path / "image.tar"
    imagebuild.write_docker_archive(str(path), [image])
    return path, image


@pytest.fixture
def in_process(monkeypatch, tmp_path, arv_api):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def run(pm, *args):
        out = io.StringIO()
        status, outcome = cli.execute(list(args), stdout=out, install_sig_handlers=False,
                                      api=arv_api, pm=pm)
        return status, outcome, out.getvalue().strip()
    return run


class Recorder:
    """Implements every hook and records the calls."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def keepdocker_add_arguments(self, parser):
        self.calls.append("keepdocker_add_arguments")
        parser.add_argument("--recorder-note", default="none")

    @hookimpl
    def keepdocker_register_sources(self, register):
        self.calls.append("keepdocker_register_sources")

    @hookimpl
    def keepdocker_stored_layers(self, digests):
        self.calls.append("keepdocker_stored_layers")
        assert digests  # the image's layer digests; no answer: the default answers

    @hookimpl
    def keepdocker_default_source(self, reference):
        self.calls.append("keepdocker_default_source")

    @hookimpl
    def keepdocker_check_format(self, image, supported_formats):
        self.calls.append("keepdocker_check_format")

    @hookimpl
    def keepdocker_collection_properties(self, image, options):
        self.calls.append("keepdocker_collection_properties")
        return {"recorder:note": options.recorder_note, "recorder:id": image.image_id}

    @hookimpl
    def keepdocker_links(self, image, repo_tag):
        self.calls.append("keepdocker_links")
        return [{"link_class": "recorder_seen", "name": repo_tag, "properties": {}}]

    @hookimpl
    def keepdocker_after_upload(self, collection, links):
        self.calls.append("keepdocker_after_upload")
        self.after = (collection["uuid"], [l["link_class"] for l in links])


def test_a_registered_plugin_changes_links_and_properties(archive, in_process, arv_api, unique):
    path, image = archive
    recorder = Recorder()
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(recorder, name="recorder")
    status, outcome, uuid = in_process(pm, "--no-progress", "--recorder-note", "hi",
                                       f"docker-archive:{path}")
    assert (status, outcome) == (0, "uploaded")
    properties = arv_api.collections().get(uuid=uuid).execute()["properties"]
    assert properties == {"docker-image-repo-tag": f"{unique}:1",
                          "recorder:note": "hi", "recorder:id": image.image_id}
    assert [l[:2] for l in image_links(arv_api, uuid)] == sorted([
        ("docker_image_hash", image.image_id),
        ("docker_image_repo+tag", f"{unique}:1"),
        ("recorder_seen", f"{unique}:1")])
    assert recorder.after == (uuid, ["docker_image_hash", "docker_image_repo+tag",
                                     "recorder_seen"])
    # Every hook specification was called (the bare-name hook needs a bare name).
    in_process(pm, "--no-progress", "no-such-bare-name-" + unique)
    specs = {name for name in dir(hookspecs) if name.startswith("keepdocker_")}
    assert set(recorder.calls) == specs


def test_a_failing_link_hook_leaves_nothing_behind(archive, in_process, arvados_state):
    path, image = archive

    class BadLinks:
        @hookimpl
        def keepdocker_links(self):
            # The owner is not a readable object: the API server refuses the link.
            return [{"link_class": "x", "name": "y", "properties": {},
                     "tail_uuid": "zzzzz-tpzed-nosuchuser00000"}]

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(BadLinks(), name="bad")
    before = arvados_state.snapshot()
    status, outcome, out = in_process(pm, "--no-progress", f"docker-archive:{path}")
    assert (status, outcome, out) == (1, "failed", "")
    assert arvados_state.snapshot() == before


def test_a_format_check_plugin_can_refuse(archive, in_process, arvados_state):
    path, image = archive

    class Strict:
        @hookimpl
        def keepdocker_check_format(self, image):
            return FormatVerdict(False, "site policy: no unsigned images")

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Strict(), name="strict")
    before = arvados_state.snapshot()
    status, outcome, out = in_process(pm, "--no-progress", f"docker-archive:{path}")
    assert status == 1 and out == ""
    assert arvados_state.snapshot() == before
