"""``docker-daemon:NAME[:TAG]`` - images in the local Docker engine.

Where the ``docker`` CLI would talk to a unix socket (a ``unix://``
``DOCKER_HOST``, else the default socket when no other context is chosen),
the engine is asked on that socket directly (:mod:`.engine_api`: inspect,
info and the export, with no CLI start-up and no copy through a pipe). Any
other host (tcp, ssh, a context), or a socket that does not answer, goes
through the ``docker`` CLI (``docker.io`` when ``docker`` is missing, as
arv-keepdocker 3.2.1 does), so ``DOCKER_HOST``, contexts and the user's docker
configuration apply unchanged; the image is then exported with ``docker save
<id>`` streamed from the CLI's stdout. Never through a temp file.

On a local socket, an engine in the classic image store whose data root this
process may read (root on the engine's machine) is not asked for its export
at all: the archive is written from its own files (:mod:`.engine_files`).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Sequence

from .. import hookimpl, stagetimes
from ..errors import EngineUnavailable, ImageNotFound, SourceError
from ..image import Image, ImageSource, Reference
from ..names import checked_image_id, familiar, parse_engine_reference
from .engine_api import EngineApi, uses_containerd_store
from .engine_cli import exporting, first_line, image_from_inspect, inspected
from .engine_files import engine_files, exporters

#: How long ``available()`` waits for the engine to answer.
PROBE_TIMEOUT = 5
#: How long an ``inspect`` may take before the engine counts as hung.
INSPECT_TIMEOUT = 120

_UNREACHABLE = (
    "cannot connect to the docker daemon",
    "is the docker daemon running",
    "error during connect",
    "permission denied while trying to connect",
    "connection refused",
)


def docker_binary() -> str | None:
    """``docker``, else ``docker.io`` (Debian's name), else ``None``."""
    for name in ("docker", "docker.io"):
        path = shutil.which(name)
        if path:
            return path
    return None


def docker_host() -> str:
    """Where the CLI will look for the engine, for messages."""
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def pick_repo_digest(repo_digests: list[str] | None, name: str | None) -> str | None:
    """The manifest digest from ``RepoDigests``, preferring the typed repository
    (compared as Docker compares names, ``docker.io/library/x`` being ``x``)."""
    digests = [entry.split("@", 1) for entry in repo_digests or [] if "@" in entry]
    for repo, digest in digests:
        if name and familiar(repo) == familiar(name):
            return digest
    return digests[0][1] if digests else None


def engine_socket() -> str | None:
    """The engine's unix socket when the environment says which, else None.

    ``DOCKER_HOST=unix://...`` or, with no DOCKER_HOST and no docker context
    chosen, the default ``/var/run/docker.sock``. Other hosts (tcp, ssh,
    contexts) are left to the docker CLI.
    """
    host = os.environ.get("DOCKER_HOST")
    if host:
        return host[len("unix://"):] if host.startswith("unix://") else None
    if os.environ.get("DOCKER_CONTEXT"):
        return None
    config = os.path.join(os.environ.get("DOCKER_CONFIG") or
                          os.path.join(os.path.expanduser("~"), ".docker"), "config.json")
    try:
        with open(config) as f:
            context = json.load(f).get("currentContext")
    except (OSError, ValueError, AttributeError):
        context = None
    return "/var/run/docker.sock" if context in (None, "", "default") else None


def socket_answers(path: str, timeout: float = 2.0) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def _no_answer(command: str, timeout: float | None) -> EngineUnavailable:
    return EngineUnavailable(f"the Docker engine at {docker_host()} did not answer `docker "
                             f"{command}` "
                             f"within {timeout}s")


class DockerDaemonSource(ImageSource):
    """Images in the local Docker engine: on its unix socket, else through the ``docker`` CLI."""

    name = "docker-daemon"
    description = ("images in the local Docker engine: its socket or the docker CLI, "
                   "honours DOCKER_HOST")
    syntax = "NAME[:TAG]"
    serves_bare_names = True

    def __init__(self) -> None:
        self._containerd: bool | None = None
        #: ``GET /info`` on the socket (its record), asked in the background once
        #: the engine answers (it takes the engine several milliseconds).
        self._store_query: concurrent.futures.Future | None = None

    # -- the CLI ----------------------------------------------------------

    def _binary(self) -> str:
        binary = docker_binary()
        if binary is None:
            raise EngineUnavailable(
                "cannot find the docker command ('docker' or 'docker.io') in PATH")
        return binary

    def _run(self, args: Sequence[str], timeout: float | None
             ) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([self._binary(), *args], stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise _no_answer(args[0], timeout) from None

    def _error(self, what: str, stderr: bytes, target: str) -> SourceError:
        message = first_line(stderr.decode("utf-8", "replace"))
        lowered = message.lower()
        if "no such image" in lowered or "no such object" in lowered:
            return ImageNotFound(f"no matching image found for {target}")
        if any(marker in lowered for marker in _UNREACHABLE):
            return EngineUnavailable(f"cannot reach the Docker engine at {docker_host()}: "
                                     f"{message}")
        return SourceError(f"docker {what} failed: {message}")

    # -- ImageSource ------------------------------------------------------

    def parse(self, details: str, tag: str | None) -> Reference:
        return parse_engine_reference(details, details, tag, transport=self.name)

    def available(self, options: argparse.Namespace) -> bool:
        with stagetimes.stage("engine probe"):
            return self._available()

    def _available(self) -> bool:
        if docker_binary() is None:
            return False
        socket_path = engine_socket()
        if socket_path is not None:
            # A unix socket answers a connect at once: no need to run the CLI.
            answers = socket_answers(socket_path)
            if answers:
                self._ask_store(EngineApi(socket_path))
            return answers
        try:
            probe = self._run(["version", "--format", "{{.Server.Version}}"], PROBE_TIMEOUT)
        except EngineUnavailable:
            return False
        return probe.returncode == 0 and bool(probe.stdout.strip())

    def resolve(self, reference: Reference, options: argparse.Namespace) -> Image:
        # The source stands for the docker command's engine: with no docker
        # command, there is none (as before the socket was asked directly).
        self._binary()
        socket_path = engine_socket()
        if socket_path is not None:
            try:
                with stagetimes.stage("engine inspect"):
                    return self._resolve_on_socket(EngineApi(socket_path), reference)
            except EngineUnavailable:
                pass  # the CLI says why, in its own words
        return self._resolve_with_cli(reference)

    def _resolve_on_socket(self, engine: EngineApi, reference: Reference) -> Image:
        """:meth:`resolve` through the engine's own API (no CLI)."""
        target = reference.engine_target
        self._ask_store(engine)
        info = engine.inspect(target)
        assert self._store_query is not None
        engine_info = self._store_query.result()
        self._containerd = uses_containerd_store(engine_info)
        image_id = checked_image_id(info.get("Id"))

        def engine_export():
            return engine.export(image_id)

        opened, pieces = engine_export, None
        files = None if self._containerd else engine_files(engine_info, image_id)
        if files is not None:
            # The engine's own files: no wait for docker save to stage the whole
            # export, and stored layers are not read (engine_files.py).
            opened, pieces = exporters(files, engine_export)

        def export():
            stagetimes.mark("export start")
            return opened()

        image = self._image(info, reference, image_id, export, self._containerd)
        return image if pieces is None else dataclasses.replace(image, export_pieces=pieces)

    def _ask_store(self, engine: EngineApi) -> None:
        """Start asking the engine for ``docker info`` (which image store, which data
        root), unless asked already."""
        if self._store_query is not None:
            return
        query: concurrent.futures.Future = concurrent.futures.Future()

        def ask() -> None:
            try:
                query.set_result(engine.info())
            except BaseException as error:
                query.set_exception(error)

        threading.Thread(target=ask, name="engine-info", daemon=True).start()
        self._store_query = query

    def _image(self, info, reference: Reference, image_id: str, export,
               containerd: bool) -> Image:
        image = image_from_inspect(
            info, self.name, reference, image_id, export,
            manifest_digest=pick_repo_digest(info.get("RepoDigests"), reference.name))
        if containerd:
            # Its Id is the manifest (or index) digest: the config digest, the id
            # the image is stored under, is known once the export has passed.
            image = dataclasses.replace(image, provisional_id=True, manifest_digest=None)
        return image

    def _resolve_with_cli(self, reference: Reference) -> Image:
        """:meth:`resolve` through the ``docker`` CLI."""
        target = reference.engine_target
        # Which image store the engine uses is asked at the same time as the
        # image (it costs a CLI start-up, hidden behind the inspect's).
        with stagetimes.stage("engine inspect"):
            store_probe = self._probe_store()
            try:
                result = self._run(["image", "inspect", target], INSPECT_TIMEOUT)
            except BaseException:
                if store_probe is not None:
                    store_probe.kill()
                    store_probe.wait()
                raise
            containerd = self._store_answer(store_probe)
        if result.returncode != 0:
            raise self._error("image inspect", result.stderr, target)
        info = inspected(result.stdout, target, "docker image inspect")
        image_id = checked_image_id(info.get("Id"))
        binary = self._binary()
        return self._image(
            info, reference, image_id,
            lambda: exporting([binary, "save", image_id], "docker save " + image_id),
            containerd)

    def _probe_store(self) -> subprocess.Popen | None:
        """Start ``docker info``, which says whether the engine keeps images in
        containerd's store (Docker 29's default): its driver status then has
        ``driver-type: io.containerd.snapshotter.v1``. Asked once per run."""
        if self._containerd is not None:
            return None
        return subprocess.Popen([self._binary(), "info", "--format",
                                 "{{json .DriverStatus}}"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def _store_answer(self, probe: subprocess.Popen | None) -> bool:
        if probe is not None:
            try:
                out, _ = probe.communicate(timeout=INSPECT_TIMEOUT)
            except subprocess.TimeoutExpired:
                probe.kill()
                probe.wait()
                raise _no_answer("info", INSPECT_TIMEOUT) from None
            self._containerd = b"io.containerd.snapshotter" in (out or b"")
        return bool(self._containerd)

    def pull(self, reference: Reference, options: argparse.Namespace) -> None:
        if reference.repo_tag is None:
            raise SourceError(f"cannot pull {reference.image_id}: an image id is not a pullable "
                              "name"
                              )
        result = self._run(["pull", reference.repo_tag], timeout=None)
        if result.returncode != 0:
            raise self._error("pull", result.stderr, reference.repo_tag)


@hookimpl
def keepdocker_register_sources(register):
    register(DockerDaemonSource())
