"""Collections, links and groups through the SDK and raw HTTP.

Request and response shapes as the API server gives them
(``services/api/app/controllers/application_controller.rb``,
``services/api/app/models/arvados_model.rb``, ``services/api/lib/trashable.rb``)."""

import hashlib
import re
import subprocess

import arvados.collection
import arvados.errors
import pytest
from arv_keepdocker_testkit.scripts import script

UUID = re.compile(r"^[0-9a-z]{5}-4zz18-[0-9a-z]{15}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def pdh(text):
    return "%s+%d" % (hashlib.md5(text.encode()).hexdigest(), len(text.encode()))


def status_of(call):
    with pytest.raises(arvados.errors.ApiError) as err:
        call.execute()
    return err.value.resp.status


def test_collection_write_save_new_and_read_back(arv_api, arv_project):
    writer = arvados.collection.Collection(api_client=arv_api)
    with writer.open("dir/hello.txt", "w") as out:
        out.write("hello world\n")
    with writer.open("top file.bin", "wb") as out:
        out.write(bytes(range(256)) * 100)
    writer.save_new(name="roundtrip", owner_uuid=arv_project["uuid"])
    uuid = writer.manifest_locator()
    assert UUID.match(uuid)

    record = arv_api.collections().get(uuid=uuid).execute()
    assert record["portable_data_hash"] == writer.portable_data_hash()
    assert record["owner_uuid"] == arv_project["uuid"]
    assert record["file_count"] == 2 and record["file_size_total"] == 12 + 25600
    assert "+A" in record["manifest_text"]  # signed for the caller
    assert TIMESTAMP.match(record["created_at"]) and TIMESTAMP.match(record["modified_at"])

    reader = arvados.collection.Collection(uuid, api_client=arv_api)
    assert reader.open("dir/hello.txt").read() == "hello world\n"
    assert reader.open("top file.bin", "rb").read() == bytes(range(256)) * 100

    # Modify and save (an update with a signed manifest), then read by PDH.
    with reader.open("dir/more.txt", "w") as out:
        out.write("more")
    reader.save()
    again = arvados.collection.Collection(uuid, api_client=arv_api)
    assert sorted(again["dir"].keys()) == ["hello.txt", "more.txt"]
    by_pdh = arv_api.collections().get(uuid=again.portable_data_hash()).execute()
    assert by_pdh["portable_data_hash"] == again.portable_data_hash()
    assert arvados.collection.Collection(again.portable_data_hash(), api_client=arv_api) \
        .open("dir/more.txt").read() == "more"


def test_arv_put_arv_ls_arv_get(arv_env, arv_project, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.txt").write_text("beta\n")

    def run(tool, *args):
        return subprocess.run([script(tool), *args], capture_output=True, text=True, timeout=120)

    put = run("arv-put", "--retries", "0", "--project-uuid", arv_project["uuid"],
              "--name", "tree", str(src) + "/")
    assert put.returncode == 0, put.stderr
    uuid = put.stdout.strip()
    assert UUID.match(uuid)
    listing = run("arv-ls", uuid)
    assert listing.returncode == 0, listing.stderr
    assert sorted(listing.stdout.split()) == ["./a.txt", "./sub/b.txt"]
    got = run("arv-get", uuid + "/sub/b.txt", "-")
    assert got.returncode == 0 and got.stdout == "beta\n", got.stderr
    # Resume cache: a second run of the same upload reuses it and makes a new collection.
    second = run("arv-put", "--retries", "0", "--project-uuid", arv_project["uuid"],
                 "--name", "tree", str(src) + "/")
    assert second.returncode == 0, second.stderr
    record = arvados.api("v1").collections().get(uuid=second.stdout.strip()).execute()
    assert record["name"].startswith("tree (") and record["name"].endswith(")")
    # --project-uuid may name a user (the home project): users.get.
    home = run("arv-put", "--retries", "0", "--project-uuid", arvados.api("v1").users().current()
               .execute()["uuid"], "--name", "home tree", "--no-resume", str(src / "a.txt"))
    assert home.returncode == 0, home.stderr


def test_both_body_forms_and_properties_as_json_text(arv_api, arv_project):
    coll = arv_api.collections()
    wrapped = coll.create(body={"collection": {"name": "wrapped", "owner_uuid": arv_project["uuid"],
                                               "properties": {"k": "v"}}}).execute()
    bare = coll.create(body={"name": "bare", "owner_uuid": arv_project["uuid"],
                             "properties": '{"k": "w"}'}).execute()
    assert wrapped["name"] == "wrapped" and wrapped["properties"] == {"k": "v"}
    assert bare["name"] == "bare" and bare["properties"] == {"k": "w"}
    for field in ("uuid", "manifest_text", "portable_data_hash", "properties", "trash_at", "name",
                  "replication_desired", "storage_classes_desired", "kind", "etag"):
        assert field in bare
    updated = coll.update(uuid=bare["uuid"],
                          body={"collection": {"properties": {"x": 1}}}).execute()
    assert updated["properties"] == {"x": 1} and updated["name"] == "bare"
    updated = coll.update(uuid=bare["uuid"], body={"name": "renamed"}).execute()
    assert updated["properties"] == {"x": 1} and updated["name"] == "renamed"


def test_ensure_unique_name(arv_api, arv_project):
    coll = arv_api.collections()
    body = {"name": "same", "owner_uuid": arv_project["uuid"]}
    first = coll.create(body=body).execute()
    assert first["name"] == "same"
    assert status_of(coll.create(body=body)) == 422
    second = coll.create(body=body, ensure_unique_name=True).execute()
    assert second["name"] == "same (%s)" % second["uuid"][-15:]
    # Trashed collections do not hold on to their name.
    coll.delete(uuid=first["uuid"]).execute()
    assert coll.create(body=body).execute()["name"] == "same"
    # Projects follow the same rule.
    groups = arv_api.groups()
    gbody = {"name": "p", "group_class": "project", "owner_uuid": arv_project["uuid"]}
    groups.create(body=gbody).execute()
    assert status_of(groups.create(body=gbody)) == 422
    made = groups.create(body=gbody, ensure_unique_name="true").execute()
    assert made["name"] == "p (%s)" % made["uuid"][-15:]


def test_delete_trashes_and_include_trash_shows_it(arv_api, arv_project):
    coll = arv_api.collections()
    made = coll.create(body={"name": "doomed", "owner_uuid": arv_project["uuid"]}).execute()
    gone = coll.delete(uuid=made["uuid"]).execute()
    assert gone["is_trashed"] is True and TIMESTAMP.match(gone["trash_at"])
    assert status_of(coll.get(uuid=made["uuid"])) == 404
    assert coll.get(uuid=made["uuid"], include_trash=True).execute()["is_trashed"] is True
    flt = [["owner_uuid", "=", arv_project["uuid"]]]
    assert coll.list(filters=flt).execute()["items"] == []
    assert [c["uuid"] for c in coll.list(filters=flt, include_trash=True)
            .execute()["items"]] == [made["uuid"]]
    back = coll.untrash(uuid=made["uuid"]).execute()
    assert back["is_trashed"] is False and back["trash_at"] is None
    # Trashing a project hides what is inside it.
    arv_api.groups().delete(uuid=arv_project["uuid"]).execute()
    assert status_of(coll.get(uuid=made["uuid"])) == 404
    assert status_of(arv_api.groups().get(uuid=arv_project["uuid"])) == 404
    arv_api.groups().untrash(uuid=arv_project["uuid"]).execute()
    assert coll.get(uuid=made["uuid"]).execute()["uuid"] == made["uuid"]


def test_manifest_validation_and_signatures(arv_api, arv_api_bob, arv_api_admin, arv_project):
    coll = arv_api.collections()
    assert status_of(coll.create(body={"manifest_text": "not a manifest\n"})) == 422
    assert status_of(coll.create(
        body={"manifest_text": ". d41d8cd98f00b204e9800998ecf8427e+0 0:0:a"})) == 422
    unsigned = ". 5d41402abc4b2a76b9719d911017c592+5 0:5:hello.txt\n"
    assert status_of(coll.create(body={"manifest_text": unsigned})) == 403
    forged = ". 5d41402abc4b2a76b9719d911017c592+5+A%s@%08x 0:5:hello.txt\n" % ("0" * 40, 2**31 - 1)
    assert status_of(coll.create(body={"manifest_text": forged})) == 403
    # Empty block needs no signature; admin is not checked at all.
    empty = coll.create(body={"manifest_text": ". d41d8cd98f00b204e9800998ecf8427e+0 0:0:e\n",
                              "owner_uuid": arv_project["uuid"]}).execute()
    empty_text = ". d41d8cd98f00b204e9800998ecf8427e+0 0:0:e\n"
    assert empty["portable_data_hash"] == pdh(empty_text)
    by_admin = arv_api_admin.collections().create(body={"manifest_text": unsigned}).execute()
    assert by_admin["portable_data_hash"] == pdh(unsigned)
    # Alice's signed manifest is no good for bob.
    writer = arvados.collection.Collection(api_client=arv_api)
    with writer.open("x", "w") as out:
        out.write("secret")
    signed = writer.manifest_text()
    assert status_of(arv_api_bob.collections().create(body={"manifest_text": signed})) == 403
    mine = coll.create(body={"manifest_text": signed, "owner_uuid": arv_project["uuid"],
                             "portable_data_hash": "0" * 32 + "+1"})
    assert status_of(mine) == 422  # claimed PDH does not match
    stored = coll.create(body={"manifest_text": signed,
                               "owner_uuid": arv_project["uuid"]}).execute()
    plain = re.sub(r"\+A[0-9a-f]{40}@[0-9a-f]{8}", "", signed)
    assert stored["portable_data_hash"] == pdh(plain)
    assert re.sub(r"\+A[0-9a-f]{40}@[0-9a-f]{8}", "", stored["manifest_text"]) == plain
    assert "+A" in stored["manifest_text"]
    raw_get = arv_api.collections().get(uuid=stored["uuid"],
                                        select=["unsigned_manifest_text"]).execute()
    assert raw_get["unsigned_manifest_text"] == plain


def test_links_need_a_readable_head_and_keep_created_at(arv_api, arv_api_bob, arv_project):
    made = arv_api.links().create(body={"link": {"link_class": "tag", "name": "foo",
                                                 "head_uuid": arv_project["uuid"]}}).execute()
    assert TIMESTAMP.match(made["created_at"]) and made["tail_uuid"] is None
    assert arv_api.links().get(uuid=made["uuid"]).execute()["name"] == "foo"
    updated = arv_api.links().update(uuid=made["uuid"], body={"name": "bar"}).execute()
    assert updated["name"] == "bar"
    # bob cannot point a link at alice's private project.
    assert status_of(arv_api_bob.links().create(body={"link_class": "tag", "name": "x",
                                                      "head_uuid": arv_project["uuid"]})) == 422
    arv_api.links().delete(uuid=made["uuid"]).execute()
    assert status_of(arv_api.links().get(uuid=made["uuid"])) == 404


def test_errors_are_arvados_json(raw):
    status, body, _ = raw("GET", "/arvados/v1/collections/zzzzz-4zz18-000000000000000")
    assert status == 404 and isinstance(body["errors"], list) and re.match(r"^\d+\+[0-9a-f]{8}$",
                                                                            body["error_token"])
    status, body, _ = raw("GET", "/arvados/v1/nosuchthing")
    assert status == 404 and body["errors"]
    status, body, _ = raw("GET", "/arvados/v1/collections", params={"limit": "ten"})
    assert status == 422 and body["errors"]
    status, body, _ = raw("POST", "/arvados/v1/collections", body=["not", "an", "object"])
    assert status == 422
    # http.server's own 501 for an unknown method must not reach clients as a 5xx.
    status, body, _ = raw("OPTIONS", "/arvados/v1/collections")
    assert status == 422 and body["errors"]
    # Nor does a request the server chokes on.
    status, body, _ = raw("POST", "/_test/faults", user="admin", body=["not", "a", "spec"])
    assert status == 422 and body["errors"]


def test_method_override_post_with_form_body(raw, arv_api, arv_project):
    made = [arv_api.collections().create(body={"name": "o%d" % i,
                                               "owner_uuid": arv_project["uuid"]})
            .execute()["uuid"] for i in range(3)]
    long_list = made + ["zzzzz-4zz18-%015d" % i for i in range(150)]  # > 2048 characters
    status, body, _ = raw("POST", "/arvados/v1/collections",
                          headers={"X-HTTP-Method-Override": "GET"},
                          form={"filters": [["uuid", "in", long_list]], "select": ["uuid"],
                                "count": "none"})
    assert status == 200, body
    assert sorted(item["uuid"] for item in body["items"]) == sorted(made)
    # The SDK does the same by itself for long URIs.
    items = arv_api.collections().list(filters=[["uuid", "in", long_list]],
                                       select=["uuid"]).execute()["items"]
    assert sorted(item["uuid"] for item in items) == sorted(made)


def test_discovery_config_and_keep_services(raw, arv_cluster, arv_api):
    status, doc, headers = raw("GET", "/discovery/v1/apis/arvados/v1/rest", user=None)
    assert status == 200 and headers["Cache-Control"] == "max-age=86400, public"
    assert headers["Date"]  # httplib2 serves a cached copy only with a Date
    assert doc["rootUrl"] == "https://%s/" % arv_cluster.api_host
    assert doc["baseUrl"] == doc["rootUrl"] + "arvados/v1/"
    assert doc["uuidPrefix"] == arv_cluster.settings.cluster_id
    assert doc["defaultCollectionReplication"] == 2 and doc["blobSignatureTtl"] == 1209600
    assert doc["revision"] == "20250402" and doc["dockerImageFormats"] == ["v2"]
    config = arv_api.configs().get().execute()
    assert config["StorageClasses"] == {"default": {"Default": True, "Priority": 0}}
    assert config["ClusterID"] == doc["uuidPrefix"]
    services = arv_api.keep_services().accessible().execute()["items"]
    assert len(services) == 1
    svc = services[0]
    assert (svc["service_host"], svc["service_port"],
            svc["service_ssl_flag"], svc["service_type"]) == (
        "127.0.0.1", int(arv_cluster.api_host.split(":")[1]), True, "disk")
    assert arv_api.keep_services().list().execute()["items"][0]["uuid"] == svc["uuid"]
    me = arv_api.users().current().execute()
    assert me["uuid"] == arv_cluster.user_uuid("alice") and me["is_admin"] is False
    assert arv_api.users().get(uuid=me["uuid"]).execute()["username"] == "alice"


def test_arv_keepdocker_lists_images_from_links(arv_env, arv_api, arv_project):
    """The real arv-keepdocker's listing: docker_image_* links whose head collection is readable."""
    image_hash = "sha256:" + hashlib.sha256(arv_project["uuid"].encode()).hexdigest()
    repo = "listing-" + arv_project["uuid"][-8:]
    made = arv_api.collections().create(body={"name": "img",
                                              "owner_uuid": arv_project["uuid"]}).execute()
    for link_class, name in (("docker_image_hash", image_hash),
                             ("docker_image_repo+tag", repo + ":v1")):
        arv_api.links().create(body={
            "link_class": link_class, "name": name, "head_uuid": made["uuid"],
            "owner_uuid": arv_project["uuid"],
            "properties": {"image_timestamp": "2024-01-02T03:04:05Z"}}).execute()
    listing = subprocess.run([script("arv-keepdocker")],
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    rows = [line.split() for line in listing.stdout.splitlines() if line.startswith(repo)]
    assert len(rows) == 1
    assert rows[0][:2] == [repo, "v1"] and made["uuid"] in rows[0]
    assert rows[0][2] == image_hash[:12]  # the tool prints the first 12 characters
