"""``arv keepdocker``: the command line, flag for flag arv-keepdocker 3.2.1's.

The 3.2.1 flags come from the SDK's own parent parsers (``arv-put``'s run
options and the ``--retries`` option), so help texts and defaults stay
identical. New behaviour arrives only as new long flags (``--source``,
``--list-plugins``, ``--json`` and whatever plugins add).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import signal
import sys
from typing import List, Optional, Tuple

import arvados  # noqa: F401  (installs the SDK's stderr log handler)
import arvados.config

from . import __version__
from .errors import KeepdockerError, printable
from .plugins import get_plugin_manager

logger = logging.getLogger("arvados.keepdocker")
logger.setLevel(logging.DEBUG if arvados.config.get("ARVADOS_DEBUG") else logging.INFO)


class _Printable(logging.Filter):
    """Escape control characters in every message this command logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = printable(record.getMessage()), ()
        return True


logger.addFilter(_Printable())
logging.getLogger("arvados.arv_put").addFilter(_Printable())


def _sdk_parents() -> List[argparse.ArgumentParser]:
    import arvados.commands._util as arv_cmd
    import arvados.commands.put as arv_put
    run_opts = getattr(arv_put, "run_opts", None)
    if run_opts is None:  # newer SDKs build it in a function
        run_opts = arv_put.get_run_opts()
    return [run_opts, arv_cmd.retry_opt]


def build_parser(pm, prog: Optional[str] = None) -> argparse.ArgumentParser:
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--version", action="version",
                     version="%s %s" % (prog or sys.argv[0], __version__),
                     help="Print version and exit.")
    own.add_argument("-f", "--force", action="store_true", default=False,
                     help="Re-upload the image even if it already exists on the server")
    own.add_argument("--force-image-format", action="store_true", default=False,
                     help="Proceed even if the image format is not supported by the server")
    group = own.add_mutually_exclusive_group()
    group.add_argument("--pull", action="store_true", default=False,
                       help="Try to pull the latest image from Docker registry")
    group.add_argument("--no-pull", action="store_false", dest="pull",
                       help="Use locally installed image only, don't pull image from "
                       "Docker registry (default)")

    parser = argparse.ArgumentParser(
        prog=prog, description="Upload or list Docker images in Arvados",
        parents=[own] + _sdk_parents())
    new = parser.add_argument_group("arv-keepdocker-plugin options")
    new.add_argument("--source", metavar="NAME",
                     help="Image source to use ({}); by default the IMAGE's transport "
                     "prefix, else the Docker engine if it answers, else podman".format(
                         ", ".join(pm.sources.names())))
    new.add_argument("--platform", dest="platform", metavar="OS/ARCH[/VARIANT]",
                     default=None,
                     help="For images holding several platforms (an OCI index): which "
                     "one (default: this machine's); sources that hold one platform per "
                     "image warn that it is ignored")
    new.add_argument("--list-plugins", action="store_true",
                     help="List loaded plugins (name, version, hooks, sources) and the "
                     "sources they register, and exit")
    new.add_argument("--json", action="store_true",
                     help="With --list-plugins, print JSON")
    pm.hook.keepdocker_add_arguments(parser=parser)
    parser.add_argument("image", nargs="?", help=image_help(pm.sources))
    parser.add_argument(
        "tag", nargs="?",
        help="Tag of the Docker image to upload (default 'latest'), if image is given "
        "as an untagged repo name")
    return parser


def image_help(sources) -> str:
    """IMAGE's help: 3.2.1's forms, then each registered source's prefix, syntax
    and description, so a third-party source is listed like a default one."""
    forms = ["{}{}{}".format(source.prefix, source.syntax,
                             " ({})".format(source.description) if source.description else "")
             for source in sources.values()]
    text = "Image to upload: repo, repo:tag, or hash, or TRANSPORT:DETAILS, one of: {}".format(
        "; ".join(forms) or "none")
    return text.replace("%", "%%")  # argparse formats help strings


def print_plugins(pm, as_json: bool, stdout) -> None:
    plugins = pm.describe()
    sources = pm.sources.describe()
    if as_json:
        json.dump({"plugins": plugins, "sources": sources,
                   "broken": [vars(b) for b in pm.broken]}, stdout, indent=2)
        stdout.write("\n")
        return
    row = "{:20}  {:10}  {:30}  {}\n"
    stdout.write(row.format("NAME", "VERSION", "SOURCES", "HOOKS"))
    for plugin in plugins:
        stdout.write(row.format(plugin["name"], plugin["version"],
                                ",".join(plugin["sources"]) or "-",
                                ",".join(plugin["hooks"])))
    stdout.write("\n")
    source_row = "{:20}  {:20}  {}\n"
    stdout.write(source_row.format("SOURCE", "PLUGIN", "DESCRIPTION"))
    for source in sources:
        stdout.write(source_row.format(source["name"], source["plugin"],
                                       source["description"] or "-"))
        stdout.write(source_row.format("", "", source["prefix"] + source["syntax"]))
    for broken in pm.broken:
        stdout.write("broken: {} ({}): {}\n".format(
            broken.name, broken.distribution or "unknown distribution", broken.error))


class _Interrupted(KeyboardInterrupt):
    pass


def _install_signal_handlers() -> None:
    def interrupt(signum, frame):
        raise _Interrupted(signum)
    for signum in (signal.SIGTERM, signal.SIGQUIT):
        signal.signal(signum, interrupt)


def execute(arguments: Optional[List[str]] = None, stdout=None,
            install_sig_handlers: bool = True, api=None,
            prog: Optional[str] = None, pm=None) -> Tuple[int, str]:
    """Parse ``arguments`` and run; return ``(exit status, outcome)``.

    ``outcome`` is ``"listed"``, ``"plugins"``, ``"uploaded"``, ``"reused"``
    or ``"failed"``. User errors are logged as one line and give status 1;
    argparse errors raise ``SystemExit(2)`` as usual. ``pm`` is a prepared
    plugin manager (tests register plugins on it); by default the installed
    plugins are loaded.
    """
    stdout = stdout or sys.stdout
    pm = pm or get_plugin_manager()
    options = build_parser(pm, prog).parse_args(arguments)
    if options.list_plugins:
        print_plugins(pm, options.json, stdout)
        return 0, "plugins"
    if install_sig_handlers:
        _install_signal_handlers()
    try:
        if api is None:
            api = _connect(options.retries)
        if options.image is None or options.image == "images":
            from .steps.listing import list_images_in_arv, write_table
            write_table(list_images_in_arv(api, options.retries), stdout)
            return 0, "listed"
        from .steps import pipeline
        return 0, pipeline.run(api, pm, options, stdout)
    except KeepdockerError as error:
        logger.error("%s", error)
        return error.exit_code, "failed"
    except _Interrupted as signal_exc:
        logger.error("Caught signal %s, exiting.", signal_exc.args[0])
        return 128 + signal_exc.args[0], "failed"
    except KeyboardInterrupt:
        logger.error("Interrupted, nothing was stored.")
        return 130, "failed"
    except MemoryError:
        logger.error("out of memory; nothing was stored")
        return 1, "failed"
    except Exception as error:
        message = _api_error_line(error)
        if message is None:
            raise
        logger.error("%s", message)
        return 1, "failed"


def run(arguments: Optional[List[str]] = None, **kwargs) -> int:
    """Like :func:`execute`, returning only the exit status."""
    return execute(arguments, **kwargs)[0]


def _connect(retries: int):
    import arvados
    try:
        return arvados.api("v1", num_retries=retries)
    except ValueError as error:  # no host or token configured
        raise KeepdockerError(str(error).splitlines()[0]) from None


_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN,
                   errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT}


def _api_error_line(error: Exception) -> Optional[str]:
    """One line for errors from Arvados or the network; None for our own bugs."""
    import socket
    import ssl

    import arvados.errors
    import httplib2
    if isinstance(error, arvados.errors.ApiError):
        status = getattr(getattr(error, "resp", None), "status", "?")
        detail = error._get_reason() if hasattr(error, "_get_reason") else str(error)
        return "Arvados API error {}: {}".format(status, str(detail).strip().splitlines()[0])
    if isinstance(error, (arvados.errors.KeepWriteError, arvados.errors.KeepReadError)):
        return "Keep error: {}".format(str(error).splitlines()[0])
    if isinstance(error, (httplib2.HttpLib2Error, ssl.SSLError, ConnectionError,
                          TimeoutError, socket.gaierror, socket.herror)) or (
            isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS):
        return "cannot reach the Arvados API server: {}".format(str(error).splitlines()[0])
    if isinstance(error, OSError):  # this machine: a full disk, an unwritable directory
        where = " ({})".format(error.filename) if error.filename else ""
        return "local error: {}{}".format(error.strerror or error, where)
    return None


def main(arguments: Optional[List[str]] = None) -> int:
    """Console entry point (``arv keepdocker`` and ``python -m arv_keepdocker_plugin``)."""
    return run(arguments, prog="arv keepdocker")
