"""The package's shape: what a newcomer reads from the tree stays true.

* the root holds the public contract and the entry points only (at most 12
  modules besides ``__init__`` and ``__main__``);
* no two modules share a name, so a name means one thing;
* imports run one way, as the import-linter contracts in ``pyproject.toml``
  say (entry points > steps > plugins > Keep, registry client > archives >
  contract; sources, archives and the registry client never import the
  Arvados SDK).
"""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import arv_keepdocker_plugin

PACKAGE = Path(arv_keepdocker_plugin.__file__).parent
ROOT = PACKAGE.parent
SPECIAL = {"__init__", "__main__"}


def modules():
    for path in PACKAGE.rglob("*.py"):
        yield path.relative_to(PACKAGE)


def test_the_root_holds_at_most_twelve_modules():
    root = sorted(p.stem for p in modules() if len(p.parts) == 1 and p.stem not in SPECIAL)
    assert len(root) <= 12, root


def test_no_two_modules_share_a_name():
    names = collections.defaultdict(list)
    for path in modules():
        if path.stem not in SPECIAL:
            names[path.stem].append(str(path))
    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}


def test_imports_follow_the_layers():
    # In a child process: import-linter reconfigures logging, which would
    # leak into the tests that read log records.
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(config_filename='pyproject.toml'))"],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
