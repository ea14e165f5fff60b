"""``arv keepdocker docker://...`` against registries that want credentials.

HTTPS with a private CA (trusted through the user's certs.d) and htpasswd
Basic auth, with alice's credential from every place podman and skopeo look
(and a credential helper); bearer tokens from a token server, also after
the registry was re-keyed; and the password never appearing in anything the
runs wrote: output, logs, files under HOME (the resume journal included),
Arvados records.
"""

import json
import os
import signal
import time

import arvados.util
import pytest
from arv_keepdocker_testkit import imagebuild as ib

from .conftest import ssl_context_for, token_registry
from .faultproxy import FaultProxy
from .helpers import basic, helper_calls, write_json
from .source_fixtures import links_of, one_error, uploaded
from .test_pull_auth import KINDS, credential_file

pytestmark = [pytest.mark.engines, pytest.mark.cluster]

NAME = "private/app:1"


def credential_arguments(kind, registry_basic, source_run, tmp_path):
    """Put alice's credential where ``kind`` says; the arguments and environment to add."""
    if kind == "--src-creds":
        return ["--src-creds", "alice:" + registry_basic.password], {}
    env = source_run.env
    options = credential_file(kind, registry_basic, env, tmp_path)
    arguments = ["--src-authfile", options.authfile] if options.authfile else []
    return arguments, {"PATH": "%s:%s" % (tmp_path / "bin", env["PATH"])}


@pytest.mark.parametrize("kind", ["--src-creds"] + KINDS)
def test_https_with_a_private_ca_and_basic_auth_from_each_credential_kind(
        kind, source_run, registry_basic, registry_ca, registry_images, arv_api, tmp_path):
    address = registry_basic.address
    source_run.certs_d(address, registry_ca)
    arguments, env = credential_arguments(kind, registry_basic, source_run, tmp_path)
    # --force: the blobs are downloaded with the credential too, not just the manifest.
    uuid = uploaded(source_run("--no-progress", "--force", *arguments,
                               "docker://%s/%s" % (address, NAME), env=env))
    pushed = registry_images.images[NAME]
    assert links_of(arv_api, uuid)[("docker_image_repo+tag", "%s/%s" % (address, NAME))] == {
        "image_timestamp": pushed.built.config["created"], "image_manifest_digest": pushed.digest}
    if kind.startswith("cred"):
        name = "testhelper" if kind == "credHelpers" else "teststore"
        # Asked once for resolving, once for the blobs' own session.
        assert set(helper_calls(tmp_path / "bin", name)) == {address}


def test_bearer_tokens_also_after_the_registry_was_rekeyed(
        source_run, registry_images, registry_basic, registry_ca, registry_server_cert, arv_api,
        tmp_path):
    with token_registry(str(tmp_path / "token"), registry_images.storage,
                        registry_ca, registry_server_cert) as registry:
        source_run.certs_d(registry.address, registry_ca)
        authfile = write_json(tmp_path / "bob.json", {"auths": {
            registry.address: {"auth": basic("bob", registry.password)}}})
        ref = "docker://%s/%s" % (registry.address, NAME)
        uploaded(source_run("--no-progress", "--force", "--src-authfile", authfile, ref))
        asked = registry.tokens.token_requests()
        assert asked and {user for _, user, _ in asked} == {"bob"}
        registry.tokens.rekey()
        registry.server.restart(token=registry.tokens.registry_config())
        uploaded(source_run("--no-progress", "--force", "--src-authfile", authfile, ref))
        assert len(registry.tokens.token_requests()) > len(asked)
        # The token server lets anyone pull demo/oci: an anonymous token.
        uuid = uploaded(source_run("--no-progress", "--src-no-creds",
                                   "docker://%s/demo/oci:1" % registry.address))
        assert ("docker_image_hash", registry_images.images["demo/oci:1"].built.image_id) in \
            links_of(arv_api, uuid)
        assert registry.tokens.token_requests()[-1][1] is None
        assert one_error(source_run("--no-progress", "--src-no-creds", ref)) == (
            "%s requires authentication to pull private/app and no credentials were found "
            "for it (use --src-creds or log in)" % registry.address)


def test_the_password_never_appears_in_anything_the_runs_wrote(
        source_run, push, registry_basic, registry_ca, registry_images, arv_api_admin, tmp_path,
        unique):
    address, password = registry_basic.address, registry_basic.password
    secrets = [password, basic("alice", password)]
    source_run.certs_d(address, registry_ca)
    creds = ["--src-creds", "alice:" + password]
    outputs = []

    def run(*args, env=None):
        proc = source_run(*args, env=env)
        outputs.append(proc.stdout + proc.stderr)
        return proc

    uploaded(run("--batch-progress", "--force", *creds, "docker://%s/%s" % (address, NAME),
                 env={"ARVADOS_DEBUG": "1"}))
    run("--no-progress", *creds, "docker://%s/private/app:nope" % address)
    run("--no-progress", "--src-creds", "alice:wrong-" + password,
        "docker://%s/%s" % (address, NAME))
    run("--list-plugins", "--json", *creds)
    # An upload killed mid-download leaves its journal behind (through a proxy
    # that holds the second layer back; credentials pass through it).
    image = ib.build_image([{"a": os.urandom(300 * 1024)}, {"b": os.urandom(300 * 1024)}],
                           compression="gzip")
    push(registry_images.plain.address, "demo/%s:1" % unique, image)  # storage is shared
    proxy = FaultProxy(address, context=ssl_context_for(registry_ca))
    try:
        source_run.insecure(proxy.address)
        held = proxy.stall(image.layers[1].digest)
        slow = source_run.start("--no-progress", *creds,
                                "docker://%s/demo/%s:1" % (proxy.address, unique))
        journal = source_run.journal(image.image_id)
        deadline = time.monotonic() + 60
        while not _has_layer_line(journal):
            assert slow.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        slow.send_signal(signal.SIGKILL)
        outputs.append("".join(slow.communicate()))
        held.set()
        assert any(r["authorization"] for r in proxy.requests("/manifests/"))
    finally:
        proxy.close()

    places = {f"output of run {n}": text for n, text in enumerate(outputs)}
    for root in (source_run.home, str(tmp_path)):
        for directory, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(directory, name)
                with open(path, "rb") as f:
                    places[path] = f.read(64 << 20).decode("latin-1")
    places["collections"] = json.dumps(list(arvados.util.keyset_list_all(
        arv_api_admin.collections().list, include_trash=True)))
    places["links"] = json.dumps(list(arvados.util.keyset_list_all(
        arv_api_admin.links().list)))
    leaks = [where for where, text in places.items() for secret in secrets if secret in text]
    assert leaks == []
    assert journal in places


def _has_layer_line(path):
    try:
        with open(path) as f:
            return any(line.startswith("layer ") for line in f)
    except FileNotFoundError:
        return False

