"""The core's trust rule for stored layers: who made the record, and for how long it lasts."""

import time

from arv_keepdocker_plugin import LayerRecord
from arv_keepdocker_plugin.steps.layer_trust import TrustRule

ALICE, PROJECT, MALLORY = "zzzzz-tpzed-alice0000000000", "zzzzz-j7d0g-project00000000", \
    "zzzzz-tpzed-mallory00000000"
RULE = TrustRule(owners=frozenset({ALICE, PROJECT}), valid_until=time.time() + 3600)


def record(owner=ALICE, checked=True, diff_id="sha256:" + "d" * 64):
    return LayerRecord(digest="sha256:" + "a" * 64, collection_uuid="zzzzz-4zz18-x",
                       offset=1536, size=10, owner_uuid=owner, checked=checked,
                       diff_id=diff_id)


def test_only_checked_records_the_user_or_project_owns_may_stand_in_for_bytes():
    assert RULE.may_skip(record(), {"owner_uuid": ALICE})
    assert RULE.may_skip(record(owner=PROJECT), {"owner_uuid": PROJECT})
    # Planted by another user, or pointing at another user's collection.
    assert not RULE.may_skip(record(owner=MALLORY), {"owner_uuid": ALICE})
    assert not RULE.may_skip(record(), {"owner_uuid": MALLORY})
    # Made before records were checked (no marker), or without a diff id.
    assert not RULE.may_skip(record(checked=False), {"owner_uuid": ALICE})
    assert not RULE.may_skip(record(diff_id=None), {"owner_uuid": ALICE})


def test_blocks_must_outlive_the_upload():
    soon = "{}+3+A{}@{:08x}".format("a" * 32, "0" * 40, int(time.time()) + 600)
    later = "{}+3+A{}@{:08x}".format("a" * 32, "0" * 40, int(time.time()) + 86400)
    assert not RULE.lasts(soon)
    assert RULE.lasts(later)
    assert RULE.lasts("a" * 32 + "+3")  # unsigned: a cluster without blob signing
