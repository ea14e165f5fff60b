"""``arv keepdocker``: the command line, flag for flag arv-keepdocker 3.2.1's.

The 3.2.1 flags come from the SDK's own parent parsers (``arv-put``'s run
options and the ``--retries`` option), so help texts and defaults stay
identical. New behaviour arrives only as new long flags (``--source``,
``--list-plugins``, ``--json``, ``--dry-run``, ``--check-install`` and
whatever plugins add); the notes on them are in the help's epilog
(:data:`EPILOG`), never in the SDK's own option texts.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sys
from typing import Any

from . import stagetimes

with stagetimes.stage("import SDK"):
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


def _sdk_parents() -> list[argparse.ArgumentParser]:
    import arvados.commands._util as arv_cmd
    import arvados.commands.put as arv_put
    run_opts = getattr(arv_put, "run_opts", None)
    if run_opts is None:  # newer SDKs build it in a function
        run_opts = arv_put.get_run_opts()
    return [run_opts, arv_cmd.retry_opt]


def build_parser(pm, prog: str | None = None) -> argparse.ArgumentParser:
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
        parents=[own] + _sdk_parents(), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
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
                     help="Print one JSON document on stdout: what an upload did, the "
                     "listing, or with --list-plugins the plugins")
    add_run_arguments(new)
    add_workflow_arguments(parser)
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
                             f" ({source.description})" if source.description else "")
             for source in sources.values()]
    text = "Image to upload: repo, repo:tag, or hash, or TRANSPORT:DETAILS, one of: {}".format(
        "; ".join(forms) or "none")
    return text.replace("%", "%%")  # argparse formats help strings


def add_run_arguments(group) -> None:
    """``--dry-run`` and ``--check-install``."""
    group.add_argument("--dry-run", action="store_true",
                       help="Write nothing: only say whether the image is stored. Exit "
                       "status 2 when anything would be written (an upload, a copy or "
                       "links), 0 when nothing would; never pulls")
    group.add_argument("--check-install", action="store_true",
                       help="Say which `arv` on PATH is in charge and whether `arv "
                       "keepdocker` reaches this tool, and exit")


def add_workflow_arguments(parser: argparse.ArgumentParser) -> None:
    """``--cwl`` and the options that go with it."""
    group = parser.add_argument_group("workflow options")
    group.add_argument("--cwl", metavar="WORKFLOW",
                       help="Store every image a CWL workflow names (each dockerPull, nested "
                       "and packed workflows included), as arvados-cwl-runner would look "
                       "them up; one line per image. Takes no IMAGE or TAG (needs the [cwl] "
                       "extra)")
    group.add_argument("--refresh", action="store_true",
                       help="With --cwl: resolve tags already stored again, and store a new "
                       "image only where the tag moved")
    group.add_argument("--trust-workflow-sources", action="store_true",
                       help="With --cwl: let the workflow name any image source, not only "
                       "NAME[:TAG], docker://, docker-daemon: and containers-storage:")


#: The options that only go with ``--cwl``.
WORKFLOW_ONLY = ("refresh", "trust_workflow_sources")


EPILOG = """\
With no IMAGE (or the word "images"), list the images stored in Arvados, as
arv-keepdocker 3.2.1 does.

examples:
  arv keepdocker debian:12                          from the Docker engine, else podman
  arv keepdocker docker://debian:12                 from a registry, no engine needed
  arv keepdocker containers-storage:myapp:2         from podman's store (--source podman)
  arv keepdocker docker-archive:app.tar.gz:app:1    a `docker save` archive
  arv keepdocker oci-archive:app-oci.tar:app:1      an OCI archive
  arv keepdocker --project-uuid zzzzz-j7d0g-... app:1
  arv keepdocker --dry-run --json app:1             is it stored? (exit 0: yes)
  arv keepdocker --json                             the listing, as JSON
  arv keepdocker --cwl workflow.cwl --project-uuid zzzzz-j7d0g-...
                                                    every image the workflow names

notes:
  --progress shows a total, a percentage, the rate and the time left when the
  size is known (~ marks an engine's estimate); --batch-progress prints
  "<program> <pid>: <n> written <total> total ..." lines (total -1 if unknown).
  --batch: expired or unreadable resume state is always dropped, so an upload
  never fails on it. Ctrl-C stops an upload; running the same command again
  resumes it (--no-resume starts over).
  The same command: arv keepdocker, arv keep docker, arv-keepdocker-plugin,
  python -m arv_keepdocker_plugin.

environment variables:
  ARVADOS_API_HOST, ARVADOS_API_TOKEN, ARVADOS_API_HOST_INSECURE
                        the Arvados API server and token (else settings.conf)
  ARVADOS_DEBUG=1       debug messages (as arv-keepdocker)
  ARV_KEEPDOCKER_DISABLE_PLUGINS=NAME,...
                        plugins not to load (see --list-plugins)
  DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CONFIG
                        the Docker engine, and docker:// credentials
  REGISTRY_AUTH_FILE, CONTAINERS_REGISTRIES_CONF, XDG_RUNTIME_DIR
                        docker:// credentials and registries.conf, as skopeo
  XDG_CACHE_HOME        where resume journals are kept (arvados/docker/)

exit status:
  0    stored, found or listed (--dry-run: nothing would be written)
  1    an error, said in one line on stderr; nothing is left half-written
  2    a usage error (--dry-run: something would be written; --json says which)
  130  interrupted (Ctrl-C); 128+N for signal N
"""


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


def execute(arguments: list[str] | None = None, stdout=None,
            install_sig_handlers: bool = True, api=None,
            prog: str | None = None, pm=None, resolved=None) -> tuple[int, str]:
    """Parse ``arguments`` and run; return ``(exit status, outcome)``.

    ``outcome`` is ``"listed"``, ``"plugins"``, ``"checked"``, ``"uploaded"``,
    ``"reused"``, ``"dry-run"``, ``"workflow"`` (``--cwl``) or ``"failed"``.
    User errors are logged as one line and give status 1; argparse errors
    raise ``SystemExit(2)`` as usual; a dry run gives 2 when it would write.
    ``pm`` is a prepared plugin manager (tests register plugins on it); by
    default the installed plugins are loaded. ``api``, when given, is used as
    it is (arvados-cwl-runner's client). ``resolved`` is an image already resolved in its registry
    (:class:`~.steps.registry_fallback.FromRegistry`, from the cwl launcher's
    check), stored in place of resolving IMAGE again.
    """
    stdout = stdout or sys.stdout
    stagetimes.mark("cli")
    with stagetimes.stage("plugins"):
        pm = pm or get_plugin_manager()
    with stagetimes.stage("parser"):
        parser = build_parser(pm, prog)
        options = parser.parse_args(arguments)
    check_workflow_options(parser, options)
    if options.source not in pm.sources:  # a source of that very name wins
        options.source = SOURCE_ALIASES.get(options.source, options.source)
    if options.check_install:
        from .arv import check_install
        return check_install(stdout), "checked"
    if options.list_plugins:
        print_plugins(pm, options.json, stdout)
        return 0, "plugins"
    if install_sig_handlers:
        _install_signal_handlers()
    try:
        if options.cwl:
            from .cwl_runner.workflow_store import store_workflow_images

            def connected():
                if api is not None:
                    return api
                from .steps.connect import connect
                return connect(options.retries)
            return store_workflow_images(options, pm, connected, stdout), "workflow"
        if api is None:
            with stagetimes.stage("connect"):
                from .steps.connect import connect
                api = connect(options.retries)
        if options.image is None or options.image == "images":
            from .steps.listing import list_images_in_arv, write_table
            images = list_images_in_arv(api, options.retries)
            if options.json:
                from .steps.documents import listing_document
                write_json(listing_document(images), stdout)
            else:
                write_table(images, stdout)
            return 0, "listed"
        with stagetimes.stage("import steps"):
            from .steps import pipeline
        with stagetimes.stage("pipeline"):
            outcome = pipeline.run(api, pm, options, resolved)
        report(outcome, options, stdout, api)
        stagetimes.mark("reported")
        if outcome.dry_run and outcome.writes:
            return 2, outcome.status
        return 0, outcome.status
    except KeepdockerError as error:
        return _failed(str(error), options, stdout, error.exit_code)
    except _Interrupted as signal_exc:
        logger.error("Caught signal %s, exiting.", signal_exc.args[0])
        return 128 + signal_exc.args[0], "failed"
    except KeyboardInterrupt:
        logger.error("Interrupted: nothing was stored in Arvados; run the same command "
                     "again to resume the upload.")
        return 130, "failed"
    except MemoryError:
        logger.error("out of memory; nothing was stored")
        return 1, "failed"
    except Exception as error:
        message = _api_error_line(error)
        if message is None:
            raise
        return _failed(message, options, stdout, 1)


#: ``--source`` names for a source called otherwise: podman's store.
SOURCE_ALIASES = {"podman": "containers-storage"}


def check_workflow_options(parser: argparse.ArgumentParser, options: argparse.Namespace
                           ) -> None:
    """``--cwl`` takes no IMAGE, TAG, ``--source`` or ``--name``; ``--refresh`` and
    ``--trust-workflow-sources`` go with ``--cwl`` only (usage errors, status 2)."""
    if options.cwl and options.image is not None:
        parser.error("--cwl stores the images the workflow names: give no IMAGE or TAG")
    if options.cwl and (options.source or options.name):
        parser.error("--cwl picks each image's source and collection name as "
                     "arvados-cwl-runner would: give no --source or --name")
    if not options.cwl:
        for name in WORKFLOW_ONLY:
            if getattr(options, name, False):
                parser.error("--{} goes with --cwl WORKFLOW".format(name.replace("_", "-")))


def report(outcome, options: argparse.Namespace, stdout, api) -> None:
    """What 3.2.1 prints on stdout (the UUID), or the ``--json`` document."""
    if options.json:
        from .steps.documents import upload_document, with_portable_data_hash
        write_json(upload_document(with_portable_data_hash(outcome, api, options.retries)),
                   stdout)
        return
    if outcome.dry_run:
        if not options.silent:
            logger.info("%s", outcome.describe())
        return
    # arv-put prints the UUID of a new collection unless --silent; 3.2.1
    # prints the UUID of an image it found in any case.
    if outcome.record is not None and not (outcome.status == "uploaded" and options.silent):
        stdout.write(outcome.record["uuid"] + "\n")


def write_json(document: dict[str, Any], stdout) -> None:
    json.dump(document, stdout, indent=2)
    stdout.write("\n")


def _failed(message: str, options: argparse.Namespace, stdout, status: int
            ) -> tuple[int, str]:
    logger.error("%s", message)
    if getattr(options, "json", False):
        from .steps.documents import error_document
        write_json(error_document(message), stdout)
    return status, "failed"


def run(arguments: list[str] | None = None, **kwargs) -> int:
    """Like :func:`execute`, returning only the exit status."""
    return execute(arguments, **kwargs)[0]


NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN,
                  errno.ECONNREFUSED, errno.ECONNRESET, errno.ETIMEDOUT}


def _api_error_line(error: Exception) -> str | None:
    """One line for errors from Arvados or the network; None for our own bugs."""
    import socket
    import ssl

    import arvados.errors
    import httplib2
    if isinstance(error, arvados.errors.ApiError):
        status = getattr(getattr(error, "resp", None), "status", "?")
        detail = error._get_reason() if hasattr(error, "_get_reason") else str(error)
        return f"Arvados API error {status}: {str(detail).strip().splitlines()[0]}"
    if isinstance(error, (arvados.errors.KeepWriteError, arvados.errors.KeepReadError)):
        return f"Keep error: {str(error).splitlines()[0]}"
    if isinstance(error, (httplib2.HttpLib2Error, ssl.SSLError, ConnectionError,
                          TimeoutError, socket.gaierror, socket.herror)) or (
            isinstance(error, OSError) and error.errno in NETWORK_ERRNOS):
        from .steps.connect import unreachable_line
        return unreachable_line(error)
    if isinstance(error, OSError):  # this machine: a full disk, an unwritable directory
        where = f" ({error.filename})" if error.filename else ""
        return f"local error: {error.strerror or error}{where}"
    return None


def main(arguments: list[str] | None = None) -> int:
    """Console entry point (``arv keepdocker`` and ``python -m arv_keepdocker_plugin``)."""
    return quiet_on_closed_pipe(lambda: run(arguments, prog="arv keepdocker"))


def plugin_main(arguments: list[str] | None = None) -> int:
    """``arv-keepdocker-plugin``: the same command, under a name no Arvados package uses."""
    return quiet_on_closed_pipe(lambda: run(arguments, prog="arv-keepdocker-plugin"))


#: Exit status of a program whose reader went away (killed by SIGPIPE, as ``ls | head``).
CLOSED_PIPE_STATUS = 128 + signal.SIGPIPE


def quiet_on_closed_pipe(command) -> int:
    """Run ``command``; output cut short by a closed pipe ends quietly."""
    try:
        status = command()
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # Python would report the pipe again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return CLOSED_PIPE_STATUS
