"""The Docker engine's API over its socket (sources/engine_api.py), against real engines.

The docker-daemon source asks the socket where the CLI would; these tests pin
that both ways give the same image, that the socket's answers are the CLI's,
and that a socket that does not answer falls back to the CLI.
"""

import argparse
import io
import json
import tarfile
import uuid

import pytest
from arv_keepdocker_testkit.engines import build_layered_image

from arv_keepdocker_plugin.errors import EngineUnavailable, ImageNotFound, SourceError
from arv_keepdocker_plugin.sources import docker_daemon
from arv_keepdocker_plugin.sources.docker_daemon import DockerDaemonSource
from arv_keepdocker_plugin.sources.engine_api import EngineApi, image_path, uses_containerd_store

OPTIONS = argparse.Namespace()


def socket_of(engine) -> str:
    return engine.host[len("unix://"):]


@pytest.fixture(scope="module")
def image(keepdocker_docker_engine):
    name = "ea-" + uuid.uuid4().hex[:8] + "/app:1"
    image_id = build_layered_image(keepdocker_docker_engine, name,
                                   [{"a.txt": b"a\n"}, {"b.bin": b"b" * 5000}])
    return argparse.Namespace(name=name, id=image_id)


def resolve(text):
    source = DockerDaemonSource()
    return source.resolve(source.parse(text, None), OPTIONS)


def members(stream) -> dict:
    """The archive's small members (not the layers), by name.

    Read up to the archive's end-of-archive blocks, not to the end of the
    stream, as the product does: Docker 20.10 was seen to keep the socket's
    chunked answer open for minutes after the whole tar had been sent.
    """
    data = bytearray()
    while not (len(data) >= 1024 and len(data) % 512 == 0 and not any(data[-1024:])):
        piece = stream.read(1 << 16)
        if not piece:
            break
        data += piece
    found = {}
    with tarfile.open(fileobj=io.BytesIO(bytes(data)), mode="r:") as archive:
        for member in archive:
            if member.isfile() and not member.name.endswith("layer.tar"):
                found[member.name] = archive.extractfile(member).read()
    return found


def test_image_path_keeps_the_name_as_the_cli_sends_it():
    assert image_path("a/b:1", "json") == "/images/a/b:1/json"
    assert image_path("sha256:abc", "json") == "/images/sha256:abc/json"
    assert image_path("host:5000/x@sha256:ab", "json") == "/images/host:5000/x@sha256:ab/json"


def test_inspect_on_the_socket_is_the_clis_record(keepdocker_docker_engine, image):
    engine = EngineApi(socket_of(keepdocker_docker_engine))
    cli = json.loads(keepdocker_docker_engine.docker("image", "inspect", image.name,
                                                     text=True).stdout)[0]
    assert engine.ping(2) is True
    assert engine.inspect(image.name) == cli


def test_unknown_image_on_the_socket_is_image_not_found(keepdocker_docker_engine):
    engine = EngineApi(socket_of(keepdocker_docker_engine))
    with pytest.raises(ImageNotFound, match="^no matching image found for nosuch/x:1$"):
        engine.inspect("nosuch/x:1")


def test_a_socket_nobody_listens_on_is_engine_unavailable(tmp_path):
    engine = EngineApi(str(tmp_path / "none.sock"))
    assert engine.ping(1) is False
    with pytest.raises(EngineUnavailable, match="cannot reach the Docker engine at unix://"):
        engine.inspect("x:1")


def test_classic_store_is_not_containerds(keepdocker_docker_engine):
    assert uses_containerd_store(EngineApi(socket_of(keepdocker_docker_engine)).info()) is False


def test_containerd_store_is_recognised(keepdocker_docker26_containerd):
    assert uses_containerd_store(
        EngineApi(socket_of(keepdocker_docker26_containerd)).info()) is True


def test_export_of_a_missing_image_is_a_source_error_at_the_first_read(
        keepdocker_docker_engine, image):
    engine = EngineApi(socket_of(keepdocker_docker_engine))
    with pytest.raises(SourceError, match="^docker save sha256:0+ failed: "):
        with engine.export("sha256:" + "0" * 64) as stream:
            stream.read(1)


def test_socket_and_cli_give_the_same_image_and_archive(
        keepdocker_docker_env, image, monkeypatch):
    monkeypatch.setenv("ARV_KEEPDOCKER_ENGINE_FILES", "0")  # the export, both ways
    on_socket = resolve(image.name)
    with on_socket.export() as stream:
        socket_members = members(stream)
    monkeypatch.setattr(docker_daemon, "engine_socket", lambda: None)
    with_cli = resolve(image.name)
    with with_cli.export() as stream:
        cli_members = members(stream)
    assert on_socket.image_id == with_cli.image_id == image.id
    assert on_socket.layers == with_cli.layers and on_socket.config == with_cli.config
    assert socket_members == cli_members


def test_a_socket_that_does_not_answer_falls_back_to_the_cli(
        keepdocker_docker_env, image, monkeypatch, tmp_path):
    # The environment names the real engine (the CLI reaches it); the socket
    # the source would ask is gone.
    monkeypatch.setattr(docker_daemon, "engine_socket", lambda: str(tmp_path / "gone.sock"))
    found = resolve(image.name)
    assert found.image_id == image.id
    with found.export() as stream:
        assert "manifest.json" in members(stream)


def test_the_store_question_is_asked_once_the_probe_finds_the_engine(
        keepdocker_docker_env, image):
    source = DockerDaemonSource()
    assert source.available(OPTIONS) is True
    assert source._store_query is not None
    found = source.resolve(source.parse(image.name, None), OPTIONS)
    assert found.provisional_id is False and source._containerd is False


def test_build_on_containerd_store_resolves_a_provisional_id(
        keepdocker_docker26_containerd, monkeypatch):
    engine = keepdocker_docker26_containerd
    name = "ea-" + uuid.uuid4().hex[:8] + "/c:1"
    build_layered_image(engine, name, [{"c.txt": b"c\n"}])
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    found = resolve(name)
    assert found.provisional_id is True and found.manifest_digest is None
