"""keep/api_lists.list_all against the local cluster: one request when one page holds every
match, keyset paging (the SDK's) when it does not, the same records either way."""

import uuid

import arvados.util

from arv_keepdocker_plugin.keep import api_lists


class Counted:
    """``api.links().list``, counting the requests it makes."""

    def __init__(self, api):
        self.api, self.calls = api, 0

    def __call__(self, **kwargs):
        self.calls += 1
        return self.api.links().list(**kwargs)


def make_links(api, project, count):
    project = project["uuid"]
    name = "api-lists-" + uuid.uuid4().hex[:8]
    for number in range(count):
        api.links().create(body={"link_class": "tag", "name": name, "head_uuid": project,
                                 "properties": {"n": number}}).execute()
    return [["link_class", "=", "tag"], ["name", "=", name]]


def test_one_page_is_one_request(arv_api, arv_project):
    filters = make_links(arv_api, arv_project, 3)
    counted = Counted(arv_api)
    found = api_lists.list_all(counted, 0, filters=filters, select=["uuid", "properties"])
    assert counted.calls == 1
    assert sorted(link["properties"]["n"] for link in found) == [0, 1, 2]
    # What the SDK's keyset_list_all finds, in two requests.
    keyset = Counted(arv_api)
    assert {l["uuid"] for l in arvados.util.keyset_list_all(keyset, filters=filters)} == \
        {l["uuid"] for l in found}
    assert keyset.calls == 2


def test_a_page_short_of_the_count_pages_through_every_record(arv_api, arv_project,
                                                             monkeypatch):
    filters = make_links(arv_api, arv_project, 3)
    monkeypatch.setattr(api_lists, "PAGE_SIZE", 2)  # the server returns fewer than all
    counted = Counted(arv_api)
    found = api_lists.list_all(counted, 0, filters=filters)
    assert sorted(link["properties"]["n"] for link in found) == [0, 1, 2]
    assert len({link["uuid"] for link in found}) == 3
    assert counted.calls > 1


def test_no_match_is_one_request(arv_api):
    counted = Counted(arv_api)
    assert api_lists.list_all(counted, 0, filters=[["name", "=", "no-such-" + uuid.uuid4().hex]]
                              ) == []
    assert counted.calls == 1
