"""Real container engines started privately, for tests, benchmarks and hook authors.

Nothing here touches the machine's own engines: every engine lives in a
directory you choose and listens on a private socket or a free loopback port.
All of them work as root with no systemd, no bridge and no iptables.

* :class:`DockerEngine` - a ``dockerd`` with its own data root and unix socket.
* :class:`PodmanStore` - a private containers-storage store used through
  ``podman`` (no daemon).
* :class:`Registry` - a ``docker-registry`` on ``127.0.0.1:<free port>``.
* :func:`build_layered_image` - build a multi-layer image from bytes with a
  COPY-only Dockerfile (no container needs to run).

Example::

    engine = DockerEngine(tempfile.mkdtemp(prefix="akd-", dir="/tmp"))
    engine.start()
    try:
        image_id = build_layered_image(engine, "demo:1", [{"a.txt": b"a"}])
    finally:
        engine.stop()
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Sequence, Union

from .cluster.cluster import pid_alive

__all__ = [
    "EngineStartError",
    "DockerEngine",
    "PodmanStore",
    "Registry",
    "build_layered_image",
    "docker_command",
    "free_port",
]

#: The unix socket path limit (sun_path) on Linux, terminating NUL included.
_MAX_SOCKET_PATH = 107


class EngineStartError(RuntimeError):
    """An engine binary is missing or the engine did not come up."""


def docker_command() -> str:
    """The docker CLI's name: ``docker``, else Debian's ``docker.io``."""
    for name in ("docker", "docker.io"):
        if shutil.which(name):
            return name
    raise EngineStartError("no docker CLI found (neither 'docker' nor 'docker.io' in PATH)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no log)"


def _terminate(process: Optional[subprocess.Popen], pid: Optional[int],
               timeout: float = 20) -> None:
    """SIGTERM ``pid`` (or ``process``), wait, then SIGKILL; reap our child."""
    if pid is None and process is not None:
        pid = process.pid
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.pid == pid:
            if process.poll() is not None:
                return
        elif not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if process is not None:
        process.wait(timeout=10)


class DockerEngine:
    """A private ``dockerd`` (Debian ``docker.io``, engine 20.10 or newer).

    ``dir`` holds the data root, exec root, socket, pidfile and log. Its path
    must be short: the socket path must fit a unix socket (under 108 bytes).
    """

    def __init__(self, dir: str):
        self.dir = os.path.abspath(dir)
        self.socket = os.path.join(self.dir, "docker.sock")
        self.pidfile = os.path.join(self.dir, "dockerd.pid")
        self.log = os.path.join(self.dir, "dockerd.log")
        if len(self.socket) > _MAX_SOCKET_PATH:
            raise EngineStartError(
                "socket path too long for a unix socket: %s (use a short dir under /tmp)"
                % self.socket)
        self._process: Optional[subprocess.Popen] = None

    @property
    def host(self) -> str:
        """The ``DOCKER_HOST`` value for this engine (``unix://...``)."""
        return "unix://" + self.socket

    def env(self) -> Dict[str, str]:
        """A copy of ``os.environ`` pointing the docker CLI at this engine."""
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        return env

    def start(self, timeout: float = 30) -> "DockerEngine":
        """Start ``dockerd`` and wait until ``docker info`` answers."""
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise EngineStartError("dockerd not found in PATH (install docker.io)")
        docker_command()
        os.makedirs(self.dir, exist_ok=True)
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen(
                [dockerd,
                 "--data-root", os.path.join(self.dir, "root"),
                 "--exec-root", os.path.join(self.dir, "exec"),
                 "-H", self.host,
                 "--pidfile", self.pidfile,
                 "--iptables=false", "--ip6tables=false",
                 "--bridge=none", "--storage-driver=vfs"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise EngineStartError(
                    "dockerd exited with status %s; end of %s:\n%s"
                    % (self._process.returncode, self.log, _log_tail(self.log)))
            if os.path.exists(self.socket):
                probe = subprocess.run(
                    [docker_command(), "info", "--format", "{{.ServerVersion}}"],
                    env=self.env(), stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
                if probe.returncode == 0 and probe.stdout.strip():
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise EngineStartError(
                    "dockerd did not answer within %ss; end of %s:\n%s"
                    % (timeout, self.log, _log_tail(self.log)))
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop ``dockerd`` by the pid in its pidfile and wait until it exits."""
        pid = None
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            pass
        if pid is None and self._process is not None and self._process.poll() is None:
            pid = self._process.pid
        _terminate(self._process, pid)
        if self._process is not None and self._process.poll() is None:
            _terminate(self._process, None)
        self._process = None

    def docker(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """Run the docker CLI against this engine (``check=True``, output captured)."""
        kwargs.setdefault("check", True)
        if "input" not in kwargs and "stdin" not in kwargs:
            kwargs["stdin"] = subprocess.DEVNULL
        if "stdout" not in kwargs and "stderr" not in kwargs:
            kwargs.setdefault("capture_output", True)
        env = self.env()
        env.update(kwargs.pop("env", None) or {})
        return subprocess.run([docker_command(), *args], env=env, **kwargs)

    def build(self, context_dir: str, tag: str) -> str:
        """Build ``context_dir`` with the legacy builder; return the image id.

        Dockerfiles may only use ``FROM scratch``/``FROM <local image>``,
        ``COPY``, ``ADD``, ``ENV``, ``LABEL`` and ``CMD``: no container can run.
        """
        self.docker("build", "-q", "-t", tag, context_dir,
                    env={"DOCKER_BUILDKIT": "0"})
        return self.image_id(tag)

    def image_id(self, reference: str) -> str:
        """``docker image inspect``'s ``Id`` for ``reference``."""
        return self.docker("image", "inspect", "--format", "{{.Id}}",
                           reference, text=True).stdout.strip()

    def __enter__(self) -> "DockerEngine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class PodmanStore:
    """A private containers-storage store, used through ``podman`` (no daemon)."""

    def __init__(self, dir: str, driver: str = "vfs"):
        self.dir = os.path.abspath(dir)
        self.root = os.path.join(self.dir, "root")
        self.runroot = os.path.join(self.dir, "run")
        self.driver = driver
        self._storage_conf: Optional[str] = None

    @property
    def args(self) -> List[str]:
        """podman's global options selecting this store."""
        return ["--root", self.root, "--runroot", self.runroot,
                "--storage-driver", self.driver]

    @property
    def storage_conf(self) -> str:
        """A ``storage.conf`` for this store (written on first use).

        With ``CONTAINERS_STORAGE_CONF=<this file>`` a plain ``podman`` (or
        skopeo, buildah) uses this store.
        """
        if self._storage_conf is None:
            os.makedirs(self.dir, exist_ok=True)
            path = os.path.join(self.dir, "storage.conf")
            with open(path, "w") as f:
                f.write('[storage]\ndriver = "%s"\ngraphroot = "%s"\nrunroot = "%s"\n'
                        % (self.driver, self.root, self.runroot))
            self._storage_conf = path
        return self._storage_conf

    def env(self) -> Dict[str, str]:
        """A copy of ``os.environ`` with ``CONTAINERS_STORAGE_CONF`` set to this store."""
        env = dict(os.environ)
        env["CONTAINERS_STORAGE_CONF"] = self.storage_conf
        return env

    def start(self) -> "PodmanStore":
        """Check that podman works with this store (there is no daemon)."""
        if shutil.which("podman") is None:
            raise EngineStartError("podman not found in PATH (install podman)")
        os.makedirs(self.dir, exist_ok=True)
        result = self.podman("version", "--format", "{{.Client.Version}}",
                             check=False, text=True)
        if result.returncode != 0:
            raise EngineStartError("podman does not work with store %s: %s"
                                   % (self.dir, result.stderr.strip()))
        return self

    def stop(self) -> None:
        """Nothing runs; kept for symmetry with the other engines."""

    def podman(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """Run ``podman <store args> *args`` (``check=True``, output captured)."""
        kwargs.setdefault("check", True)
        if "input" not in kwargs and "stdin" not in kwargs:
            kwargs["stdin"] = subprocess.DEVNULL
        if "stdout" not in kwargs and "stderr" not in kwargs:
            kwargs.setdefault("capture_output", True)
        return subprocess.run(["podman", *self.args, *args], **kwargs)

    def build(self, context_dir: str, tag: str) -> str:
        """``podman build --format docker``; return the image id (``sha256:<hex>``)."""
        self.podman("build", "-q", "--format", "docker", "-t", tag, context_dir)
        return self.image_id(tag)

    def image_id(self, reference: str) -> str:
        """The image's id as ``sha256:<hex>`` (podman prints bare hex)."""
        hex_id = self.podman("image", "inspect", "--format", "{{.Id}}",
                             reference, text=True).stdout.strip()
        return hex_id if hex_id.startswith("sha256:") else "sha256:" + hex_id


class Registry:
    """A ``docker-registry`` (distribution 2.8) on a free 127.0.0.1 port.

    Docker and podman (with ``--tls-verify=false``) push to and pull from
    ``registry.address + "/name:tag"`` without TLS.
    """

    def __init__(self, dir: str, port: Optional[int] = None):
        self.dir = os.path.abspath(dir)
        self.port = port
        self.log = os.path.join(self.dir, "registry.log")
        self._process: Optional[subprocess.Popen] = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the prefix of image names in this registry."""
        return "127.0.0.1:%d" % self.port

    def start(self, timeout: float = 30) -> "Registry":
        binary = shutil.which("docker-registry")
        if binary is None:
            raise EngineStartError("docker-registry not found in PATH (install docker-registry)")
        os.makedirs(self.dir, exist_ok=True)
        last_error = ""
        for _attempt in range(3):  # a "free" port may be taken before we bind it
            if self.port is None or _attempt:
                self.port = free_port()
            config = os.path.join(self.dir, "registry.yml")
            with open(config, "w") as f:
                f.write("version: 0.1\nlog:\n  level: warn\nstorage:\n"
                        "  filesystem:\n    rootdirectory: %s\n"
                        "http:\n  addr: %s\n"
                        % (os.path.join(self.dir, "data"), self.address))
            with open(self.log, "ab") as log:
                self._process = subprocess.Popen(
                    [binary, "serve", config], stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + timeout
            while self._process.poll() is None and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen("http://%s/v2/" % self.address,
                                                timeout=2) as response:
                        if response.status == 200:
                            return self
                except (urllib.error.URLError, OSError) as err:
                    last_error = str(err)
                time.sleep(0.1)
            self.stop()
        raise EngineStartError("docker-registry did not answer on %s (%s); end of %s:\n%s"
                               % (self.address, last_error, self.log, _log_tail(self.log)))

    def stop(self) -> None:
        if self._process is not None:
            _terminate(self._process, None)
            self._process = None

    def __enter__(self) -> "Registry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def build_layered_image(engine_or_store: Union[DockerEngine, PodmanStore], tag: str,
                        layers: Sequence[Dict[str, bytes]], base: Optional[str] = None,
                        labels: Optional[Dict[str, str]] = None) -> str:
    """Build ``tag`` with one ``COPY`` layer per dict of ``{path: content}``.

    The image starts ``FROM scratch`` or ``FROM base`` (a local image, so two
    images can share base layers). Returns the image id, ``sha256:<hex>``.
    Works with a :class:`DockerEngine` (legacy builder) and a
    :class:`PodmanStore` (``podman build --format docker``).
    """
    context = tempfile.mkdtemp(prefix="akd-build-")
    try:
        lines = ["FROM %s" % (base or "scratch")]
        for number, files in enumerate(layers):
            layer_dir = "layer%d" % number
            for path, content in files.items():
                relative = path.lstrip("/")
                target = os.path.join(context, layer_dir, relative)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(content)
            if not files:
                os.makedirs(os.path.join(context, layer_dir), exist_ok=True)
            lines.append("COPY %s/ /" % layer_dir)
        for key, value in (labels or {}).items():
            lines.append("LABEL %s=%s" % (_quote(key), _quote(value)))
        with open(os.path.join(context, "Dockerfile"), "w") as f:
            f.write("\n".join(lines) + "\n")
        return engine_or_store.build(context, tag)
    finally:
        shutil.rmtree(context, ignore_errors=True)


def _quote(text: str) -> str:
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')
