"""Start, stop and use a local cluster living in one directory.

>>> from arv_keepdocker_testkit.cluster import Cluster
>>> with Cluster("/tmp/c1") as c:                       # doctest: +SKIP
...     api = c.api("alice")
...     api.users().current().execute()["uuid"]

The server runs as a detached background process
(``python -m arv_keepdocker_testkit.cluster.cli serve``), so it
outlives the Python process that started it unless :meth:`Cluster.stop` is
called (the context manager does). Everything in the directory survives a
stop and a start; see :mod:`.settings` for the layout.
"""

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from . import store as _store
from .settings import Settings, parse_image_formats
from .tls import ensure_certificates

USERS = ("alice", "bob", "admin")


class ClusterError(Exception):
    """The cluster could not be started, stopped or reached (one-line message)."""


def pid_alive(pid):
    """True if ``pid`` is a live (non-zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class Cluster:
    """A local Arvados-compatible cluster (API + Keep over HTTPS) in ``directory``.

    ``port``: where to listen (default: the previous port if free, else any).
    ``docker_image_formats``: a list (or ``"v1,v2"`` text) to publish as
    ``dockerImageFormats``; None keeps the directory's setting (default v2).
    ``cluster_id``: 5 characters ``[0-9a-z]`` for a new directory (default zzzzz).
    ``owner_pid``: if set, the server stops by itself once that process is
    gone (fixtures use it so a killed test run leaves no daemon behind).
    """

    def __init__(self, directory, port=None, docker_image_formats=None, cluster_id=None,
                 owner_pid=None):
        self.dir = Path(directory).absolute()
        self.owner_pid = owner_pid
        self.requested_port = port
        if isinstance(docker_image_formats, str):
            try:
                docker_image_formats = parse_image_formats(docker_image_formats)
            except ValueError as err:
                raise ClusterError(str(err)) from None
        self.docker_image_formats = docker_image_formats
        self.cluster_id = cluster_id
        self._proc = None
        self._credentials = None

    # -- files -------------------------------------------------------------

    @property
    def pid_file(self):
        return self.dir / "cluster.pid"

    @property
    def ready_file(self):
        return self.dir / "cluster.ready"

    @property
    def log_file(self):
        return self.dir / "cluster.log"

    @property
    def ca_file(self):
        """The CA certificate clients can trust (``SSL_CERT_FILE``)."""
        return self.dir / "ca.pem"

    @property
    def settings(self):
        return Settings(self.dir)

    def pid(self):
        """The server's process id if it is running, else None."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def running(self):
        return self.pid() is not None

    @property
    def port(self):
        port = self.settings.port
        if port is None:
            raise ClusterError("cluster in %s has never been started" % self.dir)
        return port

    @property
    def api_host(self):
        """``127.0.0.1:PORT`` - the value for ARVADOS_API_HOST."""
        return "127.0.0.1:%d" % self.port

    # -- lifecycle -----------------------------------------------------------

    def prepare(self):
        """Create the directory, settings, certificates and users without serving."""
        settings = Settings(self.dir)
        try:
            formats = self.docker_image_formats
            settings.prepare(cluster_id=self.cluster_id,
                             docker_image_formats=list(formats) if formats is not None else None)
        except ValueError as err:
            raise ClusterError(str(err)) from None
        settings.save()
        ensure_certificates(self.dir)
        db = _store.Store(self.dir / "cluster.db", settings.cluster_id)
        try:
            db.bootstrap()
        finally:
            db.close()
        return settings

    def start(self, timeout=30):
        """Start the server in the background (if not running) and wait until it answers."""
        if self.running():
            wanted = self.docker_image_formats
            if wanted is not None and list(wanted) != self.settings.docker_image_formats:
                self.stop()
            else:
                self.wait_ready(timeout)
                return self
        self.prepare()
        for stale in (self.ready_file, self.pid_file):
            if stale.exists():
                stale.unlink()
        command = [sys.executable, "-m", "arv_keepdocker_testkit.cluster.cli", "serve",
                   "--dir", str(self.dir), "--port", str(self.requested_port or 0)]
        if self.owner_pid:
            command += ["--owner-pid", str(self.owner_pid)]
        with open(self.log_file, "ab") as log, open(os.devnull, "rb") as devnull:
            self._proc = subprocess.Popen(command, stdin=devnull, stdout=log, stderr=log,
                                          start_new_session=True, close_fds=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ClusterError("cluster server in %s exited with status %s: %s"
                                   % (self.dir, self._proc.returncode, self._log_tail()))
            if self.ready_file.exists() and self.pid() == self._proc.pid:
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise ClusterError("cluster server in %s did not start within %ss"
                               % (self.dir, timeout))
        self.wait_ready(max(1.0, deadline - time.monotonic()))
        self.write_env()
        return self

    def wait_ready(self, timeout=10):
        """Wait until the discovery document is served."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._request("GET", "/discovery/v1/apis/arvados/v1/rest", timeout=5)
                return
            except (OSError, ClusterError) as err:
                if time.monotonic() > deadline:
                    raise ClusterError("cluster in %s does not answer: %s"
                                       % (self.dir, err)) from None
                time.sleep(0.1)

    def stop(self, timeout=15):
        """Stop the server (SIGTERM, then SIGKILL after ``timeout`` seconds). Idempotent."""
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while pid_alive(pid) and time.monotonic() < deadline:
                if self._proc is not None and self._proc.pid == pid:
                    try:
                        self._proc.wait(timeout=0.1)
                    except subprocess.TimeoutExpired:
                        pass
                else:
                    time.sleep(0.05)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self._proc = None
        for stale in (self.ready_file, self.pid_file):
            if stale.exists():
                stale.unlink()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _log_tail(self, lines=5):
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    # -- users and clients -------------------------------------------------------

    def _creds(self, user):
        if self._credentials is None or user not in self._credentials:
            db = self.dir / "cluster.db"
            if not db.exists():
                raise ClusterError("cluster in %s has never been started" % self.dir)
            self._credentials = _store.read_credentials(db)
        try:
            return self._credentials[user]
        except KeyError:
            raise ClusterError("no user %r in the cluster (users: %s)"
                               % (user, ", ".join(sorted(self._credentials)))) from None

    def token(self, user="alice"):
        """The API token (``v2/<uuid>/<secret>``) of a built-in user."""
        return self._creds(user)[1]

    def user_uuid(self, user="alice"):
        return self._creds(user)[0]

    def env(self, user="alice"):
        """The ARVADOS_* environment variables for ``user``."""
        return {
            "ARVADOS_API_HOST": self.api_host,
            "ARVADOS_API_TOKEN": self.token(user),
            "ARVADOS_API_HOST_INSECURE": "1",
        }

    def env_lines(self, user="alice"):
        """``export NAME=value`` lines for a shell's ``eval``."""
        return "".join("export %s=%s\n" % item for item in self.env(user).items())

    def write_env(self):
        (self.dir / "env").write_text(self.env_lines("alice"))

    def api(self, user="alice", **kwargs):
        """An ``arvados.api('v1')`` client for ``user`` (no discovery cache, no retries)."""
        import arvados

        options = {"host": self.api_host, "token": self.token(user), "insecure": True,
                   "cache": False, "num_retries": 0}
        options.update(kwargs)
        return arvados.api("v1", **options)

    # -- raw requests and faults ---------------------------------------------------

    def _request(self, method, path, body=None, user=None, timeout=30):
        context = ssl.create_default_context(cafile=str(self.ca_file))
        headers = {"Content-Type": "application/json"}
        if user is not None:
            headers["Authorization"] = "Bearer " + self.token(user)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request("https://%s%s" % (self.api_host, path), data=data,
                                         headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            raise ClusterError("%s %s: HTTP %d %s"
                               % (method, path, err.code, err.read()[:300])) from None

    def inject_fault(self, target, count, status=None, stall=0.0, skip=0):
        """Make ``count`` requests of ``target``, after ``skip`` more, fail and/or stall.

        ``target``: ``api``, ``api:<METHOD>:<resource>`` (``api:POST:links``...),
        ``keep_put`` or ``keep_get`` (see :mod:`.faults`).
        """
        return self._request("POST", "/_test/faults", {
            "target": target, "count": count, "status": status, "stall": stall,
            "skip": skip}, user="admin")

    def pending_faults(self):
        """``{target: count still armed}`` (a taken fault no longer counts)."""
        return self._request("GET", "/_test/faults", user="admin")["pending"]

    def clear_faults(self):
        return self._request("DELETE", "/_test/faults", user="admin")
