"""HTTPS with a private CA from certs.d, Basic auth, every kind of credential source."""

import logging
import os

import pytest

from arv_keepdocker_plugin.distribution import (
    CredentialOptions,
    RegistryAuthError,
    RegistrySession,
    RegistryUnreachable,
    parse_creds,
)

from .conftest import insecure_conf, one_line_without
from .helpers import basic, helper_calls, write_credential_helper, write_json

pytestmark = pytest.mark.engines

NAME = "private/app:1"


def resolve(options, address, name=NAME):
    with RegistrySession(options) as session:
        image = session.resolve("%s/%s" % (address, name))
        with session.blob(image, image.layers[0]) as stream:
            data = b"".join(stream)
        return image, data


def test_certs_d_ca_and_src_creds(registry_basic, registry_images, registry_options):
    creds = CredentialOptions(creds=parse_creds("alice:" + registry_basic.password))
    image, data = resolve(registry_options(certs_d=[registry_basic.certs_d], credentials=creds),
                          registry_basic.address)
    pushed = registry_images.images[NAME]
    assert image.manifest_digest == pushed.digest and data == pushed.built.layers[0].data
    assert image.source.insecure is False


def test_cert_dir_option(registry_basic, registry_options):
    creds = CredentialOptions(creds=parse_creds("alice:" + registry_basic.password))
    cert_dir = os.path.join(registry_basic.certs_d, registry_basic.address)
    resolve(registry_options(cert_dir=cert_dir, credentials=creds), registry_basic.address)


def test_untrusted_certificate_is_one_line(registry_basic, registry_options):
    creds = CredentialOptions(creds=parse_creds("alice:" + registry_basic.password))
    with pytest.raises(RegistryUnreachable) as info:
        resolve(registry_options(credentials=creds), registry_basic.address)
    text = str(info.value)
    assert text.startswith("TLS certificate of %s is not trusted (" % registry_basic.address)
    assert text.endswith("put its CA in certs.d/%s/ or pass --src-tls-verify=false"
                         % registry_basic.address)
    one_line_without(text, [registry_basic.password])


@pytest.mark.parametrize("how", ["tls_verify=False", "insecure"])
def test_unverified_https(registry_basic, registry_options, how):
    creds = CredentialOptions(creds=parse_creds("alice:" + registry_basic.password))
    if how == "insecure":
        options = registry_options(insecure_conf(registry_basic.address), credentials=creds)
    else:
        options = registry_options(credentials=creds, tls_verify=False)
    image, _ = resolve(options, registry_basic.address)
    with RegistrySession(options) as session:
        client = session.client(image.source)
        assert client.base_url == "https://" + registry_basic.address


def credential_file(kind, registry_basic, env, tmp_path):
    """Write alice's credential where ``kind`` says; return CredentialOptions."""
    address, password = registry_basic.address, registry_basic.password
    entry = {"auth": basic("alice", password)}
    home = env["HOME"]
    if kind == "--src-authfile":
        path = write_json(tmp_path / "explicit.json", {"auths": {address: entry}})
        return CredentialOptions(authfile=path)
    if kind == "REGISTRY_AUTH_FILE":
        env["REGISTRY_AUTH_FILE"] = write_json(tmp_path / "raf.json", {"auths": {address: entry}})
    elif kind == "XDG_RUNTIME_DIR":
        write_json(os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"),
                   {"auths": {address: entry}})
    elif kind == "XDG_CONFIG_HOME":
        write_json(os.path.join(env["XDG_CONFIG_HOME"], "containers", "auth.json"),
                   {"auths": {address + "/private": {"username": "alice",
                                                     "password": password}}})
    elif kind == "DOCKER_CONFIG":
        env["DOCKER_CONFIG"] = str(tmp_path / "docker-config")
        write_json(tmp_path / "docker-config" / "config.json",
                   {"auths": {"https://%s/v1/" % address: entry}})
    elif kind == "~/.docker/config.json":
        write_json(os.path.join(home, ".docker", "config.json"),
                   {"auths": {"https://" + address: entry}})
    elif kind == "~/.dockercfg":
        write_json(os.path.join(home, ".dockercfg"), {"https://%s" % address: entry})
    elif kind == "credHelpers":
        write_credential_helper(tmp_path / "bin", "testhelper", {address: ("alice", password)})
        write_json(os.path.join(env["XDG_CONFIG_HOME"], "containers", "auth.json"),
                   {"credHelpers": {address: "testhelper"}, "auths": {address: {}}})
    elif kind == "credsStore":
        write_credential_helper(tmp_path / "bin", "teststore", {address: ("alice", password)})
        write_json(os.path.join(home, ".docker", "config.json"), {"credsStore": "teststore"})
    return CredentialOptions()


KINDS = ["--src-authfile", "REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
         "DOCKER_CONFIG", "~/.docker/config.json", "~/.dockercfg", "credHelpers", "credsStore"]


@pytest.mark.parametrize("kind", KINDS)
def test_credentials_from_each_source(registry_basic, registry_options, registry_env, tmp_path,
                                      kind):
    creds = credential_file(kind, registry_basic, registry_env, tmp_path)
    options = registry_options(certs_d=[registry_basic.certs_d], credentials=creds)
    image, _ = resolve(options, registry_basic.address)
    assert image.manifest_digest
    if kind.startswith("cred"):
        name = "testhelper" if kind == "credHelpers" else "teststore"
        assert helper_calls(tmp_path / "bin", name) == [registry_basic.address]


def test_no_credentials(registry_basic, registry_options, registry_env, tmp_path):
    write_json(os.path.join(registry_env["HOME"], ".docker", "config.json"),
               {"auths": {registry_basic.address: {"auth": basic("alice", "x")}}})
    options = registry_options(certs_d=[registry_basic.certs_d],
                               credentials=CredentialOptions(no_creds=True))
    with pytest.raises(RegistryAuthError) as info:
        resolve(options, registry_basic.address)
    assert str(info.value) == ("%s requires authentication to pull private/app and no "
                               "credentials were found for it (use --src-creds or log in)"
                               % registry_basic.address)


def test_wrong_password_is_one_line_without_secrets(registry_basic, registry_options,
                                                    registry_env, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-pa55word-xyz"
    path = write_json(os.path.join(registry_env["HOME"], ".docker", "config.json"),
                      {"auths": {registry_basic.address: {"auth": basic("alice", wrong)}}})
    options = registry_options(certs_d=[registry_basic.certs_d])
    with pytest.raises(RegistryAuthError) as info:
        resolve(options, registry_basic.address)
    assert str(info.value) == ("authentication failed for %s (user alice from %s (%s) refused)"
                               % (registry_basic.address, path, registry_basic.address))
    secrets = [wrong, basic("alice", wrong), registry_basic.password]
    one_line_without(str(info.value), secrets)
    one_line_without(repr(info.value), secrets)
    for record in caplog.records:
        one_line_without(record.getMessage(), secrets)
    explicit = CredentialOptions(creds=parse_creds("alice:" + wrong))
    with pytest.raises(RegistryAuthError) as info:
        resolve(registry_options(certs_d=[registry_basic.certs_d], credentials=explicit),
                registry_basic.address)
    assert "authentication failed for %s" % registry_basic.address in str(info.value)
    one_line_without(str(info.value), secrets)


def test_client_certificate_from_certs_d(registry_mtls, registry_images, registry_options,
                                         tmp_path):
    image, data = resolve(registry_options(certs_d=[registry_mtls.certs_d]),
                          registry_mtls.address, "demo/oci:1")
    assert image.manifest_digest == registry_images.images["demo/oci:1"].digest
    only_ca = tmp_path / "only-ca"
    only_ca.mkdir()
    with open(os.path.join(registry_mtls.certs_d, registry_mtls.address, "ca.crt"), "rb") as f:
        (only_ca / "ca.crt").write_bytes(f.read())
    with pytest.raises(RegistryUnreachable) as info:
        resolve(registry_options(cert_dir=str(only_ca)), registry_mtls.address, "demo/oci:1")
    assert str(info.value) == (
        "TLS handshake with %s failed (SSLV3_ALERT_BAD_CERTIFICATE); the registry may want a "
        "client certificate (NAME.cert and NAME.key in certs.d/%s/)"
        % (registry_mtls.address, registry_mtls.address))

