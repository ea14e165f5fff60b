"""The plugin manager: defaults, entry points one by one, disabling, listing."""

import io
import json
import logging

import pytest

from arv_keepdocker_plugin import BadReference, ImageSource, __version__, cli, hookimpl
from arv_keepdocker_plugin.plugins import DEFAULT_PLUGINS, get_plugin_manager

DEFAULT_SOURCES = {"docker-daemon", "containers-storage", "docker-archive", "oci-archive", "oci",
                   "docker"}

GOOD_PLUGIN = '''
from arv_keepdocker_plugin import hookimpl
from arv_keepdocker_plugin.image import ImageSource

class Buildah(ImageSource):
    name = "buildah"
    description = "test source"

@hookimpl
def keepdocker_register_sources(register):
    register(Buildah())

@hookimpl
def keepdocker_collection_properties(image):
    return {"site:checked": True}
'''


def test_defaults_provide_every_builtin_source():
    pm = get_plugin_manager(load_entrypoints=False)
    assert set(pm.sources) == DEFAULT_SOURCES
    assert pm.sources.names() == ["docker-daemon", "containers-storage", "docker-archive",
                                  "oci-archive", "oci", "docker"]
    assert [p["name"] for p in pm.describe()] == list(DEFAULT_PLUGINS)
    assert pm.broken == []


def test_third_party_entry_point_is_loaded_with_its_version(installed_distribution):
    installed_distribution("arv-keepdocker-buildah", {"buildah": "akd_buildah"},
                           {"akd_buildah": GOOD_PLUGIN}, version="2.5")
    pm = get_plugin_manager()
    assert "buildah" in pm.sources
    info = {p["name"]: p for p in pm.describe()}["buildah"]
    assert info["version"] == "2.5"
    assert info["distribution"] == "arv-keepdocker-buildah"
    assert info["sources"] == ["buildah"]
    assert info["hooks"] == ["keepdocker_collection_properties", "keepdocker_register_sources"]
    assert info["essential"] is False


def test_broken_entry_point_is_reported_by_name_and_skipped(installed_distribution, caplog):
    installed_distribution("arv-keepdocker-broken", {"broken": "akd_broken"},
                           {"akd_broken": "raise ImportError('needs libfoo')\n"})
    with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
        pm = get_plugin_manager()
    assert set(pm.sources) == DEFAULT_SOURCES  # everything else still works
    assert [(b.name, b.distribution, b.error) for b in pm.broken] == [
        ("broken", "arv-keepdocker-broken", "needs libfoo")]
    [message] = [r.getMessage() for r in caplog.records]
    assert "'broken' from arv-keepdocker-broken failed to load" in message
    assert "ARV_KEEPDOCKER_DISABLE_PLUGINS=broken" in message


def test_plugin_with_unknown_keepdocker_hook_is_refused(installed_distribution):
    installed_distribution("arv-keepdocker-typo", {"typo": "akd_typo"}, {"akd_typo": '''
        from arv_keepdocker_plugin import hookimpl
        @hookimpl
        def keepdocker_linkz(image):
            return []
        '''})
    pm = get_plugin_manager()
    assert pm.get_plugin("typo") is None
    assert [b.name for b in pm.broken] == ["typo"]
    assert "keepdocker_linkz" in pm.broken[0].error


def test_disable_env_skips_defaults_and_third_parties(installed_distribution, monkeypatch):
    installed_distribution("arv-keepdocker-buildah", {"buildah": "akd_buildah2"},
                           {"akd_buildah2": GOOD_PLUGIN})
    monkeypatch.setenv("ARV_KEEPDOCKER_DISABLE_PLUGINS", "buildah, oci")
    pm = get_plugin_manager()
    assert set(pm.sources) == DEFAULT_SOURCES - {"oci", "oci-archive"}
    assert pm.get_plugin("buildah") is None and pm.get_plugin("oci") is None


def test_a_second_source_of_one_name_is_refused_and_reported(caplog):
    class MyArchive(ImageSource):
        name = "docker-archive"

    class Plugin:
        @hookimpl
        def keepdocker_register_sources(self, register):
            register(MyArchive())

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Plugin(), name="mine")
    with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
        sources = pm.sources
    assert not isinstance(sources["docker-archive"], MyArchive)  # the default keeps its name
    assert sources.plugin_of("docker-archive") == "docker_archive"
    [broken] = pm.broken
    assert broken.name == "mine"
    assert "source 'docker-archive' refused" in broken.error
    assert "already registered by plugin 'docker_archive'" in broken.error
    assert "ARV_KEEPDOCKER_DISABLE_PLUGINS=mine" in caplog.text
    assert pm.sources is sources  # built once per run


def test_a_disabled_default_source_leaves_its_name_to_a_third_party(monkeypatch):
    class MyArchive(ImageSource):
        name = "docker-archive"

    class Plugin:
        @hookimpl
        def keepdocker_register_sources(self, register):
            register(MyArchive())

    monkeypatch.setenv("ARV_KEEPDOCKER_DISABLE_PLUGINS", "docker_archive")
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Plugin(), name="mine")
    assert isinstance(pm.sources["docker-archive"], MyArchive)
    assert pm.broken == []


def test_unknown_and_missing_sources_are_one_line_errors():
    sources = get_plugin_manager(load_entrypoints=False).sources
    with pytest.raises(BadReference, match="unknown image source 'nope' \\(available: "):
        sources.get("nope")
    with pytest.raises(BadReference, match="no image source was chosen"):
        sources.get(None)


def test_source_registered_from_a_helper_is_attributed_to_its_plugin():
    class Tarball(ImageSource):
        name = "tarball"

    def helper(register):
        register(Tarball())

    class Plugin:
        @hookimpl
        def keepdocker_register_sources(self, register):
            helper(register)

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Plugin(), name="tarballs")
    assert pm.sources.by_plugin()["tarballs"] == ["tarball"]


@pytest.mark.parametrize("name", ["links", "oci"])
def test_third_party_named_like_a_default_is_reported(installed_distribution, name):
    installed_distribution("arv-keepdocker-impostor", {name: "akd_impostor_" + name},
                           {"akd_impostor_" + name: GOOD_PLUGIN})
    pm = get_plugin_manager()
    assert pm.get_plugin(name).__name__.startswith("arv_keepdocker_plugin.")
    assert [(b.name, b.distribution) for b in pm.broken] == [(name, "arv-keepdocker-impostor")]
    assert "name of a default plugin" in pm.broken[0].error
    out = io.StringIO()
    assert cli.run(["--list-plugins", "--json"], stdout=out) == 0
    broken = json.loads(out.getvalue())["broken"]
    assert [b["name"] for b in broken] == [name]


@pytest.mark.parametrize("name", ["format_check", "links", "source_choice"])
def test_essential_plugins_cannot_be_disabled(monkeypatch, caplog, name):
    monkeypatch.setenv("ARV_KEEPDOCKER_DISABLE_PLUGINS", name + ",layer_index")
    with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
        pm = get_plugin_manager(load_entrypoints=False)
    assert pm.get_plugin(name) is not None
    assert pm.get_plugin("layer_index") is None  # not essential
    assert "is essential and cannot be disabled" in caplog.text
    assert {p["name"]: p["essential"] for p in pm.describe()}[name] is True


def test_list_plugins_text_and_json(installed_distribution, capsys):
    installed_distribution("arv-keepdocker-buildah", {"buildah": "akd_buildah3"},
                           {"akd_buildah3": GOOD_PLUGIN}, version="2.5")
    out = io.StringIO()
    assert cli.run(["--list-plugins"], stdout=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "SOURCES", "HOOKS"]
    assert any(line.split()[:3] == ["buildah", "2.5", "buildah"] for line in lines)
    assert any(line.split()[:3] == ["docker_daemon", __version__, "docker-daemon"]
               for line in lines)

    out = io.StringIO()
    assert cli.run(["--list-plugins", "--json"], stdout=out) == 0
    data = json.loads(out.getvalue())
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["buildah"]["version"] == "2.5"
    assert by_name["oci"]["sources"] == ["oci-archive", "oci"]
    assert data["broken"] == []
