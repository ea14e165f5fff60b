import sys
import textwrap

import pytest


@pytest.fixture
def installed_distribution(tmp_path, monkeypatch):
    """Install a tiny real distribution (dist-info + modules) on sys.path.

    ``installed_distribution(name, entry_points={ep: module}, modules={name: source})``
    makes the entry points visible to importlib.metadata exactly as pip would.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(dist, entry_points, modules, version="1.0"):
        info = site / "{}-{}.dist-info".format(dist.replace("-", "_"), version)
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: {}\nVersion: {}\n".format(dist, version))
        lines = ["[arv_keepdocker]"] + ["{} = {}".format(k, v) for k, v in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in modules.items():
            (site / (module + ".py")).write_text(textwrap.dedent(source))
            sys.modules.pop(module, None)
        import importlib
        importlib.invalidate_caches()

    yield install
