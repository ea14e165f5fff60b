"""Credential lookup in podman/skopeo order, with no registry."""

import os

import pytest

from arv_keepdocker_plugin.distribution.credentials import (
    Credential,
    CredentialOptions,
    auth_files,
    candidate_keys,
    find_credential,
    normalize_auth_key,
    parse_creds,
)
from arv_keepdocker_plugin.distribution.registry_errors import CredentialError

from .helpers import basic, helper_calls, write_credential_helper, write_json

HOST = "reg.example:5000"


@pytest.fixture
def env(tmp_path):
    """A private HOME, XDG dirs and a PATH with a bin dir for helpers."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path / "run"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "PATH": "%s:%s" % (tmp_path / "bin", os.environ.get("PATH", "/usr/bin:/bin"))}


def paths(env, tmp_path):
    home = env["HOME"]
    return {
        "runtime": os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"),
        "config": os.path.join(env["XDG_CONFIG_HOME"], "containers", "auth.json"),
        "docker": os.path.join(home, ".docker", "config.json"),
        "legacy": os.path.join(home, ".dockercfg"),
        "explicit": str(tmp_path / "explicit.json"),
    }


def user_of(credential):
    return credential.username if credential else None


def test_file_order(env, tmp_path):
    p = paths(env, tmp_path)
    assert [f.path for f in auth_files(CredentialOptions(), env)] == [
        p["runtime"], p["config"], p["docker"], p["legacy"]]
    for kind in ["legacy", "docker", "config", "runtime"]:
        content = {HOST: {"auth": basic(kind, "pw")}}
        write_json(p[kind], content if kind == "legacy" else {"auths": content})
        assert user_of(find_credential(HOST, "x", env=env)) == kind  # later kinds win
    write_json(p["explicit"], {"auths": {HOST: {"auth": basic("explicit", "pw")}}})
    options = CredentialOptions(authfile=p["explicit"])
    assert user_of(find_credential(HOST, "x", options, env)) == "explicit"
    # --src-authfile replaces only the primary file: the others still follow it.
    assert user_of(find_credential("other.example", "x", options, env)) is None
    write_json(p["config"], {"auths": {"other.example": {"auth": basic("cfg", "pw")}}})
    assert user_of(find_credential("other.example", "x", options, env)) == "cfg"


def test_registry_auth_file_replaces_the_runtime_file(env, tmp_path):
    p = paths(env, tmp_path)
    write_json(p["runtime"], {"auths": {HOST: {"auth": basic("runtime", "pw")}}})
    env["REGISTRY_AUTH_FILE"] = write_json(tmp_path / "raf.json",
                                           {"auths": {HOST: {"auth": basic("raf", "pw")}}})
    assert user_of(find_credential(HOST, "x", env=env)) == "raf"
    del env["XDG_RUNTIME_DIR"]
    del env["REGISTRY_AUTH_FILE"]
    assert auth_files(CredentialOptions(), env)[0].path == \
        "/run/containers/%d/auth.json" % os.getuid()


def test_docker_config_env(env, tmp_path):
    env["DOCKER_CONFIG"] = str(tmp_path / "dc")
    write_json(tmp_path / "dc" / "config.json", {"auths": {HOST: {"auth": basic("dc", "pw")}}})
    assert user_of(find_credential(HOST, "x", env=env)) == "dc"


def test_explicit_options():
    creds = parse_creds("bob:pa:ss")
    assert (creds.username, creds.password) == ("bob", "pa:ss")
    assert find_credential(HOST, "x", CredentialOptions(creds=creds), env={}) is creds
    assert find_credential(HOST, "x", CredentialOptions(no_creds=True), env={}) is None
    with pytest.raises(CredentialError, match="cannot be used together"):
        CredentialOptions(creds=creds, no_creds=True)
    assert parse_creds("bob", prompt=lambda message: "typed").password == "typed"
    with pytest.raises(CredentialError, match="no password"):
        parse_creds("bob")
    with pytest.raises(CredentialError, match="username is empty"):
        parse_creds(":pw")


def test_namespaced_keys_most_specific_first(env, tmp_path):
    p = paths(env, tmp_path)
    assert candidate_keys(HOST, "a/b/c") == [HOST + "/a/b/c", HOST + "/a/b", HOST + "/a", HOST]
    write_json(p["config"], {"auths": {
        HOST: {"auth": basic("host", "pw")},
        HOST + "/team": {"auth": basic("team", "pw")},
        HOST + "/team/app": {"auth": basic("app", "pw")},
        HOST + "/team/app/x": {},  # a placeholder: not a credential
    }})
    assert user_of(find_credential(HOST, "team/app/x", env=env)) == "app"
    assert user_of(find_credential(HOST, "team/other", env=env)) == "team"
    assert user_of(find_credential(HOST, "elsewhere", env=env)) == "host"
    assert user_of(find_credential(HOST, "teamx", env=env)) == "host"


@pytest.mark.parametrize("key", [HOST, "https://" + HOST, "http://" + HOST,
                                 "https://%s/v1/" % HOST, "https://%s/v2/" % HOST])
def test_url_keys(env, tmp_path, key):
    write_json(paths(env, tmp_path)["docker"], {"auths": {key: {"auth": basic("u", "pw")}}})
    assert user_of(find_credential(HOST, "x", env=env)) == "u"


@pytest.mark.parametrize("key", ["docker.io", "https://index.docker.io/v1/", "index.docker.io",
                                 "registry-1.docker.io"])
def test_docker_hub_keys(env, tmp_path, key):
    write_json(paths(env, tmp_path)["docker"], {"auths": {key: {"auth": basic("hub", "pw")}}})
    for registry in ("docker.io", "index.docker.io"):
        assert user_of(find_credential(registry, "library/debian", env=env)) == "hub"


def test_legacy_dockercfg(env, tmp_path):
    write_json(paths(env, tmp_path)["legacy"],
               {"https://index.docker.io/v1/": {"auth": basic("old", "pw"), "email": "x@y"}})
    assert user_of(find_credential("docker.io", "library/debian", env=env)) == "old"
    assert find_credential(HOST, "x", env=env) is None


def test_entry_forms_and_placeholders(env, tmp_path):
    p = paths(env, tmp_path)
    write_json(p["runtime"], {"auths": {HOST: {}}})  # placeholder: continue
    write_json(p["config"], {"auths": {HOST: {"username": "u", "password": "p"}}})
    found = find_credential(HOST, "x", env=env)
    assert (found.username, found.password) == ("u", "p")
    write_json(p["config"], {"auths": {HOST: {"identitytoken": "refresh-me"}}})
    found = find_credential(HOST, "x", env=env)
    assert found.identity_token == "refresh-me" and not found.password
    write_json(p["config"], {"auths": {HOST: {"auth": basic("u", "p:with:colons")}}})
    assert find_credential(HOST, "x", env=env).password == "p:with:colons"


def test_credential_helpers(env, tmp_path):
    bin_dir = tmp_path / "bin"
    write_credential_helper(bin_dir, "one", {HOST: ("helped", "helper-secret")})
    write_credential_helper(bin_dir, "tok", {HOST: ("<token>", "identity-secret")})
    p = paths(env, tmp_path)
    write_json(p["config"], {"credHelpers": {HOST: "one"},
                             "auths": {HOST: {"auth": basic("ignored", "pw")}}})
    found = find_credential(HOST, "x", env=env)
    assert (found.username, found.password, found.source) == (
        "helped", "helper-secret", "docker-credential-one")
    assert helper_calls(bin_dir, "one") == [HOST]
    write_json(p["config"], {"credHelpers": {HOST: "tok"}})
    found = find_credential(HOST, "x", env=env)
    assert found.identity_token == "identity-secret" and not found.username
    # A helper without the credential: the next files are read.
    write_json(p["config"], {"credHelpers": {"other.example": "one", HOST: "one"}})
    write_json(p["docker"], {"auths": {"other.example": {"auth": basic("dock", "pw")}}})
    assert user_of(find_credential("other.example", "x", env=env)) == "dock"


def test_creds_store_only_in_dockers_file(env, tmp_path):
    bin_dir = tmp_path / "bin"
    write_credential_helper(bin_dir, "store", {HOST: ("stored", "store-secret"),
                                               "https://index.docker.io/v1/": ("hub", "s")})
    p = paths(env, tmp_path)
    write_json(p["config"], {"credsStore": "store"})
    assert find_credential(HOST, "x", env=env) is None
    write_json(p["docker"], {"credsStore": "store",
                             "auths": {"other.example": {"auth": basic("file", "pw")}}})
    assert user_of(find_credential(HOST, "x", env=env)) == "stored"
    assert user_of(find_credential("docker.io", "library/x", env=env)) == "hub"
    # Nothing in the store: the auths entries still count.
    assert user_of(find_credential("other.example", "x", env=env)) == "file"


def test_helper_failures_are_one_line_without_secrets(env, tmp_path):
    bin_dir = tmp_path / "bin"
    write_credential_helper(bin_dir, "broken", {}, fail_with="leaked-secret-xyz")
    write_json(paths(env, tmp_path)["config"], {"credHelpers": {HOST: "broken"}})
    with pytest.raises(CredentialError) as info:
        find_credential(HOST, "x", env=env)
    assert "exit status 2" in str(info.value) and "leaked-secret-xyz" not in str(info.value)
    write_json(paths(env, tmp_path)["config"], {"credHelpers": {HOST: "missing"}})
    with pytest.raises(CredentialError, match="docker-credential-missing .* not in PATH"):
        find_credential(HOST, "x", env=env)


@pytest.mark.parametrize("content, message", [
    ('{"auths": {"%s": {"auth": "not base64!"}}}' % HOST, "not base64"),
    ('{"auths": {"%s": {"auth": "%s"}}}' % (HOST, "bm9jb2xvbg=="), "not base64 of user"),
    ('{"auths": {"%s": {"auth": "c2VjcmV0OnB3"' % HOST, "not valid JSON"),
    ('[1, 2]', "JSON object"),
    ('{"auths": {"%s": "secret-string"}}' % HOST, "not a JSON object"),
])
def test_bad_files_are_one_line_without_secrets(env, tmp_path, content, message):
    path = paths(env, tmp_path)["config"]
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write(content)
    with pytest.raises(CredentialError, match=message) as info:
        find_credential(HOST, "x", env=env)
    text = str(info.value)
    assert "\n" not in text and "secret" not in text and "c2VjcmV0" not in text


def test_unreadable_file(env, tmp_path):
    os.makedirs(paths(env, tmp_path)["config"])
    with pytest.raises(CredentialError, match="is a directory"):
        find_credential(HOST, "x", env=env)


def test_credentials_hide_their_secrets():
    credential = Credential("bob", "hunter2-secret", "", "somewhere")
    token = Credential("", "", "refresh-secret", "helper")
    for text in (repr(credential), str(credential), repr([credential, token]), str(token)):
        assert "secret" not in text
    assert "bob" in repr(credential)
    assert set(credential.secrets()) == {"hunter2-secret", credential.basic_value()}


def test_normalize_auth_key():
    assert normalize_auth_key("https://index.docker.io/v1/") == "docker.io"
    assert normalize_auth_key("http://h:5000/v2/") == "h:5000"
    assert normalize_auth_key("h:5000/ns") == "h:5000/ns"
