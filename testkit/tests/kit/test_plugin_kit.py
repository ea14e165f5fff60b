"""The light tier for hook authors: a checked plugin manager, a run, a known world."""

import logging

import pytest
from arv_keepdocker_testkit import imagebuild
from arv_keepdocker_testkit.fakes import FakeApi
from arv_keepdocker_testkit.plugin_kit import (
    PluginProblem,
    RecordingApi,
    plugin_manager,
)

from arv_keepdocker_plugin import FormatVerdict, hookimpl


class Refuser:
    @hookimpl
    def keepdocker_check_format(self, image):
        return FormatVerdict(False, "site policy: no")


def test_a_plugin_is_registered_beside_the_defaults(monkeypatch):
    monkeypatch.setenv("ARV_KEEPDOCKER_DISABLE_PLUGINS", "oci,refuser")  # ignored here
    pm = plugin_manager(Refuser())
    assert pm.get_plugin("Refuser") is not None and pm.get_plugin("oci") is not None
    assert plugin_manager(("site", Refuser()), defaults=False).list_name_plugin()[0][0] == "site"


@pytest.mark.parametrize("source, problem", [
    ("@hookimpl\ndef keepdocker_check_fromat(image):\n    pass\n",
     "unknown hook 'keepdocker_check_fromat'"),
    ("@hookimpl\ndef keepdocker_check_format(imgae):\n    pass\n",
     "{'imgae'}"),
    ("def keepdocker_check_format(image):\n    pass\n",
     "keepdocker_check_format named like a hook but not marked @hookimpl"),
    ("class S(ImageSource):\n    name = 'oci'\n"
     "@hookimpl\ndef keepdocker_register_sources(register):\n    register(S())\n",
     "source 'oci' refused: source name 'oci' is already registered"),
    ("@hookimpl\ndef keepdocker_register_sources(register):\n    register(object())\n",
     "which is not an ImageSource with a name"),
])
def test_what_the_command_would_skip_fails_the_test(tmp_path, monkeypatch, source, problem):
    (tmp_path / "akd_kit_case.py").write_text(
        "from arv_keepdocker_plugin import hookimpl\n"
        "from arv_keepdocker_plugin.image import ImageSource\n" + source)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib
    import sys
    sys.modules.pop("akd_kit_case", None)
    module = importlib.import_module("akd_kit_case")
    with pytest.raises(PluginProblem) as info:
        plugin_manager(module)
    assert problem in str(info.value)
    assert str(info.value).startswith("plugin 'akd_kit_case'")


def test_an_installed_entry_point_is_loaded_by_name(keepdocker_installed):
    keepdocker_installed.add("arv-keepdocker-site", {"site": "akd_kit_site"}, {"akd_kit_site": """
        from arv_keepdocker_plugin import hookimpl
        @hookimpl
        def keepdocker_links(image):
            return []
        """}, version="1.2")
    pm = plugin_manager("site")
    assert pm.versions["site"] == "1.2" and pm.distributions["site"] == "arv-keepdocker-site"
    with pytest.raises(PluginProblem, match="no 'arv_keepdocker' entry point named 'sight'"):
        plugin_manager("sight")


def test_the_installed_world_is_ours_and_what_the_test_adds(keepdocker_installed):
    import importlib.metadata
    assert [ep.name for ep in importlib.metadata.entry_points(group="arv_keepdocker")] == []
    assert [ep.name for ep in importlib.metadata.entry_points(group="arv.commands")] == [
        "keepdocker"]
    keepdocker_installed.add("other", {"arv.commands": {"other": "x:main"},
                                       "arv_keepdocker": {"o": "x"}})
    assert [ep.name for ep in importlib.metadata.entry_points(group="arv.commands")] == [
        "keepdocker", "other"]
    assert [ep.dist.name for ep in importlib.metadata.entry_points(group="arv_keepdocker")
            ] == ["other"]


def test_the_recording_api_keeps_what_was_written_and_not_removed():
    fake = FakeApi()
    api = RecordingApi(fake)
    kept = api.collections().create(body={"name": "kept"}).execute()
    gone = api.links().create(body={"name": "gone"}).execute()
    api.links().delete(uuid=gone["uuid"]).execute()
    assert api.users().current().execute()["uuid"] == fake.user_uuid  # passed through
    assert api.records() == (("collections", kept),)
    assert fake.log[-1] == ("current", "users")


def test_a_refused_run_writes_nothing(keepdocker_run, tmp_path):
    image = imagebuild.build_image([{"a": b"a"}], repo_tags=["site/app:1"])
    imagebuild.write_docker_archive(str(tmp_path / "i.tar"), [image])
    result = keepdocker_run(plugin_manager(Refuser()), "--no-progress",
                            "docker-archive:{}".format(tmp_path / "i.tar"), api=FakeApi(["v2"]))
    assert (result.status, result.outcome, result.stdout, result.records) == (
        1, "failed", "", ())


def test_a_source_that_cannot_choose_a_platform_warns_once(keepdocker_run, tmp_path, caplog):
    image = imagebuild.build_image([{"a": b"a"}], repo_tags=["site/app:1"])
    imagebuild.write_docker_archive(str(tmp_path / "i.tar"), [image], layout="docker25")

    def run(transport):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
            result = keepdocker_run(plugin_manager(Refuser()), "--no-progress",
                                    "--platform", "linux/arm64",
                                    "{}:{}".format(transport, tmp_path / "i.tar"),
                                    api=FakeApi(["v2"]))
        assert (result.status, result.outcome) == (1, "failed")
        return [r.getMessage() for r in caplog.records if "--platform" in r.getMessage()]

    assert run("docker-archive") == [
        "--platform linux/arm64 is ignored: the docker-archive source does not choose "
        "among platforms"]
    # The OCI reader honours it (and finds no linux/arm64 image there): no warning.
    assert run("oci-archive") == []


def test_the_kit_is_pinned_to_the_product_s_minor_release():
    # The kit drives the product's plugin manager and command: X.Y goes with X.Y.
    import importlib.metadata

    from arv_keepdocker_plugin import __version__
    minor = ".".join(__version__.split(".")[:2])
    assert importlib.metadata.version("arv-keepdocker-testkit").startswith(minor + ".")
    assert "arv-keepdocker-plugin==" + minor + ".*" in [
        r.replace(" ", "") for r in importlib.metadata.requires("arv-keepdocker-testkit")]
