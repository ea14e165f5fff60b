"""Failures below HTTP (DNS, TCP, TLS, timeouts) as one-line messages.

``requests`` wraps urllib3's exceptions, which wrap the socket's and ssl's;
:func:`describe` looks through the whole chain and says what went wrong in
the user's terms, and :func:`retryable` whether another try may help.
Messages name hosts only: never a URL's query, never the exception's own
text where it could hold one.
"""

from __future__ import annotations

import socket
import ssl
import urllib.parse

import requests

from .registry_errors import QUOTE_LIMIT, one_line

#: ssl error texts meaning "the server answered in plain HTTP".
_PLAIN_HTTP_SIGNS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "RECORD LAYER FAILURE",
                     "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG")


def causes(error: BaseException) -> list[BaseException]:
    """``error`` and everything it wraps (causes, contexts, urllib3 reasons, args)."""
    seen: list[BaseException] = []
    todo = [error]
    while todo:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend(x for x in (current.__cause__, current.__context__,
                                getattr(current, "reason", None))
                    if isinstance(x, BaseException))
        todo.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
    return seen


def _first(chain: list[BaseException], *classes: type) -> BaseException | None:
    for cause in chain:
        if isinstance(cause, classes):
            return cause
    return None


def _dns_failure(chain: list[BaseException]) -> bool:
    return _first(chain, socket.gaierror) is not None or \
        any(type(c).__name__ == "NameResolutionError" for c in chain)


def retryable(error: BaseException) -> bool:
    """Dropped connections and timeouts: yes; DNS, refusals and TLS failures: no."""
    chain = causes(error)
    if _dns_failure(chain) or _first(chain, ConnectionRefusedError, ssl.SSLError):
        return False
    return isinstance(error, (requests.ConnectionError, requests.Timeout,
                              requests.exceptions.ChunkedEncodingError))


def describe(error: BaseException, url: str, registry: str, timeout: float) -> str:
    """One line saying why a request to ``url`` failed, with a hint where one helps.

    :param registry: the registry's name as in references (for certs.d hints).
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    chain = causes(error)
    if _dns_failure(chain):
        return "cannot resolve host %s (unknown host or no DNS)" % (parts.hostname or host)
    if _first(chain, ConnectionRefusedError):
        return "connection to %s refused (is the registry running there?)" % host
    unverified = _first(chain, ssl.SSLCertVerificationError)
    if unverified is not None:
        reason = getattr(unverified, "verify_message", "") or "certificate verify failed"
        return ("TLS certificate of %s is not trusted (%s); put its CA in certs.d/%s/ or pass "
                "--src-tls-verify=false" % (host, one_line(reason, QUOTE_LIMIT), registry))
    tls_error = _first(chain, ssl.SSLError)
    if tls_error is not None:
        text = str(tls_error)
        if any(sign in text.upper() for sign in _PLAIN_HTTP_SIGNS):
            return ("%s answered plain HTTP to HTTPS; mark it insecure in registries.conf or "
                    "pass --src-tls-verify=false to allow plain HTTP" % host)
        reason = one_line(getattr(tls_error, "reason", None) or text, QUOTE_LIMIT)
        hint = ""
        if "ALERT" in reason.upper() and "CERTIFICATE" in reason.upper():
            hint = ("; the registry may want a client certificate (NAME.cert and NAME.key in "
                    "certs.d/%s/)" % registry)
        return "TLS handshake with %s failed (%s)%s" % (host, reason, hint)
    if isinstance(error, requests.Timeout) or _first(chain, socket.timeout, TimeoutError):
        return "%s did not answer within %gs" % (host, timeout)
    root = chain[-1]
    return "connection to %s failed (%s)" % (
        host, one_line("%s: %s" % (type(root).__name__, root), QUOTE_LIMIT))
