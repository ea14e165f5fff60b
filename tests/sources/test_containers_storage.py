"""The containers-storage source against a real, private podman store."""

import argparse
import json
import shutil
import subprocess
import uuid

import pytest
from arv_keepdocker_testkit.engines import build_layered_image

from arv_keepdocker_plugin.errors import EngineUnavailable, ImageNotFound, SourceError
from arv_keepdocker_plugin.sources import containers_storage
from arv_keepdocker_plugin.sources.containers_storage import (
    ContainersStorageSource,
    is_loopback_registry,
)


@pytest.fixture(scope="module")
def store_options(keepdocker_podman_store):
    """The options a user gives to reach the private store from the command line."""
    parser = argparse.ArgumentParser()
    containers_storage.keepdocker_add_arguments(parser)
    return parser.parse_args(["--podman-root", keepdocker_podman_store.root,
                              "--podman-runroot", keepdocker_podman_store.runroot,
                              "--podman-storage-driver", keepdocker_podman_store.driver])


@pytest.fixture(scope="module")
def images(keepdocker_podman_store):
    """Two images sharing a two-layer base, with names unique to this module."""
    prefix = "cs-" + uuid.uuid4().hex[:8]
    base = build_layered_image(keepdocker_podman_store, prefix + "-base:1",
                               [{"etc/base.txt": b"base\n"}, {"opt/lib.txt": b"lib\n" * 500}])
    child = build_layered_image(keepdocker_podman_store, prefix + "-app:3",
                                [{"app/main.txt": b"main\n"}],
                                base=prefix + "-base:1", labels={"org.example.role": "app"})
    keepdocker_podman_store.podman("tag", prefix + "-app:3", prefix + "-app:latest")
    return argparse.Namespace(prefix=prefix, base=base, child=child, app=prefix + "-app")


def resolve(text, options, tag=None):
    source = ContainersStorageSource()
    return source.resolve(source.parse(text, tag), options)


def test_images_share_their_base_layers(keepdocker_podman_store, images, store_options):
    base = resolve(images.prefix + "-base:1", store_options)
    child = resolve(images.app + ":3", store_options)
    assert len(base.layers) == 2 and len(child.layers) == 3
    assert [layer.digest for layer in child.layers[:2]] == \
        [layer.digest for layer in base.layers]


def test_resolve_by_short_name_hands_over_the_typed_name_and_a_sha256_id(
        images, store_options):
    image = resolve(images.app + ":3", store_options)
    assert image.image_id == images.child
    assert image.image_id.startswith("sha256:")
    assert image.repo_tag == images.app + ":3"  # not localhost/...
    assert image.source == "containers-storage"
    assert image.labels["org.example.role"] == "app"  # podman adds io.buildah.version
    assert image.created and image.created.startswith("20")
    assert image.manifest_digest and image.manifest_digest.startswith("sha256:")


def test_resolve_by_name_alone_means_latest(images, store_options):
    image = resolve(images.app, store_options)
    assert image.image_id == images.child
    assert image.repo_tag == images.app + ":latest"


def test_resolve_by_fully_qualified_name(images, store_options):
    image = resolve("localhost/" + images.app + ":3", store_options)
    assert image.image_id == images.child
    assert image.repo_tag == "localhost/" + images.app + ":3"


@pytest.mark.parametrize("form", ["full", "hex", "short", "sha256-short"])
def test_resolve_by_id_has_no_repo_tag(images, store_options, form):
    hex_id = images.child[len("sha256:"):]
    text = {"full": images.child, "hex": hex_id, "short": hex_id[:12],
            "sha256-short": "sha256:" + hex_id[:12]}[form]
    image = resolve(text, store_options)
    assert image.image_id == images.child
    assert image.repo_tag is None


def test_store_chosen_by_containers_storage_conf(keepdocker_podman_env, images):
    # No --podman-* options: podman reads CONTAINERS_STORAGE_CONF by itself.
    image = resolve(images.app + ":3", argparse.Namespace())
    assert image.image_id == images.child


def test_options_namespace_without_podman_attributes_uses_podmans_defaults():
    assert ContainersStorageSource.store_args(argparse.Namespace()) == []
    assert ContainersStorageSource.store_args(
        argparse.Namespace(podman_root="/r", podman_runroot=None,
                           podman_storage_driver="vfs")) == \
        ["--root", "/r", "--storage-driver", "vfs"]


def test_unknown_image_is_image_not_found(images, store_options):
    with pytest.raises(ImageNotFound) as caught:
        resolve(images.prefix + "-nosuch:1", store_options)
    assert str(caught.value) == "no matching image found for %s-nosuch:1" % images.prefix


def test_missing_podman_is_engine_unavailable(monkeypatch, tmp_path, store_options):
    monkeypatch.setenv("PATH", str(tmp_path))
    source = ContainersStorageSource()
    assert source.available(store_options) is False
    with pytest.raises(EngineUnavailable) as caught:
        resolve("anything:1", store_options)
    assert str(caught.value) == "cannot find the podman command in PATH"


def test_available_with_podman(store_options):
    assert ContainersStorageSource().available(store_options) is True


def test_export_loads_into_docker_with_podmans_id(images, store_options, keepdocker_docker_engine):
    image = resolve(images.app + ":3", store_options)
    with image.export() as stream:
        with subprocess.Popen(["docker", "load"], env=keepdocker_docker_engine.env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) as load:
            shutil.copyfileobj(stream, load.stdin, 1 << 20)
            load.stdin.close()
            out = load.stdout.read().decode()
            err = load.stderr.read().decode()
    assert load.returncode == 0, err
    assert "Loaded image ID: %s" % images.child in out
    assert keepdocker_docker_engine.image_id(images.child) == images.child
    inspect = json.loads(
        keepdocker_docker_engine.docker("image", "inspect", images.child).stdout)[0]
    assert inspect["Config"]["Labels"]["org.example.role"] == "app"
    assert len(inspect["RootFS"]["Layers"]) == 3


def test_export_failure_is_a_one_line_source_error(keepdocker_podman_store, images, store_options):
    name = images.prefix + "-gone:1"
    build_layered_image(keepdocker_podman_store, name, [{"gone.txt": b"soon gone\n"}])
    image = resolve(name, store_options)
    keepdocker_podman_store.podman("rmi", name)
    with pytest.raises(SourceError) as caught:
        with image.export() as stream:
            stream.read()
    message = str(caught.value)
    assert message.startswith("podman save ")
    assert "\n" not in message


def test_pull_from_a_loopback_registry_then_resolve(keepdocker_podman_store, images, store_options,
                                                    keepdocker_registry):
    remote = "%s/%s-pulled" % (keepdocker_registry.address, images.prefix)
    keepdocker_podman_store.podman("tag", images.app + ":3", remote + ":v1")
    keepdocker_podman_store.podman("push", "--tls-verify=false", remote + ":v1")
    keepdocker_podman_store.podman("rmi", remote + ":v1")
    source = ContainersStorageSource()
    reference = source.parse(remote + ":v1", None)
    with pytest.raises(ImageNotFound):
        source.resolve(reference, store_options)
    source.pull(reference, store_options)
    image = source.resolve(reference, store_options)
    assert image.image_id == images.child
    assert image.repo_tag == remote + ":v1"


def test_pull_of_a_missing_image_is_a_one_line_source_error(
        images, store_options, keepdocker_registry):
    source = ContainersStorageSource()
    reference = source.parse("%s/%s-never:1" % (keepdocker_registry.address, images.prefix), None)
    with pytest.raises(SourceError) as caught:
        source.pull(reference, store_options)
    assert str(caught.value).startswith("podman pull %s failed: " % reference.repo_tag)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name,loopback", [
    ("127.0.0.1:5000/x", True), ("localhost:5000/a/b", True), ("localhost/x", True),
    ("[::1]:5000/x", True), ("example.org/x", False), ("x", False),
    ("127.0.0.1.example.org/x", False),
])
def test_tls_is_skipped_only_for_loopback_registries(name, loopback):
    assert is_loopback_registry(name) is loopback


def test_module_registers_the_source_as_a_hook():
    sources = []
    containers_storage.keepdocker_register_sources(sources.append)
    assert [source.name for source in sources] == ["containers-storage"]
    assert sources[0].serves_bare_names is True
