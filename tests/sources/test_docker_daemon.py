"""The docker-daemon source against a real, private Docker engine."""

import argparse
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid

import pytest
from arv_keepdocker_testkit.engines import (
    DockerEngine,
    EngineStartError,
    build_layered_image,
)
from arv_keepdocker_testkit.engines_fixtures import skip_or_fail

from arv_keepdocker_plugin.errors import EngineUnavailable, ImageNotFound, SourceError
from arv_keepdocker_plugin.sources import docker_daemon
from arv_keepdocker_plugin.sources.docker_daemon import DockerDaemonSource

OPTIONS = argparse.Namespace()


@pytest.fixture(scope="module")
def images(keepdocker_docker_engine):
    """Two images sharing a two-layer base, with names unique to this module."""
    prefix = "dd-" + uuid.uuid4().hex[:8]
    base = build_layered_image(keepdocker_docker_engine, prefix + "-base:1",
                               [{"etc/base.txt": b"base\n"}, {"opt/lib.bin": os.urandom(4096)}])
    child = build_layered_image(keepdocker_docker_engine, prefix + "-app:2.0",
                                [{"app/main.txt": b"main\n"}, {"app/data": b"x" * 10000}],
                                base=prefix + "-base:1", labels={"org.example.role": "app"})
    keepdocker_docker_engine.docker("tag", prefix + "-app:2.0", prefix + "-app:latest")
    return argparse.Namespace(prefix=prefix, base=base, child=child,
                              app=prefix + "-app", base_name=prefix + "-base")


@pytest.fixture(scope="module")
def second_engine():
    """A second, empty engine: what a `docker load` on another machine sees."""
    directory = tempfile.mkdtemp(prefix="akd-d2-", dir="/tmp")
    engine = DockerEngine(directory)
    try:
        engine.start()
    except EngineStartError as error:
        shutil.rmtree(directory, ignore_errors=True)
        skip_or_fail("second Docker engine", error)
    yield engine
    engine.stop()
    shutil.rmtree(directory, ignore_errors=True)


def resolve(text, tag=None):
    source = DockerDaemonSource()
    return source.resolve(source.parse(text, tag), OPTIONS)


def load_stream(engine, stream):
    """`docker load` a stream into ``engine``; return the loaded image id."""
    with subprocess.Popen(["docker", "load"], env=engine.env(), stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as load:
        shutil.copyfileobj(stream, load.stdin, 1 << 20)
        load.stdin.close()
        out = load.stdout.read().decode()
        err = load.stderr.read().decode()
    assert load.returncode == 0, err
    assert "Loaded image ID: " in out, out
    return out.split("Loaded image ID: ", 1)[1].split()[0]


def test_images_share_their_base_layers(keepdocker_docker_engine, images):
    base = keepdocker_docker_engine.docker("image", "inspect", images.base, text=True).stdout
    child = keepdocker_docker_engine.docker("image", "inspect", images.child, text=True).stdout
    base_layers = json.loads(base)[0]["RootFS"]["Layers"]
    child_layers = json.loads(child)[0]["RootFS"]["Layers"]
    assert len(base_layers) == 2 and len(child_layers) == 4
    assert child_layers[:2] == base_layers


def test_resolve_by_name_tag_returns_inspect_metadata(keepdocker_docker_env, images):
    image = resolve(images.app + ":2.0")
    assert image.image_id == images.child
    assert image.source == "docker-daemon"
    assert image.repo_tag == images.app + ":2.0"
    assert image.format == "v2"
    assert image.labels == {"org.example.role": "app"}
    assert image.created and image.created.startswith("20")
    assert [layer.digest for layer in image.layers][:2] == \
        [layer.digest for layer in resolve(images.base_name + ":1").layers]
    assert len(image.layers) == 4
    assert image.manifest_digest is None  # never pushed or pulled


def test_resolve_by_name_alone_means_latest(keepdocker_docker_env, images):
    image = resolve(images.app)
    assert image.image_id == images.child
    assert image.repo_tag == images.app + ":latest"


def test_resolve_by_separate_tag_argument(keepdocker_docker_env, images):
    image = resolve(images.app, "2.0")
    assert image.repo_tag == images.app + ":2.0"


@pytest.mark.parametrize("form", ["full", "hex", "short"])
def test_resolve_by_id_has_no_repo_tag(keepdocker_docker_env, images, form):
    hex_id = images.child[len("sha256:"):]
    text = {"full": images.child, "hex": hex_id, "short": hex_id[:12]}[form]
    image = resolve(text)
    assert image.image_id == images.child
    assert image.repo_tag is None


def test_unknown_image_is_image_not_found(keepdocker_docker_env, images):
    with pytest.raises(ImageNotFound) as caught:
        resolve(images.prefix + "-nosuch:1")
    assert str(caught.value) == "no matching image found for %s-nosuch:1" % images.prefix


def test_unknown_id_is_image_not_found(keepdocker_docker_env):
    with pytest.raises(ImageNotFound):
        resolve("sha256:" + "0" * 64)


@pytest.mark.engines  # the real docker CLI gives the message (no engine runs)
def test_missing_engine_is_engine_unavailable_in_one_line(monkeypatch, tmp_path):
    host = "unix://%s/no-engine.sock" % tmp_path
    monkeypatch.setenv("DOCKER_HOST", host)
    source = DockerDaemonSource()
    assert source.available(OPTIONS) is False
    with pytest.raises(EngineUnavailable) as caught:
        resolve("anything:1")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("cannot reach the Docker engine at %s: " % host)
    assert "Cannot connect to the Docker daemon" in message


def test_missing_docker_command_is_engine_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    source = DockerDaemonSource()
    assert source.available(OPTIONS) is False
    with pytest.raises(EngineUnavailable, match="cannot find the docker command"):
        resolve("anything:1")


def test_docker_io_command_is_used_when_docker_is_missing(
        keepdocker_docker_env, images, monkeypatch, tmp_path):
    # Debian names the CLI docker.io; this is the real docker CLI under that name.
    os.symlink(shutil.which("docker"), str(tmp_path / "docker.io"))
    monkeypatch.setenv("PATH", str(tmp_path))
    source = DockerDaemonSource()
    assert source.available(OPTIONS) is True
    assert resolve(images.app + ":2.0").image_id == images.child


def test_available_when_the_engine_answers(keepdocker_docker_env):
    assert DockerDaemonSource().available(OPTIONS) is True


@pytest.mark.engines  # second_engine starts a Docker engine of its own
def test_export_streams_an_archive_a_fresh_engine_loads_with_the_same_id(
        keepdocker_docker_env, images, second_engine):
    image = resolve(images.app + ":2.0")
    with image.export() as stream:
        loaded = load_stream(second_engine, stream)
    assert loaded == images.child
    assert second_engine.image_id(loaded) == images.child


@pytest.mark.parametrize("read_from", ["engine files", "engine export"])
def test_export_is_a_docker_archive_of_the_image_by_id(keepdocker_docker_env, images,
                                                       monkeypatch, read_from):
    monkeypatch.setenv("ARV_KEEPDOCKER_ENGINE_FILES", "1" if read_from == "engine files"
                       else "0")
    image = resolve(images.app + ":2.0")
    with image.export() as stream:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            members = {}
            for member in archive:
                if member.isfile() and not member.name.endswith("layer.tar"):
                    members[member.name] = archive.extractfile(member).read()
    manifest = json.loads(members["manifest.json"])
    assert len(manifest) == 1
    hex_id = images.child[len("sha256:"):]
    # docker save's classic layout, or the Docker 25 layout written from the files.
    assert manifest[0]["Config"] == (hex_id + ".json" if read_from == "engine export"
                                     else "blobs/sha256/" + hex_id)
    assert len(manifest[0]["Layers"]) == 4
    assert not manifest[0].get("RepoTags")  # saved by id, as arv-keepdocker 3.2.1 does


def test_export_stopped_early_kills_and_reaps_docker_save(keepdocker_docker_env, images):
    image = resolve(images.app + ":2.0")
    with image.export() as stream:
        assert len(stream.read(512)) == 512
    # No error: the consumer chose to stop; the process is gone.
    assert stream.closed


def test_export_failure_is_a_source_error_with_dockers_message(
        keepdocker_docker_engine, keepdocker_docker_env, images):
    name = images.prefix + "-gone:1"
    build_layered_image(keepdocker_docker_engine, name, [{"gone.txt": b"soon gone\n"}])
    image = resolve(name)
    keepdocker_docker_engine.docker("rmi", name)
    with pytest.raises(SourceError) as caught:
        with image.export() as stream:
            stream.read()
    message = str(caught.value)
    assert message.startswith("docker save %s failed: " % image.image_id)
    assert "\n" not in message


def test_consumer_error_caused_by_a_failed_save_reports_the_save(
        keepdocker_docker_engine, keepdocker_docker_env, images):
    name = images.prefix + "-gone2:1"
    build_layered_image(keepdocker_docker_engine, name, [{"gone.txt": b"soon gone too\n"}])
    image = resolve(name)
    keepdocker_docker_engine.docker("rmi", name)
    with pytest.raises(SourceError, match="^docker save .* failed: "):
        with image.export() as stream:
            tarfile.open(fileobj=io.BytesIO(stream.read()), mode="r:")


def test_pull_from_a_registry_then_resolve(
        keepdocker_docker_engine, keepdocker_docker_env, images, keepdocker_registry):
    remote = "%s/%s-pulled" % (keepdocker_registry.address, images.prefix)
    keepdocker_docker_engine.docker("tag", images.app + ":2.0", remote + ":v1")
    keepdocker_docker_engine.docker("push", remote + ":v1")
    keepdocker_docker_engine.docker("rmi", remote + ":v1")
    source = DockerDaemonSource()
    reference = source.parse(remote + ":v1", None)
    with pytest.raises(ImageNotFound):
        source.resolve(reference, OPTIONS)
    source.pull(reference, OPTIONS)
    image = source.resolve(reference, OPTIONS)
    assert image.image_id == images.child
    assert image.repo_tag == remote + ":v1"
    assert image.manifest_digest and image.manifest_digest.startswith("sha256:")


def test_pull_of_a_missing_image_is_a_one_line_source_error(
        keepdocker_docker_env, images, keepdocker_registry):
    source = DockerDaemonSource()
    reference = source.parse("%s/%s-never:1" % (keepdocker_registry.address, images.prefix), None)
    with pytest.raises(SourceError) as caught:
        source.pull(reference, OPTIONS)
    assert "\n" not in str(caught.value)


def test_parse_splits_names_and_keeps_ids_whole():
    source = DockerDaemonSource()
    named = source.parse("example.org:5000/team/app:1.2", None)
    assert (named.name, named.tag, named.image_id) == ("example.org:5000/team/app", "1.2", None)
    by_id = source.parse("sha256:" + "a" * 64, None)
    assert by_id.image_id == "sha256:" + "a" * 64 and by_id.name is None


def test_module_registers_the_source_as_a_hook():
    sources = []
    docker_daemon.keepdocker_register_sources(sources.append)
    assert [source.name for source in sources] == ["docker-daemon"]
    assert sources[0].serves_bare_names is True
