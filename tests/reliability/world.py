"""What the reliability tests share: a hostile second user, the end-state rule, clean-up.

The end state a run (or a run after a kill and a rerun) must leave, for one
image and one owner (``check_end_state``):

* exactly one untrashed collection holding ``<image id>.tar``, not pending
  (no ``trash_at``, no pending marker), with its hash link (and repo+tag link
  when named) owned by the owner, and loadable as that image (read back
  from Keep and checked as crunch-run's ``docker load`` would);
* no untrashed collection of the owner without links (a pending one
  counts), and no link of the owner to a trashed or missing collection.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid as uuidlib
from collections.abc import Iterable

import arvados.collection
import arvados.util

from arv_keepdocker_plugin.keep.trust_records import WriterRule, stamp
from arv_keepdocker_plugin.steps.record import PENDING_PROPERTY
from arv_keepdocker_plugin.steps.reuse import tar_name
from arv_keepdocker_plugin.steps.verify import problem_with


def new_project(api, label: str) -> str:
    body = {"name": f"{label} {uuidlib.uuid4().hex[:10]}", "group_class": "project"}
    return api.groups().create(body=body).execute()["uuid"]


def share(owner_api, project_uuid: str, user_uuid: str) -> None:
    """Give ``user_uuid`` read access to a project: no consent needed from them."""
    owner_api.links().create(body={
        "link_class": "permission", "name": "can_read", "head_uuid": project_uuid,
        "tail_uuid": user_uuid}).execute()


def junk_collection(api, owner: str, name: str, sizes: list[int], filename: str) -> dict:
    """A one-file collection of ``filename`` made of junk blocks of ``sizes``."""
    collection = arvados.collection.Collection(api_client=api)
    with collection.open(filename, "wb") as f:
        for n, size in enumerate(sizes):
            f.write(bytes([n % 251 + 1]) * size)
            f.flush()  # a block boundary per size (small ones share a block)
    collection.save_new(name=name, owner_uuid=owner)
    return collection.api_response()


def plant_layer_record(api, owner: str, digest: str, diff_id: str, size: int,
                       stamped: bool = True) -> dict:
    """bob's attack: a checked-looking index record for ``digest`` over junk blocks,
    stamped as this tool stamps its own (marker and the junk's real content hash), or
    (``stamped=False``) marked as records were before the writer rule."""
    junk = junk_collection(api, owner, "not a layer " + uuidlib.uuid4().hex[:8],
                           [size], "junk.tar")
    marker = stamp(junk["portable_data_hash"]) if stamped else {"digests_checked": True}
    return api.links().create(body={
        "link_class": "docker_image_layer", "name": digest, "head_uuid": junk["uuid"],
        "owner_uuid": owner,
        "properties": dict({"offset": 0, "size": size, "diff_id": diff_id}, **marker)}
    ).execute()


def tar_with(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def plant_image(api, owner: str, image_id: str, tar_bytes: bytes,
                properties: dict | None = None, name: str | None = None) -> dict:
    """bob's attack: a collection ``<image_id>.tar`` of his bytes and a hash link to it,
    stamped as this tool stamps its own (marker and the collection's content hash)."""
    collection = arvados.collection.Collection(api_client=api)
    with collection.open(image_id + ".tar", "wb") as f:
        f.write(tar_bytes)
    collection.save_new(name="Docker image planted " + uuidlib.uuid4().hex[:8],
                        owner_uuid=owner)
    record = collection.api_response()
    api.links().create(body={
        "link_class": "docker_image_hash", "name": name or image_id,
        "head_uuid": record["uuid"], "owner_uuid": owner,
        "properties": dict({"image_timestamp": "2099-01-01T00:00:00Z"},
                           **stamp(record["portable_data_hash"]), **(properties or {}))}
    ).execute()
    return record


def image_collections(admin, owner: str, image_id: str, include_trash=False) -> list[dict]:
    """The owner's collections holding ``<image_id>.tar``."""
    return [c for c in arvados.util.keyset_list_all(
        admin.collections().list, include_trash=include_trash,
        filters=[["owner_uuid", "=", owner]],
        select=["uuid", "manifest_text", "trash_at", "is_trashed", "properties", "name"])
        if tar_name(c.get("manifest_text") or "") == image_id + ".tar"]


def check_end_state(admin, api, owner: str, image_id: str, repo_tag: str | None = None,
                    retries: int = 0, planted: Iterable[str] = ()) -> str:
    """Assert the end state (module docstring); return the image collection's UUID.

    ``planted``: collections a collaborator put into ``owner`` (left out).
    """
    planted = set(planted)
    live = [c for c in image_collections(admin, owner, image_id) if c["uuid"] not in planted]
    assert len(live) == 1, "{} untrashed collections of {}: {}".format(
        len(live), image_id, [c["uuid"] for c in live])
    record = live[0]
    assert record["trash_at"] is None, "the image collection is still due for the trash"
    assert PENDING_PROPERTY not in (record.get("properties") or {})
    links = list(arvados.util.keyset_list_all(
        admin.links().list, filters=[["owner_uuid", "=", owner]],
        select=["uuid", "head_uuid", "link_class", "name"]))
    on_record = {(l["link_class"], l["name"]) for l in links if l["head_uuid"] == record["uuid"]}
    assert ("docker_image_hash", image_id) in on_record
    if repo_tag:
        assert ("docker_image_repo+tag", repo_tag) in on_record
    collections = {c["uuid"]: c for c in arvados.util.keyset_list_all(
        admin.collections().list, include_trash=True, filters=[["owner_uuid", "=", owner]],
        select=["uuid", "is_trashed", "name", "properties"])}
    for link in links:
        if link["head_uuid"].split("-")[1] == "4zz18":
            head = collections.get(link["head_uuid"])
            if head is None:  # owned by someone else: must exist and be untrashed
                found = admin.collections().list(
                    filters=[["uuid", "=", link["head_uuid"]]], include_trash=True,
                    select=["is_trashed"]).execute()["items"]
                assert found and not found[0]["is_trashed"], "link to a missing collection"
            else:
                assert not head["is_trashed"], "link {} to the trashed {}".format(
                    link["uuid"], link["head_uuid"])
    heads = {l["head_uuid"] for l in links}
    for collection in collections.values():
        if not collection["is_trashed"] and collection["name"].startswith("Docker image"):
            assert collection["uuid"] in heads, "collection {} without links".format(
                collection["uuid"])
    full = api.collections().get(uuid=record["uuid"]).execute()
    problem = problem_with(api, full, image_id, retries)
    assert problem is None, problem
    return record["uuid"]


def clean_up(admin, owner: str, image_id: str) -> None:
    """Trash every collection of ``image_id`` in ``owner`` and delete links to them."""
    for collection in image_collections(admin, owner, image_id, include_trash=True):
        for link in arvados.util.keyset_list_all(
                admin.links().list, filters=[["head_uuid", "=", collection["uuid"]]],
                select=["uuid"]):
            admin.links().delete(uuid=link["uuid"]).execute()
        if not collection.get("is_trashed"):
            admin.collections().delete(uuid=collection["uuid"]).execute()


def layer_digests(image) -> list[str]:
    return [layer.digest for layer in image.layers]


def config_json(image) -> dict:
    return json.loads(image.config_bytes)


def assert_potent(api, digests_and_sizes, bob_owner: str) -> None:
    """The records planted in ``bob_owner`` are readable by alice (``api``) and carry a
    stamp their writer's rule accepts: they would stand in for her layers if the core
    trusted their owner or their stamp, so the attack is real and only the writer rule
    (written by this user) stops it."""
    import time as _time

    from arv_keepdocker_plugin.image import Layer
    from arv_keepdocker_plugin.keep.layer_links import find_layer_records
    from arv_keepdocker_plugin.keep.trust_records import links_by_uuid
    from arv_keepdocker_plugin.steps.layer_trust import TrustRule, reusable_layers
    image = ImageLike([Layer(d, s) for d, s in digests_and_sizes])
    records = [r for r in find_layer_records(api, 0, [d for d, _ in digests_and_sizes])
               if r.owner_uuid == bob_owner]
    assert records, "nothing was planted"
    writers = {l["modified_by_user_uuid"] for l in links_by_uuid(
        api, 0, [r.link_uuid for r in records]).values()}
    alice = api.users().current().execute()["uuid"]
    assert alice not in writers
    for writer in writers:
        fooled = TrustRule(WriterRule(writer), _time.time())
        assert reusable_layers(records, image, api, 0, fooled).skip, \
            "the planted records would not even be used"
    honest = TrustRule(WriterRule(alice), _time.time())
    assert not reusable_layers(records, image, api, 0, honest).skip


class ImageLike:
    """What the layer rule reads of an image: its layers."""

    def __init__(self, layers):
        self.layers = tuple(layers)
