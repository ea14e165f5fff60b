"""The site's trust policy for registry images: containers-policy.json(5).

The file, as skopeo and podman find it (containers/image,
``signature/policy_config.go``): ``--policy FILE``, else the user's
``$HOME/.config/containers/policy.json``, else the system's
``/etc/containers/policy.json``. With no file at all every image is
accepted, as arv-keepdocker 3.2.1 (which has no policy) accepts it;
``--insecure-policy`` skips the policy, as skopeo's flag does.

Only the ``docker`` transport's scopes apply (images named ``docker://``);
the other transports are this machine's own images, which 3.2.1 stored
without a policy. The requirements for an image are, as in containers/image
(``signature/policy_eval.go``, ``docker/policyconfiguration/naming.go``):
the scope that is the image itself (``REGISTRY/REPO:TAG`` or ``@DIGEST``),
else its repository and each parent namespace (``REGISTRY/REPO``,
``REGISTRY/NS``, ``REGISTRY``), else a wildcard of its host's domains
(``*.example.com``, ``*.com``), else the transport's ``""`` scope, else
``default``. Every requirement of the list must accept:

* ``insecureAcceptAnything`` accepts;
* ``reject`` refuses, in one line naming the scope;
* ``signedBy``, ``sigstoreSigned`` and ``signedBaseLayer`` need signature
  verification, which this tool does not do: refused in one line naming the
  scope and ``--insecure-policy``.

The file is read as strictly as containers/image reads it (unknown keys, an
empty list or an unknown requirement type are errors), so a policy that
skopeo refuses is not half-applied here.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from ..archive.safety import JSON_SIZE_LIMIT, JSONRefused, load_json
from ..errors import KeepdockerError
from .reference import RegistryReference

SYSTEM_POLICY = "/etc/containers/policy.json"
USER_POLICY = os.path.join(".config", "containers", "policy.json")
TRANSPORT = "docker"

ACCEPT = "insecureAcceptAnything"
REJECT = "reject"
#: Requirements that need signatures verified (not done here).
SIGNED = ("signedBy", "sigstoreSigned", "signedBaseLayer")


class PolicyError(KeepdockerError):
    """policy.json cannot be read, or refuses an image (one line).

    Not a source error: the pipeline never falls back to a copy already in
    Arvados when the site's policy refuses the image the user named.
    """


@dataclasses.dataclass(frozen=True)
class Scope:
    """Where an image's requirements came from: ``default`` or a docker scope."""

    name: str | None  # None: the policy's ``default``

    def __str__(self) -> str:
        if self.name is None:
            return "default"
        return 'docker "%s"' % self.name


@dataclasses.dataclass(frozen=True)
class TrustPolicy:
    """A parsed policy: requirement types by scope of the ``docker`` transport."""

    path: str
    default: tuple[str, ...]
    docker: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def requirements(self, reference: RegistryReference) -> tuple[Scope, tuple[str, ...]]:
        """The scope that decides for ``reference`` and its requirement types."""
        for name in [identity(reference)] + namespaces(reference) + [""]:
            if name in self.docker:
                return Scope(name), self.docker[name]
        return Scope(None), self.default

    def check(self, reference: RegistryReference) -> None:
        """Return if the policy accepts ``reference``; :class:`PolicyError` otherwise."""
        scope, types = self.requirements(reference)
        if REJECT in types:
            raise PolicyError("%s: rejected by the trust policy %s (scope %s)"
                              % (reference, self.path, scope))
        signed = [t for t in types if t in SIGNED]
        if signed:
            raise PolicyError("%s: the trust policy %s requires signatures for scope %s (%s), "
                              "which arv keepdocker does not verify; --insecure-policy skips "
                              "the policy" % (reference, self.path, scope, signed[0]))


def identity(reference: RegistryReference) -> str:
    """The scope naming exactly this image: ``REGISTRY/REPO@DIGEST``, else ``:TAG``."""
    if reference.digest:
        return "%s@%s" % (reference.name, reference.digest)
    return "%s:%s" % (reference.name, reference.tag)


def namespaces(reference: RegistryReference) -> list[str]:
    """The repository, its parents up to the registry, then domain wildcards."""
    found, name = [], reference.name
    while True:
        found.append(name)
        if "/" not in name:
            break
        name = name.rsplit("/", 1)[0]
    host = name.split(":", 1)[0] if not name.startswith("[") else name
    while "." in host:
        host = host.split(".", 1)[1]
        found.append("*." + host)
    return found


def default_path(env: Mapping[str, str] | None = None,
                 system_path: str = SYSTEM_POLICY) -> str | None:
    """The user's policy if it exists, else the system's if it exists, else ``None``."""
    env = os.environ if env is None else env
    home = env.get("HOME")
    if home:
        user = os.path.join(home, USER_POLICY)
        if os.path.exists(user):
            return user
    return system_path if os.path.exists(system_path) else None


def load_policy(path: str | None = None, env: Mapping[str, str] | None = None,
                system_path: str = SYSTEM_POLICY) -> TrustPolicy | None:
    """The policy in force: ``path`` (``--policy``), else :func:`default_path`.

    :returns: ``None`` when there is no policy file at all (accept).
    :raises PolicyError: ``path`` missing, a file unreadable or invalid.
    """
    chosen = path if path is not None else default_path(env, system_path)
    if chosen is None:
        return None
    try:
        with open(chosen, "rb") as f:
            data = f.read(JSON_SIZE_LIMIT + 1)
    except OSError as error:
        raise PolicyError("trust policy %s: %s" % (chosen, error.strerror or error)) from None
    try:
        return parse_policy(load_json(data), chosen)
    except JSONRefused as error:
        raise PolicyError("trust policy %s %s" % (chosen, error)) from None


def _invalid(path: str, what: str) -> PolicyError:
    return PolicyError("trust policy %s is invalid: %s" % (path, what))


def _object(value: Any, path: str, what: str, keys: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(path, "%s is not a JSON object" % what)
    unknown = sorted(k for k in value if keys and k not in keys)
    if unknown:
        raise _invalid(path, "unknown key %r in %s" % (unknown[0][:60], what))
    return value


def _requirements(value: Any, path: str, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _invalid(path, "%s is not a non-empty list of requirements" % what)
    types = []
    for n, item in enumerate(value):
        requirement = _object(item, path, "requirement %d of %s" % (n, what))
        kind = requirement.get("type")
        if kind in (ACCEPT, REJECT):
            _object(requirement, path, "requirement %d of %s" % (n, what), ("type",))
        elif kind not in SIGNED:
            raise _invalid(path, "requirement %d of %s has unknown type %s"
                           % (n, what, repr(kind)[:60]))
        types.append(kind)
    return tuple(types)


def parse_policy(document: Any, path: str) -> TrustPolicy:
    """A :class:`TrustPolicy` from a parsed policy.json (checked as containers/image does)."""
    top = _object(document, path, "the policy", ("default", "transports"))
    if "default" not in top:
        raise _invalid(path, "no default policy")
    default = _requirements(top["default"], path, "default")
    transports = _object(top.get("transports", {}), path, "transports")
    docker: dict[str, tuple[str, ...]] = {}
    for transport, scopes in transports.items():
        where = "transports[%s]" % repr(transport)[:60]
        scopes = _object(scopes, path, where)
        for scope, value in scopes.items():
            types = _requirements(value, path, "%s[%s]" % (where, repr(scope)[:100]))
            if transport == TRANSPORT:
                docker[scope] = types
    return TrustPolicy(path, default, docker)


__all__ = ["PolicyError", "Scope", "TrustPolicy", "default_path", "identity", "load_policy",
           "namespaces", "parse_policy"]
