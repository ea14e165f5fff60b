"""Pulling from an anonymous plain-HTTP registry: formats, platforms, digests, blobs."""

import hashlib

import pytest

from arv_keepdocker_plugin.archive.platforms import Platform
from arv_keepdocker_plugin.distribution import (
    ManifestUnknown,
    PlatformNotFound,
    RegistrySession,
    RegistryUnreachable,
    compression_of,
    decompress,
)
from arv_keepdocker_plugin.distribution.manifests import DOCKER_MANIFEST, OCI_MANIFEST

from .conftest import BIG_SIZE, insecure_conf, one_line_without

pytestmark = pytest.mark.engines


def test_plain_http_is_refused_by_default(registry_images, registry_options):
    address = registry_images.plain.address
    with RegistrySession(registry_options()) as session:
        with pytest.raises(RegistryUnreachable) as info:
            session.resolve(address + "/demo/oci:1")
    assert str(info.value) == (
        "%s answered plain HTTP to HTTPS; mark it insecure in registries.conf or pass "
        "--src-tls-verify=false to allow plain HTTP" % address)


@pytest.mark.parametrize("how", ["registries.conf", "tls_verify=False"])
def test_oci_image_with_gzip_layers(registry_images, registry_options, how):
    address = registry_images.plain.address
    options = registry_options(insecure_conf(address)) if how == "registries.conf" else \
        registry_options(tls_verify=False)
    pushed = registry_images.images["demo/oci:1"]
    with RegistrySession(options) as session:
        image = session.resolve(address + "/demo/oci:1")
        assert image.familiar == address + "/demo/oci:1"
        assert image.manifest_media_type == OCI_MANIFEST
        assert image.manifest_digest == pushed.digest
        assert hashlib.sha256(image.manifest_bytes).hexdigest() == pushed.digest.split(":")[1]
        assert image.index_digest is None
        assert image.config_bytes == pushed.built.config_bytes
        assert image.config["config"]["Labels"] == {"k": "oci"}
        assert image.image_id == pushed.built.image_id
        assert [l.digest for l in image.layers] == [l.digest for l in pushed.built.layers]
        assert all(l.media_type.endswith("+gzip") for l in image.layers)
        assert image.source.insecure == (how == "registries.conf")
        assert image.endpoint == address + "/demo/oci"
        for layer, built in zip(image.layers, pushed.built.layers, strict=True):
            with session.blob(image, layer) as stream:
                data = b"".join(stream)
            assert data == built.data
            tar = b"".join(decompress([data], compression_of(layer.media_type)))
            assert "sha256:" + hashlib.sha256(tar).hexdigest() == built.diff_id


def test_docker_schema2_from_a_docker_archive(registry_images, registry_options):
    address = registry_images.plain.address
    with RegistrySession(registry_options(insecure_conf(address))) as session:
        image = session.resolve(address + "/demo/docker:1")
        assert image.manifest_media_type == DOCKER_MANIFEST
        assert image.manifest_digest == registry_images.images["demo/docker:1"].digest
        (layer,) = image.layers
        assert layer.media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip"
        with session.blob(image, layer) as stream:
            tar = b"".join(decompress(stream, compression_of(layer.media_type)))
        built = registry_images.images["demo/docker:1"].built
        assert "sha256:" + hashlib.sha256(tar).hexdigest() == built.layers[0].diff_id
        assert image.image_id == built.image_id


@pytest.mark.parametrize("platform, arch", [
    ("linux/amd64", "amd64 None"), ("linux/arm64", "arm64 v8"), ("linux/arm/v7", "arm v7")])
def test_multi_platform_index(registry_images, registry_options, platform, arch):
    address = registry_images.plain.address
    pushed = registry_images.images["demo/multi:1"]
    with RegistrySession(registry_options(insecure_conf(address),
                                          platform=Platform.parse(platform))) as session:
        image = session.resolve(address + "/demo/multi:1")
        assert image.index_digest == pushed.digest
        assert image.platform.matches(Platform.parse(platform))
        with session.blob(image, image.layers[0]) as stream:
            tar = b"".join(decompress(stream, "gzip"))
        assert (arch + "\n").encode() in tar


def test_default_platform_is_this_machines(registry_images, registry_options):
    from arv_keepdocker_plugin.archive.platforms import host_platform
    if host_platform().architecture not in ("amd64", "arm64", "arm"):
        pytest.skip("the test index has no image for %s" % host_platform())
    address = registry_images.plain.address
    with RegistrySession(registry_options(insecure_conf(address))) as session:
        image = session.resolve(address + "/demo/multi:1")
    assert host_platform().matches(image.platform)


def test_unknown_platform_lists_what_the_index_holds(registry_images, registry_options):
    address = registry_images.plain.address
    with RegistrySession(registry_options(insecure_conf(address),
                                          platform=Platform.parse("linux/s390x"))) as session:
        with pytest.raises(PlatformNotFound) as info:
            session.resolve(address + "/demo/multi:1")
    assert str(info.value) == ("%s/demo/multi:1: no image for platform linux/s390x; the index "
                               "holds linux/amd64, linux/arm64/v8, linux/arm/v7" % address)


def test_by_digest(registry_images, registry_options):
    address = registry_images.plain.address
    pushed = registry_images.images["demo/multi:1"]
    with RegistrySession(registry_options(insecure_conf(address),
                                          platform=Platform.parse("linux/arm64"))) as session:
        by_index = session.resolve("%s/demo/multi@%s" % (address, pushed.digest))
        assert by_index.index_digest == pushed.digest and by_index.tag is None
        assert by_index.familiar == "%s/demo/multi@%s" % (address, pushed.digest)
        child = session.resolve("%s/demo/multi:renamed@%s" % (address, by_index.manifest_digest))
        assert child.index_digest is None and child.manifest_digest == by_index.manifest_digest
        assert child.familiar == address + "/demo/multi:renamed"
        assert child.digest_reference == "%s/demo/multi@%s" % (address, child.manifest_digest)
        missing = "sha256:" + "0" * 64
        with pytest.raises(ManifestUnknown) as info:
            session.resolve("%s/demo/multi@%s" % (address, missing))
    one_line_without(str(info.value), [])
    assert "manifest unknown" in str(info.value)


def test_unknown_name_and_tag(registry_images, registry_options):
    address = registry_images.plain.address
    with RegistrySession(registry_options(insecure_conf(address))) as session:
        with pytest.raises(ManifestUnknown) as tag:
            session.resolve(address + "/demo/oci:nope")
        with pytest.raises(ManifestUnknown) as name:
            session.resolve(address + "/no/such/repo:1")
    assert str(tag.value) == "%s/demo/oci:nope: manifest unknown (MANIFEST_UNKNOWN: manifest " \
        "unknown)" % address
    # distribution 2.8 says MANIFEST_UNKNOWN for an unknown repository too.
    assert str(name.value).startswith("%s/no/such/repo:1: manifest unknown (" % address)


def test_big_layer_streams_in_bounded_verified_chunks(registry_images, registry_options):
    address = registry_images.plain.address
    pushed = registry_images.images["demo/big:1"]
    with RegistrySession(registry_options(insecure_conf(address))) as session:
        image = session.resolve(address + "/demo/big:1")
        (layer,) = image.layers
        assert (layer.digest, layer.size) == (pushed.layer_digest, BIG_SIZE)
        h, total, largest = hashlib.sha256(), 0, 0
        with session.blob(image, layer) as stream:
            for chunk in stream:
                h.update(chunk)
                total += len(chunk)
                largest = max(largest, len(chunk))
        assert "sha256:" + h.hexdigest() == pushed.layer_digest and total == BIG_SIZE
        assert largest <= 1024 * 1024
        assert stream.resumes == 0


def test_start_at_an_offset(registry_images, registry_options):
    address = registry_images.plain.address
    with RegistrySession(registry_options(insecure_conf(address))) as session:
        image = session.resolve(address + "/demo/big:1")
        (layer,) = image.layers
        with session.blob(image, layer) as stream:
            whole = b"".join(stream)
        offset = 40 * 1024 * 1024 + 3
        # With the first bytes' hash, only the rest is downloaded (Range).
        hasher = hashlib.sha256(whole[:offset])
        with session.blob(image, layer, offset=offset, hasher=hasher) as stream:
            assert b"".join(stream) == whole[offset:]
        # Without it, everything is downloaded and hashed, the rest handed over.
        with session.blob(image, layer, offset=offset) as stream:
            assert b"".join(stream) == whole[offset:]
        with session.blob(image, layer, offset=layer.size,
                          hasher=hashlib.sha256(whole)) as stream:
            assert b"".join(stream) == b""
