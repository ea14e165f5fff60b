"""Registry references: skopeo's docker:// rules and Docker's familiar names."""

import pytest

from arv_keepdocker_plugin.distribution.reference import RegistryReference, parse_reference
from arv_keepdocker_plugin.errors import BadReference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, registry, repository, tag, digest", [
    ("debian", "docker.io", "library/debian", "latest", None),
    ("debian:12", "docker.io", "library/debian", "12", None),
    ("docker.io/debian:12", "docker.io", "library/debian", "12", None),
    ("docker.io/library/debian:12", "docker.io", "library/debian", "12", None),
    ("index.docker.io/debian", "docker.io", "library/debian", "latest", None),
    ("registry-1.docker.io/user/app:1", "docker.io", "user/app", "1", None),
    ("user/app:1", "docker.io", "user/app", "1", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/a/b/c:v1.2-rc_3", "localhost:5000", "a/b/c", "v1.2-rc_3", None),
    ("host:5000/x:1", "host:5000", "x", "1", None),
    ("quay.io/org/img", "quay.io", "org/img", "latest", None),
    ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", "latest", None),
    ("[::1]:5000/x:2", "[::1]:5000", "x", "2", None),
    ("debian@" + D, "docker.io", "library/debian", None, D),
    ("debian:12@" + D, "docker.io", "library/debian", "12", D),
    ("host:5000/x@" + D, "host:5000", "x", None, D),
    ("a__b/c-d--e.f_g", "docker.io", "a__b/c-d--e.f_g", "latest", None),
    # No registry: the first component has no '.' or ':' and is not localhost.
    ("myhost/app", "docker.io", "myhost/app", "latest", None),
])
def test_parse(text, registry, repository, tag, digest):
    assert parse_reference(text) == RegistryReference(registry, repository, tag, digest)


@pytest.mark.parametrize("text, familiar", [
    ("docker.io/library/debian:12", "debian:12"),
    ("debian", "debian:latest"),
    ("docker.io/user/app:1", "user/app:1"),
    ("docker.io/library/a/b:1", "library/a/b:1"),
    ("host:5000/x:1", "host:5000/x:1"),
    ("localhost/x:1", "localhost/x:1"),
    ("debian@" + D, "debian@" + D),
    ("debian:12@" + D, "debian:12"),
])
def test_familiar_names_are_as_docker_prints_them(text, familiar):
    assert parse_reference(text).familiar == familiar


def test_names_hosts_and_what_to_fetch():
    ref = parse_reference("debian:12@" + D)
    assert ref.name == "docker.io/library/debian"
    assert ref.api_host == "registry-1.docker.io"
    assert ref.manifest_reference == D  # the digest wins; the tag is kept for naming
    assert str(ref) == "docker.io/library/debian:12@" + D
    assert parse_reference("host:5000/x").api_host == "host:5000"
    assert parse_reference("host:5000/x").manifest_reference == "latest"
    moved = ref.with_location("127.0.0.1:5000", "mirror/debian")
    assert str(moved) == "127.0.0.1:5000/mirror/debian:12@" + D


@pytest.mark.parametrize("text, why", [
    ("", "empty"),
    ("Debian", "lowercase"),
    ("host:5000/App:1", "lowercase"),
    ("debian:", "invalid tag"),
    ("debian:-x", "invalid tag"),
    ("debian:" + "a" * 129, "invalid tag"),
    ("debian@sha256:abc", "64"),
    ("debian@sha512:" + "a" * 128, "only sha256"),
    ("debian@" + D.upper().replace("SHA256", "sha256"), "64"),
    ("docker://debian", "scheme"),
    ("de bian", "white space"),
    ("host:5000/", "empty path component"),
    ("a//b", "empty path component"),
    ("-bad-host.example/x", "invalid registry"),
    ("host:port/x", "invalid registry"),
    ("a/b_-c", "component"),
    ("x/" + "a" * 300, "longer than"),
])
def test_refusals_are_one_line_bad_references(text, why):
    with pytest.raises(BadReference) as info:
        parse_reference(text)
    message = str(info.value)
    assert why in message and "\n" not in message
