#!/usr/bin/env python3
"""What a compressed docker-archive costs: 1 GiB image as a plain, gzip and xz tar.

    python bench/compressed_archives.py [--size-mib 1024] [--repeat 1] [--write-results]

A compressed archive is read twice (the first pass learns the image, the second
streams it; see arv_keepdocker_plugin/archive/streamed.py). This measures, in
one run on one local cluster, against the same image as a plain tar (the
baseline):

1. first upload of v1 from ``image.tar``, ``image.tar.gz`` and ``image.tar.xz``
   (a fresh cluster each, so each really uploads);
2. a new version v2 (all but its top 1/16 shared with v1) from each, with v1
   already stored by the same command: stored layers are decompressed but not
   uploaded;
3. v1 again (already stored): one decompressing pass and nothing uploaded;
and, for scale, ``gzip -dc`` / ``xz -dc`` of the archive to /dev/null alone.

The layers are mixed data (half seeded random bytes, half repetitive text), so
gzip and xz shrink them about as they shrink real software. Prints a table;
``--write-results`` records it in bench/RESULTS.md under
``## Compressed archives``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "testkit"))
sys.path.insert(0, str(HERE))

from arv_keepdocker_testkit import imagebuild as ib  # noqa: E402
from arv_keepdocker_testkit.cluster import Cluster  # noqa: E402
from resultsfile import replace_section  # noqa: E402
from runmeasure import run_measured  # noqa: E402

SECTION = "## Compressed archives"
MIB = 1 << 20
KINDS = {"plain": None, "gzip": ["gzip", "-1", "-c"], "xz": ["xz", "-T2", "-1", "-c"]}
SUFFIX = {"plain": "", "gzip": ".gz", "xz": ".xz"}


def mixed_bytes(rng: random.Random, size: int) -> bytes:
    """Half incompressible, half repetitive text, in 1 MiB pieces."""
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
             for _ in range(2000)]
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(MIB // 2)
        out += b" ".join(rng.choice(words) for _ in range(MIB // 12))[:MIB // 2]
    return bytes(out[:size])


def layer_files(workdir: Path, size_mib: int) -> Dict[str, str]:
    """Layer tars on disk: base0 7/16, base1 8/16, top-v1 and top-v2 1/16 each."""
    rng = random.Random(20261130)
    sizes = {"base0": size_mib * 7 // 16, "base1": size_mib * 8 // 16,
             "top1": size_mib // 16, "top2": size_mib // 16}
    paths = {}
    for name, mib in sizes.items():
        files = {}
        left = mib * MIB
        n = 0
        while left:
            chunk = min(left, 64 * MIB)
            files["{}/part{}.bin".format(name, n)] = mixed_bytes(rng, chunk)
            left -= chunk
            n += 1
        path = workdir / (name + ".layer.tar")
        path.write_bytes(ib.layer_tar(files))
        paths[name] = str(path)
        del files
    return paths


def archives(workdir: Path, layers: Dict[str, str]) -> Dict[str, Dict[str, str]]:
    """``{version: {kind: path}}`` for v1 and v2 as plain, gzip and xz docker-archives."""
    out: Dict[str, Dict[str, str]] = {}
    for version, top in (("v1", "top1"), ("v2", "top2")):
        image = ib.build_image([layers["base0"], layers["base1"], layers[top]],
                               repo_tags=["akd-bench/compressed:" + version])
        plain = workdir / "{}.tar".format(version)
        ib.write_docker_archive(str(plain), [image])
        out[version] = {"plain": str(plain)}
        for kind in ("gzip", "xz"):
            path = str(plain) + SUFFIX[kind]
            with open(path, "wb") as f:
                subprocess.run(KINDS[kind] + [str(plain)], stdout=f, check=True)
            out[version][kind] = path
    return out


def keep_bytes(cluster_dir: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(os.path.join(cluster_dir, "keep")):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def upload(cluster, path: str, tmp: str, label: str):
    home = tempfile.mkdtemp(prefix="home-", dir=tmp)
    env = dict(os.environ, HOME=home, XDG_CACHE_HOME=os.path.join(home, ".cache"),
               **cluster.env("alice"))
    env.pop("DOCKER_HOST", None)
    before = keep_bytes(cluster.dir)
    result = run_measured([sys.executable, "-m", "arv_keepdocker_plugin", "--no-progress",
                           "docker-archive:" + path], env, os.path.join(tmp, label),
                          watch=[home])
    if result.returncode != 0:
        raise SystemExit("{} failed: {}".format(label, result.stderr[-2000:]))
    return result, keep_bytes(cluster.dir) - before


def decompress_alone(kind: str, path: str) -> float:
    started = time.monotonic()
    with open(os.devnull, "wb") as null:
        subprocess.run([KINDS[kind][0], "-dc", path], stdout=null, check=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="akd-bench-compressed-", dir="/tmp"))
    try:
        print("building the images ({} MiB)...".format(args.size_mib), flush=True)
        paths = archives(tmp, layer_files(tmp, args.size_mib))
        figures: Dict[str, List[float]] = {}

        def add(key, value):
            figures.setdefault(key, []).append(value)

        for repeat in range(args.repeat):
            for kind in KINDS:
                cluster = Cluster(tempfile.mkdtemp(prefix="c", dir=str(tmp)))
                cluster.start()
                try:
                    run1, bytes1 = upload(cluster, paths["v1"][kind], str(tmp), kind + "-1")
                    run2, bytes2 = upload(cluster, paths["v2"][kind], str(tmp), kind + "-2")
                    run3, bytes3 = upload(cluster, paths["v1"][kind], str(tmp), kind + "-3")
                finally:
                    cluster.stop()
                add((kind, "1"), run1.wall)
                add((kind, "2"), run2.wall)
                add((kind, "3"), run3.wall)
                add((kind, "bytes2"), bytes2 / MIB)
                add((kind, "bytes3"), bytes3 / MIB)
                add((kind, "rss"), max(run1.tree_rss, run2.tree_rss) / MIB)
                if kind != "plain":
                    add((kind, "alone"), decompress_alone(kind, paths["v1"][kind]))
            print("repeat {} done".format(repeat + 1), flush=True)
        sizes = {kind: os.path.getsize(paths["v1"][kind]) / MIB for kind in KINDS}
        text = render(figures, sizes, args)
        print(text)
        if args.write_results:
            replace_section(str(HERE / "RESULTS.md"), SECTION, text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def render(figures, sizes, args) -> str:
    med = {key: statistics.median(values) for key, values in figures.items()}
    lines = [
        "Command: `python bench/compressed_archives.py --size-mib {} --repeat {} "
        "--write-results`".format(args.size_mib, args.repeat),
        "",
        "Date: {}. Machine: nproc {}, Python {}, {}. One local cluster per kind; the image "
        "of {} MiB in three layers (7/16, 8/16, 1/16), half random bytes, half text.".format(
            datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), os.cpu_count(),
            platform.python_version(), platform.platform(), args.size_mib),
        "",
        "| archive | size (MiB) | 1 first upload (s) | ratio to plain | 2 new version (s) "
        "| ratio | 2 Keep bytes added (MiB) | 3 already stored (s) | decompress alone (s) "
        "| peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        lines.append("| {} | {:.0f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.1f} | {:.2f} | {} "
                     "| {:.0f} |".format(
                         kind, sizes[kind], med[(kind, "1")],
                         med[(kind, "1")] / med[("plain", "1")],
                         med[(kind, "2")], med[(kind, "2")] / med[("plain", "2")],
                         med[(kind, "bytes2")], med[(kind, "3")],
                         "{:.2f}".format(med[(kind, "alone")]) if (kind, "alone") in med else "-",
                         med[(kind, "rss")]))
    lines += [
        "",
        "- A compressed archive is decompressed twice for a new image (once to learn the "
        "image, once to store it): roughly twice `decompress alone` plus the upload of the "
        "plain tar. An image already stored (3) costs one decompressing pass and no upload.",
        "- Scenario 2: layers already stored are decompressed and hashed, and their blocks "
        "recognised by md5 (a compressed archive cannot skip a layer unread): Keep bytes "
        "added stay the new layer's.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
