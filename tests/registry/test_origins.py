"""Secrets stay at their origin (scheme, host and port).

Against a real ``docker-registry`` with token auth, its real token server, and
a second token server on another port playing the thief:

* the OAuth2 refresh-token POST (an ``identitytoken`` in the auth file, what
  ``docker login`` stores for OAuth2 registries) redirected to another origin
  is not followed: one line, and the refresh token reaches the thief never;
* a Basic-authenticated token request redirected elsewhere goes there
  without its ``Authorization``;
* a plain-HTTP token realm named by an HTTPS registry gets no credentials
  unless the registry is marked insecure;
* a 401 from the place a blob redirect led to never starts a new token
  request (which would send the credentials to a realm it names).
"""

import base64
import os

import pytest

from arv_keepdocker_plugin.distribution import (
    CredentialOptions,
    RegistryAuthError,
    RegistryError,
    RegistrySession,
    parse_creds,
)

from .conftest import insecure_conf, one_line_without, ssl_context_for, token_registry
from .faultproxy import BlobStore, FaultProxy
from .helpers import write_json
from .tokenserver import TokenServer

pytestmark = pytest.mark.engines


@pytest.fixture(scope="module")
def origin(registry_images, registry_basic, registry_ca, registry_server_cert,
           tmp_path_factory):
    """A token registry of this module's own (its token server is made to redirect)."""
    with token_registry(str(tmp_path_factory.mktemp("origin")),
                        registry_images.storage, registry_ca, registry_server_cert) as registry:
        yield registry


@pytest.fixture
def thief(registry_server_cert, tmp_path):
    """A token server on another port that would accept the stolen secrets."""
    server = TokenServer(str(tmp_path), registry_server_cert, {"bob": "anything"},
                         identity_tokens={})
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redirecting(origin):
    yield origin.tokens
    origin.tokens.redirect(None)


def identity_file(env, registry):
    """An auth file holding bob's identity token (as ``docker login`` stores it)."""
    return write_json(os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"),
                      {"auths": {registry.address: {"auth": base64.b64encode(
                          b"<token>:").decode(), "identitytoken": registry.identity_token}}})


def holding(raw, secret):
    return [r for r in raw if secret.encode() in r]


@pytest.mark.parametrize("status", [307, 308, 301, 302, 303])
def test_an_identity_token_request_redirected_off_its_origin_is_refused(
        origin, thief, redirecting, registry_options, registry_env, status, caplog):
    identity_file(registry_env, origin)
    redirecting.redirect(thief.realm, status)
    before = len(origin.tokens.raw_requests())
    with pytest.raises(RegistryAuthError) as info:
        with RegistrySession(registry_options(certs_d=[origin.certs_d])) as session:
            session.resolve(origin.address + "/private/app:1")
    assert str(info.value) == (
        "token request to https://127.0.0.1:%d/token: 127.0.0.1:%d redirected it to "
        "https://127.0.0.1:%d; a request carrying a secret is never sent off its origin, so "
        "it was not followed" % (origin.tokens.port, origin.tokens.port, thief.port))
    # Sent once, to its origin; never to the thief, in no form.
    assert len(holding(origin.tokens.raw_requests()[before:], origin.identity_token)) == 1
    assert thief.raw_requests() == []
    one_line_without(str(info.value), [origin.identity_token])
    for record in caplog.records:
        one_line_without(record.getMessage(), [origin.identity_token])


def test_an_identity_token_request_redirected_within_its_origin_is_followed(
        origin, redirecting, registry_options, registry_env):
    identity_file(registry_env, origin)
    # The same origin, another path: the body goes along (307 keeps it), as it may.
    redirecting.redirect("https://127.0.0.1:%d/token?moved=1" % origin.tokens.port, 307)
    before = len(origin.tokens.raw_requests())
    # The redirect answers every request, so it loops: refused after 10 hops, each at
    # the origin; nothing went anywhere else.
    with pytest.raises(RegistryError) as info:
        with RegistrySession(registry_options(certs_d=[origin.certs_d])) as session:
            session.resolve(origin.address + "/private/app:1")
    assert str(info.value) == "https://127.0.0.1:%d/token: more than 10 redirects" % (
        origin.tokens.port)
    sent = origin.tokens.raw_requests()[before:]
    assert len(sent) == 11 and len(holding(sent, origin.identity_token)) == 11


def test_basic_credentials_are_not_sent_where_a_token_request_is_redirected(
        origin, thief, redirecting, registry_options):
    redirecting.redirect(thief.realm + "?from=origin", 307)
    creds = CredentialOptions(creds=parse_creds("bob:" + origin.password))
    with pytest.raises(RegistryAuthError):
        with RegistrySession(registry_options(certs_d=[origin.certs_d],
                                              credentials=creds)) as session:
            session.resolve(origin.address + "/private/app:1")
    basic_value = base64.b64encode(("bob:" + origin.password).encode()).decode()
    seen = thief.raw_requests()
    # Followed (once, and once more after the registry's 401), anonymously: the
    # thief's token opens nothing.
    assert len(seen) == 2
    assert holding(seen, basic_value) == [] and holding(seen, origin.password) == []
    assert not any(b"authorization" in r.lower() for r in seen)


@pytest.fixture(scope="module")
def http_realm(registry_images, registry_ca, registry_server_cert, tmp_path_factory):
    """An HTTPS registry whose token server speaks plain HTTP."""
    from . import harness
    workdir = str(tmp_path_factory.mktemp("http-realm"))
    tokens = TokenServer(workdir, None, {"bob": "Plain-realm-s3cret"},
                         anonymous_pull=("demo/oci",))
    server = harness.RegistryServer(workdir, registry_images.storage, tls=registry_server_cert,
                                    token=tokens.registry_config())
    try:
        server.start()
    except (harness.StartError, OSError) as error:
        tokens.close()
        harness.skip_or_fail("docker-registry (token auth, HTTP realm)", error)
    certs_d = os.path.join(workdir, "certs.d", server.address)
    os.makedirs(certs_d)
    registry_ca.cert_pem.write_to_path(os.path.join(certs_d, "ca.crt"))
    try:
        yield server, tokens, os.path.dirname(certs_d)
    finally:
        server.stop()
        tokens.close()


def test_credentials_never_go_to_a_plain_http_realm_unless_the_registry_is_insecure(
        http_realm, registry_options):
    server, tokens, certs_d = http_realm
    assert tokens.realm.startswith("http://")
    creds = CredentialOptions(creds=parse_creds("bob:Plain-realm-s3cret"))
    with pytest.raises(RegistryAuthError) as info:
        with RegistrySession(registry_options(certs_d=[certs_d], credentials=creds)) as session:
            session.resolve(server.address + "/demo/oci:1")
    assert str(info.value) == (
        "registry %s sends clients to a plain-HTTP token server (%s): credentials are never "
        "sent in clear text to it unless the registry is marked insecure (registries.conf) "
        "or --src-tls-verify=false is given" % (server.address, tokens.realm))
    assert tokens.raw_requests() == []
    # Anonymous pulls send no secret: allowed.
    with RegistrySession(registry_options(certs_d=[certs_d])) as session:
        assert session.resolve(server.address + "/demo/oci:1").layers
    assert len(tokens.raw_requests()) == 1
    # Marked insecure, the site accepts clear text for this registry.
    with RegistrySession(registry_options(insecure_conf(server.address), certs_d=[certs_d],
                                          credentials=creds)) as session:
        assert session.resolve(server.address + "/demo/oci:1").layers
    assert b"authorization: basic" in tokens.raw_requests()[-1].lower()


def test_a_401_from_where_a_blob_was_redirected_starts_no_new_authentication(
        registry_basic, registry_ca, registry_options, thief):
    proxy = FaultProxy(registry_basic.address, context=ssl_context_for(registry_ca))
    store = BlobStore(registry_basic.address, challenge='Bearer realm="%s",service="storage"'
                      % thief.realm)
    try:
        proxy.redirect_blobs(store)
        creds = CredentialOptions(creds=parse_creds("alice:" + registry_basic.password))
        options = registry_options(insecure_conf(proxy.address), credentials=creds)
        with pytest.raises(RegistryAuthError) as info:
            with RegistrySession(options) as session:
                session.resolve(proxy.address + "/private/app:1")
        assert str(info.value).endswith(
            "http://%s answered 401 Unauthorized after %s redirected the request there; "
            "credentials for %s are never sent to another origin"
            % (store.address, proxy.address, proxy.address))
        assert thief.raw_requests() == []
        assert not any(r["authorization"] for r in store.requests())
    finally:
        proxy.close()
        store.close()
