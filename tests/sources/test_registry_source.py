"""The ``docker://`` source without a registry: references, options, plans, properties.

Its end-to-end tests (real registries, the cluster, engines) are in
``tests/registry/test_source*.py``.
"""

import argparse
import io
import json
import re
import sys

import pytest

from arv_keepdocker_plugin import BadReference
from arv_keepdocker_plugin.archive.platforms import Platform
from arv_keepdocker_plugin.cli import build_parser
from arv_keepdocker_plugin.distribution import (
    Credential,
    CredentialError,
    Descriptor,
    ManifestRefused,
    RegistryReference,
    ResolvedImage,
)
from arv_keepdocker_plugin.distribution.config import PullSource
from arv_keepdocker_plugin.distribution.registry_errors import DecompressionError
from arv_keepdocker_plugin.plugins import get_plugin_manager
from arv_keepdocker_plugin.sources import registry
from arv_keepdocker_plugin.sources.registry_export import plan_layers
from arv_keepdocker_plugin.sources.registry_options import pull_options
from arv_keepdocker_plugin.steps.resolve import choose_source

DIGEST = "sha256:" + "ab" * 32
GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager(load_entrypoints=False)


def parse_args(pm, *argv):
    return build_parser(pm).parse_args(list(argv))


@pytest.mark.parametrize("typed, tag, name, want_tag, full", [
    ("debian", None, "debian", "latest", "docker.io/library/debian:latest"),
    ("debian", "12", "debian", "12", "docker.io/library/debian:12"),
    ("user/app:1", None, "user/app", "1", "docker.io/user/app:1"),
    ("127.0.0.1:5000/x/y@" + DIGEST, None, None, None, "127.0.0.1:5000/x/y@" + DIGEST),
    ("x/y:2@" + DIGEST, None, "x/y", "2", "docker.io/x/y:2@" + DIGEST),
    ("localhost/x:2", None, "localhost/x", "2", "localhost/x:2"),
])
def test_references_follow_skopeos_rules(typed, tag, name, want_tag, full):
    ref = registry.RegistrySource().parse(typed, tag)
    assert (ref.transport, ref.name, ref.tag, ref.ref, ref.raw) == (
        "docker", name, want_tag, full, "docker://" + typed)


@pytest.mark.parametrize("typed, tag, message", [
    ("debian:12", "13", "already includes a tag or digest, cannot add tag argument '13'"),
    ("x@" + DIGEST, "1", "already includes a tag or digest"),
    ("Upper/x", None, "repository name must be lowercase"),
    ("", None, "invalid image reference: empty"),
    ("x@sha256:abc", None, "a digest is sha256: and 64 lowercase hex digits"),
])
def test_bad_references_are_one_line(typed, tag, message):
    with pytest.raises(BadReference, match=re.escape(message)) as info:
        registry.RegistrySource().parse(typed, tag)
    assert "\n" not in str(info.value)


def test_only_the_double_slash_prefix_or_source_flag_selects_it(pm):
    def chosen(*argv):
        source, ref, by_default = choose_source(pm, parse_args(pm, *argv))
        return source.name, ref.ref if source.name == "docker" else ref.repo_tag, by_default

    assert chosen("docker://debian:12") == ("docker", "docker.io/library/debian:12", False)
    # 3.2.1's meaning: the Docker engine's (or podman's) image "docker", tag "dind".
    name, repo_tag, by_default = chosen("docker:dind")
    assert name in ("docker-daemon", "containers-storage") and repo_tag == "docker:dind"
    assert by_default
    assert chosen("--source", "docker", "docker:dind") == (
        "docker", "docker.io/library/docker:dind", False)
    assert chosen("--source", "docker", "docker://debian")[:2] == (
        "docker", "docker.io/library/debian:latest")
    assert chosen("--source", "docker-daemon", "docker:dind")[:2] == (
        "docker-daemon", "docker:dind")


def test_src_creds_never_keeps_or_echoes_the_password(pm, capsys):
    options = parse_args(pm, "--src-creds", "alice:pa55-word", "docker://x")
    assert isinstance(options.src_creds, Credential)
    assert "pa55-word" not in repr(options) and "pa55-word" not in str(vars(options))
    with pytest.raises(SystemExit) as info:
        parse_args(pm, "--src-creds", ":pa55-word", "docker://x")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "the username is empty" in err and "pa55-word" not in err
    with pytest.raises(SystemExit):
        parse_args(pm, "--src-creds", "alice:pa55-word", "--src-no-creds", "docker://x")
    err = capsys.readouterr().err
    assert "not allowed with argument" in err and "pa55-word" not in err


def test_options_become_pull_options(pm, monkeypatch, capsys):
    options = parse_args(pm, "--src-authfile", "/a.json", "--src-cert-dir", "/certs",
                         "--src-tls-verify=false", "--platform", "linux/arm64", "docker://x")
    pull = pull_options(options)
    assert pull.credentials.authfile == "/a.json" and pull.credentials.creds is None
    assert (pull.tls.verify, pull.tls.cert_dir) == (False, "/certs")
    assert pull.platform == Platform("linux", "arm64", None)
    assert pull_options(parse_args(pm, "--src-tls-verify=true", "docker://x")).tls.verify
    assert pull_options(parse_args(pm, "docker://x", "--src-tls-verify")).tls.verify
    assert pull_options(parse_args(pm, "docker://x")).tls.verify
    assert pull_options(parse_args(pm, "--src-no-creds", "docker://x")).credentials.no_creds
    with pytest.raises(SystemExit):
        parse_args(pm, "--src-tls-verify=maybe", "docker://x")
    with pytest.raises(SystemExit):  # argparse would take the image as the value
        parse_args(pm, "--src-tls-verify", "docker://x")
    assert "(write --src-tls-verify=true or =false)" in capsys.readouterr().err
    # USER without a password: asked on a terminal, refused in one line without one.
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    with pytest.raises(CredentialError) as info:
        pull_options(parse_args(pm, "--src-creds", "alice", "docker://x"))
    assert str(info.value) == ("--src-creds alice: no password given and no way to ask for "
                               "one (use USER:PASSWORD)")
    options = parse_args(pm, "--src-creds", "alice", "docker://x")
    pull = pull_options(options, prompt=lambda message: "typed-secret")
    assert pull.credentials.creds.password == "typed-secret"
    assert "typed-secret" not in repr(options)


def resolved(layers, diff_ids, config=None):
    config = config if config is not None else {"rootfs": {"type": "layers",
                                                           "diff_ids": diff_ids}}
    ref = RegistryReference("docker.io", "library/x", "1")
    return ResolvedImage(ref, PullSource(ref), None, DIGEST, "m", b"{}",
                         Descriptor("c", DIGEST, 2), json.dumps(config).encode(), config,
                         tuple(layers))


def test_zstd_layers_are_planned_decompressed_under_their_diff_id():
    gz, zs = Descriptor(GZ, "sha256:" + "1" * 64, 10), Descriptor(ZSTD, "sha256:" + "2" * 64, 20)
    diff_ids = ["sha256:" + "3" * 64, "sha256:" + "4" * 64]
    plans = plan_layers(resolved([gz, zs], diff_ids))
    assert [(p.digest, p.size, p.media_type, p.converted) for p in plans] == [
        (gz.digest, 10, GZ, False),
        (diff_ids[1], None, "application/vnd.oci.image.layer.v1.tar", True)]


@pytest.mark.parametrize("config, layers, error, message", [
    ({"not": "an image"}, 1, ManifestRefused, "no rootfs.diff_ids list (not a container image?)"),
    (None, 2, ManifestRefused, "the manifest lists 2 layers but the config has 1 diff ids"),
])
def test_what_is_not_an_image_is_refused_before_any_download(config, layers, error, message):
    descs = [Descriptor(GZ, "sha256:" + str(n) * 64, 1) for n in range(layers)]
    with pytest.raises(error, match=re.escape(message)):
        plan_layers(resolved(descs, ["sha256:" + "5" * 64], config))
    with pytest.raises(DecompressionError, match="unsupported layer media type"):
        plan_layers(resolved([Descriptor("application/x-helm", DIGEST, 1)], [DIGEST]))


def test_the_reference_property_names_the_image_by_digest(pm):
    class Image:
        source = "docker"
        manifest_digest = "sha256:" + "9" * 64

    def prop(*argv):
        return registry.keepdocker_collection_properties(Image(), parse_args(pm, *argv))

    assert prop("docker://debian:12") == {
        "docker-image-reference": "docker.io/library/debian@" + Image.manifest_digest}
    assert prop("docker://r.example:5000/x:1@" + DIGEST) == {
        "docker-image-reference": "r.example:5000/x@" + DIGEST}
    assert prop("--source", "docker", "debian", "12") == {
        "docker-image-reference": "docker.io/library/debian@" + Image.manifest_digest}
    Image.source = "oci"
    assert prop("docker://debian:12") is None
    assert registry.requested(argparse.Namespace(image="oci:/x", source=None, tag=None)) is None
