"""What a DockerRequirement is looked up by (cwl_runner.lookup_names), and what --cwl reads
from a CWL document (cwl_runner.workflow_reader): no services, no network."""

import http.server
import json
import threading

import pytest

from arv_keepdocker_plugin.cwl_runner.lookup_names import (
    BY_DIGEST,
    BY_IMAGE_ID,
    BY_NAME,
    AmbiguousImageId,
    lookup_for,
)
from arv_keepdocker_plugin.cwl_runner.workflow_images import acr_split

DIGEST = "sha256:" + "d" * 64
IMAGE_ID = "sha256:" + "1" * 64


@pytest.mark.parametrize("text, kind, name, tag, as_321", [
    ("debian", BY_NAME, "debian", "latest", True),
    ("debian:12", BY_NAME, "debian", "12", True),
    ("docker.io/library/debian:12", BY_NAME, "docker.io/library/debian", "12", True),
    ("quay.io/org/app:v1.2", BY_NAME, "quay.io/org/app", "v1.2", True),
    # 3.2.1 splits at every ':' (host, 5000/img): read as the registry name it is
    ("host:5000/img:1", BY_NAME, "host:5000/img", "1", False),
    ("host:5000/img", BY_NAME, "host:5000/img", "latest", False),
    ("127.0.0.1:5000/a/b:c", BY_NAME, "127.0.0.1:5000/a/b", "c", False),
    # 3.2.1 lists name 'sha256' and takes the newest image
    (IMAGE_ID, BY_IMAGE_ID, IMAGE_ID, None, False),
    ("sha256:1234abcd", BY_IMAGE_ID, "sha256:1234abcd", None, False),
    # by digest: the manifest digest the hash link records
    ("host:5000/img@" + DIGEST, BY_DIGEST, DIGEST, None, False),
    ("debian:12@" + DIGEST, BY_DIGEST, DIGEST, None, False),
])
def test_lookup_for(text, kind, name, tag, as_321):
    lookup = lookup_for(text)
    assert (lookup.kind, lookup.name, lookup.tag, lookup.as_321) == (kind, name, tag, as_321)
    if kind == BY_NAME:
        assert lookup.upload == (name, tag) and lookup.shown == "%s:%s" % (name, tag)
        if as_321:
            assert acr_split(text) == (name, tag)
    else:
        assert lookup.upload == (name,) and lookup.shown == name


@pytest.mark.parametrize("text", [
    "docker://debian:12", "docker-archive:/tmp/x.tar", "docker-daemon:app:1",
    "--source=docker-archive:/x", "", "Debian:12", "sha256:XYZ", "sha256:" + "1" * 65,
    "a@sha256:short",
])
def test_what_is_no_name_here_is_left_to_a_c_r(text):
    assert lookup_for(text) is None


def test_an_id_names_only_images_it_begins():
    listed = [("c1", {"dockerhash": "sha256:12aa"}), ("c2", {"dockerhash": "sha256:12bb"}),
              ("c3", {"dockerhash": "sha256:99"})]
    assert lookup_for("sha256:12aa").chosen(listed) == listed[:1]
    with pytest.raises(AmbiguousImageId, match="sha256:12 is ambiguous: it begins 2 "):
        lookup_for("sha256:12").chosen(listed)
    assert lookup_for("app:1").chosen(listed) == listed


# -- reading a workflow ----------------------------------------------------------

cwl_utils = pytest.importorskip("cwl_utils", reason="the [cwl] extra is not installed")


def tool(name, **docker):
    return {"class": "CommandLineTool", "id": name, "baseCommand": "true", "inputs": [],
            "outputs": [], "hints": [dict({"class": "DockerRequirement"}, **docker)]}


def flow(name, runs, **docker):
    document = {"class": "Workflow", "id": name, "inputs": [], "outputs": [],
                "steps": [{"id": "%s/s%d" % (name, i), "run": run, "in": [], "out": []}
                          for i, run in enumerate(runs)]}
    if docker:
        document["requirements"] = [dict({"class": "DockerRequirement"}, **docker)]
    return document


def write(path, document):
    path.write_text(json.dumps(dict(document, cwlVersion="v1.2")))
    return str(path)


def pulls(path):
    from arv_keepdocker_plugin.cwl_runner.workflow_reader import read_workflow

    read = read_workflow(path)
    return [r.get("dockerPull") for r in read.requirements], read.unread


def test_nested_documents_each_read_once_with_names_as_written(tmp_path):
    write(tmp_path / "a.cwl", tool("a", dockerPull="debian"))  # traverse would add :latest
    write(tmp_path / "b.cwl", tool("b", dockerPull="host:5000/b:1"))
    write(tmp_path / "sub.cwl", flow("sub", ["a.cwl", "b.cwl"]))
    main = write(tmp_path / "main.cwl", flow("main", ["sub.cwl", "sub.cwl", "a.cwl"],
                                             dockerPull="top:1"))
    assert pulls(main) == (["top:1", "debian", "host:5000/b:1"], [])


def test_packed_with_and_without_main(tmp_path):
    graph = [flow("#main", ["#a"]), tool("#a", dockerPull="a:1"), tool("#b", dockerPull="b:1")]
    with_main = write(tmp_path / "packed.cwl", {"$graph": graph})
    assert pulls(with_main) == (["a:1"], [])  # what #main runs
    assert pulls(with_main + "#b") == (["b:1"], [])
    graph[0] = flow("#top", ["#a"])
    without = write(tmp_path / "nomain.cwl", {"$graph": graph})
    assert pulls(without) == (["a:1", "b:1"], [])  # every process of the graph


def test_skipped_kinds_are_reported(tmp_path):
    from arv_keepdocker_plugin.cwl_runner.workflow_reader import read_workflow

    for name, docker in (("f", {"dockerFile": "FROM x"}), ("l", {"dockerLoad": "x.tar"}),
                         ("i", {"dockerImport": "x.tgz"}), ("d", {"dockerImageId": "a:1"})):
        write(tmp_path / (name + ".cwl"), tool(name, **docker))
    main = write(tmp_path / "main.cwl", flow("main", ["f.cwl", "l.cwl", "i.cwl", "d.cwl"]))
    assert [r.fields for r in read_workflow(main).requirements] == [
        (("dockerFile", "FROM x"),), (("dockerLoad", "x.tar"),), (("dockerImport", "x.tgz"),),
        (("dockerImageId", "a:1"),)]


@pytest.fixture
def web():
    """A local HTTP server that records every request (the network, as far as we see)."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.path)
            self.send_error(404)
        do_HEAD = do_GET

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_address[1], seen
    server.shutdown()
    server.server_close()


def test_nothing_is_fetched_from_the_network(tmp_path, web):
    from arv_keepdocker_plugin.cwl_runner.workflow_reader import (
        WorkflowUnreadable,
        read_workflow,
    )

    url, seen = web
    write(tmp_path / "a.cwl", tool("a", dockerPull="a:1"))
    main = write(tmp_path / "main.cwl", flow("main", ["a.cwl", url + "/remote.cwl"]))
    found, unread = pulls(main)
    assert found == ["a:1"]
    assert len(unread) == 1 and "refused the run: '%s/remote.cwl'" % url in unread[0]
    imports = tmp_path / "imports.cwl"
    imports.write_text("cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: x\ninputs: []\n"
                       "outputs: []\nrequirements:\n  $import: %s/reqs.yml\n" % url)
    with pytest.raises(WorkflowUnreadable, match="refused to fetch '%s/reqs.yml'" % url):
        read_workflow(str(imports))
    assert seen == []


def test_a_run_cycle_is_reported_not_followed(tmp_path):
    write(tmp_path / "b.cwl", flow("b", ["a.cwl"], dockerPull="b:1"))
    main = write(tmp_path / "a.cwl", flow("a", ["b.cwl"], dockerPull="a:1"))
    found, unread = pulls(main)
    assert found == ["a:1", "b:1"]
    assert len(unread) == 1 and "it runs a workflow that contains it" in unread[0]


def test_unreadable_documents_are_one_line(tmp_path):
    from arv_keepdocker_plugin.cwl_runner.workflow_reader import (
        WorkflowUnreadable,
        read_workflow,
    )

    (tmp_path / "bad.cwl").write_text("cwlVersion: v1.2\nclass: [\n")
    (tmp_path / "old.cwl").write_text("cwlVersion: draft-3\nclass: Workflow\n")
    write(tmp_path / "missing-run.cwl", flow("m", ["nowhere.cwl"]))
    for name in ("bad.cwl", "old.cwl", "missing-run.cwl", "absent.cwl"):
        with pytest.raises(WorkflowUnreadable) as raised:
            read_workflow(str(tmp_path / name))
        assert "\n" not in str(raised.value) and name in str(raised.value)
