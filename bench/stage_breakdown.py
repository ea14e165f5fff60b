#!/usr/bin/env python3
"""Where `arv keepdocker`'s time goes, stage by stage, on the engine, archive and registry paths.

    python bench/stage_breakdown.py [--size-mib 330] [--repeat 1]

Starts a private Docker engine, a loopback ``docker-registry`` and local
clusters under ``/tmp/akd-stages-*``, builds an image of three random layers
(``bench/randimages.py``), pushes it to the registry and saves it to a tar,
then runs this checkout with ``ARV_KEEPDOCKER_STAGE_TIMES`` set
(``arv_keepdocker_plugin/stagetimes.py``) on these paths:

* ``engine``: first upload from the engine (a fresh cluster);
* ``stored cold`` / ``stored warm``: the same image again, already stored,
  with an empty discovery cache, then with the cache the first of them left;
* ``archive``: first upload from ``docker-archive:`` (a fresh cluster);
* ``registry``: first upload from ``docker://`` (a fresh cluster, no engine).

For each it prints the wall time from spawn to exit, the process's CPU, the
start-up before the package's first module ran (interpreter, site, the
package's own ``__init__``), and per stage wall, CPU (of the thread that ran
it) and count, medians over ``--repeat`` runs; then the marks (export start,
first byte) in seconds after spawn. Stages overlap (Keep PUTs run in two
threads beside the stream) and do not add up to the wall time.
With ``--write-results`` the report replaces its section of
``bench/RESULTS.md``; everything started is stopped and every temporary
directory removed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
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

from arv_keepdocker_testkit.cluster import Cluster  # noqa: E402
from arv_keepdocker_testkit.engines import DockerEngine, Registry  # noqa: E402
from keepdocker_vs_321 import code_version, compile_ours, copy_cluster_dir, log, machine  # noqa: E402
from randimages import LayerPlan, build_images  # noqa: E402
from resultsfile import replace_section  # noqa: E402

SECTION = "## Where the time goes, stage by stage"

REPO_NAME = "akd-stages/img"
PATHS = ("engine", "stored cold", "stored warm", "archive", "registry")


class Run:
    """One measured run: wall from spawn to exit, and the run's stage record."""

    def __init__(self, path: str, wall: float, returncode: int, record: dict | None,
                 spawned: float, stderr: str):
        self.path, self.wall, self.returncode = path, wall, returncode
        self.record, self.spawned, self.stderr = record, spawned, stderr

    @property
    def startup(self) -> float | None:
        """Seconds from spawn until the package's stage clock started."""
        return None if self.record is None else self.record["start_unix"] - self.spawned


class StageBench:
    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        self.plan = LayerPlan.for_total(args.size_mib)
        self.engine = DockerEngine(str(work / "d"))
        self.registry = Registry(str(work / "r"))
        self.clusters: list[Cluster] = []
        self.runs: list[Run] = []
        self.counter = 0
        self.archive = work / "image.tar"

    def setup(self) -> None:
        log("starting a private Docker engine and a registry")
        self.engine.start()
        self.registry.start()
        log("building %s (layers %d + %d + %d MiB)" % (
            REPO_NAME, self.plan.base0, self.plan.base1, self.plan.top))
        build_images(self.engine, str(self.work), self.plan, REPO_NAME)
        self.engine.docker("save", "-o", str(self.archive), REPO_NAME + ":v1")
        self.remote = "%s/%s:v1" % (self.registry.address, REPO_NAME)
        self.engine.docker("tag", REPO_NAME + ":v1", self.remote)
        self.engine.docker("push", self.remote)
        self.template = self.work / "c-empty"
        Cluster(self.template).start().stop()

    def close(self) -> None:
        for cluster in self.clusters:
            cluster.stop()
        self.registry.stop()
        self.engine.stop()

    def fresh_cluster(self) -> Cluster:
        self.counter += 1
        target = self.work / ("c%03d" % self.counter)
        copy_cluster_dir(self.template, target)
        cluster = Cluster(target).start()
        self.clusters.append(cluster)
        return cluster

    def drop(self, cluster: Cluster) -> None:
        cluster.stop()
        self.clusters.remove(cluster)
        shutil.rmtree(cluster.dir, ignore_errors=True)

    def run(self, path: str, cluster: Cluster, home: Path, image_args: list[str],
            engine: bool = True) -> Run:
        times = self.work / ("times%03d.jsonl" % len(self.runs))
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("ARVADOS_", "DOCKER_", "XDG_"))
               and key not in ("HOME", "TMPDIR", "PYTHONPATH")}
        env.update(cluster.env("alice"), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
                   TMPDIR=str(home / "tmp"), PYTHONPATH=str(REPO),
                   ARV_KEEPDOCKER_STAGE_TIMES=str(times))
        if engine:
            env["DOCKER_HOST"] = self.engine.host
        else:  # no engine answers: a socket path that does not exist
            env["DOCKER_HOST"] = "unix://" + str(self.work / "no-engine.sock")
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        spawned = time.time()
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "arv_keepdocker_plugin", *image_args],
                                env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                text=True)
        wall = time.monotonic() - started
        record = None
        if times.exists():
            lines = times.read_text().splitlines()
            record = json.loads(lines[-1]) if lines else None
        run = Run(path, wall, result.returncode, record, spawned, result.stderr)
        self.runs.append(run)
        log("%-12s %6.2f s  %s" % (path, wall, "ok" if result.returncode == 0 else
                                   "FAILED: " + (result.stderr.strip().splitlines()
                                                 or ["-"])[-1][:200]))
        return run

    def measure(self) -> None:
        for _number in range(self.args.repeat):
            cluster = self.fresh_cluster()
            home = self.work / ("home%03d" % self.counter)
            self.run("engine", cluster, home, [REPO_NAME, "v1"])
            cold = self.work / ("home%03d-cold" % self.counter)
            self.run("stored cold", cluster, cold, [REPO_NAME, "v1"])
            self.run("stored warm", cluster, cold, [REPO_NAME, "v1"])
            self.drop(cluster)
            cluster = self.fresh_cluster()
            self.run("archive", cluster, self.work / ("home%03d" % self.counter),
                     ["docker-archive:%s" % self.archive])
            self.drop(cluster)
            cluster = self.fresh_cluster()
            self.run("registry", cluster, self.work / ("home%03d" % self.counter),
                     ["--src-tls-verify=false", "docker://" + self.remote], engine=False)
            self.drop(cluster)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else "%.*f" % (digits, value)


def report(runs: list[Run]) -> str:
    """One block per path: totals, then the stages by wall time."""
    blocks = []
    for path in PATHS:
        done = [run for run in runs if run.path == path and run.returncode == 0 and run.record]
        if not done:
            blocks.append("%s: no successful run" % path)
            continue
        lines = ["%s (%d run%s)" % (path, len(done), "" if len(done) == 1 else "s")]
        lines.append("  %-44s %8s %8s %6s" % ("", "wall s", "cpu s", "count"))
        totals = [
            ("total, spawn to exit", median([r.wall for r in done]),
             median([r.record["process_cpu"] for r in done]), None),
            ("start-up before the package (interpreter, site)",
             median([r.startup for r in done if r.startup is not None]), None, None),
        ]
        for name, wall, cpu, count in totals:
            lines.append("  %-44s %8s %8s %6s" % (name, fmt(wall), fmt(cpu), count or ""))
        stages: dict[str, list[dict]] = {}
        for run in done:
            for name, entry in run.record["stages"].items():
                stages.setdefault(name, []).append(entry)
        order = sorted(stages, key=lambda name: -median([e["wall"] for e in stages[name]]))
        for name in order:
            entries = stages[name]
            lines.append("  %-44s %8s %8s %6s" % (
                name[:44], fmt(median([e["wall"] for e in entries])),
                fmt(median([e["cpu"] for e in entries])),
                "%g" % median([e["count"] for e in entries])))
        marks: dict[str, list[float]] = {}
        for run in done:
            offset = run.startup or 0.0
            for name, at in run.record["marks"].items():
                marks.setdefault(name, []).append(at + offset)
        if marks:
            lines.append("  marks (s after spawn): " + ", ".join(
                "%s %s" % (name, fmt(median(values)))
                for name, values in sorted(marks.items(), key=lambda kv: median(kv[1]) or 0)))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _interrupt(_signum, _frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=330,
                        help="image size in MiB, three random layers (330)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per path (1)")
    parser.add_argument("--write-results", action="store_true",
                        help="record the report in bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.size_mib < 16:
        parser.error("--repeat must be >= 1 and --size-mib >= 16")
    signal.signal(signal.SIGTERM, _interrupt)
    compile_ours()
    work = Path(tempfile.mkdtemp(prefix="akd-stages-", dir="/tmp"))
    bench = StageBench(args, work)
    try:
        bench.setup()
        bench.measure()
    finally:
        bench.close()
        shutil.rmtree(work, ignore_errors=True)
    command = f"python bench/stage_breakdown.py --size-mib {args.size_mib} --repeat {args.repeat}"
    table = report(bench.runs).rstrip("\n")
    print(f"Image: {bench.plan.total} MiB in three random layers; command: {command}")
    print()
    print(table)
    if args.write_results:
        when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        body = (f"Command: `{command} --write-results`\n\nDate: {when}. Machine: {machine()}. "
                f"Code: {code_version()}.\n\n```\n{table}\n```")
        replace_section(str(Path(__file__).resolve().parent / "RESULTS.md"), SECTION, body)
    return 1 if any(run.returncode != 0 for run in bench.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
