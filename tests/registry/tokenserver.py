"""A small token server for ``docker-registry``'s ``auth: token`` mode.

It answers ``GET /token?service=&scope=`` (Basic auth, or anonymous) and the
OAuth2 ``POST /token`` with ``grant_type=refresh_token`` (identity tokens),
with ES256 JWTs whose header carries the signing certificate in ``x5c``.
The registry trusts the root certificate in :attr:`TokenServer.bundle`.
:meth:`TokenServer.rekey` makes a new root and signing key: restart the
registry with the new bundle and every token issued before is refused.
:meth:`TokenServer.redirect` makes it answer every token request with a
redirect instead (to another server), :meth:`TokenServer.answer_with` with
a fixed body; :attr:`TokenServer.raw` holds every
request as received (headers and body), to look for secrets in. Without
``tls`` it speaks plain HTTP.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import os
import ssl
import threading
import time
import urllib.parse
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

SERVICE = "test-registry"
ISSUER = "test-token-issuer"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _certificate(subject: str, key, issuer_name, issuer_key, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(
                   digital_signature=True, content_commitment=False, key_encipherment=False,
                   data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                   crl_sign=ca, encipher_only=False, decipher_only=False), critical=True))
    return builder.sign(issuer_key, hashes.SHA256())


class SigningKeys:
    """A root certificate (the registry's trust) and a signing key it certifies."""

    def __init__(self, directory: str, generation: int) -> None:
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                  "token root %d" % generation)])
        root = _certificate("token root %d" % generation, root_key, root_name, root_key, True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.leaf = _certificate("token signer %d" % generation, self.key, root_name, root_key,
                                 False)
        self.bundle = os.path.join(directory, "token-root-%d.pem" % generation)
        with open(self.bundle, "wb") as f:
            f.write(root.public_bytes(serialization.Encoding.PEM))

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(self.leaf.public_bytes(
                      serialization.Encoding.DER)).decode()]}
        signing_input = "%s.%s" % (_b64(json.dumps(header).encode()),
                                   _b64(json.dumps(claims).encode()))
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class TokenServer:
    """HTTPS token server in a thread.

    :param users: ``{user: password}`` accepted with Basic auth.
    :param identity_tokens: ``{refresh token: user}`` accepted by OAuth2 POST.
    :param anonymous_pull: repositories anonymous users may pull.
    :ivar requests: ``(method, user or None, scope)`` of every token request.
    """

    def __init__(self, directory: str, tls: tuple[str, str] | None, users: dict[str, str],
                 identity_tokens: dict[str, str] | None = None,
                 anonymous_pull: tuple[str, ...] = ()) -> None:
        self.dir = directory
        self.users = dict(users)
        self.identity_tokens = dict(identity_tokens or {})
        self.anonymous_pull = anonymous_pull
        self.requests: list[tuple[str, str | None, str]] = []
        self.raw: list[bytes] = []
        self._redirect: tuple[int, str] | None = None
        self._body: bytes | None = None
        self.scheme = "https" if tls else "http"
        self.generation = 0
        self.keys = SigningKeys(directory, self.generation)
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                server._record(self, b"")
                if server._answered_otherwise(self):
                    return
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                server._answer(self, "GET", self._basic_user(), query)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                server._record(self, body)
                if server._answered_otherwise(self):
                    return
                form = urllib.parse.parse_qs(body.decode())
                if form.get("grant_type") != ["refresh_token"]:
                    return self._send(400, {"error": "unsupported_grant_type"})
                user = server.identity_tokens.get((form.get("refresh_token") or [""])[0])
                server._answer(self, "POST", user or False, form)

            def _basic_user(self):
                """The user (None: anonymous; False: wrong credentials)."""
                value = self.headers.get("Authorization", "")
                if not value:
                    return None
                try:
                    user, _, password = base64.b64decode(value.split(" ", 1)[1]).decode() \
                        .partition(":")
                except Exception:
                    return False
                return user if server.users.get(user) == password else False

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._handler = Handler
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        return "%s://127.0.0.1:%d/token" % (self.scheme, self.port)

    def redirect(self, location: str | None, status: int = 307) -> None:
        """Answer every token request with ``status`` to ``location`` (``None``: stop)."""
        with self._lock:
            self._redirect = (status, location) if location else None

    def answer_with(self, body: bytes | None) -> None:
        """Answer every token request 200 with ``body`` (``None``: real tokens again)."""
        with self._lock:
            self._body = body

    def raw_requests(self) -> list[bytes]:
        """Every request received: request line, headers and body."""
        with self._lock:
            return list(self.raw)

    def _record(self, handler, body: bytes) -> None:
        head = handler.requestline + "\r\n" + str(handler.headers)
        with self._lock:
            self.raw.append(head.encode() + body)

    def _answered_otherwise(self, handler) -> bool:
        with self._lock:
            redirect, body = self._redirect, self._body
        if body is not None:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
            return True
        if redirect is None:
            return False
        handler.send_response(redirect[0])
        handler.send_header("Location", redirect[1])
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True

    @property
    def bundle(self) -> str:
        return self.keys.bundle

    def registry_config(self) -> dict[str, str]:
        """The registry's ``auth: token`` settings for the current keys."""
        return {"realm": self.realm, "service": SERVICE, "issuer": ISSUER,
                "rootcertbundle": self.bundle}

    def rekey(self) -> None:
        """New root and signing key; tokens signed before no longer verify."""
        with self._lock:
            self.generation += 1
            self.keys = SigningKeys(self.dir, self.generation)

    def token_requests(self) -> list[tuple[str, str | None, str]]:
        with self._lock:
            return list(self.requests)

    def _answer(self, handler, method: str, user, params: dict[str, list[str]]) -> None:
        scope = (params.get("scope") or [""])[0]
        with self._lock:
            self.requests.append((method, user or None, scope))
            keys = self.keys
        if user is False:
            return handler._send(401, {"errors": [{"code": "UNAUTHORIZED",
                                                   "message": "invalid credentials"}]})
        access = []
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind == "repository" and name and (user or name in self.anonymous_pull):
            access.append({"type": "repository", "name": name,
                           "actions": [a for a in actions.split(",") if a in ("pull", "push")]})
        now = int(time.time())
        token = keys.sign({"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 300,
                           "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex,
                           "access": access})
        body = {"token": token, "expires_in": 300}
        if method == "POST":
            body = {"access_token": token, "expires_in": 300}
        handler._send(200, body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
