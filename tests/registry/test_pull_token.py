"""Bearer token auth through a token server, token caching, re-keying mid-session."""

import logging
import os

import pytest

from arv_keepdocker_plugin.distribution import (
    CredentialOptions,
    RegistryAuthError,
    RegistrySession,
    parse_creds,
)

from .conftest import one_line_without, token_registry
from .helpers import basic, write_credential_helper, write_json

pytestmark = pytest.mark.engines

SCOPE = "repository:private/app:pull"


def bob(registry):
    return CredentialOptions(creds=parse_creds("bob:" + registry.password))


def pull_all(options, address, name="private/app:1"):
    with RegistrySession(options) as session:
        image = session.resolve("%s/%s" % (address, name))
        for layer in image.layers:
            with session.blob(image, layer) as stream:
                b"".join(stream)
        return image


def requests_for(registry, scope=SCOPE, since=0):
    return [r for r in registry.tokens.token_requests()[since:] if r[2] == scope]


def test_token_for_a_user_is_fetched_once_and_cached(registry_token, registry_images,
                                                    registry_options):
    before = len(registry_token.tokens.token_requests())
    image = pull_all(registry_options(certs_d=[registry_token.certs_d],
                                      credentials=bob(registry_token)), registry_token.address)
    assert image.manifest_digest == registry_images.images["private/app:1"].digest
    # One token served the manifest, the config and the layer.
    assert requests_for(registry_token, since=before) == [("GET", "bob", SCOPE)]


def test_anonymous_token(registry_token, registry_options):
    before = len(registry_token.tokens.token_requests())
    pull_all(registry_options(certs_d=[registry_token.certs_d]), registry_token.address,
             "demo/oci:1")
    assert requests_for(registry_token, "repository:demo/oci:pull", before) == [
        ("GET", None, "repository:demo/oci:pull")]


def test_anonymous_without_access(registry_token, registry_options):
    with pytest.raises(RegistryAuthError) as info:
        pull_all(registry_options(certs_d=[registry_token.certs_d]), registry_token.address)
    assert str(info.value) == ("%s requires authentication to pull private/app and no "
                               "credentials were found for it (use --src-creds or log in)"
                               % registry_token.address)


def test_wrong_password(registry_token, registry_options, registry_env, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "not-Bobs-pa55word"
    path = write_json(os.path.join(registry_env["XDG_CONFIG_HOME"], "containers", "auth.json"),
                      {"auths": {registry_token.address: {"auth": basic("bob", wrong)}}})
    with pytest.raises(RegistryAuthError) as info:
        pull_all(registry_options(certs_d=[registry_token.certs_d]), registry_token.address)
    assert str(info.value) == (
        "authentication failed for %s (the token server 127.0.0.1:%d refused user bob from "
        "%s (%s))" % (registry_token.address, registry_token.tokens.port, path,
                      registry_token.address))
    secrets = [wrong, basic("bob", wrong), registry_token.password]
    one_line_without(repr(info.value), secrets)
    for record in caplog.records:
        one_line_without(record.getMessage(), secrets)


def test_identity_token_from_a_credential_helper(registry_token, registry_options,
                                                 registry_env, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    write_credential_helper(tmp_path / "bin", "idtoken",
                            {registry_token.address: ("<token>", registry_token.identity_token)})
    write_json(os.path.join(registry_env["HOME"], ".docker", "config.json"),
               {"credHelpers": {registry_token.address: "idtoken"}})
    before = len(registry_token.tokens.token_requests())
    pull_all(registry_options(certs_d=[registry_token.certs_d]), registry_token.address)
    assert requests_for(registry_token, since=before) == [("POST", "bob", SCOPE)]
    for record in caplog.records:
        one_line_without(record.getMessage(), [registry_token.identity_token])


def test_rekeyed_registry_refuses_the_cached_token_and_a_new_one_is_fetched(
        registry_images, registry_basic, registry_ca, registry_server_cert, registry_options,
        tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with token_registry(str(tmp_path / "rekey"), registry_images.storage,
                        registry_ca, registry_server_cert) as registry:
        options = registry_options(certs_d=[registry.certs_d], credentials=bob(registry))
        with RegistrySession(options) as session:
            image = session.resolve(registry.address + "/private/app:1")
            assert requests_for(registry) == [("GET", "bob", SCOPE)]
            registry.tokens.rekey()
            registry.server.restart(token=registry.tokens.registry_config())
            with session.blob(image, image.layers[0]) as stream:
                data = b"".join(stream)
            assert data == registry_images.images["private/app:1"].built.layers[0].data
            # The cached token got a 401 from the re-keyed registry: one new token.
            assert requests_for(registry) == [("GET", "bob", SCOPE)] * 2
            tokens = [m for m in caplog.messages if "authenticating again" in m]
            assert len(tokens) == 1
    for record in caplog.records:
        one_line_without(record.getMessage(), [registry.password])
