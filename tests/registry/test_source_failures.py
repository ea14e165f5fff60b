"""``arv keepdocker docker://...`` when things go wrong, against real parts on loopback.

Every failure is one line on stderr and exit status 1, and leaves nothing in
Arvados (admin's view of every collection and link, before and after). A
connection cut mid-blob is resumed with ``Range``; a run killed mid-download
and run again downloads only the layers its journal lacks.
"""

import json
import os
import signal
import time

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from .source_fixtures import MiB, blob_gets, counts, one_error, uploaded
from .test_source import noise

pytestmark = [pytest.mark.engines, pytest.mark.cluster]


@pytest.fixture
def pushed(push, registry_images, unique):
    """A fresh two-layer image ``demo/<unique>:1`` on the plain registry."""
    image = ib.build_image([{"a": noise(unique + "a", 3 * MiB)},
                            {"b": noise(unique + "b", 300 * 1024)}], compression="gzip")
    push(registry_images.plain.address, "demo/%s:1" % unique, image)
    return image


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("typed, message", [
    ("docker://no-such-host.invalid/app:1",
     "cannot resolve host no-such-host.invalid (unknown host or no DNS)"),
    ("docker://", "invalid image reference: empty"),
    ("docker://Upper/app", "invalid image reference 'Upper/app': repository name must be "
     "lowercase"),
])
def test_unknown_hosts_and_bad_references(source_run, typed, message):
    assert one_error(source_run("--no-progress", typed)) == message


@pytest.mark.usefixtures("unchanged")
def test_unknown_names_and_tags_and_blocked_registries(source_run, registry_images):
    address = registry_images.plain.address
    source_run.insecure(address)
    assert one_error(source_run("--no-progress", "docker://%s/demo/oci:nope" % address)) == (
        "%s/demo/oci:nope: manifest unknown (MANIFEST_UNKNOWN: manifest unknown)" % address)
    assert one_error(source_run("--no-progress", "docker://%s/no/such/repo:1" % address)) \
        .startswith("%s/no/such/repo:1: manifest unknown (" % address)
    source_run.conf("""
        [[registry]]
        prefix = "%s/demo"
        blocked = true
    """ % address)
    assert one_error(source_run("--no-progress", "docker://%s/demo/oci:1" % address)) == (
        "%s/demo/oci is blocked by registries.conf (prefix '%s/demo' in %s)"
        % (address, address, source_run.conf_path))


@pytest.mark.usefixtures("unchanged")
def test_unauthorized_untrusted_and_no_password_to_ask_for(source_run, registry_basic,
                                                           registry_ca):
    address = registry_basic.address
    ref = "docker://%s/private/app:1" % address
    untrusted = one_error(source_run("--no-progress", "--src-creds",
                                     "alice:" + registry_basic.password, ref))
    assert untrusted.startswith("TLS certificate of %s is not trusted (" % address)
    source_run.certs_d(address, registry_ca)
    assert one_error(source_run("--no-progress", ref)) == (
        "%s requires authentication to pull private/app and no credentials were found for it "
        "(use --src-creds or log in)" % address)
    assert one_error(source_run("--no-progress", "--src-creds", "alice:not-the-password",
                                ref)) == (
        "authentication failed for %s (user alice from --src-creds refused)" % address)
    assert one_error(source_run("--no-progress", "--src-creds", "alice", ref)) == (
        "--src-creds alice: no password given and no way to ask for one (use USER:PASSWORD)")


@pytest.mark.usefixtures("unchanged")
def test_the_trust_policy_refuses_before_any_request(source_run, registry_proxy, tmp_path):
    address = registry_proxy.address
    source_run.insecure(address)
    ref = "docker://%s/demo/oci:1" % address
    site = tmp_path / "site-policy.json"
    site.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}], "transports": {
        "docker": {"%s/demo" % address: [{"type": "reject"}]}}}))
    assert one_error(source_run("--no-progress", "--policy", str(site), ref)) == (
        '%s/demo/oci:1: rejected by the trust policy %s (scope docker "%s/demo")'
        % (address, site, address))
    # The user's own file (found through HOME) when no --policy is given.
    user = source_run.policy({"default": [{"type": "reject"}], "transports": {"docker": {
        address: [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k.gpg"}]}}})
    assert one_error(source_run("--no-progress", ref)) == (
        '%s/demo/oci:1: the trust policy %s requires signatures for scope docker "%s" '
        "(signedBy), which arv keepdocker does not verify; --insecure-policy skips the policy"
        % (address, user, address))
    source_run.policy({"default": [{"type": "insecureAcceptAnything"}], "transports": {
        "docker": {"": [{"type": "reject"}]}}})
    assert one_error(source_run("--no-progress", ref)).endswith('(scope docker "")')
    assert registry_proxy.requests() == []  # refused before asking the registry anything


def test_the_trust_policy_accepts_or_is_skipped(source_run, registry_proxy, registry_images):
    address = registry_proxy.address
    source_run.insecure(address)
    source_run.policy({"default": [{"type": "reject"}], "transports": {"docker": {
        "%s/demo/oci:1" % address: [{"type": "insecureAcceptAnything"}],
        "%s/demo/docker" % address: [{"type": "sigstoreSigned", "keyPath": "/k.pub"}]}}})
    uploaded(source_run("--no-progress", "docker://%s/demo/oci:1" % address))
    uploaded(source_run("--no-progress", "--insecure-policy",
                        "docker://%s/demo/docker:1" % address))


@pytest.mark.usefixtures("unchanged")
def test_a_schema_1_manifest_is_refused(source_run, registry_proxy):
    body = json.dumps({"schemaVersion": 1, "name": "demo/old", "tag": "1", "fsLayers": [],
                       "signatures": [{"protected": "x"}]}).encode()
    registry_proxy.replace("/manifests/1", body, {
        "Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"})
    source_run.insecure(registry_proxy.address)
    assert one_error(source_run("--no-progress", "docker://%s/demo/old:1"
                                % registry_proxy.address)) == (
        "%s/demo/old:1: Docker schema 1 manifests are not supported (the image is too old: "
        "push it again with a current Docker or skopeo)" % registry_proxy.address)


@pytest.mark.usefixtures("unchanged")
def test_a_corrupted_blob_stops_the_upload_and_nothing_is_left(source_run, registry_proxy,
                                                               pushed, unique):
    layer = pushed.layers[0]
    registry_proxy.corrupt(layer.digest)
    source_run.insecure(registry_proxy.address)
    message = one_error(source_run("--no-progress", "docker://%s/demo/%s:1"
                                   % (registry_proxy.address, unique)))
    assert message.startswith("blob %s from %s/demo/%s: content has digest sha256:"
                              % (layer.digest, registry_proxy.address, unique))
    assert message.endswith(", expected %s; refusing it" % layer.digest)


@pytest.mark.usefixtures("unchanged")
def test_a_zstd_chunked_layer_that_does_not_decompress_to_its_diff_id(
        source_run, push, registry_images, unique):
    # Python's tarfile pads a layer to 10 KiB records; zstd:chunked keeps only
    # the tar itself, so this layer no longer hashes to its diff id.
    address = registry_images.plain.address
    image = ib.build_image([{"padded": noise(unique, 100 * 1024)}], compression="gzip")
    push(address, "demo/%s:1" % unique, image, "--dest-compress-format", "zstd:chunked")
    source_run.insecure(address)
    message = one_error(source_run("--no-progress", "docker://%s/demo/%s:1" % (address,
                                                                               unique)))
    assert message.endswith("but the image config says its diff id is %s"
                            % image.layers[0].diff_id)


def test_a_connection_cut_mid_blob_is_resumed_with_range(source_run, registry_proxy, pushed,
                                                         unique, arv_api):
    layer = pushed.layers[0]
    # After two whole chunks: what the client read is kept (a cut inside its
    # first 1 MiB read loses that read, and the resume starts at 0).
    registry_proxy.drop_once(layer.digest, after=2 * MiB + 17)
    source_run.insecure(registry_proxy.address)
    proc = source_run("--batch-progress", "docker://%s/demo/%s:1"
                      % (registry_proxy.address, unique))
    uploaded(proc)
    ranges = [r["range"] for r in registry_proxy.requests(layer.digest)]
    assert ranges[0] is None and len(ranges) == 2 and ranges[1].startswith("bytes=")
    resumed_at = int(ranges[1][len("bytes="):-1])
    assert 0 < resumed_at <= 2 * MiB + 17
    # Nothing was received twice: the cut half, then the rest from where it stopped.
    documents = len(pushed.manifest_bytes) + len(pushed.config_bytes)
    assert counts(proc.stderr)["downloaded"] == sum(l.size for l in pushed.layers) + documents


def test_killed_mid_download_a_rerun_downloads_only_what_the_journal_lacks(
        source_run, push, registry_images, registry_proxy, arvados_state, unique):
    layers = [ib.make_layer({"l%d" % n: noise(unique + str(n), 700 * 1024)}, "gzip")
              for n in range(3)]
    image = ib.build_image(layers)
    push(registry_images.plain.address, "demo/%s:1" % unique, image)
    source_run.insecure(registry_proxy.address)
    ref = "docker://%s/demo/%s:1" % (registry_proxy.address, unique)
    before = arvados_state.snapshot()
    held = registry_proxy.stall(layers[2].digest)  # the last layer's GET waits
    proc = source_run.start("--no-progress", ref)
    journal = source_run.journal(image.image_id)
    try:
        deadline = time.monotonic() + 60
        while _journalled_layers(journal) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        held.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert arvados_state.snapshot() == before  # nothing visible from the killed run

    start = len(registry_proxy.seen)
    rerun = source_run("--batch-progress", ref)
    uploaded(rerun)
    # Resolving fetches the config; of the layers only the one the journal lacks.
    assert sorted(blob_gets(registry_proxy, start)) == sorted([image.image_id,
                                                              layers[2].digest])
    progress = counts(rerun.stderr)
    documents = len(image.manifest_bytes) + len(image.config_bytes)
    assert progress["downloaded"] == layers[2].size + documents
    # The two layers unread, and the small blocks before them again by md5.
    skipped = layers[0].size + layers[1].size
    assert skipped <= progress["reused"] < skipped + 64 * 1024
    assert progress["uploaded"] < layers[2].size + 64 * 1024
    assert not os.path.exists(journal)  # a finished upload removes its journal


def _journalled_layers(path: str) -> int:
    try:
        with open(path) as f:
            return sum(1 for line in f if line.startswith("layer "))
    except FileNotFoundError:
        return 0
