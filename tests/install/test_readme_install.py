"""README's install and local-cluster sections, word for word, in a fresh virtual environment.

A copy of this checkout (its files as they are now) is installed as a
newcomer would: the ``sh`` blocks of "Install" and "The local cluster and the
demo" run, one after the other, in one ``bash -e`` with a private HOME, so
``~`` is a fresh directory. Everything comes from PyPI (pip's cache is
shared with the user's, to save downloads). The result: ``arv keepdocker``
answers, the local cluster starts and lists its (empty) images, and the
demo stores an image and checks what crunch-run would load.

Marked ``cluster`` (it starts clusters), so the fast selection leaves it out;
it takes a few minutes, mostly pip.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from arv_keepdocker_plugin import __version__

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.cluster


def sh_block(readme: str, heading: str) -> str:
    """The first ``sh`` block after ``## heading``."""
    section = readme.split("\n## " + heading + "\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)


def copy_checkout(dest: Path) -> None:
    """The checkout's tracked files as they are in the working tree."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def test_readme_install_gives_arv_keepdocker_the_cluster_and_the_demo(tmp_path):
    readme = (ROOT / "README.md").read_text()
    script = "\n".join([sh_block(readme, "Install"),
                        sh_block(readme, "The local cluster and the demo")])
    checkout, home = tmp_path / "arv-keepdocker-plugin", tmp_path / "home"
    checkout.mkdir()
    home.mkdir()
    copy_checkout(checkout)
    # No venv of ours and no Arvados settings: a newcomer's shell.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ARVADOS_", "VIRTUAL_ENV", "DOCKER_", "ARV_KEEPDOCKER_",
                                "XDG_", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if Path(p).resolve() != Path(sys.executable).parent.resolve())
    env.update(HOME=str(home), PIP_CACHE_DIR=str(Path.home() / ".cache" / "pip"))
    try:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=checkout,
                              env=env, capture_output=True, text=True, timeout=1800)
    finally:
        for cluster in (home / "arv-cluster", checkout / ".demo" / "cluster"):
            stop = home / "keepdocker-venv" / "bin" / "arv-keepdocker-cluster"
            if stop.exists() and cluster.exists():
                subprocess.run([str(stop), "stop", "--dir", str(cluster)], env=env,
                               capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert f"arv keepdocker {__version__}\n" in out
    assert "(arv-keepdocker-plugin's): `arv keepdocker` runs this tool" in out
    assert out.count("REPOSITORY                      TAG         IMAGE ID") >= 2  # listings
    assert "demo/hello                      1.0         sha256:" in out
    assert "Demo OK." in out
