"""Fixtures for the registry client's tests: real registries on loopback.

Session fixtures (one set of processes for the whole run; all share one
storage directory, so every image is served by every registry):

``registry_images``
    A plain-HTTP anonymous registry (``.plain``) holding the test images
    (``.images[name]`` -> :class:`PushedImage`): ``demo/oci:1`` (OCI, gzip
    layers), ``demo/docker:1`` (Docker schema 2 from a docker-archive),
    ``demo/multi:1`` (an OCI index: amd64, arm64/v8, arm/v7),
    ``library/debian:12``, ``demo/big:1`` (one 64 MiB + 1 byte layer).
``registry_basic``
    HTTPS with a private CA (``registry_ca``) and htpasswd Basic auth
    (``.user``, ``.password``); ``.certs_d`` is a certs.d root for it.
``registry_mtls``
    HTTPS that requires a client certificate; ``.certs_d`` holds the CA and
    a ``client.cert``/``client.key`` pair.
``registry_token``
    HTTPS with token auth and its :class:`~.tokenserver.TokenServer`
    (``token_registry`` starts another, for tests that restart it).

The ``docker://`` source's end-to-end tests (``test_source*.py``) add
``source_run`` and ``push`` (see :mod:`.source_fixtures`).

Function fixtures: ``registry_env`` (a private HOME, XDG dirs and PATH),
``registry_options`` (builds :class:`PullOptions` with fast retries and that
environment), ``registry_proxy`` (a :class:`~.faultproxy.FaultProxy` in
front of the plain registry).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import ssl
import tempfile
import textwrap

import pytest
import trustme
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.distribution import (
    CredentialOptions,
    PullOptions,
    RetryPolicy,
    TLSOptions,
    load_registries_conf,
)

from . import harness
from .faultproxy import FaultProxy
from .source_fixtures import (  # noqa: F401
    arvados_state,
    base_env,
    push,
    source_run,
    unchanged,
    unique,  # the docker:// source's end-to-end tests
)
from .tokenserver import TokenServer

BIG_SIZE = 64 * 1024 * 1024 + 1


@dataclasses.dataclass
class PushedImage:
    """What was pushed: the top digest (index or manifest) and the image(s) built."""

    name: str
    digest: str
    built: object = None
    layer_digest: str | None = None


@dataclasses.dataclass
class Images:
    plain: harness.RegistryServer
    storage: str
    workdir: str
    images: dict[str, PushedImage]


@dataclasses.dataclass
class SecureRegistry:
    server: harness.RegistryServer
    certs_d: str
    user: str = ""
    password: str = ""

    @property
    def address(self) -> str:
        return self.server.address


def _started(server: harness.RegistryServer, what: str) -> harness.RegistryServer:
    try:
        return server.start()
    except (harness.StartError, OSError) as error:
        harness.skip_or_fail(what, error)
        raise


@pytest.fixture(scope="session")
def registry_workdir():
    directory = tempfile.mkdtemp(prefix="akd-reg-", dir="/tmp")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def registry_ca():
    """The private CA of the HTTPS registries and the token server."""
    return trustme.CA()


@pytest.fixture(scope="session")
def registry_server_cert(registry_ca, registry_workdir):
    """``(cert chain file, key file)`` for 127.0.0.1 and localhost."""
    leaf = registry_ca.issue_cert("127.0.0.1", "localhost")
    cert = os.path.join(registry_workdir, "server.pem")
    key = os.path.join(registry_workdir, "server.key")
    leaf.cert_chain_pems[0].write_to_path(cert)
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(cert, append=True)
    leaf.private_key_pem.write_to_path(key)
    return cert, key


def _big_image(workdir: str, pusher: harness.ApiPusher) -> PushedImage:
    """``demo/big:1``: one 64 MiB + 1 byte layer pushed through the registry API."""
    digest, size = harness.digest_of_chunks(harness.pattern_chunks(BIG_SIZE))
    pusher.blob("demo/big", harness.pattern_chunks(BIG_SIZE), digest)
    config = ib.canonical_json({"architecture": "amd64", "os": "linux",
                                "rootfs": {"type": "layers", "diff_ids": [digest]}})
    config_digest = "sha256:" + ib.sha256_hex(config)
    pusher.blob("demo/big", [config], config_digest)
    manifest = ib.canonical_json({
        "schemaVersion": 2, "mediaType": ib.MT_OCI_MANIFEST,
        "config": {"mediaType": ib.MT_OCI_CONFIG, "digest": config_digest,
                   "size": len(config)},
        "layers": [{"mediaType": ib.MT_LAYER["none"], "digest": digest, "size": size}]})
    top = pusher.manifest("demo/big", "1", manifest, ib.MT_OCI_MANIFEST)
    return PushedImage("demo/big:1", top, layer_digest=digest)


@pytest.fixture(scope="session")
def registry_images(registry_workdir):
    """The plain registry and the images pushed to it (see the module docstring)."""
    storage = os.path.join(registry_workdir, "storage")
    plain = _started(harness.RegistryServer(os.path.join(registry_workdir, "plain"), storage),
                     "docker-registry")
    try:
        address = plain.address
        images: dict[str, PushedImage] = {}
        try:
            oci = ib.build_image([{"etc/a": b"a\n"}, {"app/b": b"b\n" * 100}],
                                 compression="gzip", labels={"k": "oci"})
            images["demo/oci:1"] = PushedImage(
                "demo/oci:1", harness.push_oci(registry_workdir, address, "demo/oci:1", oci),
                oci)
            docker = ib.build_image([{"etc/d": b"docker\n"}], repo_tags=["demo/docker:1"])
            images["demo/docker:1"] = PushedImage(
                "demo/docker:1", harness.push_docker_archive(registry_workdir, address,
                                                             "demo/docker:1", docker), docker)
            platforms = [("amd64", None), ("arm64", "v8"), ("arm", "v7")]
            per_platform = [ib.build_image([{"arch": ("%s %s\n" % (a, v)).encode()}],
                                           architecture=a, variant=v, compression="gzip")
                            for a, v in platforms]
            index = ib.build_index(per_platform)
            images["demo/multi:1"] = PushedImage(
                "demo/multi:1", harness.push_oci(registry_workdir, address, "demo/multi:1",
                                                 index), index)
            debian = ib.build_image([{"etc/debian_version": b"12.0\n"}], compression="gzip")
            images["library/debian:12"] = PushedImage(
                "library/debian:12", harness.push_oci(registry_workdir, address,
                                                      "library/debian:12", debian), debian)
            images["demo/big:1"] = _big_image(registry_workdir,
                                              harness.ApiPusher("http://" + address))
        except harness.StartError as error:
            harness.skip_or_fail("skopeo", error)
        yield Images(plain, storage, registry_workdir, images)
    finally:
        plain.stop()


def _certs_d(root: str, address: str, ca: trustme.CA) -> str:
    directory = os.path.join(root, address)
    os.makedirs(directory, exist_ok=True)
    ca.cert_pem.write_to_path(os.path.join(directory, "ca.crt"))
    return root


@pytest.fixture(scope="session")
def registry_basic(registry_images, registry_ca, registry_server_cert):
    """HTTPS + htpasswd registry on the shared storage, with a pushed private image."""
    workdir = os.path.join(registry_images.workdir, "basic")
    os.makedirs(workdir)
    password = "Basic-s3cret-Pa55"
    htpasswd = harness.write_htpasswd(os.path.join(workdir, "htpasswd"), {"alice": password})
    server = _started(harness.RegistryServer(workdir, registry_images.storage,
                                             tls=registry_server_cert, htpasswd=htpasswd),
                      "docker-registry (TLS, htpasswd)")
    try:
        certs_d = _certs_d(os.path.join(workdir, "certs.d"), server.address, registry_ca)
        private = ib.build_image([{"private": b"only for alice\n"}], compression="gzip")
        try:
            pushed = harness.push_oci(registry_images.workdir, server.address, "private/app:1",
                                      private, "--dest-creds", "alice:" + password,
                                      "--dest-cert-dir", os.path.join(certs_d, server.address))
        except harness.StartError as error:
            harness.skip_or_fail("skopeo", error)
        registry_images.images["private/app:1"] = PushedImage("private/app:1", pushed, private)
        yield SecureRegistry(server, certs_d, "alice", password)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def registry_mtls(registry_images, registry_ca, registry_server_cert):
    """HTTPS registry that requires a client certificate from its own client CA."""
    workdir = os.path.join(registry_images.workdir, "mtls")
    os.makedirs(workdir)
    client_ca = trustme.CA()
    client_ca_file = os.path.join(workdir, "client-ca.pem")
    client_ca.cert_pem.write_to_path(client_ca_file)
    server = _started(harness.RegistryServer(workdir, registry_images.storage,
                                             tls=registry_server_cert,
                                             client_cas=[client_ca_file]),
                      "docker-registry (client certificates)")
    try:
        certs_d = _certs_d(os.path.join(workdir, "certs.d"), server.address, registry_ca)
        client = client_ca.issue_cert("arv-keepdocker-client")
        directory = os.path.join(certs_d, server.address)
        client.cert_chain_pems[0].write_to_path(os.path.join(directory, "client.cert"))
        client.private_key_pem.write_to_path(os.path.join(directory, "client.key"))
        yield SecureRegistry(server, certs_d)
    finally:
        server.stop()


@dataclasses.dataclass
class TokenRegistry(SecureRegistry):
    tokens: TokenServer | None = None
    identity_token: str = ""


@contextlib.contextmanager
def token_registry(workdir: str, storage: str, registry_ca, server_cert):
    """A token server and an HTTPS registry trusting it, both stopped on exit."""
    os.makedirs(workdir, exist_ok=True)
    password, identity = "T0ken-user-s3cret", "identity-refresh-s3cret"
    tokens = TokenServer(workdir, server_cert, {"bob": password},
                         identity_tokens={identity: "bob"}, anonymous_pull=("demo/oci",))
    try:
        server = _started(harness.RegistryServer(workdir, storage, tls=server_cert,
                                                 token=tokens.registry_config()),
                          "docker-registry (token auth)")
        try:
            certs_d = _certs_d(os.path.join(workdir, "certs.d"), server.address, registry_ca)
            yield TokenRegistry(server, certs_d, "bob", password, tokens, identity)
        finally:
            server.stop()
    finally:
        tokens.close()


@pytest.fixture(scope="session")
def registry_token(registry_images, registry_basic, registry_ca, registry_server_cert):
    """HTTPS registry with token auth (user ``bob``; anonymous may pull demo/oci).

    It serves ``private/app:1`` too, which ``registry_basic`` pushed.
    """
    with token_registry(os.path.join(registry_images.workdir, "token"),
                        registry_images.storage, registry_ca, registry_server_cert) as registry:
        yield registry


@pytest.fixture
def registry_env(tmp_path):
    """A private environment for credential and config lookups."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home), "XDG_RUNTIME_DIR": str(tmp_path / "run"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "PATH": "%s:%s" % (tmp_path / "bin", os.environ.get("PATH", "/usr/bin:/bin"))}


@pytest.fixture
def registry_sleeps():
    """The delays the fast retry policy was asked to sleep (it never sleeps)."""
    return []


@pytest.fixture
def registry_options(registry_env, registry_sleeps, tmp_path):
    """``make(conf="", certs_d=(), **kw) -> PullOptions`` for one test.

    ``conf`` is registries.conf text (the machine's files are never read);
    retries are immediate (the delays go to ``registry_sleeps``).
    """
    def make(conf: str = "", certs_d=(), credentials: CredentialOptions | None = None,
             tls_verify: bool = True, cert_dir: str | None = None, **kwargs) -> PullOptions:
        path = tmp_path / ("registries-%d.conf" % len(list(tmp_path.glob("registries-*"))))
        path.write_text(textwrap.dedent(conf))
        registries = load_registries_conf(str(path), system_path=str(tmp_path / "none.conf"),
                                          env=registry_env)
        kwargs.setdefault("retry", RetryPolicy(attempts=4, initial_delay=0.25, max_delay=1,
                                               sleep=registry_sleeps.append))
        kwargs.setdefault("timeout", 30)
        return PullOptions(credentials=credentials or CredentialOptions(),
                           tls=TLSOptions(verify=tls_verify, cert_dir=cert_dir,
                                          certs_d_roots=tuple(certs_d)),
                           registries_conf=registries, env=registry_env, **kwargs)
    return make


def insecure_conf(*addresses: str) -> str:
    """registries.conf text marking ``addresses`` insecure."""
    return "".join('[[registry]]\nlocation = "%s"\ninsecure = true\n' % a for a in addresses)


@pytest.fixture
def registry_proxy(registry_images):
    """A fault-injecting plain-HTTP proxy in front of the plain registry."""
    proxy = FaultProxy(registry_images.plain.address)
    try:
        yield proxy
    finally:
        proxy.close()


def ssl_context_for(ca: trustme.CA) -> ssl.SSLContext:
    """A client context trusting ``ca`` (for proxies in front of HTTPS registries)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


def one_line_without(text: str, secrets: list[str]) -> None:
    """Assert ``text`` is one line holding none of ``secrets``."""
    assert "\n" not in text, text
    for secret in secrets:
        if secret:
            assert secret not in text, "secret in %r" % text
