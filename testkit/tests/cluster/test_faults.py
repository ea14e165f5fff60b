"""Fault injection: the fault table itself, and faults seen by the real SDK clients."""

import os
import threading
import time

import arvados
import arvados.errors
import pytest
from arv_keepdocker_testkit.cluster.faults import Fault, Faults
from googleapiclient.errors import HttpError

# -- the table ---------------------------------------------------------------------


def test_take_counts_down_then_returns_none():
    table = Faults()
    table.arm("keep_put", 2, status=503, stall=0.5)
    assert table.pending() == {"keep_put": 2}
    assert table.take("keep_put") == Fault(status=503, stall=0.5)
    assert table.take("keep_get") is None
    assert table.take("keep_put") == Fault(status=503, stall=0.5)
    assert table.take("keep_put") is None
    assert table.pending() == {}


def test_arm_replaces_and_zero_disarms_and_clear_clears():
    table = Faults()
    table.arm("api", 5, status=500)
    table.arm("api", 1, status=404)
    assert table.take("api").status == 404
    table.arm("keep_get", 3, stall=1)
    table.arm("keep_get", 0)
    assert table.pending() == {}
    table.arm("keep_get", 3, stall=1)
    table.arm("keep_put", 3, status=503)
    table.clear()
    assert table.take("keep_get") is None and table.take("keep_put") is None


@pytest.mark.parametrize("args", [("nope", 1), ("api", -1), ("api", 1, 42), ("api", 1, None, -1.0)])
def test_arm_rejects_bad_specs(args):
    with pytest.raises(ValueError):
        Faults().arm(*args)


def test_take_is_thread_safe():
    table = Faults()
    table.arm("keep_put", 1000, status=503)
    taken = []

    def worker():
        for _ in range(300):
            if table.take("keep_put") is not None:
                taken.append(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == 1000


# -- against the running cluster ---------------------------------------------------------


@pytest.fixture
def cluster(arv_cluster):
    arv_cluster.clear_faults()
    yield arv_cluster
    arv_cluster.clear_faults()


def test_keep_put_503_then_success_with_retries(cluster, raw):
    keep = arvados.KeepClient(api_client=cluster.api("alice"))
    data = os.urandom(100_000)
    cluster.inject_fault("keep_put", 1, status=503)
    with pytest.raises(arvados.errors.KeepWriteError, match="503"):
        keep.put(data, num_retries=0)
    cluster.inject_fault("keep_put", 1, status=503)
    started = time.monotonic()
    loc = keep.put(data, num_retries=2)   # first try 503, retry after ~2 s succeeds
    assert time.monotonic() - started >= 1.5
    assert keep.get(loc, num_retries=0) == data
    assert raw("GET", "/_test/faults", user="admin")[1]["pending"] == {}


def test_keep_put_fault_with_expect_continue_keeps_connection_sane(cluster):
    # A faulted PUT reads and discards the body; the next PUT on a fresh try works.
    keep = arvados.KeepClient(api_client=cluster.api("alice"))
    cluster.inject_fault("keep_put", 2, status=503)
    big = os.urandom(4 << 20)
    for _ in range(2):
        with pytest.raises(arvados.errors.KeepWriteError):
            keep.put(big, num_retries=0)
    assert keep.get(keep.put(big, num_retries=0), num_retries=0) == big


def test_keep_get_fault_and_stall(cluster):
    keep = arvados.KeepClient(api_client=cluster.api("alice"))
    data = os.urandom(50_000)
    loc = keep.put(data, num_retries=0)
    cluster.inject_fault("keep_get", 1, status=503)
    with pytest.raises(arvados.errors.KeepReadError):
        keep.get(loc, num_retries=0)
    cluster.inject_fault("keep_get", 1, stall=1.0)
    started = time.monotonic()
    assert keep.get(loc, num_retries=0) == data
    assert time.monotonic() - started >= 1.0
    assert keep.head(loc, num_retries=0) is True


def test_keep_put_stall_without_status_still_stores(cluster):
    keep = arvados.KeepClient(api_client=cluster.api("alice"))
    cluster.inject_fault("keep_put", 1, stall=0.7)
    started = time.monotonic()
    loc = keep.put(b"slow but fine", num_retries=0)
    assert time.monotonic() - started >= 0.7
    assert keep.get(loc, num_retries=0) == b"slow but fine"


def test_api_fault_then_recovery(cluster):
    api = cluster.api("alice")
    cluster.inject_fault("api", 1, status=503)
    with pytest.raises(HttpError) as info:
        api.users().current().execute()
    assert info.value.resp.status == 503
    assert api.users().current().execute()["uuid"] == cluster.user_uuid("alice")
    cluster.inject_fault("api", 1, stall=0.5)
    started = time.monotonic()
    api.users().current().execute()
    assert time.monotonic() - started >= 0.5


def test_fault_counts_are_visible_and_clearable(cluster):
    pending = cluster.inject_fault("keep_get", 3, status=404)["pending"]
    assert pending == {"keep_get": 3}
    assert cluster.clear_faults()["pending"] == {}


def test_skip_lets_requests_pass_before_the_fault():
    table = Faults()
    table.arm("api:POST:links", 1, status=503, skip=2)
    assert table.take("api:POST:links") is None
    assert table.take("api:POST:links") is None
    assert table.take("api:POST:links") == Fault(status=503)
    assert table.pending() == {}
    with pytest.raises(ValueError):
        table.arm("api:FETCH:links", 1)


def test_a_fault_for_one_kind_of_call_spares_the_others(cluster):
    api = cluster.api("alice")
    cluster.inject_fault("api:POST:links", 1, status=503, skip=1)
    collection = api.collections().create(body={"manifest_text": ""}).execute()
    body = {"link_class": "tag", "name": "x", "head_uuid": collection["uuid"]}
    api.links().create(body=body).execute(num_retries=0)   # skipped: passes
    api.links().list().execute()                              # another kind: passes
    with pytest.raises(HttpError) as info:
        api.links().create(body=body).execute(num_retries=0)
    assert info.value.resp.status == 503
    assert cluster.pending_faults() == {}
    api.links().create(body=body).execute(num_retries=0)
