#!/usr/bin/env python3
"""What a compressed docker-archive costs: 1 GiB image as a plain, gzip and xz tar.

    python bench/compressed_archives.py [--size-mib 1024] [--repeat 1] [--write-results]

A compressed archive is decompressed once: stored while the image is learnt
(arv_keepdocker_plugin/steps/one_pass.py). This measures, in one run on one
local cluster per kind, against the same image as a plain tar (the baseline):

1. first upload of v1 from ``image.tar``, ``image.tar.gz`` and ``image.tar.xz``
   (a fresh cluster each, so each really uploads), with its CPU time;
2. a new version v2 (all but its top 1/16 shared with v1) from each, with v1
   already stored by the same command: stored layers are decompressed but not
   uploaded;
3. v1 again (already stored): one decompressing pass, no block PUT (counted
   off the cluster's Keep directory: every PUT replaces its block's file);
and ``gzip -dc`` / ``xz -dc`` of the archive to /dev/null alone (wall and CPU).

Issue 19's targets, checked in the table: (1) compressed first upload <= 1.15x
the larger of (decompressing alone, the plain first upload); the CPU floor on
2 cores, (decompression CPU + the plain upload's CPU) / 2, and whether the
upload is within 1.1x of it; (3) no PUT and <= decompressing alone + 0.5 s;
(2) no slower and no more Keep bytes than the plain archive.

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


def layer_files(workdir: Path, size_mib: int) -> dict[str, str]:
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
            files[f"{name}/part{n}.bin"] = mixed_bytes(rng, chunk)
            left -= chunk
            n += 1
        path = workdir / (name + ".layer.tar")
        path.write_bytes(ib.layer_tar(files))
        paths[name] = str(path)
        del files
    return paths


def archives(workdir: Path, layers: dict[str, str]) -> dict[str, dict[str, str]]:
    """``{version: {kind: path}}`` for v1 and v2 as plain, gzip and xz docker-archives."""
    out: dict[str, dict[str, str]] = {}
    for version, top in (("v1", "top1"), ("v2", "top2")):
        image = ib.build_image([layers["base0"], layers["base1"], layers[top]],
                               repo_tags=["akd-bench/compressed:" + version])
        plain = workdir / f"{version}.tar"
        ib.write_docker_archive(str(plain), [image])
        out[version] = {"plain": str(plain)}
        for kind in ("gzip", "xz"):
            path = str(plain) + SUFFIX[kind]
            with open(path, "wb") as f:
                subprocess.run(KINDS[kind] + [str(plain)], stdout=f, check=True)
            out[version][kind] = path
    return out


def keep_blocks(cluster_dir: str) -> dict[str, tuple[int, int]]:
    """``{block file: (inode, size)}``: a PUT replaces the file (a new inode)."""
    out = {}
    for root, _dirs, files in os.walk(os.path.join(cluster_dir, "keep")):
        for name in files:
            if not name.startswith(".tmp"):
                st = os.stat(os.path.join(root, name))
                out[os.path.join(root, name)] = (st.st_ino, st.st_size)
    return out


def keep_bytes(cluster_dir: str) -> int:
    return sum(size for _ino, size in keep_blocks(cluster_dir).values())


def upload(cluster, path: str, tmp: str, label: str):
    home = tempfile.mkdtemp(prefix="home-", dir=tmp)
    env = dict(os.environ, HOME=home, XDG_CACHE_HOME=os.path.join(home, ".cache"),
               **cluster.env("alice"))
    env.pop("DOCKER_HOST", None)
    before = keep_blocks(cluster.dir)
    result = run_measured([sys.executable, "-m", "arv_keepdocker_plugin", "--no-progress",
                           "docker-archive:" + path], env, os.path.join(tmp, label),
                          watch=[home])
    if result.returncode != 0:
        raise SystemExit(f"{label} failed: {result.stderr[-2000:]}")
    after = keep_blocks(cluster.dir)
    puts = [path for path, (ino, _size) in after.items() if before.get(path, (0, 0))[0] != ino]
    added = sum(size for _ino, size in after.values()) - sum(
        size for _ino, size in before.values())
    return result, added, len(puts)


def decompress_alone(kind: str, path: str, *options: str) -> tuple[float, float]:
    """``(wall, CPU)`` seconds of ``gzip -dc`` (or ``xz -dc``) to /dev/null."""
    started = time.monotonic()
    with open(os.devnull, "wb") as null:
        process = subprocess.Popen([KINDS[kind][0], "-dc", *options, path], stdout=null)
        _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{KINDS[kind][0]} -dc {path} failed")
    return time.monotonic() - started, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="akd-bench-compressed-", dir="/tmp"))
    try:
        print(f"building the images ({args.size_mib} MiB)...", flush=True)
        paths = archives(tmp, layer_files(tmp, args.size_mib))
        figures: dict[str, list[float]] = {}

        def add(key, value):
            figures.setdefault(key, []).append(value)

        for repeat in range(args.repeat):
            for kind in KINDS:
                cluster = Cluster(tempfile.mkdtemp(prefix="c", dir=str(tmp)))
                cluster.start()
                try:
                    run1, _bytes1, _puts1 = upload(cluster, paths["v1"][kind], str(tmp),
                                                   kind + "-1")
                    run2, bytes2, _puts2 = upload(cluster, paths["v2"][kind], str(tmp),
                                                  kind + "-2")
                    run3, bytes3, puts3 = upload(cluster, paths["v1"][kind], str(tmp),
                                                 kind + "-3")
                finally:
                    cluster.stop()
                add((kind, "1"), run1.wall)
                add((kind, "cpu1"), run1.cpu)
                add((kind, "2"), run2.wall)
                add((kind, "3"), run3.wall)
                add((kind, "bytes2"), bytes2 / MIB)
                add((kind, "bytes3"), bytes3 / MIB)
                add((kind, "puts3"), puts3)
                add((kind, "rss"), max(run1.tree_rss, run2.tree_rss, run3.tree_rss) / MIB)
                if kind != "plain":
                    wall, cpu = decompress_alone(kind, paths["v1"][kind])
                    add((kind, "alone"), wall)
                    add((kind, "alone_cpu"), cpu)
                    if kind == "xz":  # on every core, as the upload decompresses it
                        add((kind, "alone_threaded"), decompress_alone(kind, paths["v1"][kind],
                                                                       "-T0")[0])
            print(f"repeat {repeat + 1} done", flush=True)
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
        f"Command: `python bench/compressed_archives.py --size-mib {args.size_mib} --repeat "
        f"{args.repeat} "
        "--write-results`",
        "",
        "Date: {}. Machine: nproc {}, Python {}, {}. One local cluster per kind; the image "
        "of {} MiB in three layers (7/16, 8/16, 1/16), half random bytes, half text. "
        "Medians of {}.".format(
            datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), os.cpu_count(),
            platform.python_version(), platform.platform(), args.size_mib, args.repeat),
        "",
        "First upload (1):",
        "",
        "| archive | size (MiB) | first upload (s) | CPU (s) | ratio to plain | decompress "
        "alone (s) | target: 1.15 x max(alone, plain) (s) | met | CPU floor on 2 cores (s) "
        "| ratio to floor (target 1.1) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    plain1, plain_cpu = med[("plain", "1")], med[("plain", "cpu1")]
    for kind in KINDS:
        first = med[(kind, "1")]
        if kind == "plain":
            lines.append("| plain | {:.0f} | {:.2f} | {:.2f} | 1.00 | - | - | - | - | - | {:.0f} |"
                         .format(sizes[kind], first, med[(kind, "cpu1")], med[(kind, "rss")]))
            continue
        target = 1.15 * max(med[(kind, "alone")], plain1)
        floor = (med[(kind, "alone_cpu")] + plain_cpu) / 2
        # Where the CPU floor is above the target, 1.1x the floor is the target.
        met = first <= target or (floor > target and first <= 1.1 * floor)
        lines.append("| {} | {:.0f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {} | {:.2f} "
                     "| {:.2f} | {:.0f} |".format(
                         kind, sizes[kind], first, med[(kind, "cpu1")], first / plain1,
                         med[(kind, "alone")], target, "yes" if met else "**no**",
                         floor, first / floor, med[(kind, "rss")]))
    lines += [
        "",
        "New version (2) and already stored (3):",
        "",
        "| archive | 2 new version (s) | ratio to plain | 2 Keep bytes added (MiB) "
        "| 3 already stored (s) | 3 target: alone + 0.5 s | 3 block PUTs | 3 Keep bytes added "
        "(MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        alone = med.get((kind, "alone"))
        lines.append("| {} | {:.2f} | {:.2f} | {:.1f} | {:.2f} | {} | {:.0f} | {:.1f} |".format(
            kind, med[(kind, "2")], med[(kind, "2")] / med[("plain", "2")],
            med[(kind, "bytes2")], med[(kind, "3")],
            "-" if alone is None else "{:.2f} ({})".format(
                alone + 0.5, "met" if med[(kind, "3")] <= alone + 0.5 else "**not met**"),
            med[(kind, "puts3")], med[(kind, "bytes3")]))
    lines += [
        "",
        "- A compressed archive is decompressed once (steps/one_pass.py): blocks are stored "
        "as the stream passes, the image is learnt on the way, and the blocks become a "
        "collection only once it is known to be new. The CPU floor is what decompressing "
        "and uploading cost together spread over 2 cores; where it is above the wall-clock "
        "target, the upload is held to 1.1x of it instead.",
        "- \"decompress alone\" is `gzip -dc` / `xz -dc` (one thread, XZ Utils 5.4's "
        "default). The upload decompresses xz with `xz -d -T0` where XZ Utils >= 5.4 is "
        "installed (archive/xz_threads.py): that alone takes {:.2f} s here, so against "
        "it the xz first upload is {:.2f}x max(threaded alone, plain).".format(
            med[("xz", "alone_threaded")],
            med[("xz", "1")] / max(med[("xz", "alone_threaded")], plain1)),
        "- Scenarios 2 and 3: layers already stored are decompressed and hashed, and their "
        "blocks recognised by md5 (a compressed archive cannot skip a layer unread); blocks "
        "outside layers are held back until the image is known, so an image stored already "
        "PUTs nothing.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
