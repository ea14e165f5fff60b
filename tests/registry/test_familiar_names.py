"""``docker.io/library/a/b:1`` has one familiar form everywhere: ``library/a/b:1``.

The same image through the registry source (Docker Hub, here a loopback
registry standing in for it through registries.conf), then from a
docker-archive that names it ``docker.io/library/a/b:1``, then in the
listing: one repo:tag, Docker's (``FamiliarName`` in
``github.com/distribution/reference``), and one collection.
"""

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from .source_fixtures import links_of, one_error, uploaded

pytestmark = [pytest.mark.engines, pytest.mark.cluster]


def test_registry_archive_and_listing_agree(source_run, push, registry_images, arv_api,
                                            arvados_state, unique, tmp_path):
    address = registry_images.plain.address
    deep = "library/%s/b" % unique
    image = ib.build_image([{"f": unique.encode()}], repo_tags=["docker.io/%s:1" % deep])
    push(address, deep + ":1", image)
    source_run.conf("""
        [[registry]]
        prefix = "docker.io"
        location = "%s"
        insecure = true
    """ % address)

    uuid = uploaded(source_run("--no-progress", "docker://docker.io/%s:1" % deep))
    assert ("docker_image_repo+tag", deep + ":1") in links_of(arv_api, uuid)
    properties = arv_api.collections().get(uuid=uuid).execute()["properties"]
    assert properties["docker-image-repo-tag"] == deep + ":1"

    archive = tmp_path / "deep.tar"
    ib.write_docker_archive(str(archive), [image])
    before = arvados_state.snapshot()
    # The name without library/ is another name, as for Docker ...
    assert one_error(source_run("--no-progress", "docker-archive:%s:%s/b:1" % (
        archive, unique))) == "%s: no image tagged %s/b:1; it holds @0 (docker.io/%s:1)" % (
            archive, unique, deep)
    # ... and the archive's own name is the registry's: the same collection, nothing new.
    proc = source_run("--no-progress", "docker-archive:%s" % archive)
    assert uploaded(proc) == uuid
    assert arvados_state.snapshot() == before

    listing = source_run().stdout.splitlines()
    rows = [line.split()[:3] for line in listing if line.split()[:1] == [deep]]
    assert rows == [[deep, "1", image.image_id[:12]]]
