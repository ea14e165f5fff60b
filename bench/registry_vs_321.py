#!/usr/bin/env python3
"""Benchmark `arv keepdocker docker://...` against what a user does today.

    python bench/registry_vs_321.py [--repeat N] [--size-mib 1024] [--write-results]

Today, without a registry source: ``docker pull`` into a Docker engine (20.10,
classic store; a fresh engine for every run, so the pull is real), then
arv-keepdocker 3.2.1 (from PyPI, in ``bench/.venv-321``). Ours: one command,
``arv keepdocker docker://127.0.0.1:PORT/NAME:TAG``, no engine. Both on the same
loopback registry (``docker-registry``, distribution 2.8) and local cluster:

1. first upload of v1, a 3-layer image (7/16, 8/16 and 1/16 of ``--size-mib``
   of random data, pushed to the registry by Docker, so gzip layers): wall
   time, ratio target at most 0.4;
2. v2, sharing all but its top layer (1/16: 64 MiB of 1 GiB) with v1, which the
   same tool stored: wall time (target ratio at most 0.08), bytes downloaded
   from the registry (target at most 1.1 x that layer plus manifest and
   config), bytes added to Keep (at most 1.1 x that layer);
3. resources of scenario 1: peak memory (target under 300 MiB) and extra disk
   (under 64 MiB).

Prints a table of medians and ratios; ``--write-results`` records it in
``bench/RESULTS.md`` under ``## docker:// vs docker pull + arv-keepdocker 3.2.1``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "testkit"))
sys.path.insert(0, str(HERE))

from arv_keepdocker_testkit.cluster import Cluster  # noqa: E402
from arv_keepdocker_testkit.engines import DockerEngine, Registry, docker_command  # noqa: E402
from keepdocker_vs_321 import _interrupt as interrupt  # noqa: E402
from keepdocker_vs_321 import (  # noqa: E402
    code_version,
    compile_ours,
    copy_cluster_dir,
    ensure_seed_venv,
    keep_files,
    log,
    machine,
    markdown_table,
    text_table,
    verdict,
)
from randimages import LayerPlan, build_images  # noqa: E402
from resultsfile import replace_section  # noqa: E402
from runmeasure import RunResult, run_measured  # noqa: E402

SECTION = "## docker:// vs docker pull + arv-keepdocker 3.2.1"
REPO_NAME = "akd-bench/reg"
OURS, SEED = "ours", "pull + 3.2.1"
MIB = 1 << 20


class Run:
    def __init__(self, scenario: str, tool: str, result: RunResult, keep_added: int,
                 downloaded: int | None):
        self.scenario, self.tool, self.result = scenario, tool, result
        self.keep_added, self.downloaded = keep_added, downloaded

    @property
    def ok(self) -> bool:
        return self.result.ok


def downloaded_bytes(stderr: str) -> int | None:
    """The last ``--batch-progress`` line's ``<n> downloaded``."""
    for line in reversed(stderr.splitlines()):
        words = line.split()
        if "downloaded" in words:
            return int(words[words.index("downloaded") - 1])
    return None


class Bench:
    def __init__(self, args, work: Path, seed_tool: Path):
        self.args, self.work, self.seed_tool = args, work, seed_tool
        self.plan = LayerPlan.for_total(args.size_mib)
        self.builder = DockerEngine(str(work / "b"))
        self.registry = Registry(str(work / "r"))
        self.logs = work / "logs"
        self.logs.mkdir()
        self.runs: list[Run] = []
        self.counter = 0
        self.snapshots: dict[str, Path] = {}

    def setup(self) -> None:
        self.registry.start()
        self.builder.start()
        log("building and pushing %s:v1 and :v2 to %s" % (REPO_NAME, self.registry.address))
        build_images(self.builder, str(self.work), self.plan, REPO_NAME)
        for tag in ("v1", "v2"):
            remote = "%s/%s:%s" % (self.registry.address, REPO_NAME, tag)
            self.builder.docker("tag", "%s:%s" % (REPO_NAME, tag), remote)
            self.builder.docker("push", remote)
        self.builder.stop()
        shutil.rmtree(self.builder.dir, ignore_errors=True)
        template = self.work / "c-empty"
        Cluster(template).start().stop()
        self.template = template

    def close(self) -> None:
        self.registry.stop()

    def reference(self, tag: str) -> str:
        return "%s/%s:%s" % (self.registry.address, REPO_NAME, tag)

    def env(self, cluster: Cluster, rundir: Path, docker_host: str | None):
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("ARVADOS_", "DOCKER_", "XDG_"))
               and key not in ("HOME", "TMPDIR", "PYTHONPATH")}
        env.update(cluster.env("alice"))
        home = rundir / "home"
        (home / ".cache").mkdir(parents=True)
        (rundir / "tmp").mkdir()
        env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
                   TMPDIR=str(rundir / "tmp"), PYTHONPATH=str(REPO))
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        return env

    def run(self, scenario: str, tool: str, cluster: Cluster, tag: str) -> Run:
        self.counter += 1
        rundir = self.work / ("run%03d" % self.counter)
        rundir.mkdir()
        engine = None
        if tool == SEED:
            # A fresh engine, so the pull really downloads: started before the clock.
            engine = DockerEngine(str(self.work / ("e%03d" % self.counter)))
            engine.start()
            argv = ["sh", "-c", '"$1" pull "$2" >/dev/null && exec "$3" --batch-progress "$4" '
                    '"$5"', "sh", shutil.which(docker_command()), self.reference(tag),
                    str(self.seed_tool), "%s/%s" % (self.registry.address, REPO_NAME), tag]
        else:
            argv = [sys.executable, "-m", "arv_keepdocker_plugin", "--batch-progress",
                    "--src-tls-verify=false", "docker://" + self.reference(tag)]
        before = keep_files(cluster.dir)
        try:
            result = run_measured(argv, self.env(cluster, rundir, engine and engine.host),
                                  str(self.logs / ("run%03d" % self.counter)),
                                  watch=[str(rundir)])
        finally:
            if engine is not None:
                engine.stop()
                shutil.rmtree(engine.dir, ignore_errors=True)
        after = keep_files(cluster.dir)
        added = sum(size for path, size in after.items() if path not in before)
        run = Run(scenario, tool, result, added,
                  downloaded_bytes(result.stderr) if tool == OURS else None)
        self.runs.append(run)
        shutil.rmtree(rundir, ignore_errors=True)
        log("%s %-12s %7.2f s  keep +%7.1f MiB  downloaded %s  rss %6.1f MiB  disk +%6.1f MiB"
            "  %s" % (scenario, tool, result.wall, added / MIB,
                      "-" if run.downloaded is None else "%.1f MiB" % (run.downloaded / MIB),
                      result.tree_rss / MIB, result.extra_disk / MIB,
                      "ok" if result.ok else "FAILED: " + result.stderr.strip()[-300:]))
        return run

    def cluster_from(self, source: Path, name: str) -> Cluster:
        target = self.work / name
        copy_cluster_dir(source, target)
        return Cluster(target).start()

    def orders(self):
        for number in range(self.args.repeat):
            yield number, ((OURS, SEED) if number % 2 == 0 else (SEED, OURS))

    def scenario1(self) -> None:
        log("scenario 1: first upload of v1 (a fresh cluster per run)")
        for number, tools in self.orders():
            for tool in tools:
                cluster = self.cluster_from(self.template, "c1-%s-%d" % (tool[:4], number))
                run = self.run("1", tool, cluster, "v1")
                cluster.stop()
                if run.ok:
                    previous = self.snapshots.pop(tool, None)
                    if previous is not None:
                        shutil.rmtree(previous, ignore_errors=True)
                    self.snapshots[tool] = cluster.dir
                else:
                    shutil.rmtree(cluster.dir, ignore_errors=True)

    def scenario2(self) -> None:
        log("scenario 2: v2 with v1 stored by the same tool")
        for number, tools in self.orders():
            for tool in tools:
                if tool not in self.snapshots:
                    continue
                cluster = self.cluster_from(self.snapshots[tool], "c2-%s-%d" % (tool[:4],
                                                                                 number))
                self.run("2", tool, cluster, "v2")
                cluster.stop()
                shutil.rmtree(cluster.dir, ignore_errors=True)


def median(runs: list[Run], scenario: str, tool: str, value) -> float | None:
    values = [value(run) for run in runs if run.scenario == scenario and run.tool == tool
              and run.ok and value(run) is not None]
    return statistics.median(values) if values else None


def rows(bench: Bench) -> list[list[str]]:
    runs, layer = bench.runs, bench.plan.top * MIB
    out: list[list[str]] = []

    def wall_row(label, scenario, limit):
        ours = median(runs, scenario, OURS, lambda r: r.result.wall)
        seed = median(runs, scenario, SEED, lambda r: r.result.wall)
        ratio = ours / seed if ours and seed else None
        out.append([label, "wall time (s)", "-" if ours is None else "%.2f" % ours,
                    "-" if seed is None else "%.2f" % seed,
                    "-" if ratio is None else "%.2f" % ratio, "ratio <= %s" % limit,
                    verdict(ratio, limit)])

    def bytes_row(label, scenario, name, value, limit=None, target="", strict=False):
        ours = median(runs, scenario, OURS, value)
        seed = median(runs, scenario, SEED, value)
        out.append([label, name, "-" if ours is None else "%.1f" % (ours / MIB),
                    "-" if seed is None else "%.1f" % (seed / MIB), "", target,
                    verdict(ours, limit, strict) if limit is not None else ""])

    s1 = "1 first upload (%d MiB)" % bench.plan.total
    wall_row(s1, "1", 0.4)
    bytes_row(s1, "1", "Keep bytes added (MiB)", lambda r: r.keep_added)
    bytes_row(s1, "1", "downloaded (MiB)", lambda r: r.downloaded)
    s2 = "2 new version (top %d MiB new)" % bench.plan.top
    wall_row(s2, "2", 0.08)
    bytes_row(s2, "2", "downloaded (MiB)", lambda r: r.downloaded, 1.1 * layer + MIB,
              "ours <= %.1f" % (1.1 * bench.plan.top + 1))
    bytes_row(s2, "2", "Keep bytes added (MiB)", lambda r: r.keep_added, 1.1 * layer,
              "ours <= %.1f" % (1.1 * bench.plan.top))
    s3 = "3 resources, first upload"
    bytes_row(s3, "1", "peak RSS, tree (MiB)", lambda r: r.result.tree_rss, 300 * MIB,
              "ours < 300", True)
    bytes_row(s3, "1", "peak extra disk (MiB)", lambda r: r.result.extra_disk, 64 * MIB,
              "ours < 64", True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args(argv)
    command = "python bench/registry_vs_321.py --repeat %d --size-mib %d%s" % (
        args.repeat, args.size_mib, " --write-results" if args.write_results else "")
    signal.signal(signal.SIGTERM, interrupt)
    seed_tool = ensure_seed_venv()
    compile_ours()
    work = Path(tempfile.mkdtemp(prefix="akd-bench-reg-", dir="/tmp"))
    bench = Bench(args, work, seed_tool)
    started = time.monotonic()
    try:
        bench.setup()
        bench.scenario1()
        bench.scenario2()
    finally:
        bench.close()
        shutil.rmtree(work, ignore_errors=True)
    table = rows(bench)
    print(text_table(table))
    notes = "\n".join("- " + line for line in [
        "Image: 3 COPY layers of random data, %d + %d + %d MiB (v1), pushed by Docker 20.10 "
        "to a loopback docker-registry (gzip layers); v2 differs in the top layer only."
        % (bench.plan.base0, bench.plan.base1, bench.plan.top),
        "Today's way: a fresh Docker 20.10 engine per run (started before the clock), "
        "`docker pull` then arv-keepdocker 3.2.1, timed together. Ours: `arv keepdocker "
        "--src-tls-verify=false docker://...`, no engine. Both with a private HOME and TMPDIR "
        "per run; scenario 1 on a fresh copy of an empty cluster, scenario 2 on a copy of the "
        "cluster where the same tool stored v1.",
        "Downloaded: ours' own count of bytes received from the registry (manifests, config "
        "and blobs, restarts included), from its last `--batch-progress` line.",
        "Per-run wall times (s): " + "; ".join(
            "%s %s: %s" % (scenario, tool, ", ".join(
                "%.2f" % r.result.wall if r.ok else "fail" for r in bench.runs
                if r.scenario == scenario and r.tool == tool))
            for scenario in ("1", "2") for tool in (OURS, SEED)) + ".",
    ])
    print(notes)
    log("total %.0f s" % (time.monotonic() - started))
    if args.write_results:
        body = "\n\n".join([
            "Command: `%s`" % command,
            "Date: %s. Machine: %s. Code: %s; arv-keepdocker 3.2.1 from PyPI in bench/.venv-321."
            % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), machine(), code_version()),
            markdown_table(table), notes])
        replace_section(str(HERE / "RESULTS.md"), SECTION, body)
    return 1 if any(not run.ok for run in bench.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
