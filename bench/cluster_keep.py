#!/usr/bin/env python3
"""Keep throughput of the local cluster, measured with the real Arvados SDK and arv-put.

Run:  python bench/cluster_keep.py [--blocks 16] [--runs 3] [--put-gib 1]

Starts a private cluster in a temporary directory (stopped and removed at the
end) and prints:

(a) ``KeepClient.put`` of 64 MiB blocks from two threads over HTTPS, distinct
    random data per run, prepared before timing; the median of ``--runs``;
(b) ``KeepClient.get`` of the same blocks from two threads (median);
(c) ``arv-put`` of a ``--put-gib`` GiB file, end to end (process start to
    collection saved), wall time and MB/s (1 MB = 10^6 bytes).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import arvados
from arv_keepdocker_testkit.cluster import Cluster

MiB = 1 << 20
BLOCK = 64 * MiB


def two_threads(items, work):
    """Run ``work(item)`` over ``items`` split between two threads; return wall seconds."""
    errors = []

    def worker(part):
        try:
            for item in part:
                work(item)
        except Exception as err:  # reported after join
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(items[i::2],)) for i in range(2)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def make_blocks(count, run):
    """``count`` distinct 64 MiB blocks (urandom, stamped so no two runs share a block)."""
    base = bytearray(os.urandom(BLOCK))
    blocks = []
    for index in range(count):
        base[:16] = b"%08d%08d" % (run, index)
        blocks.append(bytes(base))
    return blocks


def keep_run(keep, blocks_per_run, run):
    """One run of (a) and (b): put fresh blocks, then get them; return (put MB/s, get MB/s).

    The blocks are local to this call, so they are freed when it returns, before
    the next run makes its own.
    """
    blocks = make_blocks(blocks_per_run, run)
    total = len(blocks) * BLOCK
    locators = [None] * len(blocks)

    def put(index):
        locators[index] = keep.put(blocks[index], copies=2)

    seconds = two_threads(list(range(len(blocks))), put)
    put_rate = total / seconds / 1e6

    def get(index):
        if len(keep.get(locators[index])) != BLOCK:
            raise AssertionError("short read")

    keep.block_cache.cache_max = 0  # measure the server, not the client's cache
    seconds = two_threads(list(range(len(blocks))), get)
    get_rate = total / seconds / 1e6
    return put_rate, get_rate


def bench_keep(cluster, blocks_per_run, runs):
    keep = arvados.KeepClient(api_client=cluster.api("alice"), num_retries=0)
    put_rates, get_rates = [], []
    for run in range(runs):
        put_rate, get_rate = keep_run(keep, blocks_per_run, run)
        put_rates.append(put_rate)
        get_rates.append(get_rate)
        print("  run %d: put %.0f MB/s, get %.0f MB/s" % (run + 1, put_rate, get_rate),
              flush=True)
    return statistics.median(put_rates), statistics.median(get_rates)


def bench_arv_put(cluster, workdir, gib):
    path = os.path.join(workdir, "arv-put-input.bin")
    size = int(gib * 1024 * MiB)
    base = bytearray(os.urandom(MiB))
    with open(path, "wb") as out:
        for index in range(size // MiB):
            base[:8] = b"%08d" % index
            out.write(base)
    home = os.path.join(workdir, "home")
    os.makedirs(home, exist_ok=True)
    env = dict(os.environ, HOME=home, XDG_CACHE_HOME=os.path.join(home, ".cache"))
    env = {k: v for k, v in env.items() if not k.startswith("ARVADOS_")}
    env.update(cluster.env("alice"))
    started = time.perf_counter()
    done = subprocess.run(["arv-put", "--no-progress", path],
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit("arv-put failed: %s" % done.stderr.strip()[-500:])
    os.unlink(path)
    return size, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=16,
                        help="64 MiB blocks per run (default 16)")
    parser.add_argument("--runs", type=int, default=3, help="runs for the median (default 3)")
    parser.add_argument("--put-gib", type=float, default=1.0,
                        help="arv-put file size in GiB (default 1)")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="akd-bench-keep-")
    cluster = Cluster(os.path.join(workdir, "cluster"))
    try:
        cluster.start()
        print("cluster at https://%s/, %d CPUs, python %s" % (
            cluster.api_host, os.cpu_count(), sys.version.split()[0]), flush=True)
        print("(a)+(b) KeepClient, two threads, %d x 64 MiB per run:" % args.blocks, flush=True)
        put_rate, get_rate = bench_keep(cluster, args.blocks, args.runs)
        print("  median of %d: put %.0f MB/s, get %.0f MB/s" % (args.runs, put_rate, get_rate),
              flush=True)
        size, seconds = bench_arv_put(cluster, workdir, args.put_gib)
        print("(c) arv-put of %.2f GiB: %.2f s wall, %.0f MB/s"
              % (size / 1024 / MiB, seconds, size / seconds / 1e6))
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
