"""arvados-cwl-runner 3.2.1 (the real one, from PyPI) with and without the launcher.

The local cluster has no workflows or containers API, so a full submit is out
of reach: these tests call a-c-r's own ``arvados_cwl.arvdocker.arv_docker_get_image``,
the function every a-c-r path (submit, --create-workflow, container requests)
uses to find or store an image, and run the launcher command for what needs
no containers API (--version, --validate).

Every test here needs arvados-cwl-runner: without it they are skipped, or fail
when ``CI`` is set (install it with ``pip install -e '.[cwl]'``; dev/setup does).
"""

import os
import shutil
import subprocess

import pytest
from arv_keepdocker_testkit.scripts import BIN, script  # noqa: F401  (used by the tests)
from e2e.conftest import ArvadosState, unique  # noqa: F401  (fixture re-exported)

#: PATH as the test run started (tests change it to hide the engines).
ORIGINAL_PATH = os.environ.get("PATH", os.defpath)
#: Where no Docker engine listens: the docker CLI fails to connect.
DEAD_DOCKER_HOST = "unix:///nonexistent-akd-cwl/docker.sock"


def skip_or_fail(message: str) -> None:
    """Skip (locally) or fail (``CI`` set), as the project's engine fixtures do."""
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def arvados_cwl_runner():
    """arvados-cwl-runner's ``arvdocker`` module; skip or fail when it is missing."""
    try:
        import arvados_cwl
        import arvados_cwl.arvdocker
    except ImportError as error:
        skip_or_fail(f"arvados-cwl-runner is not importable ({error}); install the [cwl] extra: "
                     "pip install -e '.[cwl]'")
    assert arvados_cwl.__version__ == "3.2.1", arvados_cwl.__version__
    return arvados_cwl.arvdocker


@pytest.fixture
def launcher():
    """The launcher's set-up (``cwl_runner.install()``) for one test, undone after."""
    from arv_keepdocker_plugin import cwl_runner

    assert not cwl_runner.installed(), "a previous test left the launcher installed"
    cwl_runner.install()
    yield cwl_runner
    cwl_runner.uninstall()


def runtime_context(**settings):
    """A fresh a-c-r runtime context (so a-c-r's own lookup cache starts empty)."""
    from arvados_cwl.context import ArvRuntimeContext

    return ArvRuntimeContext(settings)


@pytest.fixture
def engine_path(tmp_path):
    """``engine_path("podman", "docker")``: a PATH with only those engine CLIs on it."""
    directory = tmp_path / "engine-bin"
    directory.mkdir()

    def make(*names):
        for name in names:
            found = shutil.which(name) or (shutil.which("docker.io") if name == "docker" else None)
            if found is None:
                skip_or_fail(f"{name} is not installed")
            os.symlink(found, directory / name)
        return str(directory)
    return make


@pytest.fixture
def only_podman(engine_path, keepdocker_podman_store, monkeypatch):
    """podman (the session store) is the only engine CLI on PATH."""
    monkeypatch.setenv("PATH", engine_path("podman"))
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", keepdocker_podman_store.storage_conf)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return keepdocker_podman_store


@pytest.fixture
def podman_and_dead_docker(engine_path, keepdocker_podman_store, monkeypatch):
    """podman and a docker CLI on PATH; DOCKER_HOST is a socket nobody listens on."""
    monkeypatch.setenv("PATH", engine_path("podman", "docker"))
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", keepdocker_podman_store.storage_conf)
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER_HOST)
    return keepdocker_podman_store


@pytest.fixture
def snapshot(arv_api_admin):
    """``snapshot()``: every collection and link on the cluster, seen by admin."""
    return ArvadosState(arv_api_admin).snapshot


def run(args, env, timeout=600, cwd=None):
    """Run a command beside this Python, output captured as text."""
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=cwd)



# -- registries, and a machine with no engine ----------------------------------

class CwlRegistries:
    """Two loopback ``docker-registry`` servers on one storage, and a proxy.

    ``plain``: plain HTTP, anonymous; ``proxy`` (a
    :class:`~registry.faultproxy.FaultProxy` in front of it) is the address
    workflows name, so every request it serves is seen. ``secure``: HTTPS with
    a private CA and htpasswd (``user``, ``password``).
    """

    def __init__(self, workdir, plain, secure, proxy, ca, user, password):
        self.workdir, self.plain, self.secure, self.proxy = workdir, plain, secure, proxy
        self.ca, self.user, self.password = ca, user, password

    def push(self, address, name, image):
        """Push an imagebuild image to ``address`` (plain, proxy or secure) as ``name``."""
        from registry import harness

        options = []
        if address == self.secure.address:
            options = ["--dest-creds", "%s:%s" % (self.user, self.password)]
        if address == self.proxy.address:
            address = self.plain.address  # same storage: the proxy serves it too
        try:
            return harness.push_oci(self.workdir, address, name, image, *options)
        except harness.StartError as error:
            harness.skip_or_fail("skopeo", error)
            raise


@pytest.fixture(scope="session")
def cwl_registries():
    import tempfile

    import trustme
    from registry import harness
    from registry.faultproxy import FaultProxy

    workdir = tempfile.mkdtemp(prefix="akd-cwlreg-", dir="/tmp")
    storage = os.path.join(workdir, "storage")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = os.path.join(workdir, "server.pem"), os.path.join(workdir, "server.key")
    for index, pem in enumerate(leaf.cert_chain_pems):
        pem.write_to_path(cert, append=bool(index))
    leaf.private_key_pem.write_to_path(key)
    password = "Cwl-s3cret-Pa55"
    htpasswd = harness.write_htpasswd(os.path.join(workdir, "htpasswd"), {"carol": password})
    servers = []
    try:
        for name, kwargs in (("plain", {}), ("secure", {"tls": (cert, key),
                                                        "htpasswd": htpasswd})):
            server = harness.RegistryServer(os.path.join(workdir, name), storage, **kwargs)
            try:
                servers.append(server.start())
            except (harness.StartError, OSError) as error:
                harness.skip_or_fail("docker-registry", error)
        proxy = FaultProxy(servers[0].address)
        try:
            yield CwlRegistries(workdir, servers[0], servers[1], proxy, ca, "carol", password)
        finally:
            proxy.close()
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


#: registries.conf: Docker Hub's ``cwlhub/`` is the loopback proxy (a
#: ``location``), so names with no registry reach it as Docker Hub names.
HUB_PREFIX = "docker.io/cwlhub"


class NoEngineMachine:
    """A machine with no engine: ``PATH`` holds only skopeo (to push), no
    ``DOCKER_HOST``; a private ``HOME`` with registries.conf, certs.d, an
    auth file (``REGISTRY_AUTH_FILE``) and an accept-anything policy.json."""

    def __init__(self, home, registries, monkeypatch):
        self.home = home
        self.registries = registries
        self.monkeypatch = monkeypatch
        self.conf_path = os.path.join(home, "registries.conf")

    def conf(self, text):
        with open(self.conf_path, "w") as f:
            f.write(text)

    def usual_conf(self, blocked=()):
        """The plain registry and its proxy insecure; Hub's cwlhub/ through the proxy;
        ``blocked`` addresses blocked (any request to them would fail)."""
        proxy = self.registries.proxy.address
        text = ('[[registry]]\nprefix = "%s"\nlocation = "%s/cwlhub"\ninsecure = true\n'
                % (HUB_PREFIX, proxy))
        for address in (proxy, self.registries.plain.address):
            text += '[[registry]]\nlocation = "%s"\ninsecure = true\n' % address
        for address in blocked:
            text += '[[registry]]\nlocation = "%s"\nblocked = true\n' % address
        self.conf(text)


@pytest.fixture
def no_engine_machine(cwl_registries, tmp_path, monkeypatch):
    """Enter a :class:`NoEngineMachine` for the test."""
    import base64
    import json

    home = tmp_path / "home"
    bin_dir = tmp_path / "bin-no-engines"
    bin_dir.mkdir()
    skopeo = shutil.which("skopeo")
    if skopeo:
        os.symlink(skopeo, bin_dir / "skopeo")
    certs = home / ".config" / "containers" / "certs.d" / cwl_registries.secure.address
    certs.mkdir(parents=True)
    cwl_registries.ca.cert_pem.write_to_path(str(certs / "ca.crt"))
    (home / ".config" / "containers" / "policy.json").write_text(
        json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    auth = tmp_path / "auth.json"
    token = base64.b64encode(("%s:%s" % (cwl_registries.user, cwl_registries.password))
                             .encode()).decode()
    auth.write_text(json.dumps({"auths": {cwl_registries.secure.address: {"auth": token}}}))
    for name in ("DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT", "CONTAINERS_STORAGE_CONF",
                 "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    machine = NoEngineMachine(str(home), cwl_registries, monkeypatch)
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", machine.conf_path)
    machine.usual_conf()
    return machine
