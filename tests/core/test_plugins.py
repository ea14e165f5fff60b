"""The plugin manager: defaults, entry points one by one, disabling, listing."""

import io
import json
import logging


from arv_keepdocker_plugin import cli, hookimpl
from arv_keepdocker_plugin.image import ImageSource
from arv_keepdocker_plugin.plugins import DEFAULT_PLUGINS, get_plugin_manager

DEFAULT_SOURCES = {"docker-daemon", "containers-storage", "docker-archive", "oci-archive", "oci"}

GOOD_PLUGIN = '''
from arv_keepdocker_plugin import hookimpl
from arv_keepdocker_plugin.image import ImageSource

class Buildah(ImageSource):
    name = "buildah"
    description = "test source"

@hookimpl
def keepdocker_image_sources():
    return [Buildah()]

@hookimpl
def keepdocker_collection_properties(image):
    return {"site:checked": True}
'''


def test_defaults_provide_every_builtin_source():
    pm = get_plugin_manager(load_entrypoints=False)
    assert set(pm.sources()) == DEFAULT_SOURCES
    assert [p["name"] for p in pm.describe()] == list(DEFAULT_PLUGINS)


def test_third_party_entry_point_is_loaded_with_its_version(installed_distribution):
    installed_distribution("arv-keepdocker-buildah", {"buildah": "akd_buildah"},
                           {"akd_buildah": GOOD_PLUGIN}, version="2.5")
    pm = get_plugin_manager()
    assert "buildah" in pm.sources()
    info = {p["name"]: p for p in pm.describe()}["buildah"]
    assert info["version"] == "2.5"
    assert info["distribution"] == "arv-keepdocker-buildah"
    assert info["sources"] == ["buildah"]
    assert info["hooks"] == ["keepdocker_collection_properties", "keepdocker_image_sources"]


def test_broken_entry_point_is_reported_by_name_and_skipped(installed_distribution, caplog):
    installed_distribution("arv-keepdocker-broken", {"broken": "akd_broken"},
                           {"akd_broken": "raise ImportError('needs libfoo')\n"})
    with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
        pm = get_plugin_manager()
    assert set(pm.sources()) == DEFAULT_SOURCES  # everything else still works
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
    assert set(pm.sources()) == DEFAULT_SOURCES - {"oci", "oci-archive"}
    assert pm.get_plugin("buildah") is None and pm.get_plugin("oci") is None


def test_a_later_plugin_replaces_a_source_of_the_same_name():
    class MyArchive(ImageSource):
        name = "docker-archive"

    class Plugin:
        @hookimpl
        def keepdocker_image_sources(self):
            return [MyArchive()]

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Plugin(), name="mine")
    assert isinstance(pm.sources()["docker-archive"], MyArchive)


def test_list_plugins_text_and_json(installed_distribution, capsys):
    installed_distribution("arv-keepdocker-buildah", {"buildah": "akd_buildah3"},
                           {"akd_buildah3": GOOD_PLUGIN}, version="2.5")
    out = io.StringIO()
    assert cli.run(["--list-plugins"], stdout=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "SOURCES", "HOOKS"]
    assert any(line.split()[:3] == ["buildah", "2.5", "buildah"] for line in lines)
    assert any(line.split()[:3] == ["docker_daemon", "0.1.0", "docker-daemon"] for line in lines)

    out = io.StringIO()
    assert cli.run(["--list-plugins", "--json"], stdout=out) == 0
    data = json.loads(out.getvalue())
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["buildah"]["version"] == "2.5"
    assert by_name["oci"]["sources"] == ["oci-archive", "oci"]
    assert data["broken"] == []
