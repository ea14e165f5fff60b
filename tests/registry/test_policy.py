"""The trust policy (containers-policy.json(5)): lookup, scopes, requirements, strictness.

Every test names its own files (the machine's /etc/containers/policy.json is
never read: the system path is given explicitly).
"""

import argparse
import json
import os

import pytest

from arv_keepdocker_plugin.distribution import parse_reference
from arv_keepdocker_plugin.distribution.policy import (
    PolicyError,
    default_path,
    identity,
    load_policy,
    namespaces,
    parse_policy,
)
from arv_keepdocker_plugin.sources import registry_options

ACCEPT = [{"type": "insecureAcceptAnything"}]
REJECT = [{"type": "reject"}]
SIGNED = [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/etc/pki/key.gpg"}]


def write(path, document):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w") as f:
        f.write(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def ref(text):
    return parse_reference(text)


def test_identity_and_namespaces_are_containers_image_s():
    assert identity(ref("busybox")) == "docker.io/library/busybox:latest"
    assert identity(ref("quay.io/a/b@sha256:" + "1" * 64)) == "quay.io/a/b@sha256:" + "1" * 64
    assert namespaces(ref("busybox")) == ["docker.io/library/busybox", "docker.io/library",
                                          "docker.io", "*.io"]
    assert namespaces(ref("reg.example.com:5000/ns/app:1")) == [
        "reg.example.com:5000/ns/app", "reg.example.com:5000/ns", "reg.example.com:5000",
        "*.example.com", "*.com"]
    assert namespaces(ref("localhost/x"))[-1] == "localhost"


def test_the_most_specific_scope_decides():
    policy = parse_policy({"default": REJECT, "transports": {"docker": {
        "": ACCEPT,
        "*.example.com": REJECT,
        "reg.example.com/ns": ACCEPT,
        "reg.example.com/ns/app:bad": REJECT,
        "quay.io/signed": SIGNED,
    }, "docker-daemon": {"": REJECT}}}, "p.json")

    def scope(text):
        found, types = policy.requirements(ref(text))
        return str(found), types

    assert scope("reg.example.com/ns/app:1") == ('docker "reg.example.com/ns"',
                                                 ("insecureAcceptAnything",))
    assert scope("reg.example.com/ns/app:bad")[0] == 'docker "reg.example.com/ns/app:bad"'
    assert scope("other.example.com/x:1")[0] == 'docker "*.example.com"'
    assert scope("debian:12")[0] == 'docker ""'
    policy.check(ref("debian:12"))
    policy.check(ref("reg.example.com/ns/app:1"))
    with pytest.raises(PolicyError) as info:
        policy.check(ref("other.example.com/x:1"))
    assert str(info.value) == ('other.example.com/x:1: rejected by the trust policy p.json '
                               '(scope docker "*.example.com")')
    with pytest.raises(PolicyError) as info:
        policy.check(ref("quay.io/signed/app:2"))
    assert str(info.value) == (
        'quay.io/signed/app:2: the trust policy p.json requires signatures for scope docker '
        '"quay.io/signed" (signedBy), which arv keepdocker does not verify; --insecure-policy '
        'skips the policy')
    no_docker = parse_policy({"default": REJECT}, "q.json")
    with pytest.raises(PolicyError, match=r"rejected by the trust policy q.json \(scope default\)"):
        no_docker.check(ref("debian:12"))


def test_every_requirement_of_a_list_must_accept():
    policy = parse_policy({"default": ACCEPT + [{"type": "sigstoreSigned", "keyPath": "k"}]},
                          "p.json")
    with pytest.raises(PolicyError, match=r"scope default \(sigstoreSigned\)"):
        policy.check(ref("debian:12"))


@pytest.mark.parametrize("document, message", [
    ("{", "is not valid JSON"),
    ("[" * 200 + "]" * 200, "is nested more than 100 levels deep"),
    ([], "is invalid: the policy is not a JSON object"),
    ({"transports": {}}, "is invalid: no default policy"),
    ({"default": []}, "default is not a non-empty list of requirements"),
    ({"default": ACCEPT, "extra": 1}, "unknown key 'extra' in the policy"),
    ({"default": [{"type": "acceptEverything"}]}, "requirement 0 of default has unknown type "
                                                  "'acceptEverything'"),
    ({"default": [{"type": "reject", "keyPath": "x"}]}, "unknown key 'keyPath' in requirement 0"),
    ({"default": ACCEPT, "transports": {"docker": {"x.io": []}}},
     r"transports\['docker'\]\['x.io'\] is not a non-empty list"),
    ({"default": ACCEPT, "transports": {"atomic": {"x": [{"type": "nope"}]}}},
     r"requirement 0 of transports\['atomic'\]\['x'\] has unknown type"),
])
def test_an_invalid_policy_is_one_line_as_strict_as_containers_image(tmp_path, document,
                                                                      message):
    path = write(tmp_path / "policy.json", document)
    with pytest.raises(PolicyError, match=message) as info:
        load_policy(path)
    assert str(info.value).startswith("trust policy %s " % path)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_lookup_order_flag_then_user_then_system_then_none(tmp_path):
    home = tmp_path / "home"
    system = tmp_path / "etc" / "policy.json"
    env = {"HOME": str(home)}
    assert default_path(env, str(system)) is None
    assert load_policy(None, env, str(system)) is None  # no file: accept, as 3.2.1
    write(system, {"default": REJECT})
    assert default_path(env, str(system)) == str(system)
    user = write(home / ".config" / "containers" / "policy.json", {"default": ACCEPT})
    assert default_path(env, str(system)) == user
    assert load_policy(None, env, str(system)).path == user
    flag = write(tmp_path / "flag.json", {"default": REJECT})
    assert load_policy(flag, env, str(system)).path == flag
    with pytest.raises(PolicyError) as info:
        load_policy(str(tmp_path / "missing.json"), env, str(system))
    assert str(info.value) == "trust policy %s: No such file or directory" % (
        tmp_path / "missing.json")


def test_the_options_are_skopeo_s(tmp_path, monkeypatch):
    parser = argparse.ArgumentParser()
    registry_options.add_arguments(parser)
    path = write(tmp_path / "p.json", {"default": REJECT})
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    options = parser.parse_args(["--policy", path])
    assert registry_options.trust_policy(options).path == path
    options = parser.parse_args(["--policy", path, "--insecure-policy"])
    assert registry_options.trust_policy(options) is None
