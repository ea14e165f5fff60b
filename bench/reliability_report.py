#!/usr/bin/env python3
"""Run the reliability suite and record its figures in bench/RELIABILITY.md.

    python bench/reliability_report.py [--write]

Runs ``pytest -m reliability`` (the same tests ``.ci/run`` runs as part of the
whole suite), reads its JUnit XML, and prints one "tried / held" row per kind
of attack or fault: a case "held" when its test passed (every test asserts the
end state: the victim's image is exactly theirs or refused; nothing half-written;
one line and exit 1 for failures). ``--write`` replaces bench/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "RELIABILITY.md"
COMMAND = "python bench/reliability_report.py --write"
BUDGET = 20 * 60

#: (row, test-id pattern, how a case is counted: "test" or a property name)
ROWS = [
    ("planted layer records, docker-archive (classic, Docker 25 layout)",
     r"test_attacks\.py::test_planted_layer_records_never_reach_an_archive_upload", "test"),
    ("planted layer records, oci-archive and oci",
     r"test_attacks\.py::test_planted_layer_records_never_reach_an_oci_upload", "test"),
    ("planted layer records, docker-daemon (dockerd 20.10)",
     r"test_attacks\.py::test_planted_layer_records_never_reach_an_engine_upload", "test"),
    ("planted layer records, containers-storage (podman)",
     r"test_attacks\.py::test_planted_layer_records_never_reach_a_podman_upload", "test"),
    ("planted layer records, docker:// (registry)",
     r"test_registry_attacks\.py::test_planted_layer", "test"),
    ("planted record newer than the victim's own copy",
     r"test_attacks\.py::test_a_planted_record_newer", "test"),
    ("planted docker_image_hash link (image in an engine / only in Arvados)",
     r"test_attacks\.py::test_a_planted_(hash_link|name)", "test"),
    ("planted record claiming the victim's manifest digest",
     r"test_attacks\.py::test_a_planted_claim", "test"),
    ("corrupt layer.tar (no attacker)",
     r"test_attacks\.py::test_a_corrupt_layer_tar", "test"),
    ("SIGKILL at seeded random points of a ~300 MB upload, then a rerun",
     r"test_kills\.py::test_sigkill_at_random_points", "random_kills"),
    ("SIGKILL at every step boundary, then a rerun",
     r"test_kills\.py::test_sigkill_at_each_step_boundary", "test"),
    ("SIGKILL at 6 seeded random points while a gzip archive is read once, then a rerun",
     r"test_kills\.py::test_sigkill_while_a_compressed_archive", "test"),
    ("SIGKILL at 4 seeded random points of an upload from the Docker engine's own files, "
     "then a rerun",
     r"test_kills\.py::test_sigkill_while_the_engines_files", "engine_files_kills"),
    ("Keep PUT failures (500, 503) and stalls, then a rerun",
     r"test_faults\.py::test_keep_", "test"),
    ("API 5xx at each write (collection create, each link, trash clear), then a rerun",
     r"test_faults\.py::test_api_failing_one_write", "test"),
    ("API down through the rollback, then back and a rerun",
     r"test_faults\.py::test_api_down_through_the_rollback", "test"),
    ("5 concurrent uploads of one image from 5 HOMEs; 3 images sharing a base at once",
     r"test_concurrency\.py::", "test"),
    ("generated bad inputs (references, truncated, bit-flipped, hostile members, JSON)",
     r"test_bad_inputs\.py::test_every_generated", "cases"),
    ("bad inputs through the console command (a sample)",
     r"test_bad_inputs\.py::test_the_real_command", "test"),
    ("a hostile DockerRequirement through the real arvados-cwl-runner 3.2.1 image step",
     r"test_cwl_untrusted\.py::test_a_hostile_docker_requirement", "test"),
    ("token secret in output, files and records (whole session)",
     r"test_zz_secrets\.py::", "test"),
    ("a token endpoint redirecting the identity-token request off its origin (docker://)",
     r"test_registry_hostile\.py::test_a_token_endpoint", "test"),
    ("a blob redirect to another port: stored, no credentials sent there (docker://)",
     r"test_registry_hostile\.py::test_a_blob_redirect", "test"),
    ("zstd and gzip bombs: whole archives, layers, both at once (docker-archive, oci-archive)",
     r"test_bombs\.py::test_a_(compressed_archive|layer|zstd_layer)_bomb", "test"),
    ("zstd and gzip bombs as registry layers (docker://)",
     r"test_registry_hostile\.py::test_a_registry_layer_bomb", "test"),
    ("registry JSON 100,000 deep (manifest, config, token answer), a 12,000-entry index",
     r"test_registry_hostile\.py::test_registry_json", "test"),
    ("a site policy.json that rejects the registry (docker://)",
     r"test_registry_hostile\.py::test_a_site_policy", "test"),
    ("running out of memory (a source plugin's MemoryError)",
     r"test_bombs\.py::test_running_out_of_memory", "test"),
    ("collaborator (can_write on the destination): planted layer records there, stamped "
     "as ours and old-style", r"test_collaborators\.py::test_bobs_stamped_layer", "test"),
    ("a stored-layer index plugin's claims about writers and places (only its link counts)",
     r"test_collaborators\.py::test_what_an_index_plugin", "test"),
    ("collaborator's layers through docker://: read back from Keep (junk refused), not "
     "downloaded", r"test_registry_colleague\.py::", "test"),
    ("collaborator: planted image record (hash and repo+tag links) in the destination",
     r"test_collaborators\.py::test_bobs_stamped_image", "test"),
    ("collaborator's genuine copy: read back once, then trusted, until they rewrite it",
     r"test_collaborators\.py::test_a_colleagues_copy", "test"),
    ("collaborator: pending marker on the victim's finished image and on a decoy",
     r"test_collaborators\.py::test_a_pending_marker", "test"),
    ("collaborator rewrites the pending collection mid-upload",
     r"test_collaborators\.py::test_bob_rewriting", "test"),
    ("collaborator squats the upload lock (no trash_at, a year ahead, no or a bad holder)",
     r"test_collaborators\.py::test_a_lock_bob_squats", "test"),
    ("upload lock: own non-lease removed; a lease held on another host, or released and "
     "retaken by a third run between two calls, waited for",
     r"test_collaborators\.py::test_a_(non_lease|lease_held|lock_released)", "test"),
    ("two uploads of one image in separate PID namespaces, one host, separate HOMEs",
     r"test_collaborators\.py::test_two_runs_in_separate_pid", "test"),
]


def run_suite(xml: str) -> tuple[int, float]:
    started = time.monotonic()
    env = dict(os.environ, CI=os.environ.get("CI", "true"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "-m", "reliability", "-o", "junit_family=xunit1", "--junitxml", xml,
                           "tests"], cwd=REPO, env=env)
    return proc.returncode, time.monotonic() - started


def cases(xml: str) -> list[dict]:
    out = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = "{}::{}".format(case.get("classname", "").replace(".", "/") + ".py",
                               case.get("name"))
        failed = any(child.tag in ("failure", "error") for child in case)
        skipped = any(child.tag == "skipped" for child in case)
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        out.append({"name": name, "failed": failed, "skipped": skipped,
                    "time": float(case.get("time") or 0), "props": props})
    return out


def peak_memory(matching: list[dict]) -> str:
    """The largest peak of the row's cases: the tool's process tree; for runs in-process,
    tracemalloc's peak where the test traces, what the test measured, else the test
    process's RSS."""
    for prop, suffix in (("peak_tree_rss_mib", ""), ("peak_traced_mib", " traced"),
                         ("peak_mib", " (the test's)"),
                         ("peak_test_process_rss_mib", " test process")):
        values = [float(c["props"][prop]) for c in matching if prop in c["props"]]
        if values:
            peak = max(values)
            return ("{:.1f} MiB{}" if peak < 10 else "{:.0f} MiB{}").format(peak, suffix)
    return "-"


def rows(results: list[dict]) -> list[tuple[str, str, str, str]]:
    table = []
    for label, pattern, count in ROWS:
        matching = [c for c in results if re.search(pattern, c["name"])]
        if not matching:
            table.append((label, "not run", "", ""))
            continue
        if count == "test":
            tried = len([c for c in matching if not c["skipped"]])
            held = len([c for c in matching if not c["skipped"] and not c["failed"]])
            table.append((label, f"{tried} / {held}", peak_memory(matching),
                          "{:.0f} s".format(sum(c["time"] for c in matching))))
        else:
            case = matching[0]
            value = case["props"].get(count, "")
            figures = re.findall(r"\d+", value)
            tried = figures[0] if figures else "?"
            held = tried if not case["failed"] else "fewer"
            table.append((label, f"{tried} / {held}", peak_memory(matching),
                          "{:.0f} s; {}".format(case["time"], value)))
    return table


def render(table, results, status, wall) -> str:
    total = sum(c["time"] for c in results)
    lines = [
        "# Reliability",
        "",
        f"Command: `{COMMAND}` (runs `pytest -m reliability tests`, the reliability tests that "
        "`.ci/run` runs with the rest of the suite).",
        "",
        "Date: {}. Machine: nproc {}, Python {}, {}. Local cluster and real engines "
        "(dockerd 20.10, podman 4.3) on loopback; the tests run as the real console "
        "command unless noted.".format(
            datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), os.cpu_count(),
            platform.python_version(), platform.platform()),
        "",
        "| tried / held | what | peak memory | time |",
        "|---|---|---|---|",
    ]
    for label, figures, memory, extra in table:
        lines.append(f"| {figures} | {label} | {memory} | {extra} |")
    lines += [
        "",
        "- Held means the test passed: for attacks, the victim's stored tar is exactly "
        "their image (read back from Keep and checked: one `<id>.tar`, config digest = id, "
        "every layer = its diff id; loaded by dockerd where an engine is involved) or the "
        "upload was refused; for kills and faults, after the rerun: exactly one untrashed, "
        "complete, loadable collection with its links, no untrashed collection without "
        "links, no link to a trashed or missing collection; for bad input: one line, exit "
        "1 (2 for usage errors), nothing written, traced peak memory under 300 MiB; for "
        "bombs, deep JSON, redirects and policies: the real command under `ulimit -v "
        "1600000`, one line, exit 1 (0 for the blob redirect, whose image is checked as "
        "for attacks), nothing written, peak memory of the process tree (as "
        "`bench/runmeasure.py` measures it) under 300 MiB.",
        "- Each planted-record test first shows the planted records are readable by the "
        "victim and would stand in for her layers if their owner, or their stamp, were "
        "trusted; the collaborator (bob) has `can_write` on the victim's destination project "
        "and plants there, with this tool's own stamp.",
        "- Peak memory: the largest peak, over the row's runs of the tool, of the sum of "
        "VmRSS over one run's process tree (the tool and its children, e.g. the `docker` CLI), "
        "sampled every 50 ms (`tests/reliability/memory.py`). Rows whose runs are in-process: "
        "\"traced\", the peak of tracemalloc's traced memory; \"(the test's)\", what the test "
        "measured itself; \"test process\", the peak RSS of the whole pytest process (an "
        "upper bound).",
        f"- Reliability suite: {len(results)} tests, {total:.0f} s of test time, {wall:.0f} s wall "
        "clock "
        f"(pytest exit status {status}); budget for the whole suite: {BUDGET // 60} min.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace bench/RELIABILITY.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        xml = os.path.join(tmp, "reliability.xml")
        status, wall = run_suite(xml)
        results = cases(xml)
    text = render(rows(results), results, status, wall)
    sys.stdout.write(text)
    if args.write:
        OUT.write_text(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
