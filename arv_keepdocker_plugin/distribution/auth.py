"""Registry authentication: ``WWW-Authenticate`` challenges and bearer tokens.

A registry answers ``401`` with a challenge: ``Basic realm="..."`` (send the
username and password) or ``Bearer realm="URL",service="...",scope="..."``
(ask the token server at ``realm`` for a token for
``repository:NAME:pull``, with the username and password, or with an
identity token through OAuth2, or anonymously). Tokens are cached per
registry and scope until they expire, and fetched again when the registry
refuses a cached one. Token values never appear in ``repr``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from ..archive.safety import JSONRefused, load_json
from .credentials import Credential

#: containers/image treats shorter token lifetimes as this long.
MINIMUM_TOKEN_LIFETIME = 60.0
#: Largest token server answer we parse.
TOKEN_RESPONSE_LIMIT = 1024 * 1024
CLIENT_ID = "arv-keepdocker"


@dataclasses.dataclass(frozen=True)
class Challenge:
    """One challenge: ``scheme`` in lower case (``basic``, ``bearer``) and its parameters."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()

    def get(self, key: str, default: str = "") -> str:
        for name, value in self.params:
            if name == key:
                return value
        return default


def _skip_spaces(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _token(text: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i] not in " \t,=\"":
        i += 1
    return text[start:i], i


def _quoted(text: str, i: int) -> tuple[str, int]:
    """A quoted string starting at ``text[i] == '"'``; backslash escapes."""
    i += 1
    out = []
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), i


def parse_challenges(header: str | None) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235; tolerant of sloppy servers).

    Challenges are separated by commas, as are their ``name=value``
    parameters; a bare word right after a scheme (a token68 without ``=``
    padding) is kept as a parameter with an empty name.
    """
    challenges: list[Challenge] = []
    text, i = header or "", 0
    scheme: str | None = None
    params: list[tuple[str, str]] = []
    after_comma = True
    while i < len(text):
        i = _skip_spaces(text, i)
        if i < len(text) and text[i] == ",":
            after_comma = True
            i += 1
            continue
        word, i = _token(text, i)
        if not word:
            i += 1
            continue
        j = _skip_spaces(text, i)
        if scheme is not None and j < len(text) and text[j] == "=":
            j = _skip_spaces(text, j + 1)
            if j < len(text) and text[j] == '"':
                value, i = _quoted(text, j)
            else:
                value, i = _token(text, j)
            params.append((word.lower(), value))
        elif scheme is not None and not after_comma:
            params.append(("", word))
        else:
            if scheme is not None:
                challenges.append(Challenge(scheme, tuple(params)))
            scheme, params = word.lower(), []
            i = j
        after_comma = False
    if scheme is not None:
        challenges.append(Challenge(scheme, tuple(params)))
    return challenges


def choose_challenge(challenges: list[Challenge]) -> Challenge | None:
    """Bearer if offered, else Basic, else ``None``."""
    for wanted in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == wanted:
                return challenge
    return None


def pull_scope(repository: str) -> str:
    """``repository:NAME:pull``."""
    return "repository:%s:pull" % repository


@dataclasses.dataclass(frozen=True, repr=False)
class Token:
    """A bearer token and when (``time.monotonic()``) to stop using it."""

    value: str
    expires: float

    def __repr__(self) -> str:
        return "Token(<hidden>, expires=%.0f)" % self.expires

    __str__ = __repr__


class TokenCache:
    """Bearer tokens by ``(registry, scope)``; expired ones are dropped."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._tokens: dict[tuple[str, str], Token] = {}
        self._clock = clock

    def get(self, registry: str, scope: str) -> Token | None:
        token = self._tokens.get((registry, scope))
        if token is not None and token.expires <= self._clock():
            del self._tokens[(registry, scope)]
            return None
        return token

    def put(self, registry: str, scope: str, value: str, lifetime: float) -> Token:
        token = Token(value, self._clock() + max(lifetime, MINIMUM_TOKEN_LIFETIME) - 5)
        self._tokens[(registry, scope)] = token
        return token

    def forget(self, registry: str, scope: str) -> None:
        self._tokens.pop((registry, scope), None)

    def __repr__(self) -> str:
        return "TokenCache(<%d tokens>)" % len(self._tokens)


@dataclasses.dataclass(frozen=True)
class TokenRequest:
    """How to ask a token server: ``method``, ``url``, ``params`` or ``data``, headers."""

    method: str
    url: str
    params: tuple[tuple[str, str], ...] = ()
    data: tuple[tuple[str, str], ...] = ()
    basic: Credential | None = None


def token_request(challenge: Challenge, scope: str,
                  credential: Credential | None) -> TokenRequest:
    """The request for a token for ``scope`` answering a bearer ``challenge``.

    With an identity token, an OAuth2 ``refresh_token`` POST (as Docker
    sends); otherwise a GET, with Basic authentication when a username and
    password are known.
    """
    realm = challenge.get("realm")
    service = challenge.get("service")
    if credential is not None and credential.identity_token:
        data = [("grant_type", "refresh_token"), ("refresh_token", credential.identity_token),
                ("client_id", CLIENT_ID)]
        if service:
            data.append(("service", service))
        if scope:
            data.append(("scope", scope))
        return TokenRequest("POST", realm, data=tuple(data))
    params = []
    if service:
        params.append(("service", service))
    if scope:
        params.append(("scope", scope))
    basic = None
    if credential is not None and credential.username and credential.password:
        params.append(("account", credential.username))
        basic = credential
    return TokenRequest("GET", realm, params=tuple(params), basic=basic)


def parse_token_response(body: bytes) -> tuple[str, float]:
    """``(token, lifetime in seconds)`` from a token server's JSON answer.

    :raises ValueError: no token in it (the message holds no part of the body).
    """
    try:
        answer = load_json(body, TOKEN_RESPONSE_LIMIT)
    except JSONRefused as e:  # (a parser's message gives positions, never text)
        raise ValueError("the token server's answer %s" % e) from None
    if not isinstance(answer, dict):
        raise ValueError("the token server's answer is not a JSON object")
    token = answer.get("token") or answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValueError("the token server's answer holds no token")
    lifetime = answer.get("expires_in")
    if not isinstance(lifetime, (int, float)) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = MINIMUM_TOKEN_LIFETIME
    return token, float(lifetime)
