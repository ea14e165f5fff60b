"""A registry operator's tricks through ``arv keepdocker docker://`` (reliability suite).

Against the real docker-registry, its token server and the fault proxy, as the
real command under ``ulimit -v 1600000``, measured as the benchmarks measure
(process tree RSS):

* a token endpoint that redirects the identity-token request to another
  origin: refused, and the refresh token goes nowhere but its origin, once;
* a blob redirect to another port (blob storage, a CDN): followed, without
  credentials, and the image stored is exactly the registry's;
* zstd and gzip bombs as registry layers (a zstd media type, which is stored
  decompressed; zstd bytes behind a gzip media type; gzip);
* registry JSON nested 100,000 deep (manifest, config, token answer) and an
  index of 12,000 entries without the platform asked for;
* a site policy.json that rejects the registry.

Each refusal is one line, exit 1, nothing written in Arvados, peak memory
under 300 MiB.
"""

import json
import os

import pytest
from arv_keepdocker_testkit import bombs
from arv_keepdocker_testkit import imagebuild as ib
from reliability import measured
from reliability.world import check_end_state, new_project

from . import harness
from .conftest import ssl_context_for, token_registry
from .faultproxy import BlobStore, FaultProxy
from .helpers import basic, write_json
from .tokenserver import TokenServer

pytestmark = pytest.mark.reliability

GiB = 1 << 30
DEEP = b"[" * 100_000 + b"]" * 100_000

pytest.importorskip("backports.zstd")


@pytest.fixture
def run(source_run, tmp_path, record_property):
    """``run(*args)``: the command as alice, measured; the largest peak is recorded."""
    peaks = []

    def measured_run(*args):
        result = measured.run(source_run.command("--no-progress", *args), source_run.env,
                              str(tmp_path / ("run%d" % len(peaks))))
        peaks.append(measured.peak(result))
        return result
    yield measured_run
    if peaks:
        record_property("peak_mib", max(peaks) >> 20)


@pytest.fixture
def own_token_registry(registry_images, registry_ca, registry_server_cert, tmp_path):
    """A token registry whose token server this test may make misbehave."""
    with token_registry(str(tmp_path / "token"), registry_images.storage,
                        registry_ca, registry_server_cert) as registry:
        yield registry


@pytest.mark.usefixtures("unchanged")
def test_a_token_endpoint_redirecting_off_origin_gets_the_refresh_token_once(
        source_run, run, own_token_registry, registry_server_cert, registry_ca, tmp_path):
    registry = own_token_registry
    (tmp_path / "thief").mkdir()
    thief = TokenServer(str(tmp_path / "thief"), registry_server_cert, {})
    try:
        registry.tokens.redirect(thief.realm, 307)
        source_run.certs_d(registry.address, registry_ca)
        write_json(os.path.join(source_run.env["XDG_RUNTIME_DIR"], "containers", "auth.json"),
                   {"auths": {registry.address: {"auth": basic("<token>", ""),
                                                 "identitytoken": registry.identity_token}}})
        result = run("docker://%s/demo/oci:1" % registry.address)
        assert measured.one_line_refusal(result) == (
            "token request to https://127.0.0.1:%d/token: 127.0.0.1:%d redirected it to "
            "https://127.0.0.1:%d; a request carrying a secret is never sent off its origin, "
            "so it was not followed" % (registry.tokens.port, registry.tokens.port,
                                        thief.port))
        sent = [r for r in registry.tokens.raw_requests()
                if registry.identity_token.encode() in r]
        assert len(sent) == 1 and thief.raw_requests() == []
        assert registry.identity_token not in result.stderr
    finally:
        thief.close()


def test_a_blob_redirect_to_another_port_works_without_credentials(
        source_run, run, push, registry_basic, registry_ca, arv_api, arv_api_admin, unique):
    image = ib.build_image([{"base": bombs.PIECE * b"b"}, {"app": unique.encode()}],
                           compression="gzip")
    address = registry_basic.address
    push(address, "redirected/%s:1" % unique, image, "--dest-creds",
         "alice:" + registry_basic.password, "--dest-cert-dir",
         os.path.join(registry_basic.certs_d, address))
    context = ssl_context_for(registry_ca)
    proxy = FaultProxy(address, context=context)
    store = BlobStore(address, context=context, auth_header="Basic " + basic(
        "alice", registry_basic.password))
    try:
        proxy.redirect_blobs(store)
        source_run.insecure(proxy.address)
        write_json(os.path.join(source_run.env["XDG_RUNTIME_DIR"], "containers", "auth.json"),
                   {"auths": {proxy.address: {"auth": basic("alice", registry_basic.password)}}})
        project = new_project(arv_api, "redirected blobs")
        reference = "%s/redirected/%s:1" % (proxy.address, unique)
        result = run("--project-uuid", project, "docker://" + reference)
        assert result.returncode == 0, result.stderr
        assert measured.peak(result) < measured.MEMORY_LIMIT
        assert check_end_state(arv_api_admin, arv_api, project, image.image_id,
                               reference) == result.stdout.strip()
        blobs = store.requests()
        assert len(blobs) == 3 and not any(r["authorization"] for r in blobs)  # config, layers
        assert all(r["authorization"] for r in proxy.requests("/manifests/"))
    finally:
        proxy.close()
        store.close()


def push_raw(address, repository, tag, config_bytes, layers, media_type=ib.MT_OCI_MANIFEST):
    """Push a manifest over ``layers`` (``[(media type, bytes)]``) through the registry API."""
    pusher = harness.ApiPusher("http://" + address)
    descriptors = []
    for layer_type, data in layers:
        digest = "sha256:" + ib.sha256_hex(data)
        pusher.blob(repository, [data], digest)
        descriptors.append({"mediaType": layer_type, "digest": digest, "size": len(data)})
    config_digest = "sha256:" + ib.sha256_hex(config_bytes)
    pusher.blob(repository, [config_bytes], config_digest)
    manifest = ib.canonical_json({
        "schemaVersion": 2, "mediaType": media_type,
        "config": {"mediaType": ib.MT_OCI_CONFIG, "digest": config_digest,
                   "size": len(config_bytes)},
        "layers": descriptors})
    return pusher.manifest(repository, tag, manifest, media_type)


def bomb_config(layers):
    return ib.canonical_json({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [bombs.WRONG_DIFF_ID] * layers}})


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("served, declared", [("zstd", "zstd"), ("zstd", "gzip"),
                                              ("gzip", "gzip")])
def test_a_registry_layer_bomb(source_run, run, registry_images, unique, served, declared):
    size = 2 * GiB if served == "zstd" else GiB
    blob = bombs.compressed_zeros(served, size)
    address = registry_images.plain.address
    name = "bomb/%s-%s-%s" % (unique, served, declared)
    push_raw(address, name, "1", bomb_config(1), [(ib.MT_LAYER[declared], blob)])
    source_run.insecure(address)
    message = measured.one_line_refusal(run("docker://%s/%s:1" % (address, name)))
    digest = "sha256:" + ib.sha256_hex(blob)
    if declared == "zstd":  # stored decompressed: measured first, against its diff id
        assert message.startswith("%s/%s:1: layer %s decompresses to sha256:" % (
            address, name, digest)), message
    else:  # stored as served: the upload's check decompresses it, by its bytes
        assert "layer 'blobs/sha256/%s' does not match its diff id" % digest[7:] in message
    assert message.endswith(bombs.WRONG_DIFF_ID) or bombs.WRONG_DIFF_ID in message


@pytest.mark.usefixtures("unchanged")
def test_registry_json_of_any_depth_or_size_is_one_line(source_run, run, registry_proxy,
                                                        registry_images, own_token_registry,
                                                        registry_ca, unique):
    address = registry_proxy.address
    source_run.insecure(address, registry_images.plain.address)
    # A manifest nested 100,000 deep.
    registry_proxy.replace("/manifests/deep", DEEP, {"Content-Type": ib.MT_OCI_MANIFEST})
    assert measured.one_line_refusal(run("docker://%s/demo/oci:deep" % address)) == (
        "%s/demo/oci:deep: the manifest is nested more than 100 levels deep: not an image "
        "document" % address)
    # An image config nested 100,000 deep (pushed: its digest is right).
    name = "deep/%s" % unique
    push_raw(registry_images.plain.address, name, "1", DEEP, [])
    assert measured.one_line_refusal(run("docker://%s/%s:1" % (address, name))) == (
        "%s/%s:1: the image config is nested more than 100 levels deep: not an image "
        "document" % (address, name))
    # An index of 12,000 entries, none for this platform: a bounded line.
    entries = [{"mediaType": ib.MT_OCI_MANIFEST, "digest": "sha256:%064x" % n, "size": 1,
                "platform": {"os": "plan9", "architecture": "arch%d" % n}}
               for n in range(12_000)]
    index = json.dumps({"schemaVersion": 2, "mediaType": ib.MT_OCI_INDEX,
                        "manifests": entries}, separators=(",", ":")).encode()
    registry_proxy.replace("/manifests/wide", index, {"Content-Type": ib.MT_OCI_INDEX})
    message = measured.one_line_refusal(run("docker://%s/demo/oci:wide" % address))
    assert message.endswith(", plan9/arch9 and 11990 more (12000 images in all)"), message
    assert len(message) < 500
    # A token server's answer nested 100,000 deep.
    registry = own_token_registry
    registry.tokens.answer_with(DEEP)
    source_run.certs_d(registry.address, registry_ca)
    assert measured.one_line_refusal(run("docker://%s/demo/oci:1" % registry.address)) == (
        "127.0.0.1:%d: the token server's answer is nested more than 100 levels deep: not "
        "an image document" % registry.tokens.port)


@pytest.mark.usefixtures("unchanged")
def test_a_site_policy_that_rejects_the_registry(source_run, run, registry_proxy):
    address = registry_proxy.address
    source_run.insecure(address)
    # The user's policy.json, found through HOME as skopeo finds it (none given).
    path = source_run.policy({"default": [{"type": "insecureAcceptAnything"}],
                              "transports": {"docker": {address: [{"type": "reject"}]}}})
    assert measured.one_line_refusal(run("docker://%s/demo/oci:1" % address)) == (
        '%s/demo/oci:1: rejected by the trust policy %s (scope docker "%s")'
        % (address, path, address))
    assert registry_proxy.requests() == []
