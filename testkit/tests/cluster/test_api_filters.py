"""List semantics of the local cluster: filters, select, order, paging, count.

As ``doc/api/methods.html.textile.liquid`` and ``services/api/lib/record_filters.rb``
describe them."""

import re

import arvados.errors
import arvados.util
import pytest

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


@pytest.fixture
def five(arv_api, arv_project):
    """Five collections in a fresh project: names c0..c4, varied properties."""
    props = [
        {"color": "red", "size": 1},
        {"color": "blue", "size": 2},
        {"color": "Red", "size": 3, "tags": ["a", "b"]},
        {"size": 4},
        {},
    ]
    made = []
    for i, prop in enumerate(props):
        made.append(arv_api.collections().create(body={
            "name": "c%d" % i, "owner_uuid": arv_project["uuid"], "properties": prop,
            "description": None if i == 4 else "desc %d" % i,
        }).execute())
    return made


def names(api, project, *filters, **kwargs):
    items = api.collections().list(
        filters=[["owner_uuid", "=", project["uuid"]], *filters], order=["name asc"], **kwargs,
    ).execute()["items"]
    return [item["name"] for item in items]


@pytest.mark.parametrize("condition, expected", [
    (["name", "=", "c1"], ["c1"]),
    (["name", "!=", "c1"], ["c0", "c2", "c3", "c4"]),
    (["name", "<>", "c1"], ["c0", "c2", "c3", "c4"]),
    (["name", "<", "c2"], ["c0", "c1"]),
    (["name", "<=", "c2"], ["c0", "c1", "c2"]),
    (["name", ">", "c2"], ["c3", "c4"]),
    (["name", ">=", "c2"], ["c2", "c3", "c4"]),
    (["name", "in", ["c1", "c3", "zz"]], ["c1", "c3"]),
    (["name", "not in", ["c1", "c3"]], ["c0", "c2", "c4"]),
    (["name", "in", []], []),
    (["name", "like", "c%"], ["c0", "c1", "c2", "c3", "c4"]),
    (["name", "like", "C%"], []),
    (["name", "ilike", "C_"], ["c0", "c1", "c2", "c3", "c4"]),
    (["name", "like", "_3"], ["c3"]),
    (["description", "=", None], ["c4"]),
    (["description", "!=", None], ["c0", "c1", "c2", "c3"]),
    (["description", "!=", "desc 1"], ["c0", "c2", "c3", "c4"]),  # != matches NULL
    (["description", "not in", ["desc 1"]], ["c0", "c2", "c3", "c4"]),  # so does not in
    (["properties", "exists", "color"], ["c0", "c1", "c2"]),
    (["properties.color", "=", "red"], ["c0"]),
    (["properties.color", "!=", "red"], ["c1", "c2", "c3", "c4"]),  # also lacking the key
    (["properties.color", "in", ["red", "blue"]], ["c0", "c1"]),
    (["properties.color", "not in", ["red"]], ["c1", "c2", "c3", "c4"]),
    (["properties.color", "like", "R%"], ["c2"]),
    (["properties.color", "ilike", "r%"], ["c0", "c2"]),
    (["properties.size", ">", 2], ["c2", "c3"]),
    (["properties.size", "<=", 2], ["c0", "c1"]),
    (["properties.size", "exists", True], ["c0", "c1", "c2", "c3"]),
    (["properties.size", "exists", False], ["c4"]),
    (["properties.tags", "contains", "a"], ["c2"]),
    (["uuid", "is_a", "arvados#collection"], ["c0", "c1", "c2", "c3", "c4"]),
    (["uuid", "is_a", ["arvados#link"]], []),
    (["file_count", "=", 0], ["c0", "c1", "c2", "c3", "c4"]),
    (["is_trashed", "=", "false"], ["c0", "c1", "c2", "c3", "c4"]),
])
def test_filter_operator(arv_api, arv_project, five, condition, expected):
    assert names(arv_api, arv_project, condition) == expected


def test_operators_are_case_insensitive_and_attribute_lists_are_or(arv_api, arv_project, five):
    assert names(arv_api, arv_project, ["name", "ILIKE", "C1"]) == ["c1"]
    assert names(arv_api, arv_project,
                 [["name", "description"], "in", ["c0", "desc 1"]]) == ["c0", "c1"]


def test_created_at_filters_accept_the_returned_timestamps(arv_api, arv_project, five):
    stamps = [c["created_at"] for c in five]
    assert all(TIMESTAMP.match(stamp) for stamp in stamps)
    assert names(arv_api, arv_project, ["created_at", ">=", stamps[2]]) == ["c2", "c3", "c4"]
    assert names(arv_api, arv_project, ["created_at", "=", stamps[1]]) == ["c1"]
    assert names(arv_api, arv_project, ["created_at", ">", stamps[1]],
                 ["uuid", "!=", five[3]["uuid"]]) == ["c2", "c4"]
    # Other ISO 8601 spellings of the same instant work too.
    coarse = stamps[0][:19] + "Z"
    assert names(arv_api, arv_project, ["created_at", ">=", coarse])[:1] == ["c0"]


@pytest.mark.parametrize("condition", [
    ["nosuchattr", "=", "x"],
    ["name", "frobnicate", "x"],
    ["name", "in", "notalist"],
    ["manifest_text", "exists", "x"],
    ["created_at", ">", "yesterday-ish"],
    ["file_count", "=", "3"],
    "not a condition",
])
def test_bad_filters_are_422(arv_api, condition):
    with pytest.raises(arvados.errors.ApiError) as err:
        arv_api.collections().list(filters=[condition]).execute()
    assert err.value.resp.status == 422


def test_select_order_limit_offset_count(arv_api, arv_project, five):
    coll = arv_api.collections()
    base = [["owner_uuid", "=", arv_project["uuid"]]]
    page = coll.list(filters=base, order=["name desc"], limit=2, offset=1,
                     select=["name", "uuid"]).execute()
    assert [item["name"] for item in page["items"]] == ["c3", "c2"]
    assert set(page["items"][0]) <= {"kind", "etag", "name", "uuid"}
    assert page["items_available"] == 5 and page["offset"] == 1 and page["limit"] == 2
    assert page["kind"] == "arvados#collectionList"

    none = coll.list(filters=base, count="none", limit=1).execute()
    assert "items_available" not in none and len(none["items"]) == 1

    default = coll.list(filters=base).execute()["items"]
    assert default and all("manifest_text" not in item for item in default)
    assert {"uuid", "portable_data_hash", "name", "properties", "created_at"} <= set(default[0])
    # Default order: modified_at desc
    assert [item["name"] for item in default] == ["c4", "c3", "c2", "c1", "c0"]

    zero = coll.list(filters=base, limit=0).execute()
    assert zero["items"] == [] and zero["items_available"] == 5


def test_unknown_select_attribute_is_422(arv_api):
    with pytest.raises(arvados.errors.ApiError) as err:
        arv_api.collections().list(select=["uuid", "bogus"]).execute()
    assert err.value.resp.status == 422
    with pytest.raises(arvados.errors.ApiError) as err:
        arv_api.links().list(select=["bogus"]).execute()
    assert err.value.resp.status == 422


def test_list_can_select_manifest_text(arv_api, arv_project, five):
    items = arv_api.collections().list(filters=[["uuid", "=", five[0]["uuid"]]],
                                       select=["uuid", "manifest_text"]).execute()["items"]
    assert items == [{"kind": "arvados#collection", "etag": items[0]["etag"],
                      "uuid": five[0]["uuid"], "manifest_text": ""}]


def test_keyset_list_all_pages_through_more_than_1000_items(arv_api, arv_project):
    """Over 1000 links: keyset_list_all needs two full pages and the final empty one."""
    from concurrent.futures import ThreadPoolExecutor

    head = arv_project["uuid"]
    total = 1003

    def make(i):
        return arv_api.links().create(body={
            "link_class": "keyset_test", "name": "n%04d" % i, "head_uuid": head,
            "owner_uuid": head}).execute()["uuid"]

    with ThreadPoolExecutor(4) as pool:
        made = set(pool.map(make, range(total)))
    assert len(made) == total
    seen = [link["uuid"] for link in arvados.util.keyset_list_all(
        arv_api.links().list,
        filters=[["link_class", "=", "keyset_test"], ["head_uuid", "=", head]])]
    assert len(seen) == total and set(seen) == made
    # A page is capped at 1000 items whatever limit is asked.
    big = arv_api.links().list(filters=[["head_uuid", "=", head]],
                               limit=5000, count="none").execute()
    assert len(big["items"]) == 1000 and big["limit"] == 1000
    names_seen = [link["name"] for link in arvados.util.keyset_list_all(
        arv_api.links().list, order_key="name", select=["name"],
        filters=[["head_uuid", "=", head], ["name", "like", "n09%"]])]
    assert names_seen == ["n%04d" % i for i in range(900, 1000)]


def test_where_and_distinct(arv_api, arv_project, five):
    coll = arv_api.collections()
    got = coll.list(where={"owner_uuid": arv_project["uuid"], "name": ["c1", "c2"]},
                    order=["name"]).execute()["items"]
    assert [item["name"] for item in got] == ["c1", "c2"]
    owners = coll.list(filters=[["owner_uuid", "=", arv_project["uuid"]]], select=["owner_uuid"],
                       distinct=True).execute()["items"]
    assert [item["owner_uuid"] for item in owners] == [arv_project["uuid"]]
