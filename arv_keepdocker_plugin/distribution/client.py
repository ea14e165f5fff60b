"""An HTTP client for one registry endpoint (Docker Registry HTTP API V2).

:class:`RegistryClient` pings ``/v2/`` once to learn the scheme and the
authentication challenge, then sends requests with:

* authentication: Basic, or a bearer token per ``repository:NAME:pull``
  scope, cached and fetched again once per request when the registry answers
  401 to a cached one;
* secrets kept at their origin (scheme, host, port): redirects are followed
  by hand, so that ``Authorization`` (and the client certificate) never go
  to another origin, such as blob storage; a request whose body is a secret
  (the OAuth2 refresh-token POST) is never redirected off its origin; a 401
  from another origin a redirect led to never starts a new authentication;
  and credentials never go to a plain-HTTP token server of a registry not
  marked insecure;
* retries with bounded exponential backoff on 408/429/5xx, dropped
  connections and timeouts (:class:`~.retry.RetryPolicy`);
* HTTPS only, unless the endpoint is insecure (registries.conf) or TLS
  verification is off: then HTTPS without verification first, then plain
  HTTP, as containers/image does.

Every failure is a one-line :class:`~.registry_errors.RegistryError` that names the
host and never holds a credential, a token or a URL's query.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import warnings
from collections.abc import Callable, Iterable, Mapping

import requests
import requests.utils
import urllib3

from .. import __version__
from . import auth, netfailures
from .credentials import Credential
from .reference import DOCKER_HUB, DOCKER_HUB_API
from .registry_errors import (
    QUOTE_LIMIT,
    Redactor,
    RegistryAuthError,
    RegistryError,
    RegistryUnreachable,
    one_line,
)
from .retry import RETRY_STATUSES, RetryPolicy, parse_retry_after
from .tls import CABundle, HostTLS

log = logging.getLogger(__name__)

MAX_REDIRECTS = 10
ERROR_BODY_LIMIT = 64 * 1024
USER_AGENT = "arv-keepdocker-plugin/%s" % __version__
_REDIRECTS = (301, 302, 303, 307, 308)

ErrorFactory = Callable[[str], RegistryError]
#: Defaults of :class:`RegistryClient` (immutable values, shared).
_NO_TLS_SETTINGS = HostTLS()
_DEFAULT_RETRY = RetryPolicy()


def api_host(registry: str) -> str:
    """``registry-1.docker.io`` for ``docker.io``; any other registry is its own host."""
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def _netloc(url: str) -> tuple[str, str]:
    """``(scheme, host:port)`` of ``url`` with the default port made explicit."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    if ":" in host:
        host = "[%s]" % host
    return parts.scheme, "%s:%d" % (host.lower(), port)


def same_origin(home: tuple[str, str], url: str) -> bool:
    """Whether ``url`` is at ``home`` (``(scheme, host:port)``), or HTTPS there."""
    scheme, netloc = _netloc(url)
    return netloc == home[1] and (scheme == home[0] or scheme == "https")


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, for messages."""
    return "%s://%s" % _netloc(url)


def _safe_url(url: str) -> str:
    """``url`` without its query string and fragment, for logs and messages."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2],
                                    parts.path, "", ""))


class RegistryClient:
    """Requests to one registry endpoint, for one pull session.

    :param registry: ``HOST[:PORT]`` as in references (``docker.io`` for Hub).
    :param insecure: allow plain HTTP and unverified HTTPS (registries.conf).
    :param tls: the host's TLS settings (:func:`~.tls.host_tls`).
    :param credential: the credential for this registry, or ``None``.
    :param tokens: a token cache, shared by the session's clients.
    :param redactor: masks secrets in messages; this client adds its own.
    """

    def __init__(self, registry: str, *, insecure: bool = False,
                 tls: HostTLS = _NO_TLS_SETTINGS, credential: Credential | None = None,
                 retry: RetryPolicy = _DEFAULT_RETRY, timeout: float = 60.0,
                 tokens: auth.TokenCache | None = None,
                 redactor: Redactor | None = None) -> None:
        self.registry = registry
        self.host = api_host(registry)
        self.insecure = insecure
        self.tls = tls
        self.credential = credential
        self.retry = retry
        self.timeout = timeout
        self.tokens = tokens if tokens is not None else auth.TokenCache()
        self.redact = redactor if redactor is not None else Redactor()
        if credential is not None:
            self.redact.add(*credential.secrets())
        self._bundle = CABundle(tls.ca_files) if tls.verify else None
        self._session = requests.Session()
        self._session.trust_env = False  # no ~/.netrc; proxies are read per request
        self._session.headers["User-Agent"] = USER_AGENT
        self._base: str | None = None
        self._challenge: auth.Challenge | None = None
        #: Bytes of manifests and blobs received from this endpoint (counted by
        #: :func:`~.lookup.fetch_manifest` and :class:`~.blobs.BlobStream`,
        #: bytes received again after a restart included).
        self.bytes_received = 0

    # -- public --------------------------------------------------------------

    @property
    def plain_http_allowed(self) -> bool:
        """Whether plain HTTP may be tried after HTTPS."""
        return self.insecure or not self.tls.verify

    @property
    def base_url(self) -> str:
        """``https://HOST`` (or ``http://HOST``), known after :meth:`ping`."""
        if self._base is None:
            self.ping()
        assert self._base is not None
        return self._base

    def ping(self) -> None:
        """``GET /v2/``: choose the scheme and remember the auth challenge."""
        schemes = ["https"] + (["http"] if self.plain_http_allowed else [])
        failure: RegistryError | None = None
        for scheme in schemes:
            url = "%s://%s/v2/" % (scheme, self.host)
            # When plain HTTP may follow, a failing HTTPS attempt is not retried:
            # a plain-HTTP server may just close TLS connections.
            fallback = scheme == "https" and self.plain_http_allowed
            try:
                response = self._with_retries("GET", url, {}, "GET /v2/",
                                              retry_network=not fallback)
            except RegistryUnreachable as e:
                failure = failure or e
                continue
            with response:
                status = response.status_code
                if status == 401:
                    self._challenge = auth.choose_challenge(
                        auth.parse_challenges(response.headers.get("WWW-Authenticate")))
                elif status != 200:
                    raise self._status_error(response, "GET /v2/")
            self._base = "%s://%s" % (scheme, self.host)
            log.debug("registry %s answers at %s (auth: %s)", self.registry, self._base,
                      self._challenge.scheme if self._challenge else "none")
            return
        assert failure is not None
        raise failure

    def request(self, method: str, path: str, *, repository: str,
                headers: Mapping[str, str] | None = None, expect: Iterable[int] = (200,),
                what: str = "", not_found: ErrorFactory | None = None) -> requests.Response:
        """Send ``method path`` (``/v2/...``) with auth, redirects and retries.

        Returns the streaming response when its status is in ``expect`` (the
        caller closes it). Raises a one-line :class:`~.registry_errors.RegistryError`
        otherwise; a 404 becomes ``not_found(detail)`` when given.

        :param repository: the repository whose pull scope the request needs.
        :param what: names the request in messages (``manifest x:1``...).
        """
        url = self.base_url + path
        what = what or "%s %s" % (method, path)
        expect = tuple(expect)
        reauthenticated = False
        while True:
            sent = dict(headers or {})
            sent_auth = self._authorize(sent, repository)
            response = self._with_retries(method, url, sent, what)
            if response.status_code == 401 and not same_origin(_netloc(url), response.url):
                response.close()
                raise self.fail(RegistryAuthError, "%s: %s answered 401 Unauthorized after %s "
                                "redirected the request there; credentials for %s are never "
                                "sent to another origin" % (what, _origin(response.url),
                                                            self.registry, self.registry))
            if response.status_code == 401 and not reauthenticated and \
                    self._can_reauthenticate(response, sent_auth):
                response.close()
                self.tokens.forget(self.registry, auth.pull_scope(repository))
                reauthenticated = True
                log.debug("registry %s refused our authorization for %s; authenticating "
                          "again", self.registry, what)
                continue
            if response.status_code in expect:
                return response
            try:
                if response.status_code == 404 and not_found is not None:
                    raise not_found(self._error_detail(response))
                raise self._status_error(response, what, repository)
            finally:
                response.close()

    def close(self) -> None:
        """Close connections and remove a temporary CA bundle."""
        self._session.close()
        if self._bundle is not None:
            self._bundle.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "RegistryClient(%r, insecure=%r, credential=%r)" % (
            self.registry, self.insecure, self.credential)

    def fail(self, factory: ErrorFactory, message: str) -> RegistryError:
        """``factory(message)`` with secrets and URL queries masked."""
        return factory(self.redact(message))

    # -- authentication ------------------------------------------------------

    def _authorize(self, headers: dict[str, str], repository: str) -> str | None:
        """Add ``Authorization`` for the current challenge; return what was sent."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if self.credential is None or not (self.credential.username and
                                               self.credential.password):
                return None
            value = "Basic " + self.credential.basic_value()
        elif challenge.scheme == "bearer":
            scope = auth.pull_scope(repository)
            token = self.tokens.get(self.registry, scope)
            if token is None:
                token = self._fetch_token(challenge, scope)
            value = "Bearer " + token.value
        else:
            return None
        headers["Authorization"] = value
        return value

    def _can_reauthenticate(self, response: requests.Response, sent: str | None) -> bool:
        """After a 401: adopt its challenge; whether another try could succeed."""
        offered = auth.choose_challenge(
            auth.parse_challenges(response.headers.get("WWW-Authenticate")))
        if offered is not None:
            previous, self._challenge = self._challenge, offered
            if previous is None or previous.scheme != offered.scheme:
                return True
        if self._challenge is None:
            return False
        if self._challenge.scheme == "bearer":
            return True  # the cached token may be stale or too narrow: fetch a new one
        return sent is None and self.credential is not None

    def _fetch_token(self, challenge: auth.Challenge, scope: str) -> auth.Token:
        realm = challenge.get("realm")
        if not realm or urllib.parse.urlsplit(realm).scheme not in ("http", "https"):
            raise self.fail(RegistryAuthError, "registry %s asked for a bearer token without "
                            "a usable realm" % self.registry)
        ask = auth.token_request(challenge, scope, self.credential)
        realm_host = _netloc(ask.url)[1]
        if (ask.basic is not None or ask.data) and not self.plain_http_allowed and \
                urllib.parse.urlsplit(ask.url).scheme != "https":
            raise self.fail(RegistryAuthError, "registry %s sends clients to a plain-HTTP token "
                            "server (%s): credentials are never sent in clear text to it unless "
                            "the registry is marked insecure (registries.conf) or "
                            "--src-tls-verify=false is given" % (self.registry, _safe_url(ask.url)))
        headers = {}
        if ask.basic is not None:
            headers["Authorization"] = "Basic " + ask.basic.basic_value()
        url = ask.url
        if ask.params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(ask.params)
        what = "token request to %s" % _safe_url(ask.url)
        response = self._with_retries(ask.method, url, headers, what,
                                      data=dict(ask.data) if ask.data else None)
        with response:
            if response.status_code in (401, 403):
                if self.credential is not None:
                    raise self.fail(RegistryAuthError, "authentication failed for %s (the token "
                                    "server %s refused %s)" % (
                                        self.registry, realm_host, self._who()))
                raise self.fail(RegistryAuthError, "%s requires authentication: the token "
                                "server %s refused anonymous access (use --src-creds or log in)"
                                % (self.registry, realm_host))
            if response.status_code != 200:
                raise self._status_error(response, what)
            body = response.raw.read(auth.TOKEN_RESPONSE_LIMIT + 1, decode_content=True)
        try:
            value, lifetime = auth.parse_token_response(body[:auth.TOKEN_RESPONSE_LIMIT])
        except ValueError as e:
            raise self.fail(RegistryAuthError, "%s: %s" % (realm_host, e)) from None
        self.redact.add(value)
        log.debug("got a bearer token for %s %s (lifetime %.0fs)", self.registry, scope, lifetime)
        return self.tokens.put(self.registry, scope, value, lifetime)

    def _who(self) -> str:
        credential = self.credential
        if credential is None:
            return "anonymous access"
        if credential.username:
            return "user %s from %s" % (credential.username, credential.source or "options")
        return "the identity token from %s" % (credential.source or "options")

    # -- sending -------------------------------------------------------------

    def _with_retries(self, method: str, url: str, headers: Mapping[str, str], what: str,
                      data: Mapping[str, str] | None = None,
                      retry_network: bool = True) -> requests.Response:
        """Send with redirects, retrying retryable failures; any status is returned.

        :param retry_network: retry dropped connections and timeouts too
            (statuses 408, 429 and 5xx are always retried).
        """
        attempt = 1
        while True:
            try:
                response = self._follow(method, url, headers, data, what)
            except requests.RequestException as e:
                error = self._network_error(e, url)
                if not (retry_network and netfailures.retryable(e)) or \
                        attempt >= self.retry.attempts:
                    if attempt > 1:
                        error = type(error)("%s (after %d attempts)" % (error, attempt))
                    raise error from None
                log.debug("%s: %s; retrying (%d/%d)", what, error, attempt, self.retry.attempts)
                self.retry.wait(attempt)
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.retry.attempts:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                log.debug("%s: %s answered %d; retrying (%d/%d)", what, self.registry,
                          response.status_code, attempt, self.retry.attempts)
                response.close()
                self.retry.wait(attempt, retry_after)
                attempt += 1
                continue
            return response

    def _follow(self, method: str, url: str, headers: Mapping[str, str],
                data: Mapping[str, str] | None, what: str = "") -> requests.Response:
        """One request, following redirects by hand.

        ``Authorization`` and the client certificate go only to the first
        URL's origin (scheme, host and port; or HTTPS there); once a redirect
        leaves it they are never sent again in this request, as blob storage
        (a CDN) expects. A request with a body (the OAuth2 refresh-token
        POST, whose body is the secret) is never redirected off its origin:
        that is a :class:`~.registry_errors.RegistryAuthError`, as in
        containers/image (``docker/docker_client.go``: Go's client does not
        follow a 307/308 whose body it cannot replay, and the answer is an
        error), and stricter for 301/302/303.
        """
        home = _netloc(url)
        with_auth = True
        for _hop in range(MAX_REDIRECTS + 1):
            with_auth = with_auth and same_origin(home, url)
            sent = {k: v for k, v in headers.items()
                    if with_auth or k.lower() != "authorization"}
            response = self._send(method, url, sent, data, client_cert=with_auth)
            if response.status_code in _REDIRECTS and response.headers.get("Location"):
                location = urllib.parse.urljoin(url, response.headers["Location"])
                log.debug("%s %s redirected to %s", method, _safe_url(url), _safe_url(location))
                response.close()
                if data is not None and not same_origin(home, location):
                    raise self.fail(RegistryAuthError, "%s: %s redirected it to %s; a request "
                                    "carrying a secret is never sent off its origin, so it was "
                                    "not followed" % (what or "%s %s" % (method, _safe_url(url)),
                                                      _netloc(url)[1], _origin(location)))
                if response.status_code == 303 or (response.status_code in (301, 302)
                                                   and method == "POST"):
                    method, data = "GET", None
                url = location
                continue
            return response
        raise self.fail(RegistryError, "%s: more than %d redirects" % (_safe_url(url),
                                                                      MAX_REDIRECTS))

    def _send(self, method: str, url: str, headers: Mapping[str, str],
              data: Mapping[str, str] | None, client_cert: bool) -> requests.Response:
        verify = self._bundle.path if self._bundle is not None else False
        cert = self.tls.client_cert if client_cert and url.startswith("https:") else None
        proxies = requests.utils.get_environ_proxies(url)
        log.debug("%s %s", method, _safe_url(url))
        with warnings.catch_warnings():
            if verify is False:
                warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            response = self._session.request(method, url, headers=dict(headers), data=data,
                                             stream=True, allow_redirects=False, verify=verify,
                                             cert=cert, timeout=self.timeout, proxies=proxies)
        log.debug("%s %s -> %d", method, _safe_url(url), response.status_code)
        return response

    # -- errors --------------------------------------------------------------

    def _network_error(self, error: BaseException, url: str) -> RegistryError:
        """A one-line error for a failure below HTTP (DNS, TCP, TLS, timeouts)."""
        return self.fail(RegistryUnreachable,
                         netfailures.describe(error, url, self.registry, self.timeout))

    def _error_detail(self, response: requests.Response) -> str:
        """The registry's own error (``CODE: message``) from a JSON error body."""
        try:
            body = response.raw.read(ERROR_BODY_LIMIT, decode_content=True)
            errors = (json.loads(body.decode("utf-8")) or {}).get("errors")
            first = errors[0]  # type: ignore[index]  # any shape: caught below
            code, message = first.get("code", ""), first.get("message", "")
        except Exception:  # any malformed body: no detail
            return ""
        detail = ": ".join(str(x) for x in (code, message) if x)
        return one_line(self.redact(detail), QUOTE_LIMIT)

    def _status_error(self, response: requests.Response, what: str,
                      repository: str = "") -> RegistryError:
        """A one-line error for an unexpected HTTP status."""
        status = response.status_code
        detail = self._error_detail(response)
        suffix = " (%s)" % detail if detail else ""
        if status == 401:
            if self.credential is not None:
                return self.fail(RegistryAuthError, "authentication failed for %s (%s refused)"
                                 % (self.registry, self._who()))
            return self.fail(RegistryAuthError, "%s requires authentication%s and no credentials "
                             "were found for it (use --src-creds or log in)"
                             % (self.registry, " to pull " + repository if repository else ""))
        if status == 403:
            return self.fail(RegistryAuthError, "%s denied access to %s%s"
                             % (self.registry, repository or what, suffix))
        return self.fail(RegistryError, "%s answered %d %s to %s%s"
                         % (self.registry, status, one_line(response.reason or "", 60), what,
                            suffix))

