"""Registry credentials, found where podman and skopeo find them.

Order (the first credential found wins):

1. explicit options: ``--src-no-creds`` (none at all), ``--src-creds
   USER[:PASSWORD]`` (:class:`CredentialOptions`);
2. the primary auth file: ``--src-authfile FILE``, else
   ``$REGISTRY_AUTH_FILE``, else ``${XDG_RUNTIME_DIR}/containers/auth.json``
   (``/run/containers/UID/auth.json`` without ``XDG_RUNTIME_DIR``);
3. ``${XDG_CONFIG_HOME:-~/.config}/containers/auth.json``;
4. Docker's ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``);
5. the legacy ``~/.dockercfg`` (its top level is the ``auths`` map).

In each file: ``credHelpers[REGISTRY]`` (run ``docker-credential-NAME get``),
then, in Docker's file only, ``credsStore``, then a non-empty ``auths`` entry
(``auth`` = base64 ``user:password``, or ``username``/``password``, or
``identitytoken``). ``auths`` keys are tried most specific first:
``host/ns/repo``, ``host/ns``, ``host``; then keys written as URLs
(``https://host``, ``https://host/v1/``, Docker Hub's
``https://index.docker.io/v1/``). An empty ``{}`` entry is no credential.

:class:`Credential` never shows its secret in ``repr`` or ``str``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping

from ..archive.safety import JSON_SIZE_LIMIT
from .reference import DOCKER_HUB, normalize_registry
from .registry_errors import CredentialError

#: The username a credential helper returns for an identity (refresh) token.
TOKEN_USERNAME = "<token>"
#: The key Docker uses for Docker Hub in auth files and credential helpers.
DOCKER_HUB_LEGACY_KEY = "https://index.docker.io/v1/"
HELPER_TIMEOUT = 60

CONTAINERS = "containers"
DOCKER = "docker"
LEGACY = "legacy"


@dataclasses.dataclass(frozen=True, repr=False)
class Credential:
    """A username with a password, or an identity token; secrets stay hidden.

    :ivar source: where it came from (``--src-creds``, a file, a helper),
        for messages.
    """

    username: str = ""
    password: str = ""
    identity_token: str = ""
    source: str = ""

    def secrets(self) -> tuple[str, ...]:
        """The secret values (for a :class:`~.registry_errors.Redactor`)."""
        secrets = [s for s in (self.password, self.identity_token) if s]
        if self.username and self.password:
            secrets.append(self.basic_value())
        return tuple(secrets)

    def basic_value(self) -> str:
        """``base64(username:password)``, as sent in ``Authorization: Basic``."""
        raw = ("%s:%s" % (self.username, self.password)).encode("utf-8")
        return base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        kind = "identity_token=<hidden>" if self.identity_token else "password=<hidden>"
        return "Credential(username=%r, %s, source=%r)" % (self.username, kind, self.source)

    __str__ = __repr__


def parse_creds(text: str, prompt: Callable[[str], str] | None = None) -> Credential:
    """Parse ``--src-creds USER[:PASSWORD]``.

    Without ``:PASSWORD``, ``prompt(message)`` is asked for it (the CLI passes
    :func:`getpass.getpass`); without a prompt that is an error.
    """
    username, colon, password = (text or "").partition(":")
    if not username:
        raise CredentialError("--src-creds: the username is empty (expected USER[:PASSWORD])")
    if not colon:
        if prompt is None:
            raise CredentialError("--src-creds %s: no password given and no way to ask for "
                                  "one (use USER:PASSWORD)" % username)
        password = prompt("Password for %s: " % username)
    return Credential(username=username, password=password, source="--src-creds")


@dataclasses.dataclass(frozen=True)
class CredentialOptions:
    """The ``--src-creds``, ``--src-authfile`` and ``--src-no-creds`` options.

    :ivar creds: a credential for every registry and mirror of this pull.
    :ivar authfile: replaces the primary auth file (``$REGISTRY_AUTH_FILE``
        or ``${XDG_RUNTIME_DIR}/containers/auth.json``); the other files are
        still read after it, as podman does.
    :ivar no_creds: access registries anonymously.
    """

    creds: Credential | None = None
    authfile: str | None = None
    no_creds: bool = False

    def __post_init__(self) -> None:
        if self.no_creds and self.creds is not None:
            raise CredentialError("--src-creds and --src-no-creds cannot be used together")


@dataclasses.dataclass(frozen=True)
class AuthFile:
    """One file to look in; ``kind`` is ``containers``, ``docker`` or ``legacy``."""

    path: str
    kind: str


def _home(env: Mapping[str, str]) -> str:
    return env.get("HOME") or os.path.expanduser("~")


def auth_files(options: CredentialOptions = CredentialOptions(),
               env: Mapping[str, str] | None = None) -> list[AuthFile]:
    """The auth files to look in, in order (they need not exist)."""
    env = os.environ if env is None else env
    home = _home(env)
    files = []
    if options.authfile:
        files.append(AuthFile(options.authfile, CONTAINERS))
    elif env.get("REGISTRY_AUTH_FILE"):
        files.append(AuthFile(env["REGISTRY_AUTH_FILE"], CONTAINERS))
    elif env.get("XDG_RUNTIME_DIR"):
        files.append(AuthFile(os.path.join(env["XDG_RUNTIME_DIR"], "containers", "auth.json"),
                              CONTAINERS))
    else:
        files.append(AuthFile("/run/containers/%d/auth.json" % os.getuid(), CONTAINERS))
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    files.append(AuthFile(os.path.join(config_home, "containers", "auth.json"), CONTAINERS))
    docker_config = env.get("DOCKER_CONFIG") or os.path.join(home, ".docker")
    files.append(AuthFile(os.path.join(docker_config, "config.json"), DOCKER))
    files.append(AuthFile(os.path.join(home, ".dockercfg"), LEGACY))
    return files


def _read_json(path: str) -> dict | None:
    """The file's JSON object, ``None`` if it does not exist; one-line errors."""
    try:
        with open(path, "rb") as f:
            data = f.read(JSON_SIZE_LIMIT + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise CredentialError("auth file %s is a directory" % path) from None
    except OSError as e:
        raise CredentialError("cannot read auth file %s: %s" % (path, e.strerror)) from None
    if len(data) > JSON_SIZE_LIMIT:
        raise CredentialError("auth file %s is larger than %d bytes" % (path, JSON_SIZE_LIMIT))
    if not data.strip():
        return None
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        # Never quote the parser's message: it may show part of a secret.
        raise CredentialError("auth file %s is not valid JSON" % path) from None
    if not isinstance(parsed, dict):
        raise CredentialError("auth file %s does not hold a JSON object" % path)
    return parsed


def normalize_auth_key(key: str) -> str:
    """An ``auths`` key reduced to a registry host, as podman compares them.

    ``https://host/v1/`` and ``http://host`` become ``host``; Docker Hub's
    names become ``docker.io``. Keys with a path but no scheme are kept
    whole (they are namespaced keys, matched exactly).
    """
    stripped = key
    for scheme in ("http://", "https://"):
        if stripped.startswith(scheme):
            stripped = stripped[len(scheme):]
            stripped = stripped.split("/", 1)[0]
            break
    return normalize_registry(stripped)


def candidate_keys(registry: str, repository: str) -> list[str]:
    """``host/ns/repo``, ``host/ns``, ``host``: namespaced keys, most specific first."""
    parts = repository.split("/") if repository else []
    keys = ["/".join([registry] + parts[:n]) for n in range(len(parts), 0, -1)]
    keys.append(registry)
    return keys


def _decode_entry(entry: object, path: str, key: str) -> Credential | None:
    """A credential from one ``auths`` entry; ``None`` for an empty placeholder."""
    if not isinstance(entry, dict):
        raise CredentialError("auth file %s: entry %r is not a JSON object" % (path, key))
    source = "%s (%s)" % (path, key)
    token = entry.get("identitytoken") or ""
    auth = entry.get("auth") or ""
    if auth:
        if not isinstance(auth, str):
            raise CredentialError("auth file %s: the auth of %r is not a string" % (path, key))
        try:
            decoded = base64.b64decode(auth.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise CredentialError("auth file %s: the auth of %r is not base64 of "
                                  "user:password" % (path, key)) from None
        username, colon, password = decoded.partition(":")
        if not colon:
            raise CredentialError("auth file %s: the auth of %r is not base64 of "
                                  "user:password" % (path, key))
        return Credential(username, password, str(token), source)
    username, password = entry.get("username") or "", entry.get("password") or ""
    if (username and password) or token:
        return Credential(str(username), str(password), str(token), source)
    return None


def _from_auths(auths: object, path: str, registry: str, repository: str,
                legacy: bool) -> Credential | None:
    if not isinstance(auths, dict) or not auths:
        return None
    keys = [registry] if legacy else candidate_keys(registry, repository)
    if registry == DOCKER_HUB:
        keys.append(DOCKER_HUB_LEGACY_KEY)
    for key in keys:
        if key in auths:
            found = _decode_entry(auths[key], path, key)
            if found is not None:
                return found
    for key in sorted(auths):
        if key in keys:
            continue
        if "/" in key and "://" not in key:
            continue  # a namespaced key of another repository
        if normalize_auth_key(key) == registry:
            found = _decode_entry(auths[key], path, key)
            if found is not None:
                return found
    return None


def helper_server_url(registry: str) -> str:
    """The server URL given to a credential helper (Docker's key for Hub)."""
    return DOCKER_HUB_LEGACY_KEY if registry == DOCKER_HUB else registry


def run_credential_helper(name: str, registry: str,
                          env: Mapping[str, str] | None = None) -> Credential | None:
    """Ask ``docker-credential-NAME get`` for ``registry``'s credential.

    Returns ``None`` when the helper has none ("credentials not found").
    """
    program = "docker-credential-" + name
    path = shutil.which(program, path=(env or os.environ).get("PATH"))
    if path is None:
        raise CredentialError("credential helper %s (for %s) is not in PATH" % (program, registry))
    try:
        result = subprocess.run([path, "get"], input=helper_server_url(registry).encode(),
                                capture_output=True, timeout=HELPER_TIMEOUT,
                                env=dict(env) if env is not None else None)
    except subprocess.TimeoutExpired:
        raise CredentialError("credential helper %s did not answer within %ds"
                              % (program, HELPER_TIMEOUT)) from None
    except OSError as e:
        raise CredentialError("cannot run credential helper %s: %s"
                              % (program, e.strerror)) from None
    if result.returncode != 0:
        message = (result.stdout or result.stderr).decode("utf-8", "replace")
        if "credentials not found" in message.lower():
            return None
        # The helper's own words are not quoted: we cannot know they hold no secret.
        raise CredentialError("credential helper %s failed for %s (exit status %d)"
                              % (program, registry, result.returncode))
    try:
        answer = json.loads(result.stdout.decode("utf-8"))
        username, secret = answer.get("Username", ""), answer.get("Secret", "")
    except (UnicodeDecodeError, ValueError, AttributeError):
        raise CredentialError("credential helper %s gave no JSON credential for %s"
                              % (program, registry)) from None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise CredentialError("credential helper %s gave a malformed credential for %s"
                              % (program, registry))
    if not secret:
        return None
    if username == TOKEN_USERNAME:
        return Credential("", "", secret, program)
    return Credential(username, secret, "", program)


def _from_file(auth_file: AuthFile, registry: str, repository: str,
               env: Mapping[str, str] | None) -> Credential | None:
    content = _read_json(auth_file.path)
    if content is None:
        return None
    if auth_file.kind == LEGACY:
        return _from_auths(content, auth_file.path, registry, repository, legacy=True)
    helpers = content.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(registry), str) and helpers[registry]:
        return run_credential_helper(helpers[registry], registry, env)
    store = content.get("credsStore")
    if auth_file.kind == DOCKER and isinstance(store, str) and store:
        found = run_credential_helper(store, registry, env)
        if found is not None:
            return found
    return _from_auths(content.get("auths"), auth_file.path, registry, repository, legacy=False)


def find_credential(registry: str, repository: str = "",
                    options: CredentialOptions = CredentialOptions(),
                    env: Mapping[str, str] | None = None) -> Credential | None:
    """The credential for ``repository`` at ``registry``, or ``None`` (anonymous).

    :param registry: ``host[:port]`` as in references (``docker.io`` for Hub).
    :param env: the environment to read (``HOME``, ``XDG_*``, ``DOCKER_CONFIG``,
        ``REGISTRY_AUTH_FILE``, ``PATH`` for helpers); ``os.environ`` if omitted.
    :raises CredentialError: an unreadable auth file, a failing helper.
    """
    if options.no_creds:
        return None
    if options.creds is not None:
        return options.creds
    registry = normalize_registry(registry)
    for auth_file in auth_files(options, env):
        found = _from_file(auth_file, registry, repository, env)
        if found is not None:
            return found
    return None


__all__ = ["Credential", "CredentialOptions", "AuthFile", "auth_files", "find_credential",
           "parse_creds", "run_credential_helper", "normalize_auth_key", "candidate_keys"]
