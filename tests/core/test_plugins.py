"""The plugin manager: defaults, entry points one by one, disabling, listing.

Hermetic: plugin discovery sees arv-keepdocker-plugin and the distributions
these tests install, nothing else of the environment (tests/conftest.py).
"""

import functools
import io
import json
import logging
import re

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
        sources.require("nope")
    with pytest.raises(BadReference, match="no image source was chosen"):
        sources.require(None)


def test_the_catalogue_is_a_mapping():
    sources = get_plugin_manager(load_entrypoints=False).sources
    assert sources.get("nope") is None
    marker = object()
    assert sources.get("nope", marker) is marker
    assert sources.get("oci") is sources["oci"] is sources.require("oci")
    assert "oci" in sources and "nope" not in sources
    assert dict(sources.items()) == {name: sources[name] for name in sources}
    with pytest.raises(KeyError):
        sources["nope"]


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
    # Then every source, its plugin, its description and what to type.
    table = lines[lines.index(""):]
    assert table[1].split() == ["SOURCE", "PLUGIN", "DESCRIPTION"]
    assert table[-2:] == ["buildah               buildah               test source",
                          " " * 44 + "buildah:DETAILS"]

    out = io.StringIO()
    assert cli.run(["--list-plugins", "--json"], stdout=out) == 0
    data = json.loads(out.getvalue())
    by_name = {p["name"]: p for p in data["plugins"]}
    assert by_name["buildah"]["version"] == "2.5"
    assert by_name["oci"]["sources"] == ["oci-archive", "oci"]
    assert data["broken"] == []
    assert [s["name"] for s in data["sources"]] == list(DEFAULT_SOURCES_IN_ORDER) + ["buildah"]
    buildah = data["sources"][-1]
    assert buildah == {"name": "buildah", "prefix": "buildah:", "syntax": "DETAILS",
                       "plugin": "buildah", "description": "test source",
                       "honours_platform": False}


DEFAULT_SOURCES_IN_ORDER = ("docker-daemon", "containers-storage", "docker-archive",
                            "oci-archive", "oci", "docker")


# -- each source credited to the plugin that registered it ------------------------

SHARED_DECORATOR = '''
import functools

def logged(hook):
    """One decorator shared by several plugins: their hooks share its code object."""
    @functools.wraps(hook)
    def wrapper(*args, **kwargs):
        return hook(*args, **kwargs)
    return wrapper
'''

DECORATED_PLUGIN = '''
from arv_keepdocker_plugin import hookimpl
from arv_keepdocker_plugin.image import ImageSource
from akd_shared import logged

class Source(ImageSource):
    name = "{source}"
    description = "{source} (decorated)"

@hookimpl
@logged
def keepdocker_register_sources(register):
    register(Source())
'''


def test_sources_of_hooks_sharing_one_decorator_are_each_credited_right(installed_distribution):
    installed_distribution("akd-shared", {}, {"akd_shared": SHARED_DECORATOR})
    for n in ("one", "two"):
        installed_distribution("arv-keepdocker-" + n, {n: "akd_" + n},
                               {"akd_" + n: DECORATED_PLUGIN.format(source=n + "-src")})
    out = io.StringIO()
    assert cli.run(["--list-plugins", "--json"], stdout=out) == 0
    data = json.loads(out.getvalue())
    plugins = {p["name"]: p for p in data["plugins"]}
    assert (plugins["one"]["sources"], plugins["two"]["sources"]) == (["one-src"], ["two-src"])
    assert {s["name"]: s["plugin"] for s in data["sources"]}["two-src"] == "two"
    assert data["broken"] == []


def test_a_clash_from_a_shared_decorator_names_the_plugin_that_clashed(installed_distribution,
                                                                        caplog):
    installed_distribution("akd-shared", {}, {"akd_shared": SHARED_DECORATOR})
    installed_distribution("arv-keepdocker-first", {"first": "akd_first"},
                           {"akd_first": DECORATED_PLUGIN.format(source="same")})
    installed_distribution("arv-keepdocker-second", {"second": "akd_second"},
                           {"akd_second": DECORATED_PLUGIN.format(source="same")})
    with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
        pm = get_plugin_manager()
        sources = pm.sources
    assert sources.plugin_of("same") == "first"
    [broken] = pm.broken
    assert (broken.name, broken.distribution) == ("second", "arv-keepdocker-second")
    assert "already registered by plugin 'first'" in broken.error
    assert "ARV_KEEPDOCKER_DISABLE_PLUGINS=second" in caplog.text


def test_methods_wrapped_alike_are_credited_to_their_own_plugin():
    def passthrough(hook):
        @functools.wraps(hook)
        def wrapper(*args, **kwargs):
            return hook(*args, **kwargs)
        return wrapper

    class Named(ImageSource):
        def __init__(self, name):
            self.name = name

    class Plugin:
        def __init__(self, source):
            self.source = source

        @hookimpl
        @passthrough
        def keepdocker_register_sources(self, register):
            register(Named(self.source))

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Plugin("a-src"), name="a")
    pm.register(Plugin("b-src"), name="b")
    assert pm.sources.by_plugin()["a"] == ["a-src"]
    assert pm.sources.by_plugin()["b"] == ["b-src"]


def test_a_register_hook_that_raises_is_reported_and_the_rest_works(caplog):
    class Plugin:
        @hookimpl
        def keepdocker_register_sources(self, register):
            raise RuntimeError("no licence file")

    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(Plugin(), name="failing")
    with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
        assert set(pm.sources) == DEFAULT_SOURCES
    [broken] = pm.broken
    assert broken.name == "failing"
    assert broken.error == "keepdocker_register_sources failed: no licence file"


# -- the help and the disabling variable ---------------------------------------------

def test_help_lists_every_source_with_its_syntax_and_description(installed_distribution,
                                                                 capsys):
    installed_distribution("arv-keepdocker-buildah", {"buildah": "akd_buildah4"},
                           {"akd_buildah4": GOOD_PLUGIN})
    with pytest.raises(SystemExit):
        cli.run(["--help"])
    # argparse wraps lines, also after the hyphen of a hyphenated word
    text = re.sub(r"(\w)- (\w)", r"\1-\2", " ".join(capsys.readouterr().out.split()))
    assert "buildah:DETAILS (test source)" in text
    assert "docker-archive:PATH[:NAME[:TAG]|:@INDEX] (a docker save or podman save tar" in text
    assert "docker://[REGISTRY[:PORT]/]NAME[:TAG|@DIGEST] (an image in a registry" in text


def test_unknown_names_in_the_disable_variable_are_warned_about(installed_distribution,
                                                                monkeypatch, caplog):
    installed_distribution("arv-keepdocker-buildah", {"buildah": "akd_buildah5"},
                           {"akd_buildah5": GOOD_PLUGIN})
    monkeypatch.setenv("ARV_KEEPDOCKER_DISABLE_PLUGINS", "buildah,oci,ocilabels")
    with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
        pm = get_plugin_manager()
    assert pm.get_plugin("buildah") is None and pm.get_plugin("oci") is None
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning == ("ARV_KEEPDOCKER_DISABLE_PLUGINS names 'ocilabels', which is no "
                       "plugin's name; see arv keepdocker --list-plugins")


# -- names that must go stay one minor release ---------------------------------------

def test_deprecated_names_still_work_and_say_so():
    from arv_keepdocker_plugin import SkippedLayers
    from arv_keepdocker_plugin.image import skipped_size
    with pytest.warns(DeprecationWarning, match="SourceCatalog"):
        from arv_keepdocker_plugin.catalog import SourceRegistry
    assert SourceRegistry().get("x") is None
    with pytest.warns(DeprecationWarning, match="Mapping"):
        skip = SkippedLayers({"sha256:a": 3})
    assert "sha256:a" in skip and skip.sizes["sha256:a"] == 3 and len(skip) == 1
    with pytest.warns(DeprecationWarning, match="skip.get"):
        assert skipped_size(skip, "sha256:a") == 3
    with pytest.warns(DeprecationWarning):
        assert skipped_size({"sha256:a": 4}, "sha256:a") == 4
    with pytest.warns(DeprecationWarning):
        assert skipped_size({"sha256:a": 4}, "sha256:b") is None
