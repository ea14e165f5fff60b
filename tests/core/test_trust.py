"""The core's trust rule: who last wrote a record, for which content, for how long it lasts.

Pure parts only; the rule against a real cluster and a collaborator is in
tests/reliability/test_collaborators.py.
"""

import datetime
import json
import os
import subprocess
import sys
import time

import pytest

from arv_keepdocker_plugin.keep import arvados_lock
from arv_keepdocker_plugin.keep.locators import portable_data_hash, portable_manifest_text
from arv_keepdocker_plugin.keep.trust_records import (
    CHECKED_LINK,
    WriterRule,
    recorded_content,
    stamp,
    unstamped,
)
from arv_keepdocker_plugin.steps.layer_trust import TrustRule
from arv_keepdocker_plugin.steps.record import stamped

ALICE, PROJECT, BOB = ("zzzzz-tpzed-alice0000000000", "zzzzz-j7d0g-project00000000",
                       "zzzzz-tpzed-bob00000000000")
PDH = "0123456789abcdef0123456789abcdef+95"
COLLECTION = {"uuid": "zzzzz-4zz18-x", "owner_uuid": PROJECT, "portable_data_hash": PDH}
RULE = TrustRule(writer=WriterRule(ALICE), valid_until=time.time() + 3600)


def layer_link(writer=ALICE, owner=PROJECT, properties=None, head="zzzzz-4zz18-x"):
    props = {"offset": 1536, "size": 10, "diff_id": "sha256:" + "d" * 64}
    props.update(stamp(PDH))
    props.update(properties or {})
    return {"uuid": "zzzzz-o0j2j-1", "link_class": "docker_image_layer",
            "name": "sha256:" + "a" * 64, "head_uuid": head, "owner_uuid": owner,
            "modified_by_user_uuid": writer, "properties": props}


def test_only_records_this_user_wrote_for_the_current_content_stand_in_for_bytes():
    assert RULE.may_skip(layer_link(), COLLECTION)
    # Owned by alice herself or by the project: the owner does not matter.
    assert RULE.may_skip(layer_link(owner=ALICE), COLLECTION)
    # Written by bob, even in alice's project, even claiming her stamp.
    assert not RULE.may_skip(layer_link(writer=BOB), COLLECTION)
    # The collection changed since (a collaborator rewrote it).
    assert not RULE.may_skip(layer_link(), dict(COLLECTION, portable_data_hash="f" * 32 + "+9"))
    # Made before the rule (digests_checked: true, no hash), or without a diff id.
    assert not RULE.may_skip(layer_link(properties={"digests_checked": True}), COLLECTION)
    old = layer_link()
    del old["properties"]["collection_pdh"]
    assert not RULE.may_skip(old, COLLECTION)
    assert not RULE.may_skip(layer_link(properties={"diff_id": None}), COLLECTION)
    # A record for another collection, another class, or none at all.
    assert not RULE.may_skip(layer_link(head="zzzzz-4zz18-y"), COLLECTION)
    assert not RULE.may_skip(dict(layer_link(), link_class="site_audit"), COLLECTION)
    assert not RULE.may_skip(None, COLLECTION)
    assert not RULE.may_skip(layer_link(), None)


def test_the_marker_is_an_integer_not_a_boolean_or_a_string():
    for marker in (True, "2", 2.0, None):
        assert recorded_content({"properties": {"digests_checked": marker,
                                                "collection_pdh": PDH}}) is None
    assert recorded_content({"properties": stamp(PDH)}) == PDH


def test_only_vouching_links_are_stamped_and_a_copied_stamp_is_replaced():
    hash_spec = {"link_class": "docker_image_hash", "name": "sha256:x",
                 "properties": dict(stamp("bob's+1"), image_timestamp="t")}
    assert stamped(hash_spec, PDH)["properties"] == dict(stamp(PDH), image_timestamp="t")
    checked_layer = {"link_class": "docker_image_layer", "name": "d",
                     "properties": {"offset": 0, "size": 1, "digests_checked": 2}}
    assert stamped(checked_layer, PDH)["properties"]["collection_pdh"] == PDH
    unchecked = {"link_class": "docker_image_layer", "name": "d",
                 "properties": {"offset": 0, "size": 1}}
    assert stamped(unchecked, PDH)["properties"] == unchecked["properties"]
    tag = {"link_class": "docker_image_repo+tag", "name": "a:1", "properties": {"x": 1}}
    assert stamped(tag, PDH) == tag
    assert unstamped(stamp(PDH)) == {}
    assert CHECKED_LINK not in ("docker_image_hash", "docker_image_repo+tag")


def test_the_portable_data_hash_is_the_api_servers():
    signed = ". {}+10+A{}@7fffffff {}+20 0:30:sha256\\072x.tar\n".format("a" * 32, "1" * 40,
                                                                       "b" * 32)
    plain = ". {}+10 {}+20 0:30:sha256\\072x.tar\n".format("a" * 32, "b" * 32)
    assert portable_manifest_text(signed) == plain
    assert portable_data_hash(signed) == portable_data_hash(plain)
    assert portable_data_hash(plain).endswith(f"+{len(plain)}")
    assert portable_data_hash("") == "d41d8cd98f00b204e9800998ecf8427e+0"


def test_blocks_must_outlive_the_upload():
    soon = "{}+3+A{}@{:08x}".format("a" * 32, "0" * 40, int(time.time()) + 600)
    later = "{}+3+A{}@{:08x}".format("a" * 32, "0" * 40, int(time.time()) + 86400)
    assert not RULE.lasts(soon)
    assert RULE.lasts(later)
    assert RULE.lasts("a" * 32 + "+3")  # unsigned: a cluster without blob signing


# -- the upload lock ---------------------------------------------------------------------

NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


def lease(seconds_ahead=600, **holder):
    record = {"trash_at": (NOW + datetime.timedelta(seconds=seconds_ahead)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"), "properties": {arvados_lock.HOLDER_PROPERTY: dict(
            {"host": "h", "boot": "b", "pidns": "pid:[1]", "pid": 7, "start": "9"}, **holder)}}
    return record


@pytest.mark.parametrize("record, problem", [
    (lease(), None),
    (lease(-30), None),                                  # ended: the sweep will take it
    (lease(660), None),                                  # within the lease and a minute
    (dict(lease(), properties={arvados_lock.HOLDER_PROPERTY: {  # before namespaces
        "host": "h", "boot": "b", "pid": 7, "start": None}}), None),
    (dict(lease(), trash_at=None), "no trash_at"),
    (dict(lease(), trash_at="soon"), "is not a time"),
    (lease(661), "more than 660 s ahead"),
    (lease(86400 * 365), "more than 660 s ahead"),
    (dict(lease(), properties={}), "names no holder"),
    (lease(pid="7"), "holder is malformed"),
    (lease(pid=True), "holder is malformed"),
    (lease(pid=0), "holder is malformed"),
    (lease(host=None), "holder is malformed"),
    (dict(lease(), properties={arvados_lock.HOLDER_PROPERTY: "me"}), "holder is malformed"),
])
def test_what_is_a_lease(record, problem):
    found = arvados_lock.lease_problem(record, NOW)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_a_holder_is_judged_gone_only_from_its_own_pid_namespace():
    me = arvados_lock.this_process()
    assert not arvados_lock.holder_is_gone(me)
    child = subprocess.run([sys.executable, "-c", "import json; from arv_keepdocker_plugin."
                            "keep.arvados_lock import this_process; "
                            "print(json.dumps(this_process()))"],
                           capture_output=True, text=True, check=True)
    ended = json.loads(child.stdout)
    assert arvados_lock.holder_is_gone(ended)
    # The same pid and start time seen from another PID namespace (a container on
    # this host, same hostname and boot id) cannot be looked up: never gone.
    assert not arvados_lock.holder_is_gone(dict(ended, pidns="pid:[1]"))
    assert not arvados_lock.holder_is_gone(dict(me, pidns="pid:[1]", pid=os.getpid() + 1))
    assert not arvados_lock.holder_is_gone({k: v for k, v in ended.items() if k != "pidns"})
    assert not arvados_lock.holder_is_gone(dict(ended, boot="another boot"))
    assert not arvados_lock.holder_is_gone(dict(ended, host="another host"))
