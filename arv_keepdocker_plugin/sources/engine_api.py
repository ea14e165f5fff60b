"""The Docker engine's own HTTP API over its unix socket: what the CLI asks, without the CLI.

Each ``docker`` command is a Go program start-up (tens of milliseconds, and
an ``inspect`` with ``info`` beside it is two), and ``docker save`` copies the
whole export once more through its own process into a pipe. The engine
answers the same questions on its socket (the Docker Engine API: ``GET
/images/{name}/json`` is ``docker image inspect``, ``GET /info`` is ``docker
info``, ``GET /images/get?names=...`` is ``docker save``), so where the CLI
would talk to a unix socket (:func:`~.docker_daemon.engine_socket`: a
``unix://`` ``DOCKER_HOST``, else the default socket when no other context
is chosen) the docker-daemon source asks there. Other hosts (tcp, ssh,
contexts) stay with the CLI.

Requests carry no API version, so the engine answers in its own newest one
(what the CLI negotiates to with an engine older than itself).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import urllib.parse
from collections.abc import Iterator
from typing import Any

from ..errors import EngineUnavailable, ImageNotFound, SourceError
from ..image import ByteStream

#: How long a request may wait for the engine before it counts as hung.
TIMEOUT = 120


class UnixConnection(http.client.HTTPConnection):
    """An HTTP/1.1 connection to a unix socket (the ``Host`` is a formality)."""

    def __init__(self, path: str, timeout: float | None = TIMEOUT):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def uses_containerd_store(info: dict[str, Any]) -> bool:
    """Whether ``docker info``'s record says images live in containerd's store."""
    return "io.containerd.snapshotter" in json.dumps(info.get("DriverStatus") or [])


def image_path(name: str, what: str) -> str:
    """``/images/{name}/{what}``: a name keeps its slashes, as the CLI sends it."""
    return "/images/{}/{}".format(urllib.parse.quote(name, safe="/:@"), what)


class EngineApi:
    """Requests to one engine socket; every call opens its own connection."""

    def __init__(self, path: str, timeout: float = TIMEOUT):
        self.path = path
        self.timeout = timeout

    def _open(self, method: str, target: str, timeout: float | None
              ) -> tuple[UnixConnection, http.client.HTTPResponse]:
        connection = UnixConnection(self.path, timeout)
        try:
            connection.request(method, target)
            return connection, connection.getresponse()
        except TimeoutError:
            connection.close()
            raise EngineUnavailable(f"the Docker engine at unix://{self.path} did not answer "
                                    f"{method} {target} "
                                    f"within {timeout}s") from None
        except OSError as error:
            connection.close()
            raise EngineUnavailable(f"cannot reach the Docker engine at unix://{self.path}: "
                                    f"{error.strerror or error}") from None

    def get_json(self, target: str, timeout: float | None = None) -> tuple[int, Any]:
        """``(status, decoded JSON body)`` of ``GET target`` (the body None when not JSON)."""
        connection, response = self._open("GET", target, timeout or self.timeout)
        try:
            body = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(body)
        except (ValueError, RecursionError):
            return response.status, None

    def ping(self, timeout: float) -> bool:
        """Whether the engine answers ``GET /_ping``."""
        try:
            connection, response = self._open("GET", "/_ping", timeout)
        except EngineUnavailable:
            return False
        try:
            response.read()
        except OSError:
            return False
        finally:
            connection.close()
        return response.status == 200

    def inspect(self, name: str) -> dict[str, Any]:
        """``docker image inspect NAME``'s record."""
        status, body = self.get_json(image_path(name, "json"))
        if status == 404:
            raise ImageNotFound(f"no matching image found for {name}")
        if status != 200 or not isinstance(body, dict):
            raise SourceError(f"docker image inspect failed: {message(body, status)}")
        return body

    def info(self) -> dict[str, Any]:
        """``docker info``'s record (``GET /info``)."""
        status, body = self.get_json("/info")
        if status != 200 or not isinstance(body, dict):
            raise SourceError(f"docker info failed: {message(body, status)}")
        return body

    @contextlib.contextmanager
    def export(self, image_id: str) -> Iterator[ByteStream]:
        """``docker save IMAGE_ID``'s tar as a stream (``GET /images/get``).

        The request is sent at once and the answer awaited at the first read:
        Docker 20.10 writes the whole export to its disk before it answers,
        and the caller has other work meanwhile. A failure the engine reports
        then is a :class:`SourceError` with its message; one after the first
        byte ends the stream early (the archive reader then refuses the
        truncated tar).
        """
        target = "/images/get?" + urllib.parse.urlencode({"names": image_id})
        # No timeout: the engine may take minutes before its first byte.
        connection = UnixConnection(self.path, None)
        try:
            connection.request("GET", target)
        except OSError as error:
            connection.close()
            raise EngineUnavailable(f"cannot reach the Docker engine at unix://{self.path}: "
                                    f"{error.strerror or error}") from None
        stream = ExportStream(connection, image_id)
        try:
            yield stream
        finally:
            stream.close()


class ExportStream:
    """The export's body, read as a file; the engine's answer is awaited at the first read."""

    def __init__(self, connection: UnixConnection, image_id: str):
        self._connection = connection
        self._image_id = image_id
        self._response: http.client.HTTPResponse | None = None
        self.closed = False

    def _answer(self) -> http.client.HTTPResponse:
        if self._response is not None:
            return self._response
        try:
            response = self._connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            raise SourceError(f"docker save {self._image_id} failed: the engine closed the "
                              f"connection ({error})"
                              ) from None
        if response.status != 200:
            body = response.read(1 << 16)
            try:
                decoded = json.loads(body)
            except (ValueError, RecursionError):
                decoded = None
            raise SourceError(f"docker save {self._image_id} failed: "
                              f"{message(decoded, response.status)}")
        self._response = response
        return response

    def read(self, size: int = -1) -> bytes:
        return self._answer().read(size)

    def readinto(self, buffer) -> int:
        return self._answer().readinto(buffer)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._response is not None:
            self._response.close()
        self._connection.close()


def message(body: Any, status: int) -> str:
    """The engine's error message (``{"message": ...}``), else the HTTP status."""
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return body["message"].strip().splitlines()[0]
    return f"HTTP {status}"
