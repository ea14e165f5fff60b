"""Reference parsing: arv-keepdocker 3.2.1's rules and transports.

The rules of ``sdk/python/arvados/commands/keepdocker.py`` as
``sdk/python/tests/test_arv_keepdocker.py`` pins them."""

import pytest

from arv_keepdocker_plugin.errors import BadReference
from arv_keepdocker_plugin.names import parse_engine_reference, split_name_tag, split_transport


@pytest.mark.parametrize("typed, tag, expected", [
    ("repo:tag", None, ("repo", "tag")),
    ("repo", None, ("repo", "latest")),
    ("repo", "v1", ("repo", "v1")),
    ("myreg.example:8888/repo/img:tag", None, ("myreg.example:8888/repo/img", "tag")),
    ("registry.hub.docker.com:443/library/debian:bullseye-slim", None,
     ("registry.hub.docker.com/library/debian", "bullseye-slim")),
    ("[::1]:8888/repo/img", None, ("[::1]:8888/repo/img", "latest")),
    ("[::1]/repo/img", None, ("[::1]/repo/img", "latest")),
    ("[::1]:8888/repo/img:tag", None, ("[::1]:8888/repo/img", "tag")),
    ("127.0.0.1:5000/a/b", None, ("127.0.0.1:5000/a/b", "latest")),
    ("localhost/x", None, ("localhost/x", "latest")),
    ("Registry/x", None, ("Registry/x", "latest")),
])
def test_name_and_tag_split_like_3_2_1(typed, tag, expected):
    assert split_name_tag(typed, tag) == expected


def test_tag_given_twice_is_an_error_naming_both():
    with pytest.raises(BadReference, match="image 'myrepo:mytag' already includes a tag, "
                       "cannot add tag argument 'extratag'"):
        split_name_tag("myrepo:mytag", "extratag")


@pytest.mark.parametrize("bad", ["Upper", "a//b", "-lead", "trail-/x", "x y", "", "host:port/x",
                                 "reg.example/Upper"])
def test_malformed_names_are_refused(bad):
    with pytest.raises(BadReference, match="invalid image reference"):
        split_name_tag(bad, None)


@pytest.mark.parametrize("typed", ["sha256:" + "ab" * 32, "sha256:abcdef012345", "abcdef012345"])
def test_image_ids_stay_whole(typed):
    # 3.2.1 split "sha256:<hex>" into name "sha256" and tag "<hex>" (a bug).
    ref = parse_engine_reference(typed, typed, None)
    assert ref.image_id == typed and ref.name is None and ref.repo_tag is None


def test_transport_split_only_for_known_sources():
    known = ["docker-archive", "oci"]
    assert split_transport("docker-archive:/tmp/x.tar:a:b", known) == (
        "docker-archive", "/tmp/x.tar:a:b")
    assert split_transport("oci:/layout", known) == ("oci", "/layout")
    # A name that is not a source keeps 3.2.1's meaning (a repo with a tag).
    assert split_transport("localhost:5000/x", known) == (None, "localhost:5000/x")
    assert split_transport("repo:tag", known) == (None, "repo:tag")


def test_a_double_slash_transport_is_split_only_with_its_slashes():
    prefixes = {"docker": "docker://", "docker-archive": "docker-archive:"}
    assert split_transport("docker://debian:12", prefixes) == ("docker", "debian:12")
    assert split_transport("docker://127.0.0.1:5000/x@sha256:" + "a" * 64, prefixes) == (
        "docker", "127.0.0.1:5000/x@sha256:" + "a" * 64)
    # 3.2.1: the Docker engine's image "docker" with tag "dind" (Docker-in-Docker).
    assert split_transport("docker:dind", prefixes) == (None, "docker:dind")
    assert split_transport("docker:/x", prefixes) == (None, "docker:/x")
    assert split_transport("docker-archive:/x.tar", prefixes) == ("docker-archive", "/x.tar")
