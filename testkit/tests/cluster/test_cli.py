"""``arv-keepdocker-cluster`` start/stop/env, persistence and side-by-side clusters."""

import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import arvados.collection
import arvados.errors
import pytest
from arv_keepdocker_testkit.cluster import Cluster
from arv_keepdocker_testkit.cluster.cluster import pid_alive
from arv_keepdocker_testkit.scripts import script

ENV_LINE = re.compile(r"^export (ARVADOS_API_HOST|ARVADOS_API_TOKEN|ARVADOS_API_HOST_INSECURE)"
                      r"=(\S+)$")


def cli(*args):
    return subprocess.run([script("arv-keepdocker-cluster"), *args], capture_output=True, text=True,
                          timeout=120)


def parse_env(text):
    env = {}
    for line in text.splitlines():
        match = ENV_LINE.match(line)
        assert match, "unexpected line %r" % line
        env[match.group(1)] = match.group(2)
    assert set(env) == {"ARVADOS_API_HOST", "ARVADOS_API_TOKEN", "ARVADOS_API_HOST_INSECURE"}
    return env


def discovery(directory, host):
    context = ssl.create_default_context(cafile=str(Path(directory) / "ca.pem"))
    with urllib.request.urlopen("https://%s/discovery/v1/apis/arvados/v1/rest" % host,
                                context=context, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def dirs(tmp_path):
    """Two cluster directories, whatever runs in them stopped afterwards."""
    made = [tmp_path / "one", tmp_path / "two"]
    yield made
    for directory in made:
        Cluster(directory).stop()


@pytest.mark.cluster  # starts clusters of its own
def test_start_env_stop_restart_keeps_everything(dirs):
    directory = dirs[0]
    started = cli("start", "--dir", str(directory), "--docker-image-formats", "")
    assert started.returncode == 0, started.stderr
    env = parse_env(started.stdout)
    assert (directory / "env").read_text() == started.stdout
    assert env["ARVADOS_API_HOST_INSECURE"] == "1"
    host = env["ARVADOS_API_HOST"]
    assert re.match(r"^127\.0\.0\.1:\d+$", host)
    assert discovery(directory, host)["dockerImageFormats"] == []

    again = cli("start", "--dir", str(directory))
    assert again.returncode == 0 and "already running" in again.stderr
    assert parse_env(again.stdout) == env

    bob = cli("env", "--dir", str(directory), "--user", "bob")
    assert bob.returncode == 0
    bob_env = parse_env(bob.stdout)
    assert (bob_env["ARVADOS_API_HOST"] == host
            and bob_env["ARVADOS_API_TOKEN"] != env["ARVADOS_API_TOKEN"])

    cluster = Cluster(directory)
    writer = arvados.collection.Collection(api_client=cluster.api("alice"))
    with writer.open("kept.txt", "w") as out:
        out.write("still here")
    writer.save_new(name="survivor")
    made = {"uuid": writer.manifest_locator()}

    stopped = cli("stop", "--dir", str(directory))
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not cluster.running()
    with pytest.raises(OSError):
        discovery(directory, host)

    restarted = cli("start", "--dir", str(directory), "--docker-image-formats", "v1,v2")
    assert restarted.returncode == 0, restarted.stderr
    assert parse_env(restarted.stdout) == env  # same port (it was free), same token
    assert discovery(directory, host)["dockerImageFormats"] == ["v1", "v2"]
    api = Cluster(directory).api("alice")
    assert api.collections().get(uuid=made["uuid"]).execute()["name"] == "survivor"
    reader = arvados.collection.Collection(made["uuid"], api_client=api)
    assert reader.open("kept.txt").read() == "still here"  # blocks, key and tokens all kept

    # Starting a running cluster with another format list restarts it with that list.
    switched = cli("start", "--dir", str(directory), "--docker-image-formats", "v2")
    assert switched.returncode == 0 and parse_env(switched.stdout) == env
    assert discovery(directory, host)["dockerImageFormats"] == ["v2"]
    assert cli("start", "--dir", str(directory), "--docker-image-formats", "v1,v2").returncode == 0
    # Without the flag the last choice stays.
    assert cli("stop", "--dir", str(directory)).returncode == 0
    assert cli("start", "--dir", str(directory)).returncode == 0
    assert discovery(directory, host)["dockerImageFormats"] == ["v1", "v2"]
    assert cli("stop", "--dir", str(directory)).returncode == 0
    assert "no cluster running" in cli("stop", "--dir", str(directory)).stdout


@pytest.mark.cluster  # starts clusters of its own
def test_two_clusters_side_by_side(dirs):
    first, second = (Cluster(d, cluster_id=cid)
                     for d, cid in zip(dirs, ("aaaaa", "bbbbb"), strict=True))
    with first, second:
        assert first.api_host != second.api_host
        assert first.token("alice") != second.token("alice")
        one = first.api("alice").users().current().execute()
        two = second.api("alice").users().current().execute()
        assert one["uuid"].startswith("aaaaa-tpzed-") and two["uuid"].startswith("bbbbb-tpzed-")
        assert discovery(dirs[1], second.api_host)["uuidPrefix"] == "bbbbb"
        # A token from one cluster means nothing to the other.
        with pytest.raises(arvados.errors.ApiError) as err:
            second.api("alice", token=first.token("alice")).users().current().execute()
        assert err.value.resp.status == 401
    assert not first.running() and not second.running()


@pytest.mark.cluster  # starts clusters of its own
def test_v2_is_the_default_format(dirs):
    with Cluster(dirs[0]) as cluster:
        assert discovery(dirs[0], cluster.api_host)["dockerImageFormats"] == ["v2"]
        assert cluster.api("admin").users().current().execute()["is_admin"] is True


def test_user_errors_are_one_line(tmp_path):
    never = cli("env", "--dir", str(tmp_path / "nothing"))
    assert never.returncode == 1
    assert never.stderr.count("\n") == 1 and "never been started" in never.stderr
    bad = cli("start", "--dir", str(tmp_path / "x"), "--docker-image-formats", "v 2")
    assert bad.returncode == 2 and "invalid docker image format" in bad.stderr
    badid = cli("start", "--dir", str(tmp_path / "y"), "--cluster-id", "TOO-LONG")
    assert badid.returncode == 1 and badid.stderr.count("\n") == 1


@pytest.mark.cluster  # starts clusters of its own
def test_clients_can_verify_tls_with_the_cluster_ca(dirs, tmp_path):
    """DIR/ca.pem as SSL_CERT_FILE replaces ARVADOS_API_HOST_INSECURE (API and Keep)."""
    program = ("import arvados, arvados.collection\n"
              "api = arvados.api('v1', num_retries=0)\n"
              "c = arvados.collection.Collection(api_client=api)\n"
              "with c.open('x', 'w') as f: f.write('verified')\n"
              "c.save_new()\n"
              "print(arvados.collection.Collection(c.manifest_locator(), api_client=api)"
              ".open('x').read())\n")
    with Cluster(dirs[0]) as cluster:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARVADOS_")}
        env.update(cluster.env("alice"), HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
        del env["ARVADOS_API_HOST_INSECURE"]
        trusted = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                                 timeout=120, env=dict(env, SSL_CERT_FILE=str(cluster.ca_file)))
        assert trusted.returncode == 0, trusted.stderr
        assert trusted.stdout == "verified\n"
        untrusted = subprocess.run([sys.executable, "-c",
                                    "import arvados; arvados.api('v1', num_retries=0)"],
                                   capture_output=True, text=True, timeout=120, env=env)
        assert untrusted.returncode != 0 and "certificate" in untrusted.stderr


@pytest.mark.cluster  # starts clusters of its own
def test_server_stops_when_its_owner_process_dies(dirs):
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    cluster = Cluster(dirs[0], owner_pid=owner.pid)
    try:
        cluster.start()
        pid = cluster.pid()
        assert pid is not None
        owner.kill()
        owner.wait()
        deadline = time.monotonic() + 15
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_alive(pid)
    finally:
        owner.kill()
        cluster.stop()
