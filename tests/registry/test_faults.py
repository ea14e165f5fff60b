"""Failures, each one line with no secret: DNS, refusals, corrupt and cut blobs, 429/503."""

import json
import logging

import pytest

from arv_keepdocker_plugin.distribution import (
    CredentialOptions,
    DigestMismatch,
    ManifestRefused,
    RegistryError,
    RegistrySession,
    RegistryUnreachable,
    parse_creds,
)

from .conftest import BIG_SIZE, insecure_conf, one_line_without, ssl_context_for
from .faultproxy import BlobStore, FaultProxy
from .harness import dead_address

pytestmark = pytest.mark.engines


@pytest.fixture
def via_proxy(registry_proxy, registry_options):
    """``(session options, proxy address)``: the proxy is an insecure registry."""
    return registry_options(insecure_conf(registry_proxy.address)), registry_proxy.address


def chunks_until_error(session, image, layer):
    """The bytes handed over before the stream raised, and the error."""
    received = 0
    with session.blob(image, layer) as stream:
        try:
            for chunk in stream:
                received += len(chunk)
        except RegistryError as error:
            return received, error, stream
    return received, None, stream


def test_unknown_host(registry_options):
    with RegistrySession(registry_options()) as session:
        with pytest.raises(RegistryUnreachable) as info:
            session.resolve("no-such-host.invalid/app:1")
    assert str(info.value) == "cannot resolve host no-such-host.invalid (unknown host or no DNS)"


@pytest.mark.parametrize("verify", [True, False])
def test_connection_refused(registry_options, verify):
    down = dead_address()
    with RegistrySession(registry_options(tls_verify=verify)) as session:
        with pytest.raises(RegistryUnreachable) as info:
            session.resolve(down + "/app:1")
    assert str(info.value) == "connection to %s refused (is the registry running there?)" % down


def test_corrupt_small_blob_is_never_handed_over(via_proxy, registry_proxy, registry_images):
    options, address = via_proxy
    layer = registry_images.images["demo/oci:1"].built.layers[1]
    registry_proxy.corrupt(layer.digest)
    with RegistrySession(options) as session:
        image = session.resolve(address + "/demo/oci:1")
        received, error, _ = chunks_until_error(session, image, image.layers[1])
    assert received == 0 and isinstance(error, DigestMismatch)
    assert str(error).startswith("blob %s from %s/demo/oci: content has digest sha256:"
                                 % (layer.digest, address))
    assert str(error).endswith(", expected %s; refusing it" % layer.digest)


def test_corrupt_big_blob_fails_before_its_last_chunk(via_proxy, registry_proxy,
                                                      registry_images):
    options, address = via_proxy
    digest = registry_images.images["demo/big:1"].layer_digest
    registry_proxy.corrupt(digest)
    with RegistrySession(options) as session:
        image = session.resolve(address + "/demo/big:1")
        received, error, _ = chunks_until_error(session, image, image.layers[0])
    assert isinstance(error, DigestMismatch) and 0 < received < BIG_SIZE


def test_corrupt_config_and_manifest(via_proxy, registry_proxy, registry_images):
    options, address = via_proxy
    pushed = registry_images.images["demo/oci:1"]
    registry_proxy.corrupt(pushed.built.image_id)
    with RegistrySession(options) as session:
        with pytest.raises(DigestMismatch, match="blob %s .* content has digest"
                           % pushed.built.image_id):
            session.resolve(address + "/demo/oci:1")
    registry_proxy.reset()
    registry_proxy.corrupt("/manifests/1")
    with RegistrySession(options) as session:
        with pytest.raises(DigestMismatch) as info:
            session.resolve(address + "/demo/oci:1")
    assert str(info.value).startswith("%s/demo/oci:1: Docker-Content-Digest %s does not match "
                                      "the manifest's digest" % (address, pushed.digest))
    registry_proxy.reset()
    registry_proxy.corrupt("/manifests/sha256:")
    with RegistrySession(options) as session:
        with pytest.raises(DigestMismatch, match="the registry sent a manifest with digest"):
            session.resolve("%s/demo/oci@%s" % (address, pushed.digest))


@pytest.mark.parametrize("change", ["longer", "shorter"])
def test_blob_of_the_wrong_length(via_proxy, registry_proxy, registry_images, change):
    options, address = via_proxy
    layer = registry_images.images["demo/oci:1"].built.layers[1]
    body = layer.data + b"x" if change == "longer" else layer.data[:-1]
    registry_proxy.replace("/blobs/" + layer.digest, body,
                           {"Content-Type": "application/octet-stream"})
    with RegistrySession(options) as session:
        image = session.resolve(address + "/demo/oci:1")
        received, error, _ = chunks_until_error(session, image, image.layers[1])
    # Never the whole blob: a short one is handed over in part, then the stream raises.
    assert received == (0 if change == "longer" else layer.size - 1)
    if change == "longer":
        assert isinstance(error, DigestMismatch)
        assert str(error) == "blob %s from %s/demo/oci: the registry sent more than its %d " \
            "bytes" % (layer.digest, address, layer.size)
    else:  # resumed (Range answered 200, so restarted and skipped) until it gave up
        assert str(error) == "blob %s from %s/demo/oci: connection dropped at byte %d of %d " \
            "(the body ended early) 4 times in a row" % (layer.digest, address,
                                                         layer.size - 1, layer.size)
        assert len(registry_proxy.requests(layer.digest)) == 4


def test_schema1_manifest_is_refused(via_proxy, registry_proxy):
    options, address = via_proxy
    body = json.dumps({"schemaVersion": 1, "name": "demo/old", "tag": "1", "fsLayers": [],
                       "signatures": [{"protected": "x"}]}).encode()
    registry_proxy.replace("/manifests/1", body, {
        "Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "Docker-Content-Digest": "sha256:" + "1" * 64})  # over the unsigned payload
    with RegistrySession(options) as session:
        with pytest.raises(ManifestRefused) as info:
            session.resolve(address + "/demo/old:1")
    assert str(info.value) == (
        "%s/demo/old:1: Docker schema 1 manifests are not supported (the image is too old: "
        "push it again with a current Docker or skopeo)" % address)


def test_dropped_connection_resumes_with_range(via_proxy, registry_proxy, registry_images,
                                               registry_sleeps):
    options, address = via_proxy
    digest = registry_images.images["demo/big:1"].layer_digest
    registry_proxy.drop_once(digest, after=10 * 1024 * 1024 + 17)
    with RegistrySession(options) as session:
        image = session.resolve(address + "/demo/big:1")
        received, error, stream = chunks_until_error(session, image, image.layers[0])
    assert error is None and received == BIG_SIZE and stream.resumes == 1
    ranges = [r["range"] for r in registry_proxy.requests(digest)]
    assert ranges[0] is None and len(ranges) == 2
    resumed_at = int(ranges[1][len("bytes="):-1])
    assert ranges[1] == "bytes=%d-" % resumed_at and 0 < resumed_at <= 10 * 1024 * 1024 + 17
    assert registry_sleeps == [0.25]


def test_server_ignoring_range_restarts_and_skips(via_proxy, registry_proxy, registry_images):
    options, address = via_proxy
    digest = registry_images.images["demo/big:1"].layer_digest
    registry_proxy.drop_once(digest, after=5 * 1024 * 1024)
    registry_proxy.ignore_range(digest)
    with RegistrySession(options) as session:
        image = session.resolve(address + "/demo/big:1")
        documents = session.bytes_received
        assert documents == len(image.manifest_bytes) + len(image.config_bytes)
        received, error, stream = chunks_until_error(session, image, image.layers[0])
        # What was cut, then everything again: the session counts what it received.
        again = session.bytes_received - documents - BIG_SIZE
        assert 0 < again <= 5 * 1024 * 1024
    assert session.bytes_received == documents + BIG_SIZE + again  # kept once closed
    assert error is None and received == BIG_SIZE and stream.resumes == 1
    assert [r["range"] is not None for r in registry_proxy.requests(digest)] == [False, True]


def test_wrong_content_range_is_refused(via_proxy, registry_proxy, registry_images):
    options, address = via_proxy
    digest = registry_images.images["demo/big:1"].layer_digest
    registry_proxy.drop_once(digest, after=3 * 1024 * 1024)
    registry_proxy.bad_content_range(digest)
    with RegistrySession(options) as session:
        image = session.resolve(address + "/demo/big:1")
        received, error, _ = chunks_until_error(session, image, image.layers[0])
    assert received < BIG_SIZE
    text = str(error)
    assert "asked for bytes=" in text and "got Content-Range 'bytes 0-0/1'" in text
    one_line_without(text, [])


def test_connection_cut_again_and_again_gives_up(via_proxy, registry_proxy, registry_images):
    options, address = via_proxy
    digest = registry_images.images["demo/big:1"].layer_digest
    # Two cuts after some progress each (they reset the count), then no progress.
    registry_proxy.drop_once(digest, after=2 * 1024 * 1024, times=2)
    registry_proxy.drop_once(digest, after=0, times=10)
    with RegistrySession(options) as session:
        image = session.resolve(address + "/demo/big:1")
        received, error, _ = chunks_until_error(session, image, image.layers[0])
    assert isinstance(error, RegistryUnreachable)
    assert received == 4 * 1024 * 1024
    assert str(error) == ("blob %s from %s/demo/big: connection dropped at byte 4194304 of "
                          "%d (the connection was cut) 4 times in a row" % (digest, address,
                                                                          BIG_SIZE))
    assert len(registry_proxy.requests(digest)) == 5  # the last cut after progress counts


def test_429_and_503_then_success(via_proxy, registry_proxy, registry_images, registry_sleeps):
    options, address = via_proxy
    registry_proxy.statuses("/manifests/1", [429, 503])
    registry_proxy.statuses("/blobs/", [503])
    with RegistrySession(options) as session:
        image = session.resolve(address + "/demo/oci:1")
        with session.blob(image, image.layers[0]) as stream:
            b"".join(stream)
    assert image.manifest_digest == registry_images.images["demo/oci:1"].digest
    # 429 said Retry-After: 0; the 503s waited by the backoff policy.
    assert registry_sleeps == [0.5, 0.25]
    assert len(registry_proxy.requests("/manifests/1")) == 3


def test_a_request_that_times_out_is_sent_again(registry_proxy, registry_options,
                                                registry_images, registry_sleeps):
    options = registry_options(insecure_conf(registry_proxy.address), timeout=0.5)
    held = registry_proxy.stall("/manifests/1")
    try:
        with RegistrySession(options) as session:
            image = session.resolve(registry_proxy.address + "/demo/oci:1")
    finally:
        held.set()
    assert image.manifest_digest == registry_images.images["demo/oci:1"].digest
    assert len(registry_proxy.requests("/manifests/1")) == 2 and registry_sleeps == [0.25]


def test_503_for_ever_gives_up_in_one_line(via_proxy, registry_proxy, registry_sleeps):
    options, address = via_proxy
    registry_proxy.statuses("/manifests/1", [503] * 10)
    with RegistrySession(options) as session:
        with pytest.raises(RegistryError) as info:
            session.resolve(address + "/demo/oci:1")
    assert str(info.value) == ("%s answered 503 Service Unavailable to GET manifest "
                               "%s/demo/oci:1 (TOOMANYREQUESTS: slow down)" % (address, address))
    assert registry_sleeps == [0.25, 0.5, 1]


def test_redirected_blobs_never_carry_authorization(registry_basic, registry_ca,
                                                   registry_options, registry_images, caplog):
    caplog.set_level(logging.DEBUG)
    context = ssl_context_for(registry_ca)
    proxy = FaultProxy(registry_basic.address, context=context)
    import base64
    basic = "Basic " + base64.b64encode(("alice:%s" % registry_basic.password).encode()).decode()
    store = BlobStore(registry_basic.address, context=context, auth_header=basic)
    try:
        proxy.redirect_blobs(store)
        creds = CredentialOptions(creds=parse_creds("alice:" + registry_basic.password))
        options = registry_options(insecure_conf(proxy.address), credentials=creds)
        with RegistrySession(options) as session:
            image = session.resolve(proxy.address + "/private/app:1")
            with session.blob(image, image.layers[0]) as stream:
                data = b"".join(stream)
        assert data == registry_images.images["private/app:1"].built.layers[0].data
        manifests = proxy.requests("/manifests/")
        assert manifests and all(r["authorization"] for r in manifests)
        blobs = store.requests()
        assert len(blobs) == 2 and not any(r["authorization"] for r in blobs)  # config + layer
        for record in caplog.records:
            if record.name.startswith("arv_keepdocker_plugin"):
                one_line_without(record.getMessage(), [registry_basic.password,
                                                       "s3cr3t-signature"])
    finally:
        proxy.close()
        store.close()
