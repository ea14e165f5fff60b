"""Real ``docker-registry`` processes on loopback for the registry client's tests.

* :class:`RegistryServer` - a distribution 2.8 registry on ``127.0.0.1:<free
  port>``: plain HTTP or HTTPS (optionally requiring client certificates),
  anonymous, htpasswd (Basic) or token (Bearer) auth. Several servers may
  share one storage directory, so an image pushed once is served by all.
  :meth:`RegistryServer.restart` keeps the port (to change keys mid-test).
* :func:`write_htpasswd` - a bcrypt htpasswd file (with the ``bcrypt``
  package from the ``test`` extra; apache2-utils is not needed).
* :func:`skopeo_copy` / :func:`push_oci` / :func:`push_docker_archive` -
  push images built in Python with :mod:`arv_keepdocker_testkit.imagebuild`.
* :class:`ApiPusher` - push blobs and manifests through the registry API
  (for blobs no tool would write, such as a 64 MiB + 1 byte layer).

Start failures skip the test, or fail it when ``CI`` is set.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence

import pytest
import requests
from arv_keepdocker_testkit import imagebuild as ib


class StartError(RuntimeError):
    """A binary is missing or a server did not come up."""


def skip_or_fail(what: str, error: BaseException) -> None:
    """Skip the test (locally) or fail it (``CI`` set): ``what`` is unavailable."""
    message = "%s unavailable: %s" % (what, error)
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dead_address() -> str:
    """``127.0.0.1:PORT`` where nothing listens (connections are refused)."""
    return "127.0.0.1:%d" % free_port()


def _tail(path: str, lines: int = 12) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no log)"


class RegistryServer:
    """One ``docker-registry serve`` process.

    :param storage: the storage root (share it between servers).
    :param tls: ``(certificate file, key file)`` for HTTPS, or ``None``.
    :param client_cas: CA files whose client certificates are required.
    :param htpasswd: an htpasswd file: Basic auth.
    :param token: ``{"realm", "service", "issuer", "rootcertbundle"}``: token auth.
    """

    def __init__(self, directory: str, storage: str, *, tls: tuple[str, str] | None = None,
                 client_cas: Sequence[str] = (), htpasswd: str | None = None,
                 token: dict[str, str] | None = None, port: int | None = None) -> None:
        self.dir = directory
        self.storage = storage
        self.tls = tls
        self.client_cas = list(client_cas)
        self.htpasswd = htpasswd
        self.token = dict(token) if token else None
        self.port = port or free_port()
        self.log = os.path.join(directory, "registry.log")
        self._process: subprocess.Popen | None = None
        os.makedirs(directory, exist_ok=True)

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``: the registry part of image names here."""
        return "127.0.0.1:%d" % self.port

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def _config(self) -> str:
        lines = ["version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:",
                 "    rootdirectory: %s" % self.storage, "http:", "  addr: %s" % self.address,
                 "  secret: test-secret"]
        if self.tls:
            lines += ["  tls:", "    certificate: %s" % self.tls[0], "    key: %s" % self.tls[1]]
            if self.client_cas:
                lines += ["    clientcas:"] + ["      - %s" % ca for ca in self.client_cas]
        if self.htpasswd:
            lines += ["auth:", "  htpasswd:", "    realm: test-realm",
                      "    path: %s" % self.htpasswd]
        elif self.token:
            lines += ["auth:", "  token:"] + ["    %s: %s" % (k, v)
                                             for k, v in sorted(self.token.items())]
        path = os.path.join(self.dir, "registry.yml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 30) -> RegistryServer:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise StartError("docker-registry not found in PATH (install docker-registry)")
        config = self._config()
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen([binary, "serve", config], stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise StartError("docker-registry did not answer on %s; end of %s:\n%s"
                         % (self.address, self.log, _tail(self.log)))

    def _answers(self) -> bool:
        """Whether ``/v2/`` answers at all (any status: auth may be required)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw:
                sock = raw
                if self.tls:
                    context = ssl.create_default_context()
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                    sock = context.wrap_socket(raw)
                sock.sendall(b"GET /v2/ HTTP/1.0\r\nHost: %s\r\n\r\n" % self.address.encode())
                return sock.recv(12).startswith(b"HTTP/1.")
        except OSError:  # refused, reset, or a TLS failure (no client certificate)
            return bool(self.client_cas) and self._listening()

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self, **changes) -> RegistryServer:
        """Stop, change attributes (``token=...``), start again on the same port."""
        self.stop()
        for name, value in changes.items():
            setattr(self, name, value)
        return self.start()


def write_htpasswd(path: str, users: dict[str, str]) -> str:
    """A bcrypt htpasswd file (``$2b$`` hashes; distribution accepts them)."""
    import bcrypt

    with open(path, "w") as f:
        for user, password in users.items():
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            f.write("%s:%s\n" % (user, hashed))
    return path


def skopeo_copy(source: str, destination: str, *options: str) -> subprocess.CompletedProcess:
    """``skopeo --insecure-policy copy -q OPTIONS SOURCE DESTINATION``; errors are StartError."""
    binary = shutil.which("skopeo")
    if binary is None:
        raise StartError("skopeo not found in PATH (install skopeo)")
    result = subprocess.run([binary, "--insecure-policy", "copy", "-q", *options, source,
                             destination], stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=300)
    if result.returncode != 0:
        raise StartError("skopeo copy %s %s failed: %s" % (source, destination,
                                                           result.stderr.strip()))
    return result


def push_oci(workdir: str, address: str, name: str, item, *options: str) -> str:
    """Push an image or index (``imagebuild``) with skopeo from an ``oci:`` layout.

    Returns the pushed manifest's (or index's) digest, from ``--digestfile``.
    """
    layout = tempfile.mkdtemp(prefix="oci-", dir=workdir)
    ib.write_oci_layout(layout, [("src", item)], as_tar=False)
    digest_file = os.path.join(layout, "digest")
    extra = ["--all"] if isinstance(item, ib.BuiltIndex) else []
    skopeo_copy("oci:%s:src" % layout, "docker://%s/%s" % (address, name),
                "--dest-tls-verify=false", "--digestfile", digest_file, *extra, *options)
    with open(digest_file) as f:
        return f.read().strip()


def push_docker_archive(workdir: str, address: str, name: str, image, *options: str) -> str:
    """Push an image from a ``docker-archive:`` tar: a Docker schema 2 manifest, gzip layers."""
    fd, archive = tempfile.mkstemp(prefix="archive-", suffix=".tar", dir=workdir)
    os.close(fd)
    ib.write_docker_archive(archive, [image])
    digest_file = archive + ".digest"
    skopeo_copy("docker-archive:%s" % archive, "docker://%s/%s" % (address, name),
                "--dest-tls-verify=false", "--digestfile", digest_file, *options)
    with open(digest_file) as f:
        return f.read().strip()


class ApiPusher:
    """Push through the registry API: monolithic blob uploads, manifests by tag or digest."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = None,
                 verify=False) -> None:
        self.base = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = auth
        self.session.verify = verify

    def blob(self, repository: str, chunks: Iterable[bytes], digest: str) -> None:
        started = self.session.post("%s/v2/%s/blobs/uploads/" % (self.base, repository))
        started.raise_for_status()
        location = requests.compat.urljoin(self.base + "/", started.headers["Location"])
        separator = "&" if "?" in location else "?"
        done = self.session.put(location + separator + "digest=" + digest, data=iter(chunks),
                                headers={"Content-Type": "application/octet-stream"})
        done.raise_for_status()

    def manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        response = self.session.put("%s/v2/%s/manifests/%s" % (self.base, repository, reference),
                                    data=raw, headers={"Content-Type": media_type})
        response.raise_for_status()
        return "sha256:" + hashlib.sha256(raw).hexdigest()


def pattern_chunks(size: int, seed: int = 7, chunk: int = 1 << 20) -> Iterator[bytes]:
    """``size`` deterministic pseudo-random bytes in chunks (little memory)."""
    import random

    rng = random.Random(seed)
    left = size
    while left:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


def digest_of_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    """``(sha256 digest, size)`` of chunks."""
    h, size = hashlib.sha256(), 0
    for data in chunks:
        h.update(data)
        size += len(data)
    return "sha256:" + h.hexdigest(), size


def logs_of(servers: list[RegistryServer]) -> str:
    """The end of each server's log, for assertion messages."""
    return "\n".join("%s:\n%s" % (s.address, _tail(s.log)) for s in servers)
