"""Build the benchmark's images in a Docker engine from incompressible random files.

Three COPY-only images, no container run (the legacy builder):

* ``<repo>:base`` - two layers (``base0``, ``base1``);
* ``<repo>:v1``   - ``FROM base`` plus a top layer;
* ``<repo>:v2``   - ``FROM base`` plus a different top layer of the same size,
  so v1 and v2 share every layer but the top one.

The data is written to files in 1 MiB chunks of ``os.urandom`` (never held in
memory) and each layer is split into files of at most 64 MiB.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

MIB = 1 << 20
FILE_MAX_MIB = 64


@dataclass
class LayerPlan:
    """Layer sizes in MiB for an image of ``total_mib``: 7/16, 8/16, 1/16."""

    base0: int
    base1: int
    top: int

    @classmethod
    def for_total(cls, total_mib: int) -> LayerPlan:
        top = max(1, total_mib // 16)
        base0 = max(1, total_mib * 7 // 16)
        base1 = max(1, total_mib - base0 - top)
        return cls(base0, base1, top)

    @property
    def total(self) -> int:
        return self.base0 + self.base1 + self.top


def write_random_files(directory: str, size_mib: int) -> None:
    """Fill ``directory`` with ``size_mib`` MiB of random data in files of <= 64 MiB."""
    os.makedirs(directory, exist_ok=True)
    left, number = size_mib, 0
    while left > 0:
        this = min(left, FILE_MAX_MIB)
        with open(os.path.join(directory, "data%03d.bin" % number), "wb") as out:
            for _ in range(this):
                out.write(os.urandom(MIB))
        left -= this
        number += 1


def _build(engine, context: str, dockerfile_lines: list[str], tag: str) -> str:
    with open(os.path.join(context, "Dockerfile"), "w") as f:
        f.write("\n".join(dockerfile_lines) + "\n")
    return engine.build(context, tag)


def build_images(engine, workdir: str, plan: LayerPlan, repo: str = "akd-bench/img",
                 versions=("v1", "v2")) -> dict:
    """Build base, v1 and v2 in ``engine``; return ``{"v1": id, "v2": id, "base": id}``.

    ``versions``: which of v1 and v2 to build (both by default).

    Build contexts live under ``workdir`` and are removed once built.
    """
    ids = {}
    context = os.path.join(workdir, "ctx-base")
    write_random_files(os.path.join(context, "base0"), plan.base0)
    write_random_files(os.path.join(context, "base1"), plan.base1)
    ids["base"] = _build(engine, context, ["FROM scratch", "COPY base0/ /base0/",
                                           "COPY base1/ /base1/"], repo + ":base")
    shutil.rmtree(context)
    for version in versions:
        context = os.path.join(workdir, "ctx-" + version)
        write_random_files(os.path.join(context, "top"), plan.top)
        ids[version] = _build(engine, context, ["FROM %s:base" % repo, "COPY top/ /top/"],
                              "%s:%s" % (repo, version))
        shutil.rmtree(context)
    return ids
