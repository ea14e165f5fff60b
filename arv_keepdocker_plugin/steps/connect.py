"""Step 0: the Arvados API client, which fails fast when the API host cannot be reached at all.

The SDK retries every failed request ``--retries`` times, waiting longer
each time (googleapiclient's ``_retry_request``, patched in
``sdk/python/arvados/api.py``): for a refused port or a host name that does
not resolve, that is more than five minutes of ``Sleeping ... before retry``
lines, for a mistake that no retry can mend. :func:`connect` gives this
thread's client a transport (:class:`WatchedHttp`) that watches the answers:

* until the API server has answered one request, a refused connection, a
  name that does not resolve or a certificate the client rejects ends the
  run at once with one line naming ``ARVADOS_API_HOST``, its value and where
  it came from (the environment or ``settings.conf``): :class:`ApiUnreachable`;
* after that, and for 5xx answers and timeouts at any time, ``--retries``
  applies as before; the first retry of the run prints one line saying what
  is retried and how to stop.

Callers that pass their own API client (arvados-cwl-runner through
:mod:`..compat`) are not touched.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import ssl
import threading
from typing import Any

import httplib2

from .. import stagetimes
from ..errors import KeepdockerError

logger = logging.getLogger("arvados.keepdocker")

#: Statuses the SDK retries besides 5xx (``sdk/python/arvados/retry.py``, plus 429).
RETRIED_STATUSES = frozenset({408, 409, 423, 429})


@dataclasses.dataclass(frozen=True)
class ApiSetting:
    """``ARVADOS_API_HOST`` and where its value came from."""

    host: str | None
    origin: str

    def __str__(self) -> str:
        return f"ARVADOS_API_HOST={self.host} (from {self.origin})"


def api_setting() -> ApiSetting:
    """Where the SDK's configuration (``arvados.config.settings``) got the API host."""
    import arvados.config

    host = arvados.config.settings().get("ARVADOS_API_HOST")
    if "ARVADOS_API_HOST" in os.environ:
        return ApiSetting(host, "the environment")
    return ApiSetting(host, settings_file() or "settings.conf")


def settings_file() -> str | None:
    """The ``settings.conf`` the SDK reads, when one exists."""
    try:  # the SDK's own search (arvados/config.py); private, so only a hint
        from arvados._internal.basedirs import BaseDirectories
        return str(next(iter(BaseDirectories("CONFIG").search("settings.conf")), "")) or None
    except Exception:
        return None


@dataclasses.dataclass(frozen=True)
class Unreachable:
    """Why the API server could not be reached, and what points at it."""

    reason: str
    setting: ApiSetting

    def __str__(self) -> str:
        return f"cannot reach the Arvados API server: {self.reason}; check {self.setting}"


class ApiUnreachable(KeepdockerError):
    """The first request to the API server met an error no retry can mend."""

    # The argument is an Unreachable, not a string: the SDK re-raises
    # exceptions with "[request id] " put before their first string argument.
    def __str__(self) -> str:
        return str(self.args[0])


def hopeless(error: BaseException) -> str | None:
    """Why ``error`` can never succeed on a retry (for a first request), or None."""
    if isinstance(error, httplib2.ServerNotFoundError) or isinstance(error, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(error, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(error, ssl.SSLCertVerificationError):
        return "its certificate was rejected ({})".format(
            getattr(error, "verify_message", None) or "certificate verify failed")
    return None


def retried(error: BaseException) -> str | None:
    """What googleapiclient retries (a network failure), in a few words, or None."""
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "no answer (timed out)"
    if isinstance(error, (ConnectionError, ssl.SSLError, httplib2.ServerNotFoundError)):
        return hopeless(error) or f"the connection failed ({type(error).__name__})"
    return None


class Watch:
    """What one run has seen of the API server (shared by its transports)."""

    def __init__(self, setting: ApiSetting, retries: int):
        self.setting = setting
        self.retries = retries
        self.answered = threading.Event()
        self._announced = threading.Event()

    def request(self, send, *args: Any, **kwargs: Any):
        """``send(*args, **kwargs)``: httplib2's ``(response, content)``, watched."""
        if stagetimes.ENABLED:
            return self._timed(send, *args, **kwargs)
        return self._request(send, *args, **kwargs)

    def _timed(self, send, *args: Any, **kwargs: Any):
        """:meth:`_request`, its time recorded as stage ``api`` and by method and path."""
        import time

        wall, cpu = time.monotonic(), time.thread_time()
        try:
            response, content = self._request(send, *args, **kwargs)
        finally:
            wall, cpu = time.monotonic() - wall, time.thread_time() - cpu
            stagetimes.add("api", wall, cpu)
            method = kwargs.get("method") or (args[1] if len(args) > 1 else "GET")
            stagetimes.add(request_kind(method, str(kwargs.get("uri") or args[0])), wall, cpu)
        if getattr(response, "fromcache", False):
            stagetimes.add("api from cache", 0.0)
        return response, content

    def _request(self, send, *args: Any, **kwargs: Any):
        try:
            response, content = send(*args, **kwargs)
        except Exception as error:
            reason = hopeless(error)
            if reason is not None and not self.answered.is_set():
                raise ApiUnreachable(Unreachable(reason, self.setting)) from None
            self.announce(retried(error))
            raise
        if not getattr(response, "fromcache", False):  # an answer from the server itself
            self.answered.set()
        status = response.status
        if status >= 500 or status in RETRIED_STATUSES:
            self.announce("HTTP {} {}".format(status, getattr(response, "reason", "") or ""
                                              ).strip())
        return response, content

    def announce(self, what: str | None) -> None:
        """One line, once a run, before the first retry."""
        if what is None or self.retries <= 0 or self._announced.is_set():
            return
        self._announced.set()
        logger.warning("Arvados API server at %s: %s; retrying up to %d times, waiting "
                       "longer each time (--retries %d); press Ctrl-C to stop, or use "
                       "--retries 0 to fail at once", self.setting.host, what, self.retries,
                       self.retries)


class WatchedHttp(httplib2.Http):
    """The SDK's HTTP transport, every request reported to a :class:`Watch`."""

    def __init__(self, watch: Watch, **kwargs: Any):
        super().__init__(**kwargs)
        self.watch = watch

    def request(self, *args: Any, **kwargs: Any):
        return self.watch.request(super().request, *args, **kwargs)


def connect(retries: int):
    """``arvados.api("v1", num_retries=retries)``, every request watched.

    The client is the SDK's thread-safe one; each thread's own client (built
    when the thread first uses it, the first one fetching the discovery
    document) gets a :class:`WatchedHttp` reporting to one :class:`Watch`.
    """
    import arvados.api
    import arvados.util

    class WatchedAPIClient(arvados.api.ThreadSafeAPIClient):
        def __init__(self) -> None:
            # ThreadSafeAPIClient.__init__ without its KeepClient, which asks
            # the API server for the cluster's config at once (GET
            # /arvados/v1/config): an image already stored needs no Keep.
            self._api_kwargs = kwargs
            self.api_token = kwargs["token"]
            self.request_id = kwargs.get("request_id")
            self.local = threading.local()
            self._keep_client = None
            self._keep_lock = threading.Lock()

        @property
        def keep(self):
            """The SDK's KeepClient for this client, built on first use."""
            with self._keep_lock:
                if self._keep_client is None:
                    import arvados.keep
                    self._keep_client = arvados.keep.KeepClient(api_client=self,
                                                                num_retries=retries)
                return self._keep_client

        def localapi(self):
            try:
                return self.local.api
            except AttributeError:
                pass
            client = watched_client(kwargs, watch)
            client._http._request_id = lambda: self.request_id or arvados.util.new_request_id()
            self.local.api = client
            return client

    try:
        kwargs = arvados.api.api_kwargs_from_config("v1", num_retries=retries)
    except ValueError as error:  # no host or token configured
        raise KeepdockerError(str(error).splitlines()[0]) from None
    watch = Watch(api_setting(), retries)
    # As arvados.api("v1", num_retries=retries) builds it, but for the Keep
    # client, built when first used (see WatchedAPIClient.keep).
    return WatchedAPIClient()


def watched_client(kwargs: dict, watch: Watch):
    """``arvados.api.api_client`` as :func:`arvados.api` calls it, over a watched transport."""
    import arvados.api
    import arvados.util

    http = WatchedHttp(watch, ca_certs=arvados.util.ca_certs_path(),
                       cache=arvados.api.http_cache("discovery"),
                       disable_ssl_certificate_validation=bool(kwargs["insecure"]))
    return arvados.api.api_client(
        kwargs["version"], kwargs["discoveryServiceUrl"], kwargs["token"], http=http,
        insecure=kwargs["insecure"], num_retries=kwargs["num_retries"])


def unreachable_line(error: BaseException) -> str:
    """The one line for a network error that escaped the retries (or ``--retries 0``)."""
    reason = retried(error) or str(error).splitlines()[0]
    return str(Unreachable(reason, api_setting()))


def request_kind(method: str, uri: str) -> str:
    """``api METHOD PATH`` with record identifiers as ``{uuid}``: one stage per kind of
    request (``api PUT /arvados/v1/collections/{uuid}``), not one per record."""
    import re
    import urllib.parse

    path = urllib.parse.urlsplit(uri).path
    path = re.sub(r"/(?:[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{15}|[0-9a-f]{32}\+\d+)(?=/|$)",
                  "/{uuid}", path)
    return f"api {method} {path}"
