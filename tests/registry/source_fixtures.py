"""Fixtures for ``arv keepdocker docker://...`` run for real (the ``docker://`` source).

Imported by this directory's conftest, so the source's end-to-end tests share
the session's loopback registries (``registry_images``, ``registry_basic``...)
with the client library's tests, and the local Arvados cluster with
``tests/e2e``.

``source_run``
    A :class:`SourceRun`: ``source_run(*args)`` runs ``python -m
    arv_keepdocker_plugin ARGS`` as alice, in a private HOME (caches, auth
    files, certs.d) with its own registries.conf (``source_run.conf(text)``)
    and its own trust policy, accepting anything unless
    ``source_run.policy(document)`` says otherwise (the machine's files are
    never read).
``push``
    ``push(address, name, image, *skopeo_options)``: push an
    :mod:`~arv_keepdocker_testkit.imagebuild` image or index with skopeo;
    returns the pushed manifest (or index) digest.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from e2e.conftest import (  # noqa: F401
    ArvadosState,
    arvados_state,
    base_env,
    error_lines,
    unchanged,
    unique,
)

from . import harness

UUID = re.compile(r"^[a-z0-9]{5}-4zz18-[a-z0-9]{15}$")
LOG_LINE = re.compile(r"^\S+ \S+ arvados\.keepdocker\[\d+\] ERROR: (.*)$")
MiB = 1 << 20


class SourceRun:
    """Runs the command as alice with a private HOME and registries.conf."""

    def __init__(self, env: dict[str, str], home: str) -> None:
        self.env = env
        self.home = home
        self.conf_path = os.path.join(home, "registries.conf")
        self.env["CONTAINERS_REGISTRIES_CONF"] = self.conf_path
        self.conf("")
        #: The user's policy.json, found through HOME (it hides the system's).
        self.policy_path = os.path.join(home, ".config", "containers", "policy.json")
        self.policy({"default": [{"type": "insecureAcceptAnything"}]})

    def policy(self, document: dict) -> str:
        """Use ``document`` as the user's policy.json from now on; return its path."""
        os.makedirs(os.path.dirname(self.policy_path), exist_ok=True)
        with open(self.policy_path, "w") as f:
            json.dump(document, f)
        return self.policy_path

    def conf(self, text: str) -> None:
        """Use ``text`` as registries.conf from now on."""
        with open(self.conf_path, "w") as f:
            f.write(textwrap.dedent(text))

    def insecure(self, *addresses: str) -> None:
        """registries.conf marking ``addresses`` insecure (plain HTTP allowed)."""
        self.conf("".join('[[registry]]\nlocation = "%s"\ninsecure = true\n' % a
                          for a in addresses))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "arv_keepdocker_plugin", *args]

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), env=dict(self.env, **(env or {})),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)

    def journal(self, image_id: str) -> str:
        return os.path.join(self.env["XDG_CACHE_HOME"], "arvados", "docker",
                            image_id + ".tar.journal")

    def certs_d(self, address: str, ca) -> None:
        """Trust ``ca`` for ``address`` through the user's certs.d, as podman does."""
        directory = os.path.join(self.home, ".config", "containers", "certs.d", address)
        os.makedirs(directory, exist_ok=True)
        ca.cert_pem.write_to_path(os.path.join(directory, "ca.crt"))


@pytest.fixture
def source_run(base_env, arv_cluster, tmp_path):  # noqa: F811  (a fixture)
    env = dict(base_env, **arv_cluster.env("alice"))
    for name in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "CONTAINERS_REGISTRIES_CONF"):
        env.pop(name, None)
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    return SourceRun(env, env["HOME"])


@pytest.fixture
def push(registry_images):
    def push_image(address: str, name: str, item, *options: str) -> str:
        try:
            return harness.push_oci(registry_images.workdir, address, name, item, *options)
        except harness.StartError as error:
            harness.skip_or_fail("skopeo", error)
            raise
    return push_image


def uploaded(proc: subprocess.CompletedProcess) -> str:
    """The collection UUID, the one line on stdout of a successful run."""
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and UUID.match(lines[0]), proc.stdout
    return lines[0]


def one_error(proc: subprocess.CompletedProcess) -> str:
    """The one error line's message, after checking exit status 1 and no traceback."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    match = LOG_LINE.match(lines[0])
    assert match, lines[0]
    return match.group(1)


def counts(stderr: str) -> dict[str, int]:
    """The last ``--batch-progress`` line's ``<number> <word>`` pairs after ``total``."""
    line = [l for l in stderr.splitlines() if re.search(r" written -?\d+ total ", l)][-1]
    head, total, rest = re.split(r" written (-?\d+) total ", line)
    pairs = re.findall(r"(\d+) (\w+)", rest)
    found = {word: int(number) for number, word in pairs}
    found["written"] = int(head.rsplit(" ", 1)[1])
    found["total"] = int(total)
    return found


def links_of(api, uuid: str) -> dict[tuple, dict]:
    """``{(link_class, name): properties}`` of the image links on a collection.

    The properties leave out the writer rule's stamp on the hash link
    (``digests_checked``, ``collection_pdh``: tests/core/test_trust.py and the
    reliability suite test it) and the user's ``docker_image_checked`` records.
    """
    from arv_keepdocker_plugin.keep.trust_records import CHECKED_LINK, unstamped

    return {(l["link_class"], l["name"]): unstamped(l["properties"]) for l in api.links().list(
        filters=[["head_uuid", "=", uuid],
                 ["link_class", "not in", ["docker_image_layer", CHECKED_LINK]]],
        limit=100).execute()["items"]}


def tar_bytes(api, uuid: str) -> bytes:
    """The one ``<id>.tar`` of an image collection (small test images only)."""
    import arvados.collection
    reader = arvados.collection.CollectionReader(uuid, api_client=api)
    (name,) = list(reader.keys())
    with reader.open(name, "rb") as f:
        return f.read()


def blob_gets(proxy, since: int = 0) -> list[str]:
    """Digests of the blobs GET through ``proxy`` since its ``since``-th request."""
    with proxy.lock:
        seen = list(proxy.seen[since:])
    return [str(r["path"]).rsplit("/", 1)[1] for r in seen
            if r["method"] == "GET" and "/blobs/" in str(r["path"])]
