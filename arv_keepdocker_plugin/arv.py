"""The ``arv`` command: a strict superset of whichever Arvados ``arv`` you would otherwise have.

``arv [GLOBAL OPTIONS] SUBCOMMAND ARGS`` goes, in this order, to:

1. a subcommand of the ``arv.commands`` entry-point group (``keepdocker``,
   also spelt ``keep docker``), after the global options Arvados' ``arv``
   accepts (``-n``/``--dry-run``, ``-v``/``--verbose``, ``-s``/``--short``,
   ``-f``/``--format FORMAT``), which are passed on as the subcommand's own
   flags (:func:`passed_on`);
2. the SDK's ``arv`` dispatcher when it is the one that generates resource
   subcommands from the discovery document (``arvados.commands.arvcli``
   whose parser has ``external_command_modules``, Arvados 3.3 and later):
   every other command line, unchanged;
3. otherwise (the SDK 3.2 dispatcher, which knows only ``keep``, ``ws`` and
   ``copy``) those three subcommands, to it;
4. otherwise the first other ``arv`` on ``PATH`` (Arvados' Ruby CLI), with
   the command line unchanged;
5. otherwise a usage message and exit status 2 (also for ``arv`` alone).

So installing this package never takes a command away. The same tool is
also installed as ``arv-keepdocker-plugin``, a name no Arvados package uses,
so it stays reachable whichever ``bin/arv`` wins; ``arv keepdocker
--check-install`` (or ``arv-keepdocker-plugin --check-install``) says which
``arv`` is in charge (:func:`check_install`).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import shutil
import sys
from collections.abc import Callable

GROUP = "arv.commands"

#: Two-word spellings that map to a registered subcommand.
ALIASES = {("keep", "docker"): "keepdocker"}

#: The options Arvados' ``arv`` takes before a subcommand (``sdk/cli/bin/arv``
#: and ``sdk/python/arvados/commands/arvcli.py``): flag -> whether it takes a value.
GLOBAL_OPTIONS = {"-n": False, "--dry-run": False, "-v": False, "--verbose": False,
                  "-s": False, "--short": False, "-f": True, "--format": True}
FORMATS = ("json", "yaml", "uuid")

#: What the SDK 3.2 dispatcher knows (``arvados/commands/arvcli.py``, 3.2.1).
SDK_32_SUBCOMMANDS = ("keep", "ws", "copy")

#: ``arv`` programs already tried by this chain of ``exec`` (loop guard).
VISITED = "ARV_KEEPDOCKER_ARV_VISITED"

#: Marks a console script installed by this package (pip writes the import).
OUR_SCRIPT_MARK = b"arv_keepdocker_plugin"
#: Marks the SDK's own ``arv`` console script (Arvados 3.3 and later).
SDK_SCRIPT_MARK = b"arvados.commands.arvcli"


class UsageError(Exception):
    """A command line ``arv`` cannot parse (exit status 2)."""


@dataclasses.dataclass
class CommandLine:
    """``arv [GLOBAL OPTIONS] SUBCOMMAND ARGS`` split up.

    :ivar global_options: the global options as typed.
    :ivar words: what follows them (the subcommand first).
    :ivar dry_run, verbose, format: the global options' values.
    """

    global_options: list[str]
    words: list[str]
    dry_run: bool = False
    verbose: bool = False
    format: str = "json"

    @property
    def subcommand(self) -> str | None:
        return self.words[0] if self.words else None


def split_command_line(argv: list[str]) -> CommandLine:
    """Skip the global options Arvados' ``arv`` accepts; read their values."""
    line = CommandLine([], [])
    index = 0
    while index < len(argv):
        word = argv[index]
        flag, equals, value = word.partition("=")
        if flag not in GLOBAL_OPTIONS or (equals and not GLOBAL_OPTIONS[flag]):
            break
        line.global_options.append(word)
        index += 1
        if GLOBAL_OPTIONS[flag]:
            if not equals:
                if index >= len(argv):
                    raise UsageError("arv: {} needs a value ({})".format(flag, ", ".join(FORMATS)))
                value = argv[index]
                line.global_options.append(value)
                index += 1
            if value not in FORMATS:
                raise UsageError("arv: --format must be one of {}, not {!r}".format(
                    ", ".join(FORMATS), value))
            line.format = value
        elif flag in ("-n", "--dry-run"):
            line.dry_run = True
        elif flag in ("-v", "--verbose"):
            line.verbose = True
        else:
            line.format = "uuid"
    line.words = argv[index:]
    return line


def passed_on(line: CommandLine, command: str) -> list[str]:
    """The global options as flags of our subcommand ``command``.

    ``-n`` (Arvados: "Don't actually do anything") becomes ``--dry-run``;
    ``--format json`` becomes ``--json``; ``-s`` and ``--format uuid`` are
    what the subcommand prints anyway; ``-v`` turns on ``ARVADOS_DEBUG``
    (see :func:`main`). YAML it cannot print.
    """
    if line.format == "yaml":
        raise UsageError(f"arv: {command} prints JSON (-f json) or UUIDs (-s), not YAML"
                         )
    flags = ["--dry-run"] if line.dry_run else []
    if line.format == "json" and any(o in ("-f", "--format") or o.startswith("--format=")
                                     for o in line.global_options):
        flags.append("--json")
    return flags


def subcommands() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}


def our_command(words: list[str], commands) -> tuple[str, list[str]] | None:
    """``(name, arguments)`` when ``words`` name an ``arv.commands`` subcommand."""
    if len(words) > 1 and (words[0], words[1]) in ALIASES:
        name = ALIASES[(words[0], words[1])]
        if name in commands:
            return name, words[2:]
    if words and words[0] in commands:
        return words[0], words[1:]
    return None


# -- who else can answer ---------------------------------------------------------


def sdk_arvcli():
    """The SDK's ``arvados.commands.arvcli`` module, or None."""
    try:
        from arvados.commands import arvcli
    except ImportError:
        return None
    return arvcli if callable(getattr(arvcli, "dispatch", None)) else None


def generates_resources(arvcli) -> bool:
    """Whether ``arvcli`` is the 3.3-style dispatcher (resource subcommands from the
    discovery document, external commands in ``external_command_modules``)."""
    parser = getattr(arvcli, "ArvCLIArgumentParser", None)
    return parser is not None and hasattr(parser, "external_command_modules")


def script_kind(path: str) -> str:
    """``"ours"``, ``"sdk"`` (the SDK's Python ``arv``) or ``"other"`` (the Ruby CLI...)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return "other"
    if OUR_SCRIPT_MARK in head:
        return "ours"
    if SDK_SCRIPT_MARK in head:
        return "sdk"
    return "other"


def arv_programs(path: str | None = None) -> list[str]:
    """Every ``arv`` executable on ``PATH``, in order, each once."""
    found: list[str] = []
    for directory in (os.environ.get("PATH", "") if path is None else path).split(os.pathsep):
        candidate = shutil.which("arv", path=directory) if directory else None
        if candidate and os.path.realpath(candidate) not in map(os.path.realpath, found):
            found.append(candidate)
    return found


def other_arv() -> str | None:
    """The first ``arv`` on PATH that is neither this one nor another copy of ours."""
    visited = set(filter(None, os.environ.get(VISITED, "").split(os.pathsep)))
    me = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    for candidate in arv_programs():
        real = os.path.realpath(candidate)
        if real == me or real in visited or script_kind(candidate) == "ours":
            continue
        return candidate
    return None


@dataclasses.dataclass
class Delegate:
    """Who answers what ``arv`` does not know itself."""

    describe: str
    handles: Callable[[CommandLine], bool]
    run: Callable[[list[str]], int]


def delegate() -> Delegate | None:
    """Steps 2 to 4 of the module docstring: the SDK's dispatcher or another ``arv``."""
    arvcli = sdk_arvcli()
    if arvcli is not None and generates_resources(arvcli):
        return Delegate("the Arvados SDK's arv dispatcher (every other subcommand)",
                        lambda line: True, _dispatch_with(arvcli))
    other = other_arv()
    sdk32 = arvcli is not None

    def handles(line: CommandLine) -> bool:
        return (sdk32 and line.subcommand in SDK_32_SUBCOMMANDS) or other is not None

    def run(argv: list[str]) -> int:
        if sdk32 and split_command_line(argv).subcommand in SDK_32_SUBCOMMANDS:
            return _dispatch_with(arvcli)(argv)
        assert other is not None
        return _exec(other, argv)

    if not sdk32 and other is None:
        return None
    parts = (["the Arvados SDK's dispatcher (keep, ws, copy)"] if sdk32 else []) + (
        [f"{other} (everything else)"] if other else [])
    return Delegate("; ".join(parts), handles, run)


def _dispatch_with(arvcli) -> Callable[[list[str]], int]:
    def run(argv: list[str]) -> int:
        status = arvcli.dispatch(argv)
        return status if isinstance(status, int) else 0
    return run


def _exec(program: str, argv: list[str]) -> int:
    me = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    visited = [v for v in os.environ.get(VISITED, "").split(os.pathsep) if v] + [me]
    os.environ[VISITED] = os.pathsep.join(visited)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(program, [program] + argv)
    return 127  # not reached


# -- the command -------------------------------------------------------------------


def usage(commands, helper: Delegate | None) -> str:
    return ("usage: arv [-n] [-v] [-s | -f FORMAT] SUBCOMMAND [ARGS...]\n"
            "subcommands from installed plugins: {}\n"
            "other subcommands: {}\n".format(
                ", ".join(sorted(commands)) or "none",
                helper.describe if helper else
                "none (no Arvados arv is installed: neither the SDK's dispatcher nor "
                "another arv on PATH)"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = subcommands()
    try:
        line = split_command_line(argv)
        found = our_command(line.words, commands)
        if found is not None:
            name, rest = found
            rest = passed_on(line, name) + rest
    except UsageError as error:
        sys.stderr.write(f"{error}\n")
        return 2
    if found is not None:
        if line.verbose:
            os.environ["ARVADOS_DEBUG"] = "1"
        status = commands[name].load()(rest)
        return status if isinstance(status, int) else 0
    helper = delegate()
    if line.words and line.words[0] in ("-h", "--help") and not line.global_options:
        # Ours, then the help of whoever answers the rest (the Ruby CLI's lists its
        # resources), so that nothing the other arv says is lost either.
        sys.stdout.write(usage(commands, helper))
        if helper is not None and helper.handles(line):
            sys.stdout.write("\n")
            return helper.run(argv)
        return 0
    if helper is not None and line.words and helper.handles(line):
        return helper.run(argv)
    if line.words:
        sys.stderr.write(f"arv: unknown subcommand {line.words[0]!r}\n")
    sys.stderr.write(usage(commands, helper))
    return 2


# -- arv keepdocker --check-install -----------------------------------------------


def check_install(stdout, tool: str = "arv-keepdocker-plugin") -> int:
    """Say which ``arv`` is in charge; 0 when ``arv keepdocker`` reaches this tool."""
    here = os.path.dirname(sys.executable)
    programs = arv_programs()
    first = programs[0] if programs else None
    kind = script_kind(first) if first else None
    ours_here = shutil.which("arv", path=here)
    elsewhere = kind == "ours" and not (
        ours_here and os.path.realpath(os.path.dirname(first or "")) == os.path.realpath(here))
    ok = kind == "ours" and not elsewhere
    if first is None:
        stdout.write("no arv on PATH: `arv keepdocker` is not available\n")
    else:
        owner = {"ours": "arv-keepdocker-plugin's",
                 "sdk": "the Arvados SDK's (3.3 or later; its `keep docker` is the SDK's "
                        "arv-keepdocker)"}.get(kind or "", "not arv-keepdocker-plugin's")
        if elsewhere:
            owner = "arv-keepdocker-plugin's, from another installation"
        stdout.write("arv on PATH: {} ({}): `arv keepdocker` {}\n".format(
            first, owner, "runs this tool" if ok else "does not reach this tool"))
    if ok:
        helper = delegate()
        stdout.write("other arv subcommands go to: {}\n".format(
            helper.describe if helper else "nothing (no Arvados arv is installed)"))
        return 0
    advice = f"run `{shutil.which(tool, path=here) or tool}` instead (same options)"
    if ours_here and os.path.dirname(ours_here) != os.path.dirname(first or ""):
        advice += f", or put {here} first in PATH"
    stdout.write(f"to use this tool: {advice}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
