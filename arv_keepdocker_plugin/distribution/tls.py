"""TLS for one registry host: certs.d directories, extra CAs, client certificates.

As in podman and skopeo, the first existing directory of
``~/.config/containers/certs.d/HOST:PORT/``,
``/etc/containers/certs.d/HOST:PORT/`` and ``/etc/docker/certs.d/HOST:PORT/``
applies to ``HOST:PORT`` (``--src-cert-dir DIR`` replaces the lookup). In it,
``*.crt`` files are CA certificates trusted besides the system's, and each
``NAME.cert`` with its ``NAME.key`` is a client certificate.

``requests`` takes one CA bundle file, so when extra CAs exist
:class:`CABundle` writes the system CAs and them into a private temporary
file, removed by :meth:`CABundle.close`.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import tempfile
from collections.abc import Mapping, Sequence

from .registry_errors import RegistryConfigError

#: certs.d roots below the home directory and absolute ones, in lookup order.
USER_CERTS_D = os.path.join(".config", "containers", "certs.d")
SYSTEM_CERTS_D = ("/etc/containers/certs.d", "/etc/docker/certs.d")


@dataclasses.dataclass(frozen=True)
class TLSOptions:
    """``--src-tls-verify`` and ``--src-cert-dir``.

    :ivar verify: ``False`` disables certificate verification and allows
        plain HTTP (HTTPS is still tried first).
    :ivar cert_dir: use this directory for every host instead of certs.d.
    :ivar certs_d_roots: the certs.d roots to search (``None``: the user's
        and the system's, see :func:`default_certs_d_roots`).
    """

    verify: bool = True
    cert_dir: str | None = None
    certs_d_roots: tuple[str, ...] | None = None


def default_certs_d_roots(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``~/.config/containers/certs.d``, ``/etc/containers/certs.d``, ``/etc/docker/certs.d``."""
    env = os.environ if env is None else env
    home = env.get("HOME") or os.path.expanduser("~")
    return (os.path.join(home, USER_CERTS_D),) + SYSTEM_CERTS_D


@dataclasses.dataclass(frozen=True)
class HostTLS:
    """What to trust and present when talking to one registry host.

    :ivar verify: verify the server's certificate.
    :ivar ca_files: extra CA files (``*.crt``) to trust besides the system's.
    :ivar client_cert: ``(cert file, key file)`` or ``None``.
    :ivar directory: the certs.d (or ``--src-cert-dir``) directory used.
    """

    verify: bool = True
    ca_files: tuple[str, ...] = ()
    client_cert: tuple[str, str] | None = None
    directory: str | None = None


def cert_directory(host: str, options: TLSOptions,
                   env: Mapping[str, str] | None = None) -> str | None:
    """The directory holding ``host``'s certificates, or ``None``."""
    if options.cert_dir:
        return options.cert_dir
    roots = options.certs_d_roots
    if roots is None:
        roots = default_certs_d_roots(env)
    for root in roots:
        candidate = os.path.join(root, host)
        if os.path.isdir(candidate):
            return candidate
    return None


def read_cert_dir(directory: str) -> tuple[tuple[str, ...], tuple[str, str] | None]:
    """``(CA files, client (cert, key) or None)`` found in ``directory``.

    A ``.cert`` without its ``.key`` (or the reverse) is an error, as in
    podman. With several pairs the first by name is used.
    """
    try:
        names = sorted(os.listdir(directory))
    except OSError as e:
        raise RegistryConfigError("cannot read certificate directory %s: %s"
                                  % (directory, e.strerror)) from None
    cas = tuple(os.path.join(directory, n) for n in names if n.endswith(".crt"))
    pairs: list[tuple[str, str]] = []
    for name in names:
        base, ext = os.path.splitext(name)
        if ext == ".cert":
            if base + ".key" not in names:
                raise RegistryConfigError("%s: client certificate %s has no key %s.key"
                                          % (directory, name, base))
            pairs.append((os.path.join(directory, name), os.path.join(directory, base + ".key")))
        elif ext == ".key" and base + ".cert" not in names:
            raise RegistryConfigError("%s: key %s has no client certificate %s.cert"
                                      % (directory, name, base))
    return cas, (pairs[0] if pairs else None)


def host_tls(host: str, options: TLSOptions = TLSOptions(), insecure: bool = False,
             env: Mapping[str, str] | None = None) -> HostTLS:
    """TLS settings for ``host`` (``HOST[:PORT]`` as in references).

    :param insecure: the registry is marked insecure in registries.conf;
        certificates are then not verified, as with ``verify=False``.
    """
    directory = cert_directory(host, options, env)
    cas, client = read_cert_dir(directory) if directory else ((), None)
    return HostTLS(verify=options.verify and not insecure, ca_files=cas,
                   client_cert=client, directory=directory)


def system_ca_file() -> str | None:
    """The system's CA bundle file, else certifi's, else ``None``."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return candidate
    try:
        import certifi
    except ImportError:  # pragma: no cover - requests depends on certifi
        return None
    return certifi.where()


class CABundle:
    """The ``verify`` value for ``requests``: system CAs plus ``extra`` CA files.

    Without extra files this is the system bundle itself and no file is
    written; otherwise a temporary file (mode 0600) holds both, until
    :meth:`close`.
    """

    def __init__(self, extra: Sequence[str] = ()) -> None:
        self._temporary: str | None = None
        base = system_ca_file()
        if not extra:
            self.path: str | bool = base or True
            return
        parts = []
        for path in ([base] if base else []) + list(extra):
            try:
                with open(path, "rb") as f:
                    parts.append(f.read().rstrip(b"\n") + b"\n")
            except OSError as e:
                raise RegistryConfigError("cannot read CA certificate %s: %s"
                                          % (path, e.strerror)) from None
        fd, self._temporary = tempfile.mkstemp(prefix="akd-ca-", suffix=".pem")
        with os.fdopen(fd, "wb") as f:
            f.write(b"".join(parts))
        self.path = self._temporary

    def close(self) -> None:
        """Remove the temporary bundle, if one was written."""
        if self._temporary:
            try:
                os.unlink(self._temporary)
            except FileNotFoundError:
                pass
            self._temporary = None

    def __enter__(self) -> CABundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
