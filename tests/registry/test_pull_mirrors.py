"""registries.conf against real registries: mirrors, blocking, location rewrites."""

import pytest

from arv_keepdocker_plugin.archive.platforms import Platform
from arv_keepdocker_plugin.distribution import (
    ManifestUnknown,
    RegistryBlocked,
    RegistrySession,
    RegistryUnreachable,
)

from .conftest import one_line_without
from .harness import dead_address

pytestmark = pytest.mark.engines


def test_docker_io_mapped_to_the_loopback_registry(registry_images, registry_options):
    address = registry_images.plain.address
    conf = """
        [[registry]]
        prefix = "docker.io"
        location = "%s"
        insecure = true
    """ % address
    with RegistrySession(registry_options(conf)) as session:
        image = session.resolve("debian:12")
        assert image.familiar == "debian:12"
        assert str(image.reference) == "docker.io/library/debian:12"
        assert image.registry == "docker.io" and image.repository == "library/debian"
        assert image.endpoint == address + "/library/debian"
        assert image.manifest_digest == registry_images.images["library/debian:12"].digest
        with session.blob(image, image.layers[0]) as stream:
            assert b"".join(stream) == \
                registry_images.images["library/debian:12"].built.layers[0].data


def test_mirror_serves_while_the_primary_is_down(registry_images, registry_options):
    address, down = registry_images.plain.address, dead_address()
    conf = """
        [[registry]]
        prefix = "%s/demo"
        insecure = true
        [[registry.mirror]]
        location = "%s/demo"
        insecure = true
    """ % (down, address)
    with RegistrySession(registry_options(conf)) as session:
        image = session.resolve(down + "/demo/oci:1")
        assert image.source.mirror and image.endpoint == "mirror %s/demo/oci" % address
        assert image.familiar == down + "/demo/oci:1"
        with session.blob(image, image.layers[0]) as stream:
            b"".join(stream)


def test_primary_serves_when_the_mirror_is_down_or_lacks_the_image(registry_images,
                                                                   registry_options):
    address, down = registry_images.plain.address, dead_address()
    conf = """
        [[registry]]
        location = "%s"
        insecure = true
        [[registry.mirror]]
        location = "%s"
        insecure = true
        [[registry.mirror]]
        location = "%s/elsewhere"
        insecure = true
    """ % (address, down, address)
    with RegistrySession(registry_options(conf)) as session:
        image = session.resolve(address + "/demo/oci:1")
    assert not image.source.mirror and image.endpoint == address + "/demo/oci"


def test_pull_from_mirror_modes(registry_images, registry_options):
    address, down = registry_images.plain.address, dead_address()
    conf = """
        [[registry]]
        prefix = "%s"
        insecure = true
        [[registry.mirror]]
        location = "%s"
        insecure = true
        pull-from-mirror = "digest-only"
    """ % (down, address)
    digest = registry_images.images["demo/oci:1"].digest
    with RegistrySession(registry_options(conf)) as session:
        assert session.resolve("%s/demo/oci@%s" % (down, digest)).source.mirror
        with pytest.raises(RegistryUnreachable) as info:
            session.resolve(down + "/demo/oci:1")  # by tag: the primary only
    assert str(info.value) == "connection to %s refused (is the registry running there?)" % down


def test_every_endpoint_failing_is_one_line_naming_each(registry_images, registry_options):
    address, down = registry_images.plain.address, dead_address()
    conf = """
        [[registry]]
        location = "%s"
        insecure = true
        [[registry.mirror]]
        location = "%s"
        insecure = true
    """ % (address, down)
    with RegistrySession(registry_options(conf)) as session:
        with pytest.raises(ManifestUnknown) as info:
            session.resolve(address + "/demo/oci:missing")
    text = str(info.value)
    assert text.startswith("%s/demo/oci:missing: mirror %s/demo/oci: connection to %s refused"
                           % (address, down, down))
    assert "; %s/demo/oci: %s/demo/oci:missing: manifest unknown" % (address, address) in text
    one_line_without(text, [])


def test_blocked_registry(registry_images, registry_options):
    address = registry_images.plain.address
    conf = """
        [[registry]]
        prefix = "%s/demo/multi"
        blocked = true
        [[registry]]
        location = "%s"
        insecure = true
    """ % (address, address)
    with RegistrySession(registry_options(conf, platform=Platform.parse("linux/amd64"))) \
            as session:
        with pytest.raises(RegistryBlocked) as info:
            session.resolve(address + "/demo/multi:1")
        assert session.resolve(address + "/demo/oci:1")
    assert str(info.value) == ("%s/demo/multi is blocked by registries.conf (prefix "
                               "'%s/demo/multi' in %s)" % (address, address,
                                                           session.registries_conf.files[0]))
