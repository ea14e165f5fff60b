"""A plain-HTTP proxy in front of a registry that misbehaves on request.

Faults (each set by a method, for requests whose path contains a string):

* :meth:`FaultProxy.corrupt` - flip one byte of a blob (same length);
* :meth:`FaultProxy.drop_once` - send the headers and part of a blob, then
  cut the connection, once;
* :meth:`FaultProxy.ignore_range` - drop ``Range`` (the upstream answers 200);
* :meth:`FaultProxy.bad_content_range` - answer ranges with a wrong ``Content-Range``;
* :meth:`FaultProxy.statuses` - answer these statuses first (429, 503...);
* :meth:`FaultProxy.replace` - answer with a fixed body and headers;
* :meth:`FaultProxy.stall` - wait for an event before answering, once;
* :meth:`FaultProxy.redirect_blobs` - answer blob GETs with a 307 to a
  :class:`BlobStore` on another port, with a signature in the query.

:attr:`FaultProxy.seen` records every request (method, path, Range, whether
it carried ``Authorization``). A TLS handshake is answered with a plain
``400`` at once, as Go servers do, so clients falling back from HTTPS to
HTTP do not wait.
"""

from __future__ import annotations

import http.client
import http.server
import socket
import ssl
import threading

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade",
               "proxy-authorization", "proxy-authenticate", "trailer", "host"}
RELAY_CHUNK = 256 * 1024


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Base:
    """A threaded HTTP server on 127.0.0.1 that records what it sees."""

    def __init__(self, handler_class) -> None:
        self.seen: list[dict[str, object]] = []
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), handler_class)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return "127.0.0.1:%d" % self.port

    def record(self, handler) -> None:
        with self.lock:
            self.seen.append({"method": handler.command, "path": handler.path,
                              "range": handler.headers.get("Range"),
                              "authorization": "Authorization" in handler.headers})

    def requests(self, contains: str = "") -> list[dict[str, object]]:
        with self.lock:
            return [r for r in self.seen if contains in str(r["path"])]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def handle(self) -> None:
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first == b"\x16":  # a TLS ClientHello: we only speak plain HTTP
            try:
                self.connection.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            except OSError:
                pass
            return
        super().handle()


class FaultProxy(_Base):
    """Forwards to ``upstream`` (``HOST:PORT``), HTTPS when ``context`` is given."""

    def __init__(self, upstream: str, context: ssl.SSLContext | None = None) -> None:
        self.upstream = upstream
        self.context = context
        self._corrupt: list[str] = []
        self._drop: dict[str, list[int]] = {}
        self._ignore_range: list[str] = []
        self._bad_range: list[str] = []
        self._statuses: dict[str, list[int]] = {}
        self._redirect: BlobStore | None = None
        self._replace: dict[str, tuple] = {}
        self._stall: dict[str, threading.Event] = {}
        proxy = self

        class Handler(_Handler):
            def do_GET(self) -> None:
                proxy.forward(self)

            do_HEAD = do_GET
            do_POST = do_GET
            do_PUT = do_GET
            do_PATCH = do_GET

        super().__init__(Handler)

    # -- faults ---------------------------------------------------------------

    def corrupt(self, contains: str) -> None:
        with self.lock:
            self._corrupt.append(contains)

    def drop_once(self, contains: str, after: int, times: int = 1) -> None:
        """Cut ``times`` more GETs matching ``contains`` after ``after`` body bytes each."""
        with self.lock:
            self._drop.setdefault(contains, []).extend([after] * times)

    def ignore_range(self, contains: str) -> None:
        with self.lock:
            self._ignore_range.append(contains)

    def bad_content_range(self, contains: str) -> None:
        with self.lock:
            self._bad_range.append(contains)

    def statuses(self, contains: str, codes: list[int]) -> None:
        with self.lock:
            self._statuses[contains] = list(codes)

    def stall(self, contains: str) -> threading.Event:
        """Hold the next request matching ``contains`` until the returned event is set."""
        event = threading.Event()
        with self.lock:
            self._stall[contains] = event
        return event

    def replace(self, contains: str, body: bytes, headers: dict[str, str]) -> None:
        with self.lock:
            self._replace[contains] = (body, dict(headers))

    def redirect_blobs(self, store: BlobStore) -> None:
        with self.lock:
            self._redirect = store

    def reset(self) -> None:
        with self.lock:
            self._corrupt, self._drop, self._ignore_range, self._bad_range = [], {}, [], []
            self._statuses, self._redirect, self._replace = {}, None, {}
            for event in self._stall.values():
                event.set()
            self._stall = {}
            self.seen = []

    # -- forwarding -----------------------------------------------------------

    def _match(self, items, path: str) -> str | None:
        for item in items:
            if item in path:
                return item
        return None

    def forward(self, handler) -> None:
        self.record(handler)
        path = handler.path
        with self.lock:
            status_key = self._match(self._statuses, path)
            status = self._statuses[status_key].pop(0) if status_key and \
                self._statuses[status_key] else None
            drop_key = self._match(self._drop, path) if handler.command == "GET" else None
            drop_after = self._drop[drop_key].pop(0) if drop_key and self._drop[drop_key] \
                else None
            corrupt = self._match(self._corrupt, path) is not None
            ignore_range = self._match(self._ignore_range, path) is not None
            bad_range = self._match(self._bad_range, path) is not None
            store = self._redirect
            replace_key = self._match(self._replace, path)
            replacement = self._replace[replace_key] if replace_key else None
            stall_key = self._match(self._stall, path)
            stall = self._stall.pop(stall_key) if stall_key else None
        if stall is not None:
            stall.wait(60)
        if replacement is not None:
            body, headers = replacement
            handler.send_response(200)
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return
        if status is not None:
            body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            if status == 429:
                handler.send_header("Retry-After", "0")
            handler.end_headers()
            handler.wfile.write(body)
            return
        if store is not None and handler.command == "GET" and "/blobs/sha256:" in path:
            handler.send_response(307)
            handler.send_header("Location", "http://%s/storage%s?signature=s3cr3t-signature"
                                % (store.address, path))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_HEADERS}
        if ignore_range:
            headers.pop("Range", None)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        if self.context is not None:
            connection = http.client.HTTPSConnection(self.upstream, context=self.context,
                                                     timeout=60)
        else:
            connection = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            connection.request(handler.command, path, body=body, headers=headers)
            response = connection.getresponse()
            handler.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() in HOP_HEADERS or key.lower() == "content-length":
                    continue
                if key.lower() == "location" and value.startswith("http"):
                    value = value.replace("%s://%s" % ("https" if self.context else "http",
                                                       self.upstream),
                                          "http://%s" % self.address)
                if bad_range and key.lower() == "content-range":
                    value = "bytes 0-0/1"
                handler.send_header(key, value)
            declared = response.getheader("Content-Length")
            if declared is not None:
                handler.send_header("Content-Length", declared)
            else:
                handler.send_header("Connection", "close")
                handler.close_connection = True
            handler.end_headers()
            if handler.command == "HEAD":
                return
            self._relay(handler, response, int(declared) if declared else None,
                        drop_after, corrupt)
        finally:
            connection.close()

    def _relay(self, handler, response, size: int | None, drop_after: int | None,
               corrupt: bool) -> None:
        sent = 0
        flip_at = (size // 2) if (corrupt and size) else None
        while True:
            data = response.read(RELAY_CHUNK)
            if not data:
                return
            if flip_at is not None and sent <= flip_at < sent + len(data):
                index = flip_at - sent
                data = data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1:]
            if drop_after is not None and sent + len(data) >= drop_after:
                handler.wfile.write(data[:drop_after - sent])
                handler.wfile.flush()
                handler.close_connection = True
                try:
                    handler.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            handler.wfile.write(data)
            sent += len(data)


class BlobStore(_Base):
    """Where :class:`FaultProxy` redirects blobs: fetches them from ``upstream`` itself.

    It records whether each request carried ``Authorization`` (it must not)
    and uses its own credentials (``auth_header``) upstream. With
    ``challenge``, it answers every request 401 with that ``WWW-Authenticate``.
    """

    def __init__(self, upstream: str, context: ssl.SSLContext | None = None,
                 auth_header: str | None = None, challenge: str | None = None) -> None:
        self.upstream = upstream
        self.context = context
        self.auth_header = auth_header
        self.challenge = challenge
        store = self

        class Handler(_Handler):
            def do_GET(self) -> None:
                store.record(self)
                path = self.path.split("?", 1)[0][len("/storage"):]
                if store.challenge is not None:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", store.challenge)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.context_ok():
                    store.serve(self, path)

            def context_ok(self) -> bool:
                return self.path.startswith("/storage/v2/")

        super().__init__(Handler)

    def serve(self, handler, path: str) -> None:
        connection = (http.client.HTTPSConnection(self.upstream, context=self.context, timeout=60)
                      if self.context is not None else
                      http.client.HTTPConnection(self.upstream, timeout=60))
        headers = {}
        if self.auth_header:
            headers["Authorization"] = self.auth_header
        if handler.headers.get("Range"):
            headers["Range"] = handler.headers["Range"]
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            data = response.read()
            handler.send_response(response.status)
            for key in ("Content-Type", "Content-Range"):
                if response.getheader(key):
                    handler.send_header(key, response.getheader(key))
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        finally:
            connection.close()
