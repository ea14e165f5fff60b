"""The ``docker://`` source's command-line options, with skopeo's names.

``--src-creds USER[:PASSWORD]``, ``--src-authfile FILE``, ``--src-no-creds``,
``--src-cert-dir DIR`` and ``--src-tls-verify[=true|false]`` mean what they
mean to ``skopeo copy``, and ``--policy FILE`` and ``--insecure-policy``
what skopeo's global options mean (the trust policy,
:mod:`..distribution.policy`); the core's ``--platform`` picks the image of a
multi-platform index. :func:`pull_options` turns the parsed command line
into the registry client's :class:`~..distribution.PullOptions`, and
:func:`trust_policy` into the policy to apply.

A password given with ``--src-creds`` is held, from the moment the command
line is parsed, in a :class:`~..distribution.Credential` (whose ``repr`` hides
it), so the options namespace other plugins see never shows it. Without
``:PASSWORD`` it is asked for on the terminal (and refused without one).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..archive.platforms import Platform
from ..distribution import Credential, CredentialOptions, TLSOptions, parse_creds
from ..distribution.policy import TrustPolicy, load_policy

if TYPE_CHECKING:
    from ..distribution import PullOptions

#: The group title in ``--help``.
GROUP = "docker:// registry source options (as skopeo's)"


def creds_argument(text: str) -> Credential | str:
    """``--src-creds``: a :class:`Credential` for ``USER:PASSWORD``, the bare
    ``USER`` (its password is asked for later) otherwise.

    Raises :class:`argparse.ArgumentTypeError` with a message that never
    quotes the value (argparse would otherwise print it).
    """
    if not text or text.startswith(":"):
        raise argparse.ArgumentTypeError("the username is empty (expected USER[:PASSWORD])")
    if ":" in text:
        return parse_creds(text)
    return text


def bool_argument(text: str) -> bool:
    """``true``/``false`` (and Go's other spellings, as skopeo accepts them).

    argparse gives an optional value the next word when it is written apart
    (``--src-tls-verify docker://x``), which skopeo's flag would not take:
    the message says to write ``--src-tls-verify=BOOL``.
    """
    value = text.strip().lower()
    if value in ("true", "t", "1"):
        return True
    if value in ("false", "f", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text[:40]!r} (write "
                                     "--src-tls-verify=true or =false)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options, in a group of their own."""
    group = parser.add_argument_group(GROUP)
    creds = group.add_mutually_exclusive_group()
    creds.add_argument("--src-creds", metavar="USER[:PASSWORD]", type=creds_argument,
                       help="Credentials for the registry (the password is asked for when "
                       "omitted); prefer an auth file, which no process listing shows")
    creds.add_argument("--src-no-creds", action="store_true", default=False,
                       help="Access the registry anonymously (no auth file is read)")
    group.add_argument("--src-authfile", metavar="FILE",
                       help="Auth file to read first (default $REGISTRY_AUTH_FILE, else "
                       "${XDG_RUNTIME_DIR}/containers/auth.json); the others are read after it")
    group.add_argument("--src-cert-dir", metavar="DIR",
                       help="Use DIR's *.crt (CAs) and NAME.cert/NAME.key (client "
                       "certificate) instead of certs.d")
    group.add_argument("--src-tls-verify", metavar="BOOL", type=bool_argument, nargs="?",
                       const=True, default=True,
                       help="Verify the registry's certificate and require HTTPS "
                       "(default true); --src-tls-verify=false also allows plain HTTP")
    group.add_argument("--policy", metavar="FILE",
                       help="Trust policy (containers-policy.json) for docker:// images "
                       "(default ~/.config/containers/policy.json, else "
                       "/etc/containers/policy.json; with neither, every image is accepted)")
    group.add_argument("--insecure-policy", action="store_true", default=False,
                       help="Skip the trust policy for docker:// images (as skopeo's flag)")


def _ask(prompt: str) -> str:
    return getpass.getpass(prompt)


def credential_options(options: argparse.Namespace,
                       prompt: Callable[[str], str] | None = None) -> CredentialOptions:
    """``--src-creds``/``--src-authfile``/``--src-no-creds`` as the client takes them.

    :param prompt: asks for a password missing from ``--src-creds USER``
        (default: :func:`getpass.getpass` when stdin is a terminal, else none).
    :raises CredentialError: no password and no way to ask for one.
    """
    creds = getattr(options, "src_creds", None)
    if isinstance(creds, str):
        if prompt is None and sys.stdin is not None and sys.stdin.isatty():
            prompt = _ask
        creds = parse_creds(creds, prompt)
        options.src_creds = creds  # asked once per run, kept hidden
    return CredentialOptions(creds=creds, authfile=getattr(options, "src_authfile", None),
                             no_creds=bool(getattr(options, "src_no_creds", False)))


def pull_options(options: argparse.Namespace,
                 prompt: Callable[[str], str] | None = None) -> PullOptions:
    """The registry client's options for this run (environment: ``os.environ``).

    registries.conf and certs.d are read where podman and skopeo read them
    (see :mod:`..distribution.config` and :mod:`..distribution.tls`).

    :raises BadReference: an invalid ``--platform``.
    :raises CredentialError: see :func:`credential_options`.
    """
    from ..distribution import PullOptions  # on first use: see ..registry's _ON_FIRST_USE
    platform = getattr(options, "platform", None)
    verify = getattr(options, "src_tls_verify", True)
    return PullOptions(credentials=credential_options(options, prompt),
                       tls=TLSOptions(verify=True if verify is None else bool(verify),
                                      cert_dir=getattr(options, "src_cert_dir", None)),
                       platform=Platform.parse(platform) if platform else None)


def trust_policy(options: argparse.Namespace) -> TrustPolicy | None:
    """The trust policy for this run: ``None`` with ``--insecure-policy`` or no file.

    :raises PolicyError: ``--policy`` names no readable file, or a policy is invalid.
    """
    if getattr(options, "insecure_policy", False):
        return None
    return load_policy(getattr(options, "policy", None))


__all__ = ["GROUP", "add_arguments", "bool_argument", "creds_argument", "credential_options",
           "pull_options", "trust_policy"]
