"""Who sees and writes what on the local cluster (doc/api/permission-model.html.textile.liquid)."""

import arvados.errors
import pytest


def status_of(call):
    with pytest.raises(arvados.errors.ApiError) as err:
        call.execute()
    return err.value.resp.status


def uuids(api, **kwargs):
    return {item["uuid"] for item in api.collections().list(select=["uuid"], limit=1000, **kwargs)
            .execute()["items"]}


@pytest.fixture
def bob_private(arv_api_bob):
    """A collection in bob's home project."""
    return arv_api_bob.collections().create(body={"name": "bob's secret"},
                                            ensure_unique_name=True).execute()


def test_another_users_private_collection_is_invisible(arv_api, bob_private):
    assert status_of(arv_api.collections().get(uuid=bob_private["uuid"])) == 404
    assert bob_private["uuid"] not in uuids(arv_api)
    assert status_of(arv_api.collections().update(uuid=bob_private["uuid"],
                                                  body={"name": "x"})) == 404
    assert status_of(arv_api.collections().delete(uuid=bob_private["uuid"])) == 404


def test_admin_sees_everything(arv_api_admin, bob_private):
    assert (arv_api_admin.collections().get(uuid=bob_private["uuid"]).execute()["name"]
            == bob_private["name"])
    assert bob_private["uuid"] in uuids(arv_api_admin)


def test_permission_link_grants_read_then_write(arv_api, arv_api_bob, arv_cluster, bob_private):
    alice = arv_cluster.user_uuid("alice")
    link = arv_api_bob.links().create(body={"link_class": "permission", "name": "can_read",
                                            "tail_uuid": alice,
                                            "head_uuid": bob_private["uuid"]}).execute()
    assert (arv_api.collections().get(uuid=bob_private["uuid"]).execute()["uuid"]
            == bob_private["uuid"])
    assert bob_private["uuid"] in uuids(arv_api)
    # Read is not write.
    assert status_of(arv_api.collections().update(uuid=bob_private["uuid"],
                                                  body={"name": "x"})) == 403
    # The tail user sees the permission link.
    seen = arv_api.links().list(
        filters=[["head_uuid", "=", bob_private["uuid"]]]).execute()["items"]
    assert [item["uuid"] for item in seen] == [link["uuid"]]
    arv_api_bob.links().update(uuid=link["uuid"], body={"name": "can_write"}).execute()
    renamed = arv_api.collections().update(uuid=bob_private["uuid"],
                                           body={"name": "shared"}).execute()
    assert renamed["name"] == "shared"
    # Alice cannot grant herself more (she does not manage it).
    assert status_of(arv_api.links().create(body={
        "link_class": "permission", "name": "can_manage", "tail_uuid": alice,
        "head_uuid": bob_private["uuid"]})) == 403
    arv_api_bob.links().delete(uuid=link["uuid"]).execute()
    assert status_of(arv_api.collections().get(uuid=bob_private["uuid"])) == 404


def test_project_sharing_reaches_nested_projects(arv_api, arv_api_bob, arv_cluster):
    top = arv_api_bob.groups().create(body={"name": "bob top", "group_class": "project"},
                                      ensure_unique_name=True).execute()
    sub = arv_api_bob.groups().create(body={"name": "bob sub", "group_class": "project",
                                            "owner_uuid": top["uuid"]}).execute()
    inner = arv_api_bob.collections().create(body={"name": "inner",
                                                   "owner_uuid": sub["uuid"]}).execute()
    assert status_of(arv_api.groups().get(uuid=sub["uuid"])) == 404
    assert status_of(arv_api.collections().create(
        body={"name": "intrude", "owner_uuid": sub["uuid"]})) == 403
    assert status_of(arv_api.collections().create(
        body={"name": "nowhere", "owner_uuid": "zzzzz-j7d0g-000000000000000"})) == 422
    arv_api_bob.links().create(body={"link_class": "permission", "name": "can_read",
                                     "tail_uuid": arv_cluster.user_uuid("alice"),
                                     "head_uuid": top["uuid"]}).execute()
    assert arv_api.groups().get(uuid=sub["uuid"]).execute()["name"] == "bob sub"
    assert arv_api.collections().get(uuid=inner["uuid"]).execute()["name"] == "inner"
    assert inner["uuid"] in uuids(arv_api, filters=[["owner_uuid", "=", sub["uuid"]]])
    # Reading a project does not allow writing into it.
    assert status_of(arv_api.collections().create(
        body={"name": "intrude", "owner_uuid": sub["uuid"]})) == 403
    arv_api_bob.links().create(body={"link_class": "permission", "name": "can_write",
                                     "tail_uuid": arv_cluster.user_uuid("alice"),
                                     "head_uuid": top["uuid"]}).execute()
    made = arv_api.collections().create(body={"name": "intrude",
                                              "owner_uuid": sub["uuid"]}).execute()
    assert made["owner_uuid"] == sub["uuid"]
    # bob, owning the project, sees what alice put there.
    assert arv_api_bob.collections().get(uuid=made["uuid"]).execute()["name"] == "intrude"


def test_role_membership_grants_what_the_role_holds(arv_api, arv_api_bob, arv_cluster):
    role = arv_api_bob.groups().create(body={"name": "readers", "group_class": "role"},
                                       ensure_unique_name=True).execute()
    project = arv_api_bob.groups().create(body={"name": "for readers", "group_class": "project"},
                                          ensure_unique_name=True).execute()
    inside = arv_api_bob.collections().create(body={"name": "r",
                                                    "owner_uuid": project["uuid"]}).execute()
    arv_api_bob.links().create(body={"link_class": "permission", "name": "can_read",
                                     "tail_uuid": role["uuid"],
                                     "head_uuid": project["uuid"]}).execute()
    assert status_of(arv_api.collections().get(uuid=inside["uuid"])) == 404
    arv_api_bob.links().create(body={"link_class": "permission", "name": "can_read",
                                     "tail_uuid": arv_cluster.user_uuid("alice"),
                                     "head_uuid": role["uuid"]}).execute()
    assert arv_api.collections().get(uuid=inside["uuid"]).execute()["uuid"] == inside["uuid"]


def test_links_owned_by_others_are_hidden_but_do_not_depend_on_their_head(arv_api, arv_api_bob,
                                                                           arv_project):
    shared_link = arv_api.links().create(body={"link_class": "tag", "name": "mine",
                                               "head_uuid": arv_project["uuid"]}).execute()
    assert status_of(arv_api_bob.links().get(uuid=shared_link["uuid"])) == 404
    theirs = arv_api_bob.links().create(body={"link_class": "tag", "name": "bobs"}).execute()
    assert status_of(arv_api.links().get(uuid=theirs["uuid"])) == 404


@pytest.mark.parametrize("token", [None, "", "v2/zzzzz-gj3su-000000000000000/nope", "garbage"])
def test_missing_or_wrong_token_is_401(raw, token):
    status, body, _ = raw("GET", "/arvados/v1/users/current", user=None, token=token or None)
    assert status == 401
    assert body["errors"] and "error_token" in body
    status, body, _ = raw("GET", "/arvados/v1/collections", user=None, token=token or None)
    assert status == 401
    # Authentication comes first, even for a call that is wrong in other ways.
    status, body, _ = raw("GET", "/arvados/v1/collections", user=None, token=token or None,
                          params={"bogus": "1"})
    assert status == 401


def test_token_for_another_user_stays_that_user(raw, arv_cluster):
    status, body, _ = raw("GET", "/arvados/v1/users/current", user="bob")
    assert status == 200 and body["uuid"] == arv_cluster.user_uuid("bob")
    # A well-formed v2 token whose uuid does not belong to the secret is refused.
    alice_uuid_part = arv_cluster.token("alice").split("/")[1]
    bob_secret = arv_cluster.token("bob").split("/")[2]
    status, _, _ = raw("GET", "/arvados/v1/users/current", user=None,
                       token="v2/%s/%s" % (alice_uuid_part, bob_secret))
    assert status == 401


def test_fault_switch_is_admin_only(raw):
    status, _, _ = raw("POST", "/_test/faults", user="alice",
                       body={"target": "api", "count": 1, "status": 503})
    assert status == 403
    status, body, _ = raw("POST", "/_test/faults", user="admin",
                          body={"target": "api", "count": 1, "status": 503})
    assert status == 200 and body["pending"] == {"api": 1}
    status, _, _ = raw("GET", "/arvados/v1/users/current", user="alice")
    assert status == 503
    status, _, _ = raw("GET", "/arvados/v1/users/current", user="alice")
    assert status == 200
    raw("POST", "/_test/faults", user="admin", body={"target": "api", "count": 5, "status": 429})
    status, body, _ = raw("DELETE", "/_test/faults", user="admin")
    assert status == 200 and body["pending"] == {}
    assert raw("GET", "/arvados/v1/users/current", user="alice")[0] == 200
