"""The docker-archive, oci-archive and oci sources, as the plugin manager loads them."""

import argparse

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin import cli
from arv_keepdocker_plugin.archive.tap import TarTap
from arv_keepdocker_plugin.errors import BadArchive, BadReference, ImageNotFound
from arv_keepdocker_plugin.plugins import get_plugin_manager

HELLO_WORLD_ID = "sha256:d2c94e258dcb3c5ac2798d32e1249e42ef01cba4841c2234249495f87264ac5a"


@pytest.fixture
def sources():
    pm = get_plugin_manager(load_entrypoints=False)
    found = pm.sources
    return {name: found[name] for name in ("docker-archive", "oci-archive", "oci")}


@pytest.fixture
def options():
    return argparse.Namespace()


@pytest.fixture
def images():
    a = ib.build_image([{"a": b"a"}], repo_tags=["docker.io/library/alpha:1"],
                       created="2020-01-01T00:00:00Z")
    b = ib.build_image([{"b": b"b"}, {"c": b"c"}], repo_tags=["beta:2", "beta:latest"],
                       compression="gzip", labels={"l": "1"})
    return a, b


def resolve(source, details, options, tag=None):
    return source.resolve(source.parse(details, tag), options)


def exported_id(image):
    with image.export() as stream:
        return TarTap(stream).consume().config_digest


@pytest.mark.parametrize("details,want", [
    ("x.tar", dict(path="x.tar", name=None, index=None)),
    ("x.tar:foo", dict(path="x.tar", name="foo", tag="latest")),
    ("x.tar:foo:1", dict(path="x.tar", name="foo", tag="1")),
    ("x.tar:host:5000/foo:1", dict(path="x.tar", name="host:5000/foo", tag="1")),
    ("x.tar:@3", dict(path="x.tar", index=3, name=None)),
])
def test_docker_archive_parse(sources, details, want):
    ref = sources["docker-archive"].parse(details, None)
    assert ref.transport == "docker-archive"
    for key, value in want.items():
        assert getattr(ref, key) == value


@pytest.mark.parametrize("details,tag,message", [
    (":foo", None, "missing PATH"),
    ("x.tar:@x", None, "@INDEX must be a number from 0"),
    ("x.tar:@-1", None, "@INDEX must be a number from 0"),
    ("x.tar:@0", "1", "an image chosen by @INDEX takes no tag"),
    ("x.tar", "1", "a tag needs a name"),
    ("x.tar:Bad Name", None, "invalid image reference"),
])
def test_docker_archive_parse_errors(sources, details, tag, message):
    with pytest.raises(BadReference, match=message):
        sources["docker-archive"].parse(details, tag)


@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_docker_archive_single_image(tmp_path, sources, options, images, layout):
    path = tmp_path / "a.tar"
    ib.write_docker_archive(path, [images[0]], layout=layout)
    image = resolve(sources["docker-archive"], str(path), options)
    assert image.image_id == images[0].image_id
    assert image.source == "docker-archive"
    assert image.repo_tag == "alpha:1"  # the archive's only RepoTag, short form
    assert image.created == "2020-01-01T00:00:00Z"
    assert image.manifest_digest == (images[0].manifest_digest if layout == "docker25" else None)
    assert [l.digest for l in image.layers] == [l.diff_id for l in images[0].layers]
    with image.export() as stream:
        assert stream.read() == path.read_bytes()
    typed = resolve(sources["docker-archive"], str(path) + ":alpha:1", options)
    assert typed.repo_tag == "alpha:1"


def test_docker_archive_multi_image(tmp_path, sources, options, images):
    path = tmp_path / "ab.tar"
    ib.write_docker_archive(path, list(images))
    src = sources["docker-archive"]
    b = resolve(src, str(path) + ":beta", options)  # tag defaults to latest
    assert (b.image_id, b.repo_tag, b.labels) == (images[1].image_id, "beta:latest", {"l": "1"})
    assert exported_id(b) == images[1].image_id
    by_index = resolve(src, str(path) + ":@0", options)
    assert (by_index.image_id, by_index.repo_tag) == (images[0].image_id, None)
    assert exported_id(by_index) == images[0].image_id
    with pytest.raises(BadReference, match=r"holds 2 images; choose one"):
        resolve(src, str(path), options)
    with pytest.raises(ImageNotFound, match=r"no image tagged gamma:latest; it holds @0 "
                       r"\(docker.io/library/alpha:1\), @1 \(beta:2, beta:latest\)"):
        resolve(src, str(path) + ":gamma", options)


def test_docker_archive_single_image_with_two_tags_has_no_implicit_name(tmp_path, sources,
                                                                       options, images):
    path = tmp_path / "b.tar"
    ib.write_docker_archive(path, [images[1]])
    assert resolve(sources["docker-archive"], str(path), options).repo_tag is None


@pytest.mark.parametrize("name", ["docker-archive", "oci-archive", "oci"])
def test_missing_path_is_a_bad_archive(tmp_path, sources, options, name):
    with pytest.raises(BadArchive, match=r"nothere(.tar)?: (cannot open|no such directory)"):
        resolve(sources[name], str(tmp_path / ("nothere.tar" if name != "oci" else "nothere")),
                options)


@pytest.mark.parametrize("details,ref,repo_tag", [
    ("x.tar", None, None),
    ("x.tar:latest", "latest", None),
    ("x.tar:foo:1", "foo:1", "foo:1"),
    ("x.tar:example.org/a/b:v2", "example.org/a/b:v2", "example.org/a/b:v2"),
])
def test_oci_parse(sources, details, ref, repo_tag):
    for name in ("oci-archive", "oci"):
        parsed = sources[name].parse(details, None)
        assert (parsed.path, parsed.ref, parsed.repo_tag) == ("x.tar", ref, repo_tag)


def test_oci_parse_refuses_a_separate_tag(sources):
    with pytest.raises(BadReference, match="takes no separate tag"):
        sources["oci-archive"].parse("x.tar", "1")


@pytest.mark.parametrize("as_tar", [True, False])
def test_oci_sources_resolve_and_export(tmp_path, sources, options, images, as_tar):
    path = tmp_path / ("l.tar" if as_tar else "l")
    ib.write_oci_layout(path, [("v1", images[0]), ("beta:2", images[1])], as_tar=as_tar)
    src = sources["oci-archive" if as_tar else "oci"]
    a = resolve(src, str(path) + ":v1", options)
    assert (a.image_id, a.repo_tag, a.manifest_digest) == (
        images[0].image_id, None, images[0].manifest_digest)
    b = resolve(src, str(path) + ":beta:2", options)
    assert (b.image_id, b.repo_tag) == (images[1].image_id, "beta:2")
    with b.export() as stream:
        tap = TarTap(stream).consume()
    assert tap.config_digest == images[1].image_id
    assert tap.manifest["RepoTags"] == ["beta:2"]
    with pytest.raises(ImageNotFound, match="no image with reference 'nope'; it holds: v1"):
        resolve(src, str(path) + ":nope", options)


def test_platform_option_is_added_once_and_used(tmp_path, sources, images):
    pm = get_plugin_manager(load_entrypoints=False)
    parser = cli.build_parser(pm)  # one --platform for every source
    amd = ib.build_image([{"p": b"amd"}], architecture="amd64")
    arm = ib.build_image([{"p": b"arm"}], architecture="arm64", variant="v8")
    path = tmp_path / "multi.tar"
    ib.write_oci_layout(path, [("m", ib.build_index([amd, arm]))])
    options = parser.parse_args(["--platform", "linux/arm64/v8"])
    assert resolve(sources["oci-archive"], str(path), options).image_id == arm.image_id
    options = parser.parse_args(["--platform", "linux/ppc64le"])
    with pytest.raises(ImageNotFound, match="no image for platform linux/ppc64le"):
        resolve(sources["oci-archive"], str(path), options)


def test_hello_world_pair_gives_one_image_id(sources, options, shared_dir):
    classic = str(shared_dir / "testdata" / "hello-world-ManifestV2.tar")
    oci = str(shared_dir / "testdata" / "hello-world-ManifestV2-OCILayout.tar")
    found = [resolve(sources["docker-archive"], classic, options),
             resolve(sources["docker-archive"], oci, options),
             resolve(sources["oci-archive"], oci, options),
             resolve(sources["oci-archive"], oci + ":latest", options)]
    assert {i.image_id for i in found} == {HELLO_WORLD_ID}
    assert {i.repo_tag for i in found} == {"hello-world:latest"}
    assert {i.created for i in found} == {"2023-05-02T16:49:27Z"}
    assert {exported_id(i) for i in found} == {HELLO_WORLD_ID}
