"""Choosing the source: transport prefix, --source, or the default for a bare name."""

import argparse

import pytest

from arv_keepdocker_plugin import BadReference, ImageSource, Reference, hookimpl
from arv_keepdocker_plugin.defaults import source_choice
from arv_keepdocker_plugin.plugins import get_plugin_manager
from arv_keepdocker_plugin.steps.resolve import choose_source


class Engine(ImageSource):
    serves_bare_names = True

    def __init__(self, name, up):
        self.name, self.up = name, up

    def available(self, options):
        return self.up

    def parse(self, details, tag):
        return Reference(raw=details, name=details, tag=tag or "latest")


@pytest.mark.parametrize("docker, podman, chosen", [
    (True, True, "docker-daemon"),
    (False, True, "containers-storage"),
    (False, False, "docker-daemon"),  # its error says the engine is missing
])
def test_a_bare_name_goes_to_the_engine_that_answers(docker, podman, chosen):
    sources = {"containers-storage": Engine("containers-storage", podman),
               "docker-daemon": Engine("docker-daemon", docker)}
    assert source_choice.keepdocker_default_source(sources, argparse.Namespace()) == chosen


def test_without_engine_sources_there_is_no_default():
    assert source_choice.keepdocker_default_source({}, argparse.Namespace()) is None


def options(image, source=None, tag=None):
    return argparse.Namespace(image=image, source=source, tag=tag)


def test_transport_prefix_and_source_flag_pick_the_source():
    pm = get_plugin_manager(load_entrypoints=False)
    source, ref, by_default = choose_source(pm, options("docker-archive:/x.tar:app:1"))
    assert (source.name, ref.path, ref.repo_tag, by_default) == (
        "docker-archive", "/x.tar", "app:1", False)
    assert ref.raw == "docker-archive:/x.tar:app:1" and ref.transport == "docker-archive"
    source, ref, _ = choose_source(pm, options("/x.tar", source="docker-archive"))
    assert (source.name, ref.path) == ("docker-archive", "/x.tar")


def test_a_plugin_answers_for_bare_names_before_the_default():
    class Mine:
        @hookimpl
        def keepdocker_register_sources(self, register):
            register(Engine("mine", True))

        @hookimpl
        def keepdocker_default_source(self, reference):
            return "mine" if reference.startswith("site/") else None

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Mine(), name="mine")
    source, ref, by_default = choose_source(pm, options("site/app:2"))
    assert (source.name, ref.raw, by_default) == ("mine", "site/app:2", True)


def test_no_source_chosen_is_a_clear_error():
    pm = get_plugin_manager(load_entrypoints=False)
    pm.unregister(name="docker_daemon")
    pm.unregister(name="containers_storage")
    with pytest.raises(BadReference, match="no image source was chosen for this reference"):
        choose_source(pm, options("app:1"))
    with pytest.raises(BadReference, match="unknown image source 'nope'"):
        choose_source(pm, options("app:1", source="nope"))
