"""What else is installed beside the product changes no test result.

The plugin tests run again in a child process whose environment holds one
more distribution, with an ``arv_keepdocker`` source plugin and an
``arv.commands`` subcommand: they pass as they do here, because plugin
discovery in tests sees the product and what a test installs only
(tests/conftest.py, the test kit's ``keepdocker_installed``).
"""

import subprocess
import sys
import textwrap
from pathlib import Path

from arv_keepdocker_plugin import arv

HERE = Path(__file__).resolve().parent

EXTRA = textwrap.dedent('''
    from arv_keepdocker_plugin import hookimpl
    from arv_keepdocker_plugin.image import ImageSource

    class Extra(ImageSource):
        name = "extra"
        description = "installed beside the product"

    @hookimpl
    def keepdocker_register_sources(register):
        register(Extra())

    def main(argv):
        return 0
    ''')


def test_an_extra_source_plugin_and_subcommand_change_no_plugin_test(tmp_path):
    site = tmp_path / "site"
    info = site / "akd_extra-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: akd-extra\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[arv_keepdocker]\nextra = akd_extra\n[arv.commands]\nextra = akd_extra:main\n")
    (site / "akd_extra.py").write_text(EXTRA)
    check = "import akd_extra, importlib.metadata as m; " \
        "assert 'extra' in [e.name for e in m.entry_points(group='arv_keepdocker')]"
    env = {"PYTHONPATH": str(site)}
    import os
    env = dict(os.environ, **env)
    assert subprocess.run([sys.executable, "-c", check], env=env).returncode == 0
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x",
         str(HERE / "test_plugins.py")],
        env=env, cwd=HERE.parent.parent, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_arv_runs_our_command_whatever_else_is_installed(keepdocker_installed, capsys):
    keepdocker_installed.add("akd-other", {"arv.commands": {"other": "akd_other:main"}},
                             {"akd_other": "def main(argv):\n    print('other', argv)\n"})
    assert sorted(arv.subcommands()) == ["keepdocker", "other"]
    assert arv.main(["other", "x"]) == 0
    assert capsys.readouterr().out == "other ['x']\n"
    assert arv.main(["--help"]) == 0
    assert "subcommands from installed plugins: keepdocker, other" in capsys.readouterr().out
