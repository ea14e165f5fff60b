"""The docs' example plugin, built from the docs' own text, installed and tested.

docs/plugins.md, "Writing a plugin", holds a whole hook package: its
pyproject.toml, its module and its tests. This writes those files from the
page, builds and installs the package into a fresh virtual environment
(offline: no build isolation, no package index; the environment sees this
one's packages, the product and the test kit among them, through a ``.pth``
file), and runs the example's own tests there, from another directory so
that the installed copy is the one tested: they pass, one against the test
kit's fake API, one against its local cluster. With a hook name misspelt in
the module, the same tests fail, naming the hook.
"""

import os
import re
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster  # the example's second test starts the local cluster

ROOT = Path(__file__).resolve().parents[2]
FILES = ("pyproject.toml", "arv_keepdocker_site_rules.py", "tests/test_site_rules.py")
BLOCK = re.compile(r"^(?P<indent> *)```\w+\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)
MODULE = "arv_keepdocker_site_rules.py"


def example_files():
    """``{path: text}`` of the blocks of "Writing a plugin" whose first line is ``# path``."""
    page = (ROOT / "docs" / "plugins.md").read_text()
    section = page[page.index("### Writing a plugin"):]
    following = section.find("\n### ", 1)
    section = section if following < 0 else section[:following]
    files = {}
    for match in BLOCK.finditer(section):
        body = textwrap.dedent(match.group("body"))
        first, _, rest = body.partition("\n")
        if first.startswith("# ") and first[2:] in FILES:
            files[first[2:]] = body if first[2:].endswith(".py") else rest
    return files


def run(argv, **kwargs):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=600, **kwargs)


@pytest.fixture
def venv(tmp_path):
    """A fresh virtual environment that also sees this one's packages."""
    path = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", "--without-pip", path])
    assert made.returncode == 0, made.stderr
    python = path / "bin" / "python"
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    outer = sysconfig.get_paths()["purelib"]
    Path(site.stdout.strip(), "_outer_environment.pth").write_text(
        f"import site; site.addsitedir({outer!r})\n")
    return python


@pytest.fixture
def env(tmp_path):
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("ARVADOS_", "ARV_KEEPDOCKER_", "PYTHON"))}
    home = tmp_path / "home"
    home.mkdir()
    return dict(environ, HOME=str(home))


def install(venv, env, project):
    proc = run([venv, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-index",
                "--no-cache-dir", "--force-reinstall", "--no-deps", project], env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The dependencies the example declares are there (the product, through the .pth).
    check = run([venv, "-m", "pip", "check"], env=env)
    assert "arv-keepdocker-site-rules" not in check.stdout, check.stdout


def author_tests(venv, env, project, elsewhere):
    return run([venv, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf",
                project / "tests"], env=env, cwd=elsewhere)


def test_the_docs_example_plugin_builds_installs_and_passes_its_tests(venv, env, tmp_path):
    files = example_files()
    assert sorted(files) == sorted(FILES)
    project = tmp_path / "arv-keepdocker-site-rules"
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    install(venv, env, project)
    listed = run([venv, "-m", "arv_keepdocker_plugin", "--list-plugins"], env=env)
    assert any(line.split()[:2] == ["site_rules", "1.0.0"]
               for line in listed.stdout.splitlines()), listed.stdout + listed.stderr
    passed = author_tests(venv, env, project, elsewhere)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "2 passed" in passed.stdout

    # A misspelt hook would be skipped by pluggy's check; the kit fails the tests.
    module = project / MODULE
    module.write_text(module.read_text().replace("def keepdocker_check_format(",
                                                 "def keepdocker_check_formats("))
    install(venv, env, project)
    failed = author_tests(venv, env, project, elsewhere)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "2 failed" in failed.stdout
    assert failed.stdout.count("unknown hook 'keepdocker_check_formats'") >= 2, failed.stdout
