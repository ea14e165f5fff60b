"""A third-party plugin that adds a source, adds links and refuses a format,
on both the upload and the reuse path, against the local cluster."""

import contextlib
import io
import logging

import pytest
from arv_keepdocker_testkit import imagebuild

from arv_keepdocker_plugin import (
    FormatVerdict,
    Image,
    ImageNotFound,
    ImageSource,
    Reference,
    cli,
    hookimpl,
)
from arv_keepdocker_plugin.names import split_name_tag
from arv_keepdocker_plugin.plugins import get_plugin_manager

from .conftest import image_links


class SiteStore(ImageSource):
    """``site-store:NAME[:TAG]``: images a site keeps as docker-archive bytes."""

    name = "site-store"
    description = "a site's image catalogue (test plugin)"

    def __init__(self, catalogue):
        self.catalogue = catalogue

    def parse(self, details, tag):
        name, tag = split_name_tag(details, tag)
        return Reference(raw=details, name=name, tag=tag)

    def resolve(self, reference, options):
        try:
            built = self.catalogue[reference.repo_tag]
        except KeyError:
            raise ImageNotFound(f"site store has no {reference.repo_tag}") from None
        archive = io.BytesIO()
        imagebuild.write_docker_archive(archive, [built])
        data = archive.getvalue()
        return Image(image_id=built.image_id, source=self.name, repo_tag=reference.repo_tag,
                     config=built.config,
                     export=lambda: contextlib.closing(io.BytesIO(data)))


class SitePlugin:
    """Adds the source, an audit link on every image, and a site format rule."""

    def __init__(self, catalogue):
        self.catalogue = catalogue

    @hookimpl
    def keepdocker_register_sources(self, register):
        register(SiteStore(self.catalogue))

    @hookimpl
    def keepdocker_links(self, image):
        return [{"link_class": "site_audit", "name": image.image_id,
                 "properties": {"checked_by": "site plugin"}}]

    @hookimpl
    def keepdocker_check_format(self, image):
        if image.labels.get("site.forbidden") == "yes":
            return FormatVerdict(False, "site policy: image is labelled site.forbidden")
        return FormatVerdict(True)

    @hookimpl
    def keepdocker_collection_properties(self):
        # A plugin cannot change 3.2.1's property: the default's value wins.
        return {"docker-image-repo-tag": "hijacked:1", "site:audited": True}


class Hijacker:
    @hookimpl
    def keepdocker_links(self, image):
        return [{"link_class": "docker_image_hash", "name": "sha256:" + "0" * 64,
                 "properties": {}}]


@pytest.fixture
def catalogue(unique):
    def build(tag, **labels):
        return imagebuild.build_image([{"etc/" + unique: tag.encode()}],
                                      repo_tags=[f"{unique}:{tag}"], labels=labels)
    return {f"{unique}:1": build("1"),
            f"{unique}:bad": build("bad", **{"site.forbidden": "yes"})}


@pytest.fixture
def site_pm(catalogue):
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(SitePlugin(catalogue), name="site")
    return pm


@pytest.fixture
def run(monkeypatch, tmp_path, arv_api):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def run(pm, *args):
        out = io.StringIO()
        status, outcome = cli.execute(["--no-progress"] + list(args), stdout=out,
                                      install_sig_handlers=False, api=arv_api, pm=pm)
        return status, outcome, out.getvalue().strip()
    return run


def test_upload_through_the_plugin_s_source_gets_its_links(site_pm, run, arv_api, catalogue,
                                                           unique, arvados_state):
    image = catalogue[f"{unique}:1"]
    status, outcome, uuid = run(site_pm, f"site-store:{unique}:1")
    assert (status, outcome) == (0, "uploaded")
    assert [l[:2] for l in image_links(arv_api, uuid)] == sorted([
        ("docker_image_hash", image.image_id),
        ("docker_image_repo+tag", f"{unique}:1"),
        ("site_audit", image.image_id)])
    properties = arv_api.collections().get(uuid=uuid).execute()["properties"]
    assert properties == {"docker-image-repo-tag": f"{unique}:1", "site:audited": True}
    # Run again: reused, nothing written.
    before = arvados_state.snapshot()
    assert run(site_pm, f"site-store:{unique}:1") == (0, "reused", uuid)
    assert arvados_state.snapshot() == before


def test_reuse_into_a_project_makes_the_plugin_s_links_too(site_pm, run, arv_api, catalogue,
                                                           unique, project):
    image = catalogue[f"{unique}:1"]
    first = run(site_pm, f"site-store:{unique}:1")[2]
    status, outcome, copy = run(site_pm, "--project-uuid", project,
                                f"site-store:{unique}:1")
    assert (status, outcome) == (0, "reused") and copy != first
    links = image_links(arv_api, copy)
    assert [l[:3] for l in links] == sorted([
        ("docker_image_hash", image.image_id, project),
        ("docker_image_repo+tag", f"{unique}:1", project),
        ("site_audit", image.image_id, project)])
    properties = arv_api.collections().get(uuid=copy).execute()["properties"]
    assert properties["site:audited"] is True
    # And once more into the project: nothing new.
    assert run(site_pm, "--project-uuid", project, f"site-store:{unique}:1") == (
        0, "reused", copy)
    assert image_links(arv_api, copy) == links


def test_the_plugin_s_refusal_stops_an_upload(site_pm, run, unique, arvados_state, caplog):
    before = arvados_state.snapshot()
    with caplog.at_level(logging.ERROR, logger="arvados.keepdocker"):
        status, outcome, out = run(site_pm, f"site-store:{unique}:bad")
    assert (status, outcome, out) == (1, "failed", "")
    assert "site policy: image is labelled site.forbidden" in caplog.text
    assert "refusing to store incompatible format" in caplog.text
    assert arvados_state.snapshot() == before
    # --force-image-format is the only way past a refusal.
    status, outcome, uuid = run(site_pm, "--force-image-format",
                                f"site-store:{unique}:bad")
    assert (status, outcome) == (0, "uploaded")


def test_the_plugin_s_refusal_also_stops_a_reuse(site_pm, run, catalogue, unique,
                                                 arvados_state, project):
    # Stored before the site rule existed (the default plugins only)...
    source_only = get_plugin_manager(load_entrypoints=False)

    class SourceOnly:
        @hookimpl
        def keepdocker_register_sources(self, register):
            register(SiteStore(catalogue))

    source_only.register(SourceOnly(), name="site-source")
    assert run(source_only, f"site-store:{unique}:bad")[:2] == (0, "uploaded")
    # ... the rule now refuses to copy or link it anywhere.
    before = arvados_state.snapshot()
    status, outcome, out = run(site_pm, "--project-uuid", project,
                               f"site-store:{unique}:bad")
    assert (status, outcome, out) == (1, "failed", "")
    assert arvados_state.snapshot() == before


def test_a_plugin_cannot_add_or_rename_the_core_links(site_pm, run, arv_api, catalogue,
                                                      unique, caplog):
    site_pm.register(Hijacker(), name="hijacker")
    with caplog.at_level(logging.WARNING, logger="arvados.keepdocker"):
        status, outcome, uuid = run(site_pm, f"site-store:{unique}:1")
    assert (status, outcome) == (0, "uploaded")
    hashes = [l[1] for l in image_links(arv_api, uuid) if l[0] == "docker_image_hash"]
    assert hashes == [catalogue[f"{unique}:1"].image_id]
    assert "only the default links plugin makes those" in caplog.text
