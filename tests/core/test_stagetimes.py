"""ARV_KEEPDOCKER_STAGE_TIMES: off by default and cheap; on, one JSON line per run."""

import json
import subprocess
import sys

from arv_keepdocker_plugin import stagetimes


def test_off_unless_the_variable_names_a_file():
    # The test run does not set it: every hook returns at once.
    assert stagetimes.ENABLED is False
    assert stagetimes.stage("x") is stagetimes.stage("y")  # one shared no-op
    stagetimes.add("x", 1.0)
    stagetimes.mark("x")
    assert stagetimes.record() is None


def test_a_run_appends_its_stages_marks_and_cpu(tmp_path):
    times = tmp_path / "times.jsonl"
    program = (
        "from arv_keepdocker_plugin import stagetimes\n"
        "with stagetimes.stage('work'):\n"
        "    sum(range(100000))\n"
        "stagetimes.add('api', 0.5, 0.25)\n"
        "stagetimes.add('api', 0.5, 0.25)\n"
        "stagetimes.mark('first byte')\n"
        "stagetimes.mark('first byte')\n")
    for _ in range(2):
        subprocess.run([sys.executable, "-c", program], check=True,
                       env={"ARV_KEEPDOCKER_STAGE_TIMES": str(times), "PATH": "/usr/bin:/bin"})
    lines = times.read_text().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert record["stages"]["api"] == {"wall": 1.0, "cpu": 0.5, "count": 2}
    assert record["stages"]["work"]["count"] == 1 and record["stages"]["work"]["wall"] > 0
    assert set(record["marks"]) == {"first byte"}
    assert record["process_cpu"] > 0 and record["start_unix"] > 0


def test_an_unwritable_file_never_fails_the_run(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import arv_keepdocker_plugin.stagetimes"],
        env={"ARV_KEEPDOCKER_STAGE_TIMES": str(tmp_path / "no" / "such" / "dir"),
             "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""


def test_api_requests_are_counted_by_kind_not_by_record():
    from arv_keepdocker_plugin.steps.connect import request_kind

    base = "https://h:1/arvados/v1/collections/"
    assert request_kind("PUT", base + "zzzzz-4zz18-0123456789abcde?x=1") == \
        "api PUT /arvados/v1/collections/{uuid}"
    assert request_kind("GET", base + "d41d8cd98f00b204e9800998ecf8427e+0") == \
        "api GET /arvados/v1/collections/{uuid}"
    assert request_kind("GET", "https://h:1/arvados/v1/users/current") == \
        "api GET /arvados/v1/users/current"
