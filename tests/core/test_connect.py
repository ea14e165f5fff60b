"""An API host that cannot be reached ends the run in seconds, in one line.

Real runs of the command against a port nothing listens on and a name that
cannot resolve (``.invalid`` is reserved for that, RFC 6761), with the
default ``--retries``; arv-keepdocker 3.2.1 sleeps through ten retries
(more than five minutes) on either.
"""

import logging
import os
import subprocess
import sys
import time

import pytest

from arv_keepdocker_plugin.steps.connect import ApiSetting, ApiUnreachable, Watch

LINE = ("ERROR: cannot reach the Arvados API server: {}; check ARVADOS_API_HOST={} "
        "(from {})")


@pytest.fixture
def env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARVADOS_", "DOCKER_"))}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"),
               XDG_CACHE_HOME=str(tmp_path / "cache"), ARVADOS_API_TOKEN="x")
    return env


def keepdocker(env, *args):
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "arv_keepdocker_plugin", *args], env=env,
                          capture_output=True, text=True, timeout=60)
    return proc, time.monotonic() - start


@pytest.mark.parametrize("host, reason", [
    ("127.0.0.1:9", "the connection was refused"),
    ("nonexistent.invalid", "the host name does not resolve")])
@pytest.mark.parametrize("args", [["debian:12"], []])  # an upload, the listing
def test_an_unreachable_host_ends_in_seconds_naming_the_variable(env, host, reason, args):
    proc, took = keepdocker(dict(env, ARVADOS_API_HOST=host), *args)
    assert took < 10
    assert proc.returncode == 1 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.endswith(LINE.format(reason, host, "the environment"))


def test_the_line_says_when_the_host_came_from_settings_conf(env, tmp_path):
    settings = tmp_path / "config" / "arvados" / "settings.conf"
    settings.parent.mkdir(parents=True)
    settings.write_text("ARVADOS_API_HOST=127.0.0.1:9\nARVADOS_API_TOKEN=x\n")
    env.pop("ARVADOS_API_TOKEN")
    proc, took = keepdocker(env, "--json", "debian:12")
    assert took < 10 and proc.returncode == 1
    [line] = proc.stderr.splitlines()
    assert line.endswith(LINE.format("the connection was refused", "127.0.0.1:9", settings))
    # With --json the error is the one document on stdout too.
    assert '"error": "cannot reach the Arvados API server' in proc.stdout


class Response:
    """What httplib2 answers: a response and its content."""

    def __init__(self, status, fromcache=False):
        self.status, self.reason, self.fromcache = status, "Service Unavailable", fromcache

    @classmethod
    def of(cls, status, fromcache=False):
        return lambda: (cls(status, fromcache), b"")


def refused(*args, **kwargs):
    raise ConnectionRefusedError(111, "Connection refused")


def test_once_the_server_answered_a_refusal_is_retried_as_before(caplog):
    watch = Watch(ApiSetting("api.example", "the environment"), retries=10)
    with pytest.raises(ApiUnreachable):
        watch.request(refused)
    # An answer from the HTTP cache is no answer from the server.
    watch.request(Response.of(200, fromcache=True))
    with pytest.raises(ApiUnreachable):
        watch.request(refused)
    watch.request(Response.of(200))
    caplog.set_level(logging.INFO, "arvados.keepdocker")
    for _ in range(3):
        with pytest.raises(ConnectionRefusedError):  # googleapiclient retries it
            watch.request(refused)
    [record] = caplog.records
    assert record.getMessage() == (
        "Arvados API server at api.example: the connection was refused; retrying up to 10 "
        "times, waiting longer each time (--retries 10); press Ctrl-C to stop, or use "
        "--retries 0 to fail at once")


def test_a_5xx_answer_is_retried_and_said_once(caplog):
    caplog.set_level(logging.INFO, "arvados.keepdocker")
    watch = Watch(ApiSetting("api.example", "the environment"), retries=3)
    watch.request(Response.of(503))
    watch.request(Response.of(503))
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "Arvados API server at api.example: HTTP 503 Service Unavailable"]
    quiet = Watch(ApiSetting("api.example", "the environment"), retries=0)
    quiet.request(Response.of(503))  # --retries 0: nothing is retried, nothing said
    assert len(caplog.records) == 1
