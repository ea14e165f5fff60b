"""Who last wrote a record, and what a collection held before: as Arvados says.

* ``modified_by_user_uuid`` and ``modified_at`` change on an update only when
  it changes something (``maybe_update_modified_by_fields`` in
  ``services/api/app/models/arvados_model.rb``; for collections, a change of
  ``preserve_version`` alone does not count: ``collection.rb``); a client
  cannot set them.
* Collection versions (``manage_versioning`` in ``collection.rb``): the
  previous state is kept as a past version when the manifest, name,
  description or properties change after 10 s idle or with
  ``preserve_version``; past versions keep their writer, are hidden from
  lists unless ``include_old_versions``, cannot be updated, and follow the
  collection's trash time.
* A lookup by portable data hash answers ``{uuid: <pdh>, portable_data_hash,
  trash_at, manifest_text}``: no owner, no writer
  (``collections_controller.rb``, ``find_object_by_uuid``).
"""

import arvados.collection
import arvados.errors
import pytest


def manifest(api, data: bytes, name="f.txt"):
    writer = arvados.collection.Collection(api_client=api)
    with writer.open(name, "wb") as out:
        out.write(data)
    return writer.manifest_text()


@pytest.fixture
def shared(arv_api, arv_cluster, arv_project):
    """alice's project, where bob may write (can_write: the ordinary lab set-up)."""
    arv_api.links().create(body={
        "link_class": "permission", "name": "can_write", "head_uuid": arv_project["uuid"],
        "tail_uuid": arv_cluster.user_uuid("bob")}).execute()
    return arv_project["uuid"]


def test_an_update_that_changes_nothing_leaves_the_writer_alone(arv_api, arv_api_bob,
                                                                arv_cluster, shared):
    alice, bob = arv_cluster.user_uuid("alice"), arv_cluster.user_uuid("bob")
    text = manifest(arv_api, b"alice's bytes")
    made = arv_api.collections().create(body={
        "owner_uuid": shared, "name": "c", "manifest_text": text,
        "properties": {"k": "v"}}).execute()
    link = arv_api.links().create(body={
        "owner_uuid": shared, "link_class": "tag", "name": "x", "head_uuid": made["uuid"],
        "properties": {"p": 1}}).execute()
    # bob sends what is already there (the manifest signed for him; and he claims alice
    # wrote it): no change.
    as_bob = arv_api_bob.collections().get(uuid=made["uuid"]).execute()
    same = arv_api_bob.collections().update(uuid=made["uuid"], body={
        "name": "c", "properties": {"k": "v"}, "manifest_text": as_bob["manifest_text"],
        "modified_by_user_uuid": alice}).execute()
    assert (same["modified_by_user_uuid"], same["modified_at"]) == (alice, made["modified_at"])
    same_link = arv_api_bob.links().update(uuid=link["uuid"], body={
        "name": "x", "properties": {"p": 1}}).execute()
    assert (same_link["modified_by_user_uuid"], same_link["modified_at"]) == (
        alice, link["modified_at"])
    project = arv_api_bob.groups().update(uuid=shared, body={
        "name": arv_api.groups().get(uuid=shared).execute()["name"]}).execute()
    assert project["modified_by_user_uuid"] == alice
    # Asking for a version to be kept is no change either (collection.rb).
    asked = arv_api_bob.collections().update(uuid=made["uuid"], body={
        "preserve_version": True}).execute()
    assert asked["modified_by_user_uuid"] == alice and asked["preserve_version"] is True
    # A real change is bob's, and the client cannot say otherwise.
    changed = arv_api_bob.collections().update(uuid=made["uuid"], body={
        "properties": {"k": "bob"}, "modified_by_user_uuid": alice}).execute()
    assert changed["modified_by_user_uuid"] == bob
    assert changed["modified_at"] > made["modified_at"]
    changed_link = arv_api_bob.links().update(uuid=link["uuid"], body={
        "properties": {"p": 2}}).execute()
    assert changed_link["modified_by_user_uuid"] == bob
    # Trashing twice: the second trash changes nothing.
    trashed = arv_api.collections().delete(uuid=made["uuid"]).execute()
    again = arv_api_bob.collections().delete(uuid=made["uuid"]).execute()
    assert (again["modified_by_user_uuid"], again["modified_at"]) == (
        alice, trashed["modified_at"])


def test_a_collaborators_rewrite_keeps_the_previous_version(arv_api, arv_api_bob,
                                                            arv_cluster, shared):
    alice, bob = arv_cluster.user_uuid("alice"), arv_cluster.user_uuid("bob")
    made = arv_api.collections().create(body={
        "owner_uuid": shared, "name": "v", "manifest_text": manifest(arv_api, b"v1"),
        "preserve_version": True}).execute()
    assert (made["version"], made["current_version_uuid"]) == (1, made["uuid"])
    rewritten = arv_api_bob.collections().update(uuid=made["uuid"], body={
        "manifest_text": manifest(arv_api_bob, b"bob's v2")}).execute()
    # The collection keeps its UUID; its content and writer are bob's now.
    assert rewritten["uuid"] == made["uuid"] and rewritten["version"] == 2
    assert rewritten["modified_by_user_uuid"] == bob
    assert rewritten["portable_data_hash"] != made["portable_data_hash"]
    assert rewritten["preserve_version"] is False
    # The previous state is a past version: its own UUID, alice's writing.
    listed = arv_api.collections().list(filters=[["owner_uuid", "=", shared]],
                                        select=["uuid"]).execute()["items"]
    assert [c["uuid"] for c in listed] == [made["uuid"]]
    versions = arv_api.collections().list(
        filters=[["current_version_uuid", "=", made["uuid"]]], include_old_versions=True,
        select=["uuid", "version", "portable_data_hash", "modified_by_user_uuid",
                "modified_at"]).execute()["items"]
    past = [v for v in versions if v["uuid"] != made["uuid"]]
    assert len(past) == 1 and past[0]["version"] == 1
    assert past[0]["portable_data_hash"] == made["portable_data_hash"]
    assert (past[0]["modified_by_user_uuid"], past[0]["modified_at"]) == (
        alice, made["modified_at"])
    # Read by UUID, never updated; it follows the collection into the trash.
    assert arv_api.collections().get(uuid=past[0]["uuid"]).execute()["portable_data_hash"] \
        == made["portable_data_hash"]
    with pytest.raises(arvados.errors.ApiError) as err:
        arv_api.collections().update(uuid=past[0]["uuid"], body={"name": "x"}).execute()
    assert err.value.resp.status == 422
    arv_api.collections().delete(uuid=made["uuid"]).execute()
    trashed = arv_api.collections().get(uuid=past[0]["uuid"], include_trash=True).execute()
    assert trashed["is_trashed"] is True


def test_quick_successive_changes_make_no_version(arv_api, shared):
    """Within ``PreserveVersionIfIdle`` (10 s) of the last change, no version is kept."""
    made = arv_api.collections().create(body={
        "owner_uuid": shared, "name": "q", "manifest_text": manifest(arv_api, b"q1"),
        "properties": {"n": 1}}).execute()
    done = arv_api.collections().update(uuid=made["uuid"], body={
        "properties": {"n": 2}, "trash_at": None}).execute()
    assert done["version"] == 1
    versions = arv_api.collections().list(
        filters=[["current_version_uuid", "=", made["uuid"]]], include_old_versions=True,
        select=["uuid"]).execute()["items"]
    assert [v["uuid"] for v in versions] == [made["uuid"]]


def test_a_lookup_by_portable_data_hash_names_no_owner_or_writer(arv_api, shared):
    text = manifest(arv_api, b"by content")
    made = arv_api.collections().create(body={
        "owner_uuid": shared, "name": "p", "manifest_text": text}).execute()
    pdh = made["portable_data_hash"]
    found = arv_api.collections().get(uuid=pdh).execute()
    assert {k for k in found if k not in ("kind", "etag")} == {
        "uuid", "portable_data_hash", "trash_at", "manifest_text"}
    assert found["uuid"] == pdh
    selected = arv_api.collections().get(
        uuid=pdh, select=["portable_data_hash", "modified_by_user_uuid"]).execute()
    assert "modified_by_user_uuid" not in selected and "manifest_text" not in selected
    reader = arvados.collection.CollectionReader(pdh, api_client=arv_api)
    assert reader.open("f.txt", "rb").read() == b"by content"
