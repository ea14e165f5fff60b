#!/usr/bin/env python3
"""Benchmark `arv keepdocker` (this checkout) against arv-keepdocker 3.2.1.

    python bench/keepdocker_vs_321.py [--repeat N] [--size-mib 1024] [--mid-mib 330]
                                      [--write-results]

Installs arvados-python-client 3.2.1 into ``bench/.venv-321`` (reused when
present), starts a private Docker engine and private local clusters under
``/tmp/akd-bench-*``, builds a 3-layer image v1 and a v2 that shares all but
its top layer (COPY-only, random data), then runs both tools alternately:

1. first upload of v1 (a fresh cluster per run), with two floors: ``docker
   save > /dev/null`` and 3.2.1's ``arv-put`` of the saved tar;
   1m. the same for a second image of ``--mid-mib`` (330 MiB: three random
   layers, about the size issue 19 measured);
2. upload of v2 from the engine with v1 already stored (by the same tool);
   2b. ours only: v2 from ``docker-archive:`` (its ``docker save`` tar on disk);
3. v1 again, already stored (no upload expected), each run with an empty
   discovery cache; 3w: the same with the cache a first, unmeasured run left;
   3c. v1 already stored in alice's project by a colleague (bob, who may write
   there, uploaded it with this checkout): alice's first run, then her second;
4. peak memory and peak extra disk, from scenario 1.

Prints a table of medians and ratios (ours / 3.2.1) against the issue's
targets; ``--write-results`` records it in ``bench/RESULTS.md`` under
``## keepdocker vs arv-keepdocker 3.2.1``. Everything started is stopped and
every temporary directory removed at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
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
from arv_keepdocker_testkit.engines import DockerEngine, docker_command  # noqa: E402
from randimages import LayerPlan, build_images  # noqa: E402
from resultsfile import replace_section  # noqa: E402
from runmeasure import RunResult, run_measured  # noqa: E402

SECTION = "## keepdocker vs arv-keepdocker 3.2.1"
VENV = HERE / ".venv-321"
SEED_VERSION = "3.2.1"
REPO_NAME = "akd-bench/img"
OURS, SEED, FLOOR = "ours", "3.2.1", "docker save"
#: Scenario 1's second floor: 3.2.1's arv-put of the image's saved tar.
PUT_FLOOR = "arv-put"
MID_NAME = "akd-bench/mid"
#: Scenario 3's floor: the Arvados SDK's import, which both tools pay before any work.
IMPORT_FLOOR = "import arvados"
MIB = 1 << 20


# -- the 3.2.1 environment ----------------------------------------------------------

def compile_ours() -> None:
    """Byte-compile this checkout, as ``pip install`` does for 3.2.1's venv.

    Our package is installed editable, so with PYTHONDONTWRITEBYTECODE set (as
    on these machines) every run would recompile it from source while 3.2.1
    loads the .pyc files pip wrote at install time.
    """
    import compileall
    for package in [REPO / "arv_keepdocker_plugin"] + sorted((REPO / "hooks").glob("*/")):
        compileall.compile_dir(str(package), quiet=1)


def ensure_seed_venv() -> Path:
    """``bench/.venv-321/bin/arv-keepdocker`` of arvados-python-client 3.2.1 (installed once)."""
    python, tool = VENV / "bin" / "python", VENV / "bin" / "arv-keepdocker"
    probe = "import importlib.metadata as m; print(m.version('arvados-python-client'))"
    if python.exists() and tool.exists():
        found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip() == SEED_VERSION:
            return tool
    log("creating %s with arvados-python-client==%s" % (VENV, SEED_VERSION))
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q",
                    "arvados-python-client==" + SEED_VERSION], check=True)
    return tool


# -- small helpers -------------------------------------------------------------

def log(message: str) -> None:
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr, flush=True)


def keep_files(cluster_dir: Path) -> dict[str, int]:
    """``{relative path: size}`` of every block file under ``<cluster>/keep``."""
    root = cluster_dir / "keep"
    files = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            try:
                files[os.path.relpath(path, root)] = os.stat(path).st_size
            except OSError:
                pass
    return files


def copy_cluster_dir(source: Path, target: Path) -> None:
    """Copy a stopped cluster's directory; Keep blocks are hard links (never rewritten)."""
    def copy(src, dst):
        if os.sep + "keep" + os.sep in src:
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)
    shutil.copytree(source, target, symlinks=True, copy_function=copy)


def mib(value: float | None) -> str:
    return "-" if value is None else "%.1f" % (value / MIB)


def secs(value: float | None) -> str:
    return "-" if value is None else "%.2f" % value


# -- one measured run ------------------------------------------------------------

class Measurement:
    """One run of one tool in one scenario."""

    def __init__(self, scenario: str, tool: str, result: RunResult, keep_added: int,
                 docker_calls: list[str], stages: dict | None = None):
        self.scenario, self.tool, self.result = scenario, tool, result
        self.keep_added = keep_added
        self.docker_calls = docker_calls
        #: ours: the run's ARV_KEEPDOCKER_STAGE_TIMES record.
        self.stages = stages

    @property
    def api_requests(self) -> int | None:
        """ours: API requests the run made (from its stage record)."""
        if self.stages is None:
            return None
        return int(self.stages["stages"].get("api", {}).get("count", 0))

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def saved(self) -> bool:
        """Whether the image was exported: ``docker save`` (or ``docker image save``)
        through the CLI, or (ours) an export started on the engine's socket,
        which the run's stage record marks as ``export start``."""
        if self.stages is not None and "export start" in self.stages.get("marks", {}):
            return True
        for call in self.docker_calls:
            words = call.split()
            if words[:1] == ["save"] or words[:2] == ["image", "save"]:
                return True
        return False


class Bench:
    """The engine, clusters and runs of one benchmark invocation."""

    def __init__(self, args, work: Path, seed_tool: Path):
        self.args, self.work, self.seed_tool = args, work, seed_tool
        self.plan = LayerPlan.for_total(args.size_mib)
        self.engine = DockerEngine(str(work / "d"))
        self.clusters: list[Cluster] = []
        self.runs: list[Measurement] = []
        self.logs = work / "logs"
        self.logs.mkdir()
        self.bin = work / "bin"
        self.counter = 0
        self.v2_archive = work / "v2.tar"
        self.snapshots: dict[str, Path] = {}

    # setup ---------------------------------------------------------------------

    def setup(self) -> None:
        self._docker_wrapper()
        log("starting a private Docker engine in %s" % self.engine.dir)
        self.engine.start()
        log("building %s:v1 and :v2 (layers %d + %d + %d MiB, v2 differs in the last)"
            % (REPO_NAME, self.plan.base0, self.plan.base1, self.plan.top))
        started = time.monotonic()
        self.ids = build_images(self.engine, str(self.work), self.plan, REPO_NAME)
        log("built in %.0f s; saving v2 to %s for scenario 2b"
            % (time.monotonic() - started, self.v2_archive))
        self.engine.docker("save", "-o", str(self.v2_archive), REPO_NAME + ":v2")
        self.v1_archive = self.work / "v1.tar"
        self.engine.docker("save", "-o", str(self.v1_archive), REPO_NAME + ":v1")
        if self.args.mid_mib:
            plan = LayerPlan.for_total(self.args.mid_mib)
            log("building %s:v1 (layers %d + %d + %d MiB)"
                % (MID_NAME, plan.base0, plan.base1, plan.top))
            build_images(self.engine, str(self.work), plan, MID_NAME, versions=("v1",))
            self.mid_archive = self.work / "mid.tar"
            self.engine.docker("save", "-o", str(self.mid_archive), MID_NAME + ":v1")
        template = self.work / "c-empty"
        cluster = Cluster(template).start()
        cluster.stop()
        self.template = template

    def _docker_wrapper(self) -> None:
        """``bin/docker``: logs its arguments to $AKD_BENCH_DOCKER_LOG, then execs the real CLI."""
        real = shutil.which(docker_command())
        self.bin.mkdir()
        wrapper = self.bin / "docker"
        wrapper.write_text('#!/bin/sh\nprintf "%%s\\n" "$*" >> "$AKD_BENCH_DOCKER_LOG"\n'
                           'exec %s "$@"\n' % real)
        wrapper.chmod(0o755)

    def cluster_from(self, source: Path, name: str) -> Cluster:
        target = self.work / name
        copy_cluster_dir(source, target)
        cluster = Cluster(target).start()
        self.clusters.append(cluster)
        return cluster

    def drop_cluster(self, cluster: Cluster, keep_dir: bool = False) -> None:
        cluster.stop()
        if cluster in self.clusters:
            self.clusters.remove(cluster)
        if not keep_dir:
            shutil.rmtree(cluster.dir, ignore_errors=True)

    def close(self) -> None:
        for cluster in list(self.clusters):
            cluster.stop()
        self.engine.stop()

    # running -------------------------------------------------------------------

    def env(self, tool: str, cluster: Cluster | None, rundir: Path, docker_log: Path,
            user: str = "alice", home: Path | None = None):
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("ARVADOS_", "DOCKER_", "XDG_"))
               and key not in ("HOME", "TMPDIR", "PYTHONPATH")}
        if cluster is not None:
            env.update(cluster.env(user))
        home = home or rundir / "home"
        (home / ".cache").mkdir(parents=True, exist_ok=True)
        (rundir / "tmp").mkdir()
        env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
                   TMPDIR=str(rundir / "tmp"), DOCKER_HOST=self.engine.host,
                   PATH=str(self.bin) + os.pathsep + env.get("PATH", "/usr/bin:/bin"),
                   AKD_BENCH_DOCKER_LOG=str(docker_log))
        if tool == OURS:
            env["PYTHONPATH"] = str(REPO)
            # Its export goes through the engine's socket, not the docker
            # wrapper: the stage record says whether one started.
            env["ARV_KEEPDOCKER_STAGE_TIMES"] = str(docker_log) + ".stages"
        return env

    def argv(self, tool: str, image_args: list[str]) -> list[str]:
        if tool == OURS:
            return [sys.executable, "-m", "arv_keepdocker_plugin", *image_args]
        if tool == SEED:
            return [str(self.seed_tool), *image_args]
        if tool == IMPORT_FLOOR:
            return [sys.executable, "-c", "import arvados"]
        if tool == PUT_FLOOR:
            return [str(self.seed_tool.with_name("arv-put")), "--no-resume", "--no-cache",
                    "--silent", *image_args]
        return ["sh", "-c", 'exec docker save "$1" > /dev/null', "sh", *image_args]

    def run(self, scenario: str, tool: str, cluster: Cluster | None,
            image_args: list[str], user: str = "alice",
            home: Path | None = None) -> Measurement:
        self.counter += 1
        rundir = self.work / ("run%03d" % self.counter)
        rundir.mkdir()
        docker_log = self.logs / ("run%03d.docker" % self.counter)
        docker_log.touch()
        before = keep_files(cluster.dir) if cluster is not None else {}
        result = run_measured(self.argv(tool, image_args),
                              self.env(tool, cluster, rundir, docker_log, user, home),
                              str(self.logs / ("run%03d" % self.counter)),
                              watch=[str(rundir)],
                              engine_dirs=[os.path.join(self.engine.dir, "root", "tmp")])
        after = keep_files(cluster.dir) if cluster is not None else {}
        added = sum(size for path, size in after.items() if path not in before)
        calls = docker_log.read_text().splitlines()
        stages_file = Path(str(docker_log) + ".stages")
        stages = None
        if stages_file.exists():
            lines = stages_file.read_text().splitlines()
            stages = json.loads(lines[-1]) if lines else None
        shutil.rmtree(rundir, ignore_errors=True)
        measurement = Measurement(scenario, tool, result, added, calls, stages)
        self.runs.append(measurement)
        status = "ok" if result.ok else "FAILED (exit %d): %s" % (
            result.returncode, (result.stderr.strip().splitlines() or ["no stderr"])[-1][:200])
        log("%-3s %-11s %6.2f s  keep +%7.1f MiB  rss %6.1f MiB (max proc %6.1f)  "
            "disk +%7.1f MiB  save:%s%s  %s"
            % (scenario, tool, result.wall, added / MIB, result.tree_rss / MIB,
               result.max_rss / MIB, result.extra_disk / MIB,
               "yes" if measurement.saved else "no",
               "" if measurement.api_requests is None
               else "  api:%d" % measurement.api_requests, status))
        return measurement

    # scenarios -------------------------------------------------------------------

    def orders(self, *tools):
        """Per repeat, the tools in alternating order (ABBA...), against order bias."""
        for number in range(self.args.repeat):
            yield number, (tools if number % 2 == 0 else tuple(reversed(tools)))

    def scenario1(self, scenario: str = "1", name: str = REPO_NAME,
                  archive: Path | None = None) -> None:
        log("scenario %s: first upload of %s:v1 (fresh cluster per run), plus the docker save"
            " and arv-put floors" % (scenario, name))
        v1 = [name, "v1"]
        archive = archive or self.v1_archive
        for number, tools in self.orders(OURS, SEED, FLOOR, PUT_FLOOR):
            for tool in tools:
                if tool == FLOOR:
                    self.run(scenario, FLOOR, None, [name + ":v1"])
                    continue
                cluster = self.cluster_from(self.template, "c-s%s-%s-%d" % (
                    scenario, tool.replace("/", "-").replace(" ", "-"), number))
                if tool == PUT_FLOOR:
                    self.run(scenario, PUT_FLOOR, cluster, [str(archive)])
                    self.drop_cluster(cluster)
                    continue
                measurement = self.run(scenario, tool, cluster, v1)
                keep = measurement.ok and scenario == "1"
                self.drop_cluster(cluster, keep_dir=keep)
                if keep:
                    previous = self.snapshots.get(tool)
                    if previous is not None:
                        shutil.rmtree(previous, ignore_errors=True)
                    self.snapshots[tool] = cluster.dir

    def scenario2(self) -> None:
        log("scenario 2: v2 from the engine with v1 stored by the same tool; "
            "2b: ours, v2 from docker-archive:%s" % self.v2_archive)
        for number, tools in self.orders(OURS, SEED, OURS + "/archive", FLOOR):
            for tool in tools:
                if tool == FLOOR:
                    self.run("2", FLOOR, None, [REPO_NAME + ":v2"])
                    continue
                real_tool = tool.split("/")[0]
                if real_tool not in self.snapshots:
                    log("skipping scenario 2 for %s: its upload of v1 failed" % real_tool)
                    continue
                cluster = self.cluster_from(self.snapshots[real_tool],
                                            "c-s2-%s-%d" % (tool.replace("/", "-"), number))
                if tool == real_tool:
                    self.run("2", tool, cluster, [REPO_NAME, "v2"])
                else:
                    self.run("2b", real_tool, cluster, ["docker-archive:%s" % self.v2_archive])
                self.drop_cluster(cluster)

    def scenario3(self) -> None:
        log("scenario 3: v1 again, already stored by the same tool (then: ours on 3.2.1's),"
            " plus the SDK import floor")
        clusters = {tool: self.cluster_from(path, "c-s3-" + tool)
                    for tool, path in self.snapshots.items()}
        for _number, tools in self.orders(OURS, SEED, IMPORT_FLOOR):
            for tool in tools:
                if tool == IMPORT_FLOOR:
                    self.run("3", IMPORT_FLOOR, None, [])
                elif tool in clusters:
                    self.run("3", tool, clusters[tool], [REPO_NAME, "v1"])
        log("scenario 3w: the same with a warm discovery cache (a first run, not counted,"
            " fills it)")
        for number, tools in self.orders(OURS, SEED):
            for tool in tools:
                if tool not in clusters:
                    continue
                home = self.work / ("home-3w-%s-%d" % (tool, number))
                self.run("3w0", tool, clusters[tool], [REPO_NAME, "v1"], home=home)
                self.run("3w", tool, clusters[tool], [REPO_NAME, "v1"], home=home)
        if SEED in clusters:
            for _number in range(self.args.repeat):
                self.run("3x", OURS, clusters[SEED], [REPO_NAME, "v1"])
        for cluster in clusters.values():
            self.drop_cluster(cluster)

    def scenario3c(self) -> None:
        log("scenario 3c: v1 already stored in alice's project by bob (can_write there);"
            " alice's first run, then her second")
        cluster = self.cluster_from(self.template, "c-s3c-bob")
        admin = cluster.api("alice")
        project = admin.groups().create(body={"name": "lab", "group_class": "project"}
                                        ).execute()["uuid"]
        admin.links().create(body={"link_class": "permission", "name": "can_write",
                                   "head_uuid": project,
                                   "tail_uuid": cluster.user_uuid("bob")}).execute()
        args = ["--project-uuid", project, REPO_NAME, "v1"]
        stored = self.run("3c0", OURS, cluster, args, user="bob")
        self.drop_cluster(cluster, keep_dir=True)
        if not stored.ok:
            log("skipping scenario 3c: bob's upload failed")
            shutil.rmtree(cluster.dir, ignore_errors=True)
            return
        for number, tools in self.orders(OURS, SEED):
            for tool in tools:
                copy = self.cluster_from(cluster.dir, "c-s3c-%s-%d" % (tool, number))
                self.run("3c1", tool, copy, args)
                self.run("3c2", tool, copy, args)
                self.drop_cluster(copy)
        shutil.rmtree(cluster.dir, ignore_errors=True)


# -- the report --------------------------------------------------------------------

def median_of(runs: list[Measurement], scenario: str, tool: str, attribute: str):
    values = [getattr(run.result, attribute) if hasattr(run.result, attribute)
              else getattr(run, attribute)
              for run in runs if run.scenario == scenario and run.tool == tool and run.ok]
    return statistics.median(values) if values else None


def walls(runs: list[Measurement], scenario: str, tool: str) -> str:
    values = ["%.2f" % run.result.wall if run.ok else "fail"
              for run in runs if run.scenario == scenario and run.tool == tool]
    return ", ".join(values) or "-"


def verdict(value: float | None, limit: float, strict: bool = False) -> str:
    if value is None:
        return "n/a"
    good = value < limit if strict else value <= limit
    return "met" if good else "MISSED"


def build_rows(bench: Bench) -> list[list[str]]:
    """Rows: scenario, metric, ours median, 3.2.1 median, ratio, target, met/missed."""
    runs, plan = bench.runs, bench.plan
    layer = plan.top * MIB
    rows: list[list[str]] = []

    def ratio(ours, seed):
        return ours / seed if ours is not None and seed else None

    def time_row(label, scenario, seed_scenario, limit, target):
        ours = median_of(runs, scenario, OURS, "wall")
        seed = median_of(runs, seed_scenario, SEED, "wall")
        r = ratio(ours, seed)
        rows.append([label, "wall time (s)", secs(ours), secs(seed),
                     "-" if r is None else "%.2f" % r, target,
                     verdict(r, limit) if limit else ""])

    def floor_row(label, scenario, tool, name):
        floor = median_of(runs, scenario, tool, "wall")
        r = ratio(floor, median_of(runs, scenario, SEED, "wall"))
        rows.append([label, name, secs(floor), "", "-" if r is None else "%.2f" % r,
                     "floor", ""])

    def value_row(label, scenario, seed_scenario, attribute, name, limit=None, target="",
                  strict=False):
        ours = median_of(runs, scenario, OURS, attribute)
        seed = median_of(runs, seed_scenario, SEED, attribute) if seed_scenario else None
        r = ratio(ours, seed)
        rows.append([label, name, mib(ours), mib(seed), "-" if r is None else "%.2f" % r,
                     target, verdict(ours, limit, strict) if limit is not None else ""])

    def ours_to_floor_row(label, scenario, tool, name):
        ours = median_of(runs, scenario, OURS, "wall")
        floor = median_of(runs, scenario, tool, "wall")
        r = ratio(ours, floor)
        rows.append([label, name, secs(ours), secs(floor), "-" if r is None else "%.2f" % r,
                     "", ""])

    def first_upload_rows(label, scenario, limit):
        time_row(label, scenario, scenario, limit, "ratio <= %.1f" % limit)
        floor_row(label, scenario, FLOOR, "docker save > /dev/null (s, the floor)")
        floor_row(label, scenario, PUT_FLOOR, "3.2.1's arv-put of the saved tar (s)")
        ours_to_floor_row(label, scenario, FLOOR, "ours / docker save (s; 3.2.1 column: floor)")
        ours_to_floor_row(label, scenario, PUT_FLOOR, "ours / arv-put (s; 3.2.1 column: floor)")
        value_row(label, scenario, scenario, "keep_added", "Keep bytes added (MiB)")

    s1 = "1 first upload (%d MiB)" % plan.total
    first_upload_rows(s1, "1", 0.7)
    if bench.args.mid_mib:
        mid = LayerPlan.for_total(bench.args.mid_mib)
        first_upload_rows("1m first upload (%d MiB, second image)" % mid.total, "1m", 0.8)
    s2 = "2 new version from engine (top %d MiB new)" % plan.top
    time_row(s2, "2", "2", 0.35, "ratio <= 0.35")
    floor_row(s2, "2", FLOOR, "docker save v2 > /dev/null (s, the floor)")
    value_row(s2, "2", "2", "keep_added", "Keep bytes added (MiB)", 1.1 * layer,
              "ours <= %.1f" % (1.1 * plan.top))
    value_row(s2, "2", "2", "tree_rss", "peak RSS, tree (MiB)")
    value_row(s2, "2", "2", "extra_disk", "peak extra disk (MiB)")
    s2b = "2b new version from docker-archive (3.2.1: its run of 2)"
    time_row(s2b, "2b", "2", 0.1, "ratio <= 0.1")
    value_row(s2b, "2b", "2", "keep_added", "Keep bytes added (MiB)", 1.1 * layer,
              "ours <= %.1f" % (1.1 * plan.top))
    s3 = "3 already stored, cold discovery cache"
    time_row(s3, "3", "3", 0.6, "ratio <= 0.6")
    floor_row(s3, "3", IMPORT_FLOOR, "python -c 'import arvados' (s, the floor)")
    import_floor = median_of(runs, "3", IMPORT_FLOOR, "wall")

    def import_row(label, scenario):
        ours = median_of(runs, scenario, OURS, "wall")
        over = None if ours is None or import_floor is None else ours - import_floor
        rows.append([label, "ours - SDK import (s)", secs(over), "", "", "<= 0.30",
                     verdict(over, 0.3)])

    def requests_row(label, scenario):
        counts = [run.api_requests for run in runs if run.scenario == scenario
                  and run.tool == OURS and run.ok and run.api_requests is not None]
        rows.append([label, "API requests, ours", "%g" % statistics.median(counts)
                     if counts else "-", "", "", "", ""])

    import_row(s3, "3")
    requests_row(s3, "3")
    saved = {tool: [run.saved for run in runs
                    if run.scenario == "3" and run.tool == tool and run.ok]
             for tool in (OURS, SEED)}
    ours_saved = any(saved[OURS]) if saved[OURS] else None
    rows.append([s3, "docker save ran", _yes_no(saved[OURS]), _yes_no(saved[SEED]), "",
                 "ours: no",
                 "n/a" if ours_saved is None else ("met" if not ours_saved else "MISSED")])
    s3w = "3w already stored, warm discovery cache"
    time_row(s3w, "3w", "3w", 0.6, "ratio <= 0.6")
    import_row(s3w, "3w")
    requests_row(s3w, "3w")
    s3c = "3c already stored, copy written by a colleague in the destination project"
    time_row(s3c + ": first run", "3c1", "3c1", 0, "")
    value_row(s3c + ": first run", "3c1", "3c1", "tree_rss", "peak RSS, tree (MiB)")
    time_row(s3c + ": second run", "3c2", "3c2", 0, "")
    s3x = "3x already stored by 3.2.1, ours (3.2.1: its run of 3)"
    time_row(s3x, "3x", "3", 0.5, "ratio <= 0.5")
    saved_x = [run.saved for run in runs if run.scenario == "3x" and run.ok]
    rows.append([s3x, "docker save ran", _yes_no(saved_x), "", "", "ours: no",
                 "n/a" if not saved_x else ("met" if not any(saved_x) else "MISSED")])
    s4 = "4 resources, first upload (%d MiB)%s" % (
        plan.total, "" if bench.args.size_mib == 1024 else " [targets are for 1024]")
    value_row(s4, "1", "1", "tree_rss", "peak RSS, tree (MiB)", 300 * MIB, "ours < 300", True)
    value_row(s4, "1", "1", "max_rss", "peak RSS, largest process (MiB)")
    value_row(s4, "1", "1", "extra_disk", "peak extra disk (MiB)", 64 * MIB, "ours < 64", True)
    value_row(s4, "1", "1", "engine_disk", "engine's docker-save staging (MiB)")
    return rows


def _yes_no(values: list[bool]) -> str:
    if not values:
        return "-"
    if all(values):
        return "yes"
    return "no" if not any(values) else "%d/%d yes" % (sum(values), len(values))


HEADER = ["scenario", "metric", "ours median", "3.2.1 median", "ratio", "target", "result"]


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER] + rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
             for row in [HEADER] + rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    memory = "?"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = "%.1f GiB" % (int(line.split()[1]) / (1 << 20))
    except OSError:
        pass
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    return "nproc %d, memory %s%s, Python %s, %s" % (
        os.cpu_count() or 0, memory, ", " + model if model else "",
        platform.python_version(), platform.platform())


def code_version() -> str:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "unknown"
    # The results files themselves are rewritten by the benchmarks: a change there
    # says nothing about the code measured.
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                            "--untracked-files=no", "--", ".", ":!bench/RESULTS.md",
                            ":!bench/RELIABILITY.md"],
                           capture_output=True, text=True).stdout.strip()
    return head + (" with uncommitted changes" if dirty else "")


def notes(bench: Bench, engine_version: str) -> str:
    plan, runs = bench.plan, bench.runs
    per_run = []
    for scenario, label in (("1", "1"), ("1m", "1m"), ("2", "2"), ("2b", "2b"), ("3", "3"),
                            ("3w", "3w"), ("3x", "3x"),
                            ("3c0", "3c bob's upload"), ("3c1", "3c first"),
                            ("3c2", "3c second")):
        for tool in (OURS, SEED, FLOOR, PUT_FLOOR, IMPORT_FLOOR):
            text = walls(runs, scenario, tool)
            if text != "-":
                per_run.append("%s %s: %s" % (label, tool, text))
    failures = [run for run in runs if not run.ok]
    floor_notes = []
    save = ("`docker save`", "reads `docker save` from this engine")
    sdk = ("importing the Arvados SDK", "uses the Arvados Python SDK")
    for scenario, target, tool, (what, who) in (("1", 0.7, FLOOR, save),
                                               ("1m", 0.8, FLOOR, save),
                                               ("2", 0.35, FLOOR, save),
                                               ("3", 0.6, IMPORT_FLOOR, sdk)):
        floor = median_of(runs, scenario, tool, "wall")
        seed = median_of(runs, scenario, SEED, "wall")
        if floor is not None and seed:
            floor_notes.append(
                "scenario %s: %s alone takes %.2f of 3.2.1's time (target %.2f)%s"
                % (scenario, what, floor / seed, target,
                   ": the target is below the floor, so no tool that %s can meet it" % who
                   if floor / seed > target else ""))
    lines = [
        "Image: 3 COPY layers of random data, %d + %d + %d MiB (v1); v2 shares the first two"
        " and has a different %d MiB top layer. Docker engine %s (vfs), private; the local"
        " cluster of `arv_keepdocker_testkit.cluster`."
        % (plan.base0, plan.base1, plan.top, plan.top, engine_version),
        "Each run: a private HOME, XDG_CACHE_HOME and TMPDIR (no 3.2.1 tar cache, no arv-put"
        " resume cache, no discovery cache carried over); the two tools alternate, order"
        " reversed every other repeat.",
        "Scenario 1: every run starts from a fresh copy of an empty cluster, so each really"
        " uploads (no `--force`). Scenarios 2/2b/3: a copy of the cluster in which that same"
        " tool stored v1 in scenario 1. 2b: ours reads `docker-archive:` (v2 saved with"
        " `docker save` before the runs); 3.2.1 has no archive source, so its baseline is its"
        " own scenario-2 run (v2 from the engine). 3x: ours against the cluster where 3.2.1"
        " stored v1 (compatibility of the reuse path): 3.2.1 leaves no record this tool"
        " trusts unread, so ours reads that copy back and checks it on its first run there"
        " (leaving the user's `docker_image_checked` record) and trusts it on later repeats."
        " 3c: bob, who has can_write on"
        " alice's project, stored v1 there with this checkout; then, on a copy of that"
        " cluster per tool and repeat, alice runs the tool twice with --project-uuid: ours"
        " reads bob's copy back from Keep and checks it on the first run (leaving her own"
        " `docker_image_checked` record), and trusts it unread on the second; 3.2.1 trusts"
        " it both times without reading.",
        "Wall time: spawn to exit. Keep bytes added: sizes of block files new in"
        " `<cluster>/keep` after the run. Peak RSS, tree: the largest sum of VmRSS over the"
        " tool's process tree (the tool and its `docker` CLI children), sampled every 50 ms;"
        " largest process: `ru_maxrss` from `wait4`. Peak extra disk: growth of the run's"
        " private HOME + TMPDIR plus deleted/unnamed files the tree holds open, sampled every"
        " 50 ms. The engine's docker-save staging (its data-root/tmp, Docker 20.10 writes the"
        " whole export there before streaming) is the engine's cost, shown for information.",
        "Floor: " + "; ".join(floor_notes or ["not measured"]) + ".",
        "The sampler costs about 7 ms of CPU per 50 ms sample (a /proc scan), the same for"
        " both tools.",
        "Bytecode: this checkout is byte-compiled before the runs, as pip compiles 3.2.1's"
        " venv at install time (PYTHONDONTWRITEBYTECODE is set on these machines, so an"
        " editable install would otherwise recompile our modules on every run).",
        "`docker save ran`: 3.2.1, from a logging `docker` wrapper first on PATH (it logs the"
        " arguments and execs the real CLI); ours exports through the engine's socket"
        " (`GET /images/get`), so for ours also from the run's stage record"
        " (`ARV_KEEPDOCKER_STAGE_TIMES`, which marks `export start` when an export begins"
        " through the socket or the CLI). API requests, ours: from the same record.",
        "1/1m floors: `docker save IMAGE > /dev/null`, and 3.2.1's `arv-put --no-resume"
        " --no-cache` of the image's `docker save` tar (on disk before the runs) into a fresh"
        " cluster. 3 runs with an empty discovery cache (a private HOME per run); 3w runs"
        " twice with one HOME and counts the second, for both tools (the local cluster sends"
        " Arvados' `Cache-Control: max-age=86400, public` with the discovery document).",
        "Per-run wall times (s): " + "; ".join(per_run) + ".",
    ]
    if failures:
        lines.append("Failed runs (excluded from medians): " + "; ".join(
            "%s %s exit %d: %s" % (run.scenario, run.tool, run.result.returncode,
                                   (run.result.stderr.strip().splitlines() or ["-"])[-1][:160])
            for run in failures) + ".")
    return "\n".join("- " + line for line in lines)


def _interrupt(_signum, _frame):
    """SIGTERM: unwind like Ctrl-C so that everything started is stopped."""
    raise KeyboardInterrupt


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and scenario (3)")
    parser.add_argument("--size-mib", type=int, default=1024,
                        help="total image size in MiB (1024; 256 for a quick run)")
    parser.add_argument("--mid-mib", type=int, default=330,
                        help="size of scenario 1m's second image in MiB (330; 0 skips 1m)")
    parser.add_argument("--only", metavar="LIST", default=None,
                        help="run only these scenarios, e.g. 1,3 (for development; 2 and 3"
                        " need 1; not with --write-results)")
    parser.add_argument("--write-results", action="store_true",
                        help="record the table in bench/RESULTS.md")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.size_mib < 16 or (args.mid_mib and args.mid_mib < 16):
        parser.error("--repeat must be >= 1, --size-mib >= 16 and --mid-mib 0 or >= 16")
    only = set(args.only.split(",")) if args.only else None
    if only is not None and args.write_results:
        parser.error("--only is for development: no --write-results with it")
    command = "python bench/keepdocker_vs_321.py --repeat %d --size-mib %d --mid-mib %d%s" % (
        args.repeat, args.size_mib, args.mid_mib,
        " --write-results" if args.write_results else "")
    signal.signal(signal.SIGTERM, _interrupt)
    seed_tool = ensure_seed_venv()
    compile_ours()
    work = Path(tempfile.mkdtemp(prefix="akd-bench-", dir="/tmp"))
    bench = Bench(args, work, seed_tool)
    started = time.monotonic()
    try:
        bench.setup()
        engine_version = bench.engine.docker("version", "--format", "{{.Server.Version}}",
                                             text=True).stdout.strip()
        def wanted(scenario: str) -> bool:
            return only is None or scenario in only
        if wanted("1") or wanted("2") or wanted("3"):
            bench.scenario1()
        if args.mid_mib and wanted("1m"):
            bench.scenario1("1m", MID_NAME, bench.mid_archive)
        if wanted("2"):
            bench.scenario2()
        if wanted("3"):
            bench.scenario3()
        if wanted("3c"):
            bench.scenario3c()
    finally:
        bench.close()
        shutil.rmtree(work, ignore_errors=True)
    rows = build_rows(bench)
    body_notes = notes(bench, engine_version)
    print(text_table(rows))
    print()
    print(body_notes)
    log("total %.0f s" % (time.monotonic() - started))
    if args.write_results:
        body = "\n\n".join([
            "Command: `%s`" % command,
            "Date: %s. Machine: %s. Code: %s; arv-keepdocker %s from PyPI in bench/.venv-321."
            % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), machine(), code_version(),
               SEED_VERSION),
            markdown_table(rows),
            body_notes,
        ])
        replace_section(str(HERE / "RESULTS.md"), SECTION, body)
        log("wrote %s" % (HERE / "RESULTS.md"))
    return 1 if any(not run.ok for run in bench.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
