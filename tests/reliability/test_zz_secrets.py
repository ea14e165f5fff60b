"""The token's secret never appears in anything this tool writes.

Runs last in the suite (``zz``): it looks at its own runs' output (uploads,
reuse, failures, an interrupted upload, listings, debug logging), at every
file under this pytest session's temporary directory (the HOMEs, caches,
journals and lock files of every test run so far), and at every collection
and link on the cluster, for the secret part of any user's token.
"""

import json
import os
import signal
import subprocess
import sys
import time

import arvados.util
import pytest
from arv_keepdocker_testkit import imagebuild as ib

from .world import new_project

MiB = 1 << 20


@pytest.fixture
def secrets(arv_cluster):
    found = {}
    for user in ("alice", "bob", "admin"):
        token = arv_cluster.token(user)
        secret = token.rsplit("/", 1)[-1]
        assert len(secret) >= 20
        found[user] = secret
    return found


def test_no_token_secret_in_output_files_or_records(secrets, arv_cluster, arv_api,
                                                    arv_api_admin, base_env, tmp_path,
                                                    tmp_path_factory, unique, record_property):
    env = dict(base_env, **arv_cluster.env("alice"))
    image = ib.build_image([{"a": os.urandom(3 * MiB)}, {"b": b"b"}], repo_tags=[unique + ":1"])
    path = tmp_path / "image.tar"
    ib.write_docker_archive(str(path), [image])
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar" * 100)
    project = new_project(arv_api, "secrets")
    outputs = []

    def run(*args, extra=None):
        proc = subprocess.run([sys.executable, "-m", "arv_keepdocker_plugin", *args],
                              env=dict(env, **(extra or {})), capture_output=True, text=True,
                              timeout=600)
        outputs.append(proc.stdout + proc.stderr)
        return proc

    # An interrupted upload leaves a journal and a lock file behind.
    slow = subprocess.Popen([sys.executable, "-m", "arv_keepdocker_plugin", "--no-progress",
                             f"docker-archive:{path}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    arv_cluster.inject_fault("keep_put", 1000, stall=0.3)
    time.sleep(1.0)
    slow.send_signal(signal.SIGKILL)
    outputs.append("".join(slow.communicate()))
    arv_cluster.clear_faults()
    run("--batch-progress", f"docker-archive:{path}", extra={"ARVADOS_DEBUG": "1"})
    run("--batch-progress", f"docker-archive:{path}")
    run("--no-progress", "--project-uuid", project, f"docker-archive:{path}")
    run("--no-progress", f"docker-archive:{bad}")
    run("images", extra={"ARVADOS_DEBUG": "1"})
    run("--list-plugins", "--json")
    run("--no-progress", "--retries", "0", f"docker-archive:{path}", "--force",
        extra={"ARVADOS_API_TOKEN": env["ARVADOS_API_TOKEN"] + "x"})  # a refused token

    places = {f"output of run {n}": text for n, text in enumerate(outputs)}
    scanned = 0
    for root, _dirs, files in os.walk(str(tmp_path_factory.getbasetemp())):
        for name in files:
            full = os.path.join(root, name)
            try:
                with open(full, "rb") as f:
                    places[full] = f.read(64 << 20).decode("latin-1")
                scanned += 1
            except OSError:
                continue
    for kind in ("collections", "links"):
        records = list(arvados.util.keyset_list_all(
            getattr(arv_api_admin, kind)().list, include_trash=True)
            if kind == "collections" else arvados.util.keyset_list_all(
                arv_api_admin.links().list))
        places[f"all {kind} ({len(records)})"] = json.dumps(records)
    leaks = [(where, user) for where, text in places.items()
             for user, secret in secrets.items() if secret in text]
    print(f"\nsecrets: {len(outputs)} outputs, {scanned} files, every collection and link scanned; "
          f"{len(leaks)} leaks")
    record_property("secret_scan", f"{len(outputs)} outputs, {scanned} files")
    assert leaks == []
