"""Network failures in words, with no network."""

import socket
import ssl

import requests

from arv_keepdocker_plugin.distribution.netfailures import causes, describe, retryable

URL = "https://user@r.example:5000/v2/x/blobs/sha256:ab?signature=secret-sig"


def wrapped(inner, outer=requests.ConnectionError):
    try:
        try:
            raise inner
        except BaseException as e:
            raise outer(e)  # noqa: B904  (as requests wraps: context, no cause)
    except BaseException as e:
        return e


def test_descriptions():
    assert describe(wrapped(socket.gaierror(-2, "Name or service not known")), URL, "r", 5) == \
        "cannot resolve host r.example (unknown host or no DNS)"
    assert describe(wrapped(ConnectionRefusedError(111, "refused")), URL, "r", 5) == \
        "connection to r.example:5000 refused (is the registry running there?)"
    assert describe(requests.ReadTimeout("read timed out"), URL, "r", 2.5) == \
        "r.example:5000 did not answer within 2.5s"
    text = describe(wrapped(ConnectionResetError(104, "reset by peer")), URL, "r", 5)
    assert text == "connection to r.example:5000 failed (ConnectionResetError: [Errno 104] " \
        "reset by peer)"
    plain = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    assert describe(wrapped(plain, requests.exceptions.SSLError), URL, "r", 5).startswith(
        "r.example:5000 answered plain HTTP to HTTPS")
    for error in (plain, socket.gaierror(-2, "x"), ConnectionResetError(104, "x")):
        assert "secret-sig" not in describe(wrapped(error), URL, "r", 5)


def test_retryable():
    assert retryable(wrapped(ConnectionResetError(104, "reset")))
    assert retryable(requests.ReadTimeout("slow"))
    assert retryable(requests.exceptions.ChunkedEncodingError("cut"))
    assert not retryable(wrapped(ConnectionRefusedError(111, "refused")))
    assert not retryable(wrapped(socket.gaierror(-2, "unknown")))
    assert not retryable(wrapped(ssl.SSLError(1, "bad"), requests.exceptions.SSLError))
    assert not retryable(ValueError("not a network error"))


def test_causes_follow_every_link_once():
    inner = OSError("inner")
    outer = wrapped(inner)
    outer.__context__ = outer  # a loop
    assert causes(outer)[:2] == [outer, inner]
