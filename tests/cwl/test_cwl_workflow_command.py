"""``arv keepdocker --cwl WORKFLOW``: every image a workflow names, stored ahead of time.

Run as a user runs it (``python -m arv_keepdocker_plugin``, alice on the local
cluster) on a machine with no engine: the images come from loopback registries
(one plain, behind a counting proxy; one TLS with htpasswd, its credentials in
``REGISTRY_AUTH_FILE``; one Docker Hub name through a registries.conf
``location``). The workflow documents are real CWL, read by cwl-utils.
"""

import http.server
import json
import os
import re
import sys
import textwrap
import threading

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from .conftest import run

pytestmark = [pytest.mark.engines, pytest.mark.cluster]

HASH, TAG = "docker_image_hash", "docker_image_repo+tag"
UUID = r"[a-z0-9]{5}-4zz18-[a-z0-9]{15}"


def tool(docker, name="tool"):
    """A CommandLineTool whose DockerRequirement has the fields ``docker``."""
    return {"class": "CommandLineTool", "id": name, "baseCommand": "true", "inputs": [],
            "outputs": [], "hints": [dict({"class": "DockerRequirement"}, **docker)]}


def step(name, run_value):
    return {"id": name, "run": run_value, "in": [], "out": []}


def workflow(steps, hints=(), name="main"):
    return {"class": "Workflow", "id": name, "inputs": [], "outputs": [], "steps": steps,
            "hints": list(hints)}


class Images:
    """Three distinct images in three registries, pushed for one test."""

    def __init__(self, registries, unique):
        self.registries = registries
        plain, secure = registries.proxy.address, registries.secure.address
        self.shared = "%s/cwlwf/%s-shared:1" % (plain, unique)     # used by two steps
        self.private = "%s/cwlwf/%s-private:1" % (secure, unique)  # needs credentials
        self.hub = "cwlhub/%s-hub" % unique                        # Docker Hub, no tag
        self.built = {}
        for name, address, repository in (
                (self.shared, plain, "cwlwf/%s-shared:1" % unique),
                (self.private, secure, "cwlwf/%s-private:1" % unique),
                (self.hub, plain, "cwlhub/%s-hub:latest" % unique)):
            built = ib.build_image([{"f": (name + unique).encode() * 30},
                                    {"g": unique.encode() * 10}], compression="gzip")
            registries.push(address, repository, built)
            self.built[name] = built

    @property
    def linked(self):
        """``{image id: the docker_image_repo+tag a-c-r looks up}``."""
        return {self.built[self.shared].image_id: self.shared,
                self.built[self.private].image_id: self.private,
                self.built[self.hub].image_id: self.hub + ":latest"}

    def layer_count(self):
        return sum(len(b.layers) + 1 for b in self.built.values())


def documents(images, shape, directory):
    """Write the workflow in ``shape``; return the path to give ``--cwl``.

    Every shape: a subworkflow (image ``shared`` and ``private``) run by two
    steps, a third step running the tool with ``shared`` again, the Docker Hub
    image as the main workflow's hint, and requirements with nothing to pull
    (dockerFile, dockerLoad, dockerImageId only).
    """
    shared = tool({"dockerPull": images.shared}, "shared")
    private = tool({"dockerPull": images.private}, "private")
    built = tool({"dockerFile": "FROM scratch\nCOPY x /x\n"}, "built")
    loaded = tool({"dockerLoad": "/home/someone/image.tar"}, "loaded")
    by_id = tool({"dockerImageId": "sha256:" + "a" * 64}, "by-id")
    hub_hint = {"class": "DockerRequirement", "dockerPull": images.hub}
    if shape == "nested":
        for name, document in (("shared.cwl", shared), ("private.cwl", private),
                               ("built.cwl", built), ("loaded.cwl", loaded),
                               ("by-id.cwl", by_id)):
            write(directory / name, dict(document, cwlVersion="v1.2"))
        sub = workflow([step("a", "shared.cwl"), step("b", "private.cwl"),
                        step("c", "built.cwl")], name="sub")
        write(directory / "sub.cwl", dict(sub, cwlVersion="v1.2"))
        main = workflow([step("one", "sub.cwl"), step("two", "sub.cwl"),
                         step("three", "shared.cwl"), step("four", "loaded.cwl"),
                         step("five", "by-id.cwl")], [hub_hint])
        write(directory / "main.cwl", dict(main, cwlVersion="v1.2"))
        return str(directory / "main.cwl")
    main_id = "main" if shape == "packed-main" else "top"
    graph = [
        workflow([step("%s/one" % main_id, "#sub"), step("%s/two" % main_id, "#sub"),
                  step("%s/three" % main_id, "#shared"), step("%s/four" % main_id, "#loaded"),
                  step("%s/five" % main_id, "#by-id")], [hub_hint], name=main_id),
        workflow([step("sub/a", "#shared"), step("sub/b", "#private"),
                  step("sub/c", "#built")], name="sub"),
        shared, private, built, loaded, by_id]
    for item in graph:
        item["id"] = "#" + item["id"]
        for each in item.get("steps", []):
            each["id"] = "#" + each["id"]
    write(directory / "packed.cwl", {"cwlVersion": "v1.2", "$graph": graph})
    return str(directory / "packed.cwl")


def write(path, document):
    path.write_text(json.dumps(document, indent=1))


def keepdocker(*args, env=None):
    return run([sys.executable, "-m", "arv_keepdocker_plugin", *args],
               env=dict(os.environ, **(env or {})))


def image_lines(stdout):
    return [l for l in stdout.splitlines() if not l.startswith("skipped ")]


@pytest.fixture
def as_alice(no_engine_machine, arv_cluster, monkeypatch):
    for name, value in arv_cluster.env("alice").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ARV_KEEPDOCKER_DISABLE_PLUGINS", "oci_labels")
    return no_engine_machine


def blob_gets(registries):
    with registries.proxy.lock:
        return [r for r in registries.proxy.seen if r["method"] == "GET"
                and "/blobs/" in str(r["path"])]


@pytest.mark.parametrize("shape", ["nested", "packed-main", "packed-no-main"])
def test_every_image_stored_once_and_a_second_run_stores_nothing(
        shape, as_alice, cwl_registries, arv_api, arv_api_admin, snapshot, unique, tmp_path):
    images = Images(cwl_registries, unique)
    path = documents(images, shape, tmp_path)

    before, gets = snapshot(), len(blob_gets(cwl_registries))
    first = keepdocker("--no-progress", "--cwl", path)
    assert first.returncode == 0, first.stderr
    lines = image_lines(first.stdout)
    assert len(lines) == 3, first.stdout
    assert {tuple(l.split()[:2]) for l in lines} == {
        ("stored", images.shared), ("stored", images.private), ("stored", images.hub)}
    assert all(re.fullmatch(r"stored +\S+ " + UUID, l) for l in lines), lines
    skipped = [l for l in first.stdout.splitlines() if l.startswith("skipped ")]
    assert [l.split()[1] for l in skipped] == ["dockerFile:", "dockerLoad:",
                                               "dockerImageId:"], skipped
    assert "3 images: 3 stored; 3 requirements skipped (dockerFile, dockerImageId, " \
        "dockerLoad)" in first.stderr
    # each image is stored once, linked under the name a-c-r looks up
    collections = snapshot()[0] - before[0]
    assert len(collections) == 3
    linked = {}
    for uuid in collections:
        links = {(l["link_class"], l["name"]) for l in arv_api_admin.links().list(filters=[
            ["head_uuid", "=", uuid], ["link_class", "!=", "docker_image_layer"]]
        ).execute()["items"]}
        (image_id,) = [n for c, n in links if c == HASH]
        linked[image_id] = [n for c, n in links if c == TAG]
    assert linked == {image_id: [name] for image_id, name in images.linked.items()}
    # the shared image was downloaded once (its layers and config)
    shared_gets = [r for r in blob_gets(cwl_registries)[gets:]
                   if ("cwlwf/%s-shared" % unique) in str(r["path"])]
    assert len(shared_gets) == len(images.built[images.shared].layers) + 1

    # a second run: nothing stored, no layer downloaded (the TLS registry is blocked)
    as_alice.usual_conf(blocked=[cwl_registries.secure.address])
    before, requests = snapshot(), len(cwl_registries.proxy.seen)
    second = keepdocker("--no-progress", "--cwl", path)
    assert second.returncode == 0, second.stderr
    assert sorted(l.split()[0] for l in image_lines(second.stdout)) == ["found"] * 3
    assert {l.split()[2] for l in image_lines(second.stdout)} == collections
    assert snapshot() == before
    assert len(cwl_registries.proxy.seen) == requests, "a stored image reached the registry"


def test_json_into_a_project_copies_then_finds(as_alice, cwl_registries, arv_api, arv_project,
                                               snapshot, unique, tmp_path):
    images = Images(cwl_registries, unique)
    path = documents(images, "nested", tmp_path)
    assert keepdocker("--no-progress", "--cwl", path).returncode == 0  # into the home project

    project = arv_project["uuid"]
    as_alice.usual_conf(blocked=[cwl_registries.secure.address])
    requests = len(cwl_registries.proxy.seen)
    copied = keepdocker("--no-progress", "--json", "--project-uuid", project, "--cwl", path)
    assert copied.returncode == 0, copied.stderr
    document = json.loads(copied.stdout)
    assert document["version"] == 1 and document["workflow"] == path
    assert document["counts"] == {"stored": 0, "copied": 3, "linked": 0, "found": 0,
                                  "failed": 0, "refused": 0, "skipped": 3, "unread": 0}
    assert {i["image"]: i["name"] for i in document["images"]} == {
        images.shared: images.shared, images.private: images.private,
        images.hub: images.hub + ":latest"}
    assert all(i["collection"]["owner_uuid"] == project and i["source"] == "arvados"
               for i in document["images"]), document["images"]
    assert [s["field"] for s in document["skipped"]] == ["dockerFile", "dockerLoad",
                                                         "dockerImageId"]
    assert len(cwl_registries.proxy.seen) == requests  # copied from Arvados, not the registry

    before = snapshot()
    again = keepdocker("--no-progress", "--json", "--project-uuid", project, "--cwl", path)
    assert json.loads(again.stdout)["counts"]["found"] == 3
    assert snapshot() == before
    dry = keepdocker("--dry-run", "--project-uuid", project, "--cwl", path)
    assert dry.returncode == 0, dry.stderr


def test_refresh_stores_a_new_image_only_where_the_tag_moved(
        as_alice, cwl_registries, arv_api, snapshot, unique, tmp_path):
    address = cwl_registries.proxy.address
    moving = "%s/cwlwf/%s-moving:1" % (address, unique)
    steady = "%s/cwlwf/%s-steady:1" % (address, unique)
    for name, content in ((moving, "first"), (steady, "steady")):
        cwl_registries.push(address, name.split("/", 1)[1],
                            ib.build_image([{"c": (unique + content).encode()}],
                                           compression="gzip", created="2022-01-01T00:00:00Z"))
    path = tmp_path / "wf.cwl"
    write(path, dict(workflow([step("a", tool({"dockerPull": moving}, "m")),
                               step("b", tool({"dockerPull": steady}, "s"))]),
                     cwlVersion="v1.2"))
    first = keepdocker("--no-progress", "--cwl", str(path))
    assert first.returncode == 0, first.stderr
    cwl_registries.push(address, moving.split("/", 1)[1],
                        ib.build_image([{"c": (unique + "second").encode()}],
                                       compression="gzip", created="2023-01-01T00:00:00Z"))

    before = snapshot()
    unchanged = keepdocker("--no-progress", "--cwl", str(path))
    assert sorted(l.split()[0] for l in unchanged.stdout.splitlines()) == ["found", "found"]
    assert snapshot() == before
    dry = keepdocker("--dry-run", "--refresh", "--cwl", str(path))
    assert dry.returncode == 2 and dry.stdout.split()[0] == "stored"  # tags are not resolved
    assert snapshot() == before

    refreshed = keepdocker("--no-progress", "--refresh", "--cwl", str(path))
    assert refreshed.returncode == 0, refreshed.stderr
    actions = {l.split()[1]: l.split()[0] for l in refreshed.stdout.splitlines()}
    assert actions == {moving: "stored", steady: "found"}
    assert len(snapshot()[0] - before[0]) == 1


def test_the_commands_registry_options_apply(as_alice, cwl_registries, arv_api, snapshot,
                                            unique, tmp_path):
    """--src-authfile: the credentials the workflow's private image needs, and no others."""
    address = cwl_registries.secure.address
    private = "%s/cwlwf/%s-opt:1" % (address, unique)
    cwl_registries.push(address, private.split("/", 1)[1],
                        ib.build_image([{"o": unique.encode()}], compression="gzip"))
    path = tmp_path / "wf.cwl"
    write(path, dict(workflow([step("a", tool({"dockerPull": private}, "a"))]),
                     cwlVersion="v1.2"))
    auth_file = os.environ["REGISTRY_AUTH_FILE"]
    as_alice.monkeypatch.delenv("REGISTRY_AUTH_FILE")
    before = snapshot()
    denied = keepdocker("--no-progress", "--cwl", str(path))
    assert denied.returncode == 1 and denied.stdout.split()[:2] == ["failed", private]
    assert snapshot() == before
    allowed = keepdocker("--no-progress", "--src-authfile", auth_file, "--cwl", str(path))
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.split()[:2] == ["stored", private]


class Recorder(http.server.ThreadingHTTPServer):
    """An HTTP server that records every request (and serves nothing)."""

    def __init__(self):
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(handler):  # noqa: N805
                self.requests.append(handler.path)
                handler.send_error(404)
            do_HEAD = do_GET

            def log_message(handler, *args):  # noqa: N805
                pass
        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def recorder():
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_remote_run_is_refused_with_no_network_and_the_rest_is_stored(
        as_alice, cwl_registries, recorder, arv_api, snapshot, unique, tmp_path):
    address = cwl_registries.proxy.address
    local = "%s/cwlwf/%s-local:1" % (address, unique)
    cwl_registries.push(address, local.split("/", 1)[1],
                        ib.build_image([{"l": unique.encode()}], compression="gzip"))
    remote = "http://127.0.0.1:%d/tool.cwl" % recorder.server_address[1]
    path = tmp_path / "wf.cwl"
    write(path, dict(workflow([step("here", tool({"dockerPull": local}, "here")),
                               step("there", remote)]), cwlVersion="v1.2"))
    proc = keepdocker("--no-progress", "--cwl", str(path))
    assert proc.returncode == 1
    assert recorder.requests == []
    assert proc.stdout.split()[:2] == ["stored", local]
    errors = [l for l in proc.stderr.splitlines() if " ERROR: " in l]
    assert len(errors) == 1 and "refused the run: '%s'" % remote in errors[0], proc.stderr
    assert "remote document" in errors[0]


def test_the_workflow_rule_applies(as_alice, cwl_registries, arv_api, snapshot, unique,
                                   tmp_path):
    """A workflow is untrusted input: a local archive it names is refused unless trusted."""
    built = ib.build_image([{"p": unique.encode()}], repo_tags=["private/%s:1" % unique])
    archive = tmp_path / "private.tar"
    ib.write_docker_archive(str(archive), [built])
    named = "docker-archive:%s" % archive
    path = tmp_path / "wf.cwl"
    write(path, dict(workflow([step("a", tool({"dockerPull": named}, "a")),
                               step("b", tool({"dockerPull": "--source=x"}, "b"))]),
                     cwlVersion="v1.2"))
    before = snapshot()
    refused = keepdocker("--no-progress", "--cwl", str(path))
    assert refused.returncode == 1
    assert sorted(l.split()[0] for l in refused.stdout.splitlines()) == ["refused", "refused"]
    errors = [l for l in refused.stderr.splitlines() if " ERROR: " in l]
    assert len(errors) == 2 and all("named by the workflow" in e for e in errors)
    assert snapshot() == before

    trusted = keepdocker("--no-progress", "--trust-workflow-sources", "--cwl", str(path))
    assert trusted.returncode == 1  # the option-like name stays refused
    actions = {l.split()[1]: l.split()[0] for l in trusted.stdout.splitlines()}
    assert actions == {named: "stored", "--source=x": "refused"}
    with_env = keepdocker("--no-progress", "--cwl", str(path),
                          env={"ARV_KEEPDOCKER_TRUST_WORKFLOW_SOURCES": "1"})
    assert {l.split()[1]: l.split()[0] for l in with_env.stdout.splitlines()} == {
        named: "found", "--source=x": "refused"}


@pytest.mark.parametrize("args, says", [
    (["--cwl", "wf.cwl", "debian:12"], "--cwl stores the images the workflow names: give no "
     "IMAGE or TAG"),
    (["--cwl", "wf.cwl", "--source", "podman"], "give no --source or --name"),
    (["--cwl", "wf.cwl", "--name", "x"], "give no --source or --name"),
    (["--refresh", "debian:12"], "--refresh goes with --cwl WORKFLOW"),
    (["--trust-workflow-sources", "debian:12"], "--trust-workflow-sources goes with --cwl"),
])
def test_usage_errors(args, says):
    proc = keepdocker(*args)
    assert proc.returncode == 2 and says in proc.stderr


def test_an_unreadable_workflow_is_one_line(as_alice, tmp_path, snapshot):
    bad = tmp_path / "bad.cwl"
    bad.write_text("cwlVersion: v1.2\nclass: [\n")
    before = snapshot()
    for path, says in ((str(bad), "cannot read the workflow '%s': while parsing" % bad),
                       (str(tmp_path / "none.cwl"), "no such file")):
        proc = keepdocker("--cwl", path)
        assert proc.returncode == 1 and proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], proc.stderr
    assert snapshot() == before


def test_without_the_cwl_extra_one_line_names_the_install(tmp_path):
    code = textwrap.dedent("""
        import sys
        sys.modules["cwl_utils"] = None  # what an uninstalled package looks like to import
        from arv_keepdocker_plugin.cli import run
        sys.exit(run(["--cwl", sys.argv[1]]))
    """)
    path = tmp_path / "wf.cwl"
    path.write_text("cwlVersion: v1.2\nclass: Workflow\n")
    proc = run([sys.executable, "-c", code, str(path)], env=dict(os.environ))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install 'arv-keepdocker-plugin[cwl]'" in lines[0]
