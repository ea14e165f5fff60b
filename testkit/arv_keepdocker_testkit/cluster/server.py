"""The HTTPS server: one port for the API, the discovery document and Keep.

* ``GET /discovery/v1/apis/arvados/v1/rest`` - the discovery document, with
  the caching headers Arvados sends (``Cache-Control: max-age=86400, public``
  from ``expires_in 24.hours, public: true`` in
  ``services/api/app/controllers/arvados/v1/schema_controller.rb``, which the
  controller passes through), so the SDK's discovery cache
  (``~/.cache/arvados/discovery``) serves later clients without a request, as
  it does against a real cluster. The cache is keyed by URL, and the cluster
  listens on a new port at each start unless one is asked for.
* ``/arvados/v1/...`` - API methods (:mod:`.routes`), JSON in and out.
* ``/<32 hex>...`` - Keep blocks, handed to :mod:`.keepstore`.
* ``POST|DELETE /_test/faults`` - arm/clear injected faults (admin only).

HTTP/1.1 with keep-alive; TLS is negotiated in each connection's own thread
so one slow client never blocks ``accept``. Errors are Arvados JSON bodies
with 400/401/403/404/413/422; an unexpected exception answers 422 (never
5xx: clients would retry it for half an hour) and is logged.
"""

import json
import logging
import re
import socket
import ssl
import sys
import threading
import time
import traceback
import types
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import discovery, faults, timestamps
from .httperrors import ApiError, error_body
from .resources import Context
from .routes import Router
from .store import Store
from .users_api import ensure_keep_service

log = logging.getLogger("arv_keepdocker_testkit.cluster")

DISCOVERY_PATH = "/discovery/v1/apis/arvados/v1/rest"
#: What Arvados sends with the discovery document (24 hours; the Date header
#: comes with every answer).
DISCOVERY_CACHE = "max-age=86400, public"
API_PREFIX = "/arvados/v1/"
FAULTS_PATH = "/_test/faults"
MAX_API_BODY = discovery.MAX_REQUEST_SIZE
_KEEP_PATH_RE = re.compile(r"^/[0-9a-f]{32}")
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")


class ClusterState:
    """What every request handler shares: settings, store, router, faults."""

    def __init__(self, settings, host="127.0.0.1"):
        self.settings = settings
        self.dir = settings.dir
        self.blob_dir = settings.dir / "keep"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(settings.dir / "cluster.db", settings.cluster_id)
        self.store.bootstrap()
        self.router = Router(discovery.static_document())
        self.faults = faults.FAULTS
        self.host = host
        self.port = None
        self.generated_at = timestamps.now()
        self._discovery = {}
        self._discovery_lock = threading.Lock()

    @property
    def api_host(self):
        return "%s:%d" % (self.host, self.port)

    def discovery_bytes(self, api_host):
        """The discovery document for clients that call us ``api_host``, as JSON bytes (cached)."""
        with self._discovery_lock:
            body = self._discovery.get(api_host)
            if body is None:
                doc = discovery.document(api_host, self.settings, self.generated_at)
                body = self._discovery[api_host] = (json.dumps(doc) + "\n").encode()
            return body

    def bind(self, port):
        self.port = port
        ensure_keep_service(self.store, self.host, port)

    def close(self):
        self.store.close()


class TLSServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections do their TLS handshake in their thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, handler, ssl_context, state):
        self.ssl_context = ssl_context
        self.state = state
        super().__init__(address, handler)

    def finish_request(self, request, client_address):
        request.settimeout(60)
        # Headers and body go out in separate writes: without TCP_NODELAY,
        # Nagle plus the client's delayed ACK add 40 ms to every response.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return  # a client that gave up or spoke plain HTTP
        try:
            conn.settimeout(300)
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, ssl.SSLError)):
            return
        log.error("error serving %s:\n%s", client_address, traceback.format_exc())


def _token_from(headers, params):
    auth = headers.get("Authorization", "")
    for scheme in ("Bearer ", "OAuth2 "):
        if auth.startswith(scheme):
            return auth[len(scheme):].strip() or None
    return params.get("api_token") or None


class Handler(BaseHTTPRequestHandler):
    """Routes each request to the discovery doc, the API, Keep or the fault switch."""

    protocol_version = "HTTP/1.1"
    server_version = "arv-keepdocker-cluster"
    sys_version = ""

    # -- plumbing ------------------------------------------------------------

    def log_message(self, fmt, *args):
        log.info("%s %s", self.address_string(), fmt % args)

    def handle_expect_100(self):
        if _KEEP_PATH_RE.match(self.path):
            from . import keepstore

            return keepstore.defer_expect_100(self)
        return super().handle_expect_100()

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    @property
    def state(self):
        return self.server.state

    def _send_json(self, status, obj, extra_headers=()):
        body = obj if isinstance(obj, bytes) else (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_error(self, status, message, request_id=None):
        self._send_json(status, error_body(message, request_id))

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (bad request line, unknown method) as Arvados JSON.

        A 5xx it would send (501 for an unknown HTTP method) becomes 422, which
        clients do not retry.
        """
        if code >= 500:
            code = 422
        self.close_connection = True
        try:
            self._send_json(code, error_body(message or explain or "bad request"))
        except OSError:
            pass

    def _read_body(self):
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise ApiError(411, "Content-Length is required")
        if not length:
            return b""
        try:
            length = int(length)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "bad Content-Length") from None
        if length > MAX_API_BODY:
            self.close_connection = True
            raise ApiError(413, "request body larger than %d bytes" % MAX_API_BODY)
        return self.rfile.read(length)

    # -- dispatch --------------------------------------------------------------

    def _dispatch(self, method):
        path, _, query = self.path.partition("?")
        request_id = self.headers.get("X-Request-Id") or ""
        if _KEEP_PATH_RE.match(path) and method in ("GET", "HEAD", "PUT"):
            try:
                return self._keep(method)
            except (TimeoutError, ConnectionError):
                self.close_connection = True
            except Exception as err:  # a keepstore bug: 422 (if still possible), never 5xx
                log.error("internal error on %s %s:\n%s", method, self.path,
                          traceback.format_exc())
                self.close_connection = True
                try:
                    self._send_error(422, "internal error in test cluster: %s: %s"
                                     % (type(err).__name__, err), request_id)
                except OSError:
                    pass
            return None
        try:
            body = self._read_body()  # always: leftover bytes would break keep-alive
            if path == DISCOVERY_PATH and method in ("GET", "HEAD"):
                return self._discovery()
            if path == FAULTS_PATH:
                return self._faults(method, body, query)
            if path.startswith(API_PREFIX):
                return self._api(method, path[len(API_PREFIX):], query, body, request_id)
            raise ApiError(404, "Path not found: %s" % path)
        except ApiError as err:
            self._send_error(err.status, err.message, request_id)
        except (TimeoutError, ConnectionError):
            self.close_connection = True
        except Exception as err:  # a server bug: 422, never 5xx (the SDK retries 5xx)
            log.error("internal error on %s %s:\n%s", method, self.path, traceback.format_exc())
            self._send_error(422, "internal error in test cluster: %s: %s"
                             % (type(err).__name__, err), request_id)

    def _authenticate(self, params):
        token = _token_from(self.headers, params)
        user = self.state.store.user_by_token(token) if token else None
        return token, user

    def _keep(self, method):
        from . import keepstore

        _path, _, query = self.path.partition("?")
        token, user = self._authenticate(dict(urllib.parse.parse_qsl(query)))
        settings = self.state.settings
        ctx = types.SimpleNamespace(
            token=token, user=user, blob_dir=self.state.blob_dir, signing_key=settings.signing_key,
            ttl=settings.ttl, faults=self.state.faults, replication=settings.replication,
        )
        if method == "PUT":
            keepstore.handle_put(self, ctx)
        else:
            keepstore.handle_get(self, ctx, head=(method == "HEAD"))

    def _discovery(self):
        host = self.headers.get("Host") or ""
        if not _HOST_RE.match(host) or not host.endswith(":%d" % self.state.port):
            host = self.state.api_host
        self._send_json(200, self.state.discovery_bytes(host), [("Cache-Control", DISCOVERY_CACHE)])

    def _faults(self, method, body, query):
        token, user = self._authenticate(dict(urllib.parse.parse_qsl(query)))
        if user is None:
            raise ApiError(401, "Not logged in")
        if not user.get("is_admin"):
            raise ApiError(403, "Forbidden: fault injection needs an admin token")
        if method == "DELETE":
            self.state.faults.clear()
        elif method == "POST":
            try:
                spec = json.loads(body or b"{}")
                self.state.faults.arm(spec["target"], spec.get("count", 1), spec.get("status"),
                                      spec.get("stall", 0.0), spec.get("skip", 0))
            except (ValueError, KeyError, TypeError) as err:
                raise ApiError(422, "bad fault spec: %s" % err) from None
        elif method != "GET":
            raise ApiError(422, "use POST, GET or DELETE on %s" % FAULTS_PATH)
        self._send_json(200, {"pending": self.state.faults.pending()})

    # -- API -------------------------------------------------------------------

    def _api(self, method, subpath, query, body, request_id):
        override = (self.headers.get("X-HTTP-Method-Override") or "").upper()
        if override and method == "POST":
            method = override
        specific = "api:%s:%s" % (method, subpath.strip("/").split("/")[0])
        fault = self.state.faults.take(specific) or self.state.faults.take("api")
        if fault is not None:
            if fault.stall:
                time.sleep(fault.stall)
            if fault.status is not None:
                return self._send_error(fault.status, "injected fault (api)", request_id)
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        json_body = None
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if body:
            if content_type == "application/x-www-form-urlencoded":
                params.update(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            else:
                try:
                    json_body = json.loads(body)
                except ValueError:
                    raise ApiError(400, "request body is not valid JSON") from None
        route, path_params = self.state.router.match(method, urllib.parse.unquote(subpath))
        if json_body is not None and route.http_method in ("GET", "DELETE"):
            # Parameters sent as a JSON body (the Go router accepts that too).
            if isinstance(json_body, dict):
                params.update({k: v if isinstance(v, str) else json.dumps(v)
                               for k, v in json_body.items()})
            json_body = None
        token, user = self._authenticate(params)
        if user is None and not route.public:
            raise ApiError(401, "Not logged in" if not token else "Invalid API token")
        if user is not None and not user.get("is_active", True):
            raise ApiError(403, "Forbidden: user is not active")
        self.state.router.check_params(route, params)
        params.update(path_params)
        ctx = Context(self.state, user, token, request_id)
        if route.http_method == "GET":
            result = route.handler(ctx, params, json_body)
        else:
            # Writes are serialised: name uniqueness and permission checks
            # then see a stable store.
            with self.state.store.lock:
                result = route.handler(ctx, params, json_body)
        self._send_json(200, result)


def make_ssl_context(cert_file, key_file):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


def serve(settings, port, cert_file, key_file, ready=None, stop_event=None):
    """Serve the cluster described by ``settings`` until interrupted.

    ``port`` 0 means: the port saved in the settings if it is free, else any
    free port. The bound port is saved in the settings and passed to
    ``ready(port)`` once requests can be answered.
    """
    state = ClusterState(settings)
    server = None
    candidates = [port] if port else ([settings.port] if settings.port else []) + [0]
    last_error = None
    for candidate in candidates:
        try:
            server = TLSServer(("127.0.0.1", candidate), Handler,
                               make_ssl_context(cert_file, key_file), state)
            break
        except OSError as err:
            last_error = err
    if server is None:
        state.close()
        raise OSError("cannot listen on 127.0.0.1:%s: %s" % (port, last_error))
    bound = server.server_address[1]
    state.bind(bound)
    settings.set_port(bound)
    settings.save()
    if stop_event is not None:
        threading.Thread(target=lambda: (stop_event.wait(), server.shutdown()), daemon=True).start()
    if ready is not None:
        ready(bound)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        state.close()

