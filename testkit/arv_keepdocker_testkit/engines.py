"""Real container engines started privately, for tests, benchmarks and hook authors.

Nothing here touches the machine's own engines: every engine lives in a
directory you choose and listens on a private socket or a free loopback port.
All of them work as root with no systemd, no bridge and no iptables.

* :class:`DockerEngine` - a ``dockerd`` with its own data root and unix socket.
* :class:`Docker26Engine` - Docker 26 with a containerd of its own, in the
  classic or the containerd image store (unpacked by ``.ci/install-engines``
  into ``.engines/docker26/root``, or ``$ARV_KEEPDOCKER_DOCKER26``).
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

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from .cluster.cluster import pid_alive

__all__ = [
    "EngineStartError",
    "DockerEngine",
    "Docker26Engine",
    "docker26_root",
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
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no log)"


def _terminate(process: subprocess.Popen | None, pid: int | None,
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

    def __init__(self, dir: str, storage_driver: str = "vfs"):
        self.dir = os.path.abspath(dir)
        #: ``vfs`` (works anywhere) or ``overlay2`` (needs overlayfs mounts: root).
        self.storage_driver = storage_driver
        self.socket = os.path.join(self.dir, "docker.sock")
        self.pidfile = os.path.join(self.dir, "dockerd.pid")
        self.log = os.path.join(self.dir, "dockerd.log")
        if len(self.socket) > _MAX_SOCKET_PATH:
            raise EngineStartError(
                "socket path too long for a unix socket: %s (use a short dir under /tmp)"
                % self.socket)
        self._process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        """The ``DOCKER_HOST`` value for this engine (``unix://...``)."""
        return "unix://" + self.socket

    def env(self) -> dict[str, str]:
        """A copy of ``os.environ`` pointing the docker CLI at this engine."""
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        return env

    def _dockerd_command(self) -> list[str]:
        """The ``dockerd`` command line (subclasses add or change options)."""
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise EngineStartError("dockerd not found in PATH (install docker.io)")
        return [dockerd,
                "--data-root", os.path.join(self.dir, "root"),
                "--exec-root", os.path.join(self.dir, "exec"),
                "-H", self.host,
                "--pidfile", self.pidfile,
                "--iptables=false", "--ip6tables=false",
                "--bridge=none", "--storage-driver=" + self.storage_driver]

    def _dockerd_env(self) -> dict[str, str] | None:
        """``dockerd``'s environment (None: this process's)."""
        return None

    def start(self, timeout: float = 30) -> DockerEngine:
        """Start ``dockerd`` and wait until ``docker info`` answers."""
        command = self._dockerd_command()
        docker_command()
        os.makedirs(self.dir, exist_ok=True)
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen(
                command, env=self._dockerd_env(),
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
                    capture_output=True, timeout=timeout)
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

    def config_digest(self, reference: str) -> str:
        """``sha256:`` of ``reference``'s config as ``docker save`` exports it.

        The classic store's ``Id`` is this digest; the containerd image
        store's ``Id`` is the manifest (or index) digest instead, so this
        reads the config from the export (small images: members under 1 MiB
        are kept in memory until ``manifest.json`` names the config).
        """
        process = subprocess.Popen([docker_command(), "save", reference], env=self.env(),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        small: dict[str, bytes] = {}
        try:
            with tarfile.open(fileobj=process.stdout, mode="r|") as tar:
                for member in tar:
                    if member.isfile() and member.size <= 1 << 20:
                        extracted = tar.extractfile(member)
                        assert extracted is not None
                        small[member.name] = extracted.read()
        finally:
            assert process.stdout is not None
            process.stdout.close()
            stderr = process.stderr.read() if process.stderr else b""
            process.wait()
        if process.returncode != 0:
            raise subprocess.CalledProcessError(process.returncode, ["docker", "save", reference],
                                                stderr=stderr)
        [entry] = json.loads(small["manifest.json"])
        return "sha256:" + hashlib.sha256(small[entry["Config"]]).hexdigest()

    def __enter__(self) -> DockerEngine:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


#: Environment variable naming an unpacked Docker 26 root (``usr/sbin/dockerd``,
#: ``usr/bin/containerd``), instead of the repository's ``.engines/docker26/root``.
DOCKER26_ENV = "ARV_KEEPDOCKER_DOCKER26"
#: Where ``.ci/install-engines`` unpacks Docker 26, relative to the repository.
DOCKER26_RELATIVE = os.path.join(".engines", "docker26", "root")


def _is_docker26_root(root: str) -> bool:
    return all(os.access(os.path.join(root, part), os.X_OK)
               for part in ("usr/sbin/dockerd", "usr/bin/containerd"))


def docker26_root() -> str:
    """The unpacked Docker 26 root (holding ``usr/sbin/dockerd``, ``usr/bin/containerd``).

    ``$ARV_KEEPDOCKER_DOCKER26`` when set, else ``.engines/docker26/root`` in
    the repository this test kit lives in (or the one around the current
    directory), as ``.ci/install-engines`` leaves it. Raises
    :class:`EngineStartError` saying where it looked.
    """
    named = os.environ.get(DOCKER26_ENV)
    if named:
        if _is_docker26_root(named):
            return os.path.abspath(named)
        raise EngineStartError(
            "%s=%s holds no usr/sbin/dockerd and usr/bin/containerd" % (DOCKER26_ENV, named))
    looked = []
    for start in (os.path.dirname(os.path.abspath(__file__)), os.getcwd()):
        directory = start
        while True:
            candidate = os.path.join(directory, DOCKER26_RELATIVE)
            if candidate not in looked:
                looked.append(candidate)
                if _is_docker26_root(candidate):
                    return candidate
            parent = os.path.dirname(directory)
            if parent == directory:
                break
            directory = parent
    raise EngineStartError(
        "Docker 26 is not unpacked: no %s in the repository (run .ci/install-engines) and "
        "%s is not set (looked in %s)" % (DOCKER26_RELATIVE, DOCKER26_ENV, ", ".join(looked[:3])))


class Docker26Engine(DockerEngine):
    """Docker 26 (Debian trixie's ``docker.io``) with a ``containerd`` of its own.

    The binaries come from :func:`docker26_root` (unpacked, not installed, by
    ``.ci/install-engines``). ``containerd_store=True`` runs Docker's
    containerd image store (``features.containerd-snapshotter``, the native
    snapshotter; Docker 29's default): ``docker image inspect`` then gives the
    manifest or index digest as ``Id``, and ``docker save`` writes an OCI
    layout with the layers as pulled. ``False`` runs the classic store (vfs),
    where ``Id`` is the config digest, as with Docker 20.10.

    Everything lives in ``dir``: containerd's config, root, state and sockets,
    dockerd's data and exec roots, socket, pidfile, ``daemon.json`` and logs.
    No container can run here (trixie's ``runc`` needs a newer glibc than
    bookworm's, and there is no networking); images can be pulled, pushed,
    loaded, saved, inspected, tagged, removed and built (:meth:`build`).
    """

    def __init__(self, dir: str, containerd_store: bool = False, root: str | None = None):
        super().__init__(dir)
        self.containerd_store = containerd_store
        self._root = root
        self.containerd_socket = os.path.join(self.dir, "containerd.sock")
        self.containerd_config = os.path.join(self.dir, "containerd.toml")
        self.containerd_log = os.path.join(self.dir, "containerd.log")
        self.daemon_json = os.path.join(self.dir, "daemon.json")
        if len(self.containerd_socket + ".ttrpc") > _MAX_SOCKET_PATH:
            raise EngineStartError(
                "socket path too long for a unix socket: %s.ttrpc (use a short dir under /tmp)"
                % self.containerd_socket)
        self._containerd: subprocess.Popen | None = None

    @property
    def root(self) -> str:
        """The unpacked Docker 26 root this engine runs from."""
        if self._root is None:
            self._root = docker26_root()
        return self._root

    def _binary(self, relative: str) -> str:
        path = os.path.join(self.root, relative)
        if not os.access(path, os.X_OK):
            raise EngineStartError("%s is missing (run .ci/install-engines)" % path)
        return path

    def _dockerd_env(self) -> dict[str, str]:
        # runc, containerd-shim* and docker-init are looked up in PATH.
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([os.path.join(self.root, "usr", "bin"),
                                       os.path.join(self.root, "usr", "sbin"),
                                       env.get("PATH", os.defpath)])
        return env

    def _dockerd_command(self) -> list[str]:
        features = {"containerd-snapshotter": self.containerd_store}
        with open(self.daemon_json, "w") as f:
            json.dump({"features": features,
                       "storage-driver": "native" if self.containerd_store else "vfs"}, f)
        return [self._binary("usr/sbin/dockerd"),
                "--containerd", self.containerd_socket,
                "--data-root", os.path.join(self.dir, "root"),
                "--exec-root", os.path.join(self.dir, "exec"),
                "-H", self.host,
                "--pidfile", self.pidfile,
                "--config-file", self.daemon_json,
                "--iptables=false", "--ip6tables=false", "--bridge=none"]

    def _start_containerd(self, timeout: float) -> None:
        containerd = self._binary("usr/bin/containerd")
        os.makedirs(self.dir, exist_ok=True)
        with open(self.containerd_config, "w") as f:
            f.write('version = 2\n'
                    'root = "%s"\n'
                    'state = "%s"\n'
                    'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                    '[grpc]\n  address = "%s"\n'
                    '[ttrpc]\n  address = "%s.ttrpc"\n'
                    % (os.path.join(self.dir, "ctd", "root"),
                       os.path.join(self.dir, "ctd", "state"),
                       self.containerd_socket, self.containerd_socket))
        with open(self.containerd_log, "ab") as log:
            self._containerd = subprocess.Popen(
                [containerd, "--config", self.containerd_config], env=self._dockerd_env(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self._containerd.poll() is not None:
                raise EngineStartError(
                    "containerd exited with status %s; end of %s:\n%s"
                    % (self._containerd.returncode, self.containerd_log,
                       _log_tail(self.containerd_log)))
            if _socket_answers(self.containerd_socket):
                return
            if time.monotonic() > deadline:
                raise EngineStartError(
                    "containerd did not answer within %ss; end of %s:\n%s"
                    % (timeout, self.containerd_log, _log_tail(self.containerd_log)))
            time.sleep(0.1)

    def start(self, timeout: float = 30) -> Docker26Engine:
        """Start containerd, then ``dockerd``; wait until ``docker info`` answers.

        Raises :class:`EngineStartError` (with the log's end) when the
        binaries are missing or either daemon does not come up; nothing is
        left running then.
        """
        docker_command()
        try:
            self._start_containerd(timeout)
            super().start(timeout)
        except BaseException:
            self.stop()
            raise
        driver = self.docker("info", "--format", "{{json .DriverStatus}}", text=True).stdout
        if ("io.containerd.snapshotter" in driver) != self.containerd_store:
            self.stop()
            raise EngineStartError("dockerd did not run the %s image store (driver status %s)"
                                   % ("containerd" if self.containerd_store else "classic",
                                      driver.strip()))
        return self

    def stop(self) -> None:
        """Stop ``dockerd``, then containerd, and wait until both have exited."""
        super().stop()
        if self._containerd is not None:
            _terminate(self._containerd, None)
            self._containerd = None


def _socket_answers(path: str) -> bool:
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


class PodmanStore:
    """A private containers-storage store, used through ``podman`` (no daemon)."""

    def __init__(self, dir: str, driver: str = "vfs"):
        self.dir = os.path.abspath(dir)
        self.root = os.path.join(self.dir, "root")
        self.runroot = os.path.join(self.dir, "run")
        self.driver = driver
        self._storage_conf: str | None = None

    @property
    def args(self) -> list[str]:
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

    def env(self) -> dict[str, str]:
        """A copy of ``os.environ`` with ``CONTAINERS_STORAGE_CONF`` set to this store."""
        env = dict(os.environ)
        env["CONTAINERS_STORAGE_CONF"] = self.storage_conf
        return env

    def start(self) -> PodmanStore:
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

    def __init__(self, dir: str, port: int | None = None):
        self.dir = os.path.abspath(dir)
        self.port = port
        self.log = os.path.join(self.dir, "registry.log")
        self._process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, the prefix of image names in this registry."""
        return "127.0.0.1:%d" % self.port

    def start(self, timeout: float = 30) -> Registry:
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

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def build_layered_image(engine_or_store: DockerEngine | PodmanStore, tag: str,
                        layers: Sequence[dict[str, bytes]], base: str | None = None,
                        labels: dict[str, str] | None = None) -> str:
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
