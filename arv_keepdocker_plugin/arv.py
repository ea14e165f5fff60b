"""The ``arv`` command: subcommands from the ``arv.commands`` entry-point group.

``arv keepdocker ARGS`` (and ``arv keep docker ARGS``) run this package's
command. Any other subcommand goes to the Arvados SDK's own ``arv``
dispatcher (``arvados.commands.arvcli``) when the installed SDK has one, or to
another ``arv`` program on ``PATH`` (the Ruby CLI), so installing this package
never takes a command away.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from typing import Callable, Dict, List, Optional

GROUP = "arv.commands"

#: Two-word spellings that map to a registered subcommand.
ALIASES = {("keep", "docker"): "keepdocker"}


def subcommands() -> Dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}


def _sdk_dispatcher() -> Optional[Callable[[List[str]], object]]:
    try:
        from arvados.commands import arvcli
    except ImportError:
        return None
    return getattr(arvcli, "dispatch", None)


def _other_arv() -> Optional[str]:
    """Another ``arv`` executable on PATH than this one."""
    me = os.path.realpath(sys.argv[0]) if sys.argv and sys.argv[0] else None
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = shutil.which("arv", path=directory)
        if candidate and os.path.realpath(candidate) != me:
            return candidate
    return None


def usage(commands) -> str:
    return ("usage: arv SUBCOMMAND [ARGS...]\n"
            "subcommands from installed plugins: {}\n"
            "other subcommands are handed to the Arvados SDK's arv dispatcher\n"
            .format(", ".join(sorted(commands)) or "none"))


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = subcommands()
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(usage(commands))
        return 0
    name, rest = argv[0], argv[1:]
    alias = ALIASES.get((argv[0], argv[1])) if len(argv) > 1 else None
    if alias is not None:
        name, rest = alias, argv[2:]
    if name in commands:
        status = commands[name].load()(rest)
        return status if isinstance(status, int) else 0
    dispatch = _sdk_dispatcher()
    if dispatch is not None:
        status = dispatch(argv)
        return status if isinstance(status, int) else 0
    other = _other_arv()
    if other is not None:
        os.execv(other, [other] + argv)
    sys.stderr.write("arv: unknown subcommand {!r}\n{}".format(name, usage(commands)))
    return 1


if __name__ == "__main__":
    sys.exit(main())
