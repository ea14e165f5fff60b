"""Every method the cluster serves matches Arvados 3.2.1's discovery document.

Checked against the real document beside the project
(``../shared/arvados/arvados-v1-discovery.json``, present in CI, absent from a
fresh clone) and against the copy shipped in the package, which the server
publishes.
"""

import json

import pytest
from arv_keepdocker_testkit.cluster import discovery
from arv_keepdocker_testkit.cluster.routes import GLOBAL_PARAMS, Router

RUNTIME_KEYS = {"rootUrl", "baseUrl", "uuidPrefix", "dockerImageFormats",
                "defaultCollectionReplication", "blobSignatureTtl", "maxRequestSize",
                "maxItemsPerResponse", "defaultTrashLifetime",
                "source_version", "sourceVersion", "packageVersion", "generatedAt",
                "crunchLogUpdatePeriod", "crunchLogUpdateSize", "remoteHosts", "remoteHostsViaDNS",
                "websocketUrl", "workbenchUrl", "workbench2Url", "keepWebServiceUrl"}
#: what arv-put, arv-keepdocker, Collection and KeepClient call (sdk/python/arvados/
#: commands/put.py, commands/keepdocker.py, collection.py, keep.py)
REQUIRED_METHODS = {
    ("users", "current"), ("users", "get"), ("groups", "get"), ("groups", "list"),
    ("groups", "create"), ("links", "list"), ("links", "get"), ("links", "create"),
    ("links", "update"), ("links", "delete"), ("collections", "list"), ("collections", "get"),
    ("collections", "create"), ("collections", "update"), ("collections", "delete"),
    ("keep_services", "accessible"), ("keep_services", "list"), ("configs", "get"),
}


@pytest.fixture
def shared_doc(shared_dir):
    """The real Arvados 3.2.1 discovery document, from ``../shared``."""
    return json.loads((shared_dir / "arvados" / "arvados-v1-discovery.json").read_text())


def compare_routes(doc):
    problems = []
    for route in Router(doc).routes:
        spec = doc["resources"].get(route.resource, {}).get("methods", {}).get(route.method)
        if spec is None:
            problems.append("%s.%s is not in the document" % (route.resource, route.method))
            continue
        if spec["path"] != route.path:
            problems.append("%s.%s path %s != %s"
                            % (route.resource, route.method, route.path, spec["path"]))
        if spec["httpMethod"] != route.http_method:
            problems.append("%s.%s method %s != %s"
                            % (route.resource, route.method, route.http_method,
                               spec["httpMethod"]))
        declared = set(spec.get("parameters", {}))
        if declared != set(route.params):
            problems.append("%s.%s params: served %s, document %s" % (
                route.resource, route.method, sorted(route.params), sorted(declared)))
    return problems


def test_served_methods_match_the_real_discovery_document(shared_doc):
    assert compare_routes(shared_doc) == []


def test_served_methods_match_the_packaged_document():
    assert compare_routes(discovery.static_document()) == []


def test_packaged_document_is_the_real_one(shared_doc):
    assert discovery.static_document() == shared_doc


def test_every_method_the_clients_need_is_served():
    served = {(route.resource, route.method)
              for route in Router(discovery.static_document()).routes}
    assert REQUIRED_METHODS <= served


def test_global_parameters_are_the_documents():
    assert set(discovery.static_document()["parameters"]) <= GLOBAL_PARAMS


def test_live_document_is_the_package_plus_runtime_keys(raw):
    status, doc, _ = raw("GET", "/discovery/v1/apis/arvados/v1/rest", user=None)
    assert status == 200
    static = discovery.static_document()
    assert {k: v for k, v in doc.items() if k not in RUNTIME_KEYS} == static
    assert RUNTIME_KEYS <= set(doc)


def test_every_served_route_answers_on_its_path(raw, arv_project):
    """No served method falls through to 'Path not found' or 'not allowed'."""
    for route in Router(discovery.static_document()).routes:
        path = "/arvados/v1/" + route.path.replace(
            "{uuid}",
            arv_project["uuid"] if route.resource == "groups" else "zzzzz-4zz18-000000000000000")
        if route.method in ("delete", "trash", "untrash", "update", "create"):
            continue  # would change state; create/update/delete are exercised elsewhere
        status, body, _ = raw(route.http_method, path, user="alice")
        message = " ".join((body or {}).get("errors", []))
        assert "Path not found" not in message and "not allowed" not in message, (
            route, status, message)
        assert status in (200, 404), (route, status, message)


def test_undeclared_parameters_are_refused(raw):
    status, body, _ = raw("GET", "/arvados/v1/users/current", params={"bogus": "1"})
    assert status == 422 and "bogus" in body["errors"][0]
    status, _, _ = raw("GET", "/arvados/v1/collections", params={"alt": "json", "limit": "1"})
    assert status == 200
