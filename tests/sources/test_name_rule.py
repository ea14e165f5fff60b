"""One familiar form for ``docker.io/library/a/b:1``: Docker's, in every source.

Docker (``github.com/distribution/reference``, ``FamiliarName``) drops
``library/`` only before a one-component name: ``docker.io/library/x:1`` is
``x:1``, but ``docker.io/library/a/b:1`` is ``library/a/b:1``. Before 0.3.0
the archive readers dropped it always, so ``docker-archive:x.tar:a/b:1``
matched ``docker.io/library/a/b:1`` and the image was linked as ``a/b:1``;
it no longer does, and it is linked as ``library/a/b:1``, as the registry
source and Docker name it. (The registry and listing paths, against a real
registry and the local cluster: ``tests/registry/test_familiar_names.py``.)
"""

import argparse

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin import names
from arv_keepdocker_plugin.distribution.reference import parse_reference
from arv_keepdocker_plugin.errors import ImageNotFound
from arv_keepdocker_plugin.plugins import get_plugin_manager

DEEP = "docker.io/library/a/b:1"


@pytest.fixture
def sources():
    return get_plugin_manager(load_entrypoints=False).sources


@pytest.fixture
def image():
    return ib.build_image([{"f": b"deep"}], repo_tags=[DEEP])


def resolve(sources, typed):
    transport, details = names.split_transport(typed, sources.prefixes())
    source = sources[transport]
    return source.resolve(source.parse(details, None), argparse.Namespace())


@pytest.mark.parametrize("text, familiar", [
    (DEEP, "library/a/b:1"),
    ("index.docker.io/library/a/b:1", "library/a/b:1"),
    ("docker.io/library/x:1", "x:1"),
    ("library/x:1", "x:1"),
    ("docker.io/user/app:1", "user/app:1"),
    ("a/b:1", "a/b:1"),
    ("localhost/x:1", "localhost/x:1"),
    ("host:5000/library/x:1", "host:5000/library/x:1"),
])
def test_one_familiar_form_for_archives_and_registries(text, familiar):
    assert names.familiar(text) == familiar
    assert parse_reference(text).familiar == familiar


def test_a_name_docker_refuses_is_left_as_it_is():
    assert names.familiar("Not A Name:1") == "Not A Name:1"


def test_matching_compares_familiar_forms():
    items = [["docker.io/library/x:1"], [DEEP], ["localhost/y:2"]]
    assert names.matching("x:1", items, list) == [items[0]]
    assert names.matching("library/x:1", items, list) == [items[0]]
    assert names.matching("library/a/b:1", items, list) == [items[1]]
    assert names.matching("a/b:1", items, list) == []
    assert names.matching("y:2", items, list) == [items[2]]  # podman's localhost/


@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_docker_archive_names_follow_docker(tmp_path, sources, image, layout):
    path = tmp_path / "deep.tar"
    ib.write_docker_archive(str(path), [image], layout=layout)
    with pytest.raises(ImageNotFound, match="no image tagged a/b:1; it holds @0 "
                       r"\(docker.io/library/a/b:1\)"):
        resolve(sources, f"docker-archive:{path}:a/b:1")
    # As the user typed it, when it names the image.
    for typed in ("library/a/b:1", DEEP):
        found = resolve(sources, f"docker-archive:{path}:{typed}")
        assert (found.image_id, found.repo_tag) == (image.image_id, typed)
    # Named by the archive alone: Docker's familiar form.
    assert resolve(sources, f"docker-archive:{path}").repo_tag == "library/a/b:1"


def test_oci_layout_names_follow_docker(tmp_path, sources, image):
    path = tmp_path / "deep.tar"  # a Docker 25 archive is also an OCI layout
    ib.write_docker_archive(str(path), [image], layout="docker25")
    found = resolve(sources, f"oci-archive:{path}")
    assert (found.image_id, found.repo_tag) == (image.image_id, "library/a/b:1")


def test_the_docker_engine_s_repo_digest_is_found_by_familiar_name():
    from arv_keepdocker_plugin.sources.docker_daemon import pick_repo_digest
    digests = ["user/app@sha256:1", "debian@sha256:2", "library/a/b@sha256:3"]
    assert pick_repo_digest(digests, "docker.io/library/debian") == "sha256:2"
    assert pick_repo_digest(digests, "docker.io/library/a/b") == "sha256:3"
    assert pick_repo_digest(digests, "a/b") == "sha256:1"  # not that name: the first
