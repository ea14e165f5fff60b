"""The cluster's Keep service with the real SDK KeepClient and raw HTTPS requests."""

import hashlib
import os
import time

import arvados
import arvados.errors
import pytest
from arv_keepdocker_testkit.cluster import manifest, signing
from googleapiclient.errors import HttpError
from keep_http import KeepConnection

MiB = 1 << 20


def _keep(cluster, user="alice", num_retries=0):
    return arvados.KeepClient(api_client=cluster.api(user), num_retries=num_retries)


def _signed(cluster, data, user="alice", expiry=None):
    """A locator for ``data`` signed with the cluster's key for ``user``'s token."""
    settings = cluster.settings
    if expiry is None:
        expiry = int(time.time()) + settings.ttl
    loc = "%s+%d" % (hashlib.md5(data).hexdigest(), len(data))
    return signing.sign_locator(loc, cluster.token(user), settings.signing_key, settings.ttl,
                                expiry)


def test_keepclient_put_get_head_round_trip(arv_cluster):
    keep = _keep(arv_cluster)
    data = os.urandom(3 * MiB + 17)
    loc = keep.put(data, copies=2)
    md5 = hashlib.md5(data).hexdigest()
    assert loc.startswith("%s+%d+A" % (md5, len(data)))
    signing.verify_locator(loc, arv_cluster.token("alice"), arv_cluster.settings.signing_key,
                           arv_cluster.settings.ttl, time.time())
    assert keep.get(loc) == data
    assert keep.head(loc) is True


def test_put_claims_the_replicas_and_classes_asked_for(arv_cluster):
    data = b"replicas please"
    md5 = hashlib.md5(data).hexdigest()
    with KeepConnection(arv_cluster) as conn:
        status, headers, body = conn.request(
            "PUT", "/" + md5, arv_cluster.token("alice"), data,
            {"X-Keep-Desired-Replicas": "3", "X-Keep-Storage-Classes": "default"})
        assert status == 200
        assert headers["x-keep-replicas-stored"] == "3"
        assert headers["x-keep-storage-classes-confirmed"] == "default=3"
        assert body.decode().startswith("%s+%d+A" % (md5, len(data)))
        assert body.endswith(b"\n")
        status, headers, _ = conn.request("PUT", "/" + md5, arv_cluster.token("alice"), data)
        assert status == 200
        assert headers["x-keep-replicas-stored"] == str(arv_cluster.settings.replication)


def test_empty_block_round_trip(arv_cluster):
    keep = _keep(arv_cluster)
    loc = keep.put(b"")
    assert loc.startswith(manifest.EMPTY_BLOCK + "+0")
    assert keep.get(loc) == b""


def test_md5_mismatch_is_refused_and_connection_stays_usable(arv_cluster):
    token = arv_cluster.token("alice")
    data = os.urandom(2 * MiB)
    wrong = hashlib.md5(b"something else").hexdigest()
    with KeepConnection(arv_cluster) as conn:
        status, _, body = conn.request("PUT", "/" + wrong, token, data)
        assert status == 422
        assert b"hash mismatch" in body
        # The body was consumed: the same keep-alive connection serves the next request.
        status, _, body = conn.request("PUT", "/" + hashlib.md5(data).hexdigest(), token, data)
        assert status == 200
    blob = arv_cluster.dir / "keep" / wrong[:3] / wrong
    assert not blob.exists()


def test_md5_mismatch_with_expect_continue(arv_cluster):
    data = b"not what the URL says"
    with KeepConnection(arv_cluster) as conn:
        status, _, _ = conn.request("PUT", "/" + "0" * 32, arv_cluster.token("alice"), data,
                                    expect_continue=True)
    assert status == 422


def test_expect_continue_accepted_put(arv_cluster):
    data = os.urandom(MiB)
    with KeepConnection(arv_cluster) as conn:
        status, _, body = conn.request("PUT", "/" + hashlib.md5(data).hexdigest(),
                                       arv_cluster.token("alice"), data, expect_continue=True)
    assert status == 200
    assert body.startswith(hashlib.md5(data).hexdigest().encode())


def test_oversize_block_refused_before_the_body_with_expect_continue(arv_cluster):
    with KeepConnection(arv_cluster) as conn:
        conn.send_head("PUT", "/" + "0" * 32, arv_cluster.token("alice"),
                       {"Content-Length": str(64 * MiB + 1), "Expect": "100-continue"})
        status, headers, _ = conn.read_response()  # no 100 Continue first
    assert status == 413
    assert headers.get("connection") == "close"


def test_oversize_block_refused_after_the_body_without_expect(arv_cluster):
    data = bytes(64 * MiB + 1)
    with KeepConnection(arv_cluster) as conn:
        status, _, body = conn.request("PUT", "/" + hashlib.md5(data).hexdigest(),
                                       arv_cluster.token("alice"), data)
    assert status == 413
    assert b"64 MiB" in body


def test_oversize_block_refused_by_keepclient(arv_cluster):
    keep = _keep(arv_cluster)
    with pytest.raises(arvados.errors.KeepWriteError, match="413"):
        keep.put(bytes(64 * MiB + 1))


@pytest.mark.parametrize("token", [None, "v2/zzzzz-gj3su-000000000000000/nosuchsecret"])
def test_put_without_valid_token_is_401(arv_cluster, token):
    data = b"who am I"
    with KeepConnection(arv_cluster) as conn:
        status, _, _ = conn.request("PUT", "/" + hashlib.md5(data).hexdigest(), token, data)
        assert status == 401
        status, _, _ = conn.request("PUT", "/" + hashlib.md5(data).hexdigest(), token, data,
                                    expect_continue=True)
        assert status == 401


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_with_wrong_or_no_token_is_401(arv_cluster, method):
    data = b"token check"
    loc = _keep(arv_cluster).put(data)
    with KeepConnection(arv_cluster) as conn:
        assert conn.request(method, "/" + loc, None)[0] == 401
        assert conn.request(method, "/" + loc, "v2/zzzzz-gj3su-000000000000000/nope")[0] == 401
        assert conn.request(method, "/" + loc, arv_cluster.token("alice"))[0] == 200


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_needs_a_valid_signature_for_the_presented_token(arv_cluster, method):
    data = os.urandom(1000)
    loc = _keep(arv_cluster).put(data)
    md5_size = loc.split("+A")[0]
    forged = md5_size + "+A" + "0" * 40 + "@" + loc.rsplit("@", 1)[1]
    expired = _signed(arv_cluster, data, expiry=int(time.time()) - 10)
    alice, bob, admin = (arv_cluster.token(u) for u in ("alice", "bob", "admin"))
    with KeepConnection(arv_cluster) as conn:
        status, headers, body = conn.request(method, "/" + loc, alice)
        assert status == 200
        assert int(headers["content-length"]) == len(data)
        assert body == (b"" if method == "HEAD" else data)
        assert conn.request(method, "/" + forged, alice)[0] == 400
        assert conn.request(method, "/" + md5_size, alice)[0] == 400   # missing signature
        assert conn.request(method, "/" + loc, bob)[0] == 400          # foreign signature
        assert conn.request(method, "/" + loc, admin)[0] == 400        # admins are checked too
        assert conn.request(method, "/" + expired, alice)[0] == 401
        assert conn.request(method, "/" + _signed(arv_cluster, data, "bob"), bob)[0] == 200


def test_keepclient_refuses_foreign_and_forged_locators(arv_cluster):
    data = os.urandom(2000)
    loc = _keep(arv_cluster, "alice").put(data)
    bob = _keep(arv_cluster, "bob")
    with pytest.raises(arvados.errors.KeepReadError):
        bob.get(loc)
    forged = loc.split("+A")[0] + "+A" + "1" * 40 + "@" + loc.rsplit("@", 1)[1]
    with pytest.raises(arvados.errors.KeepReadError):
        _keep(arv_cluster, "alice").get(forged)


def test_unknown_block_is_404(arv_cluster):
    data = b"never stored %f" % time.time()
    with KeepConnection(arv_cluster) as conn:
        status, _, _ = conn.request("GET", "/" + _signed(arv_cluster, data),
                                    arv_cluster.token("alice"))
    assert status == 404
    with pytest.raises(arvados.errors.NotFoundError):
        _keep(arv_cluster).get(_signed(arv_cluster, data))


def test_get_without_size_hint_is_405(arv_cluster):
    loc = _keep(arv_cluster).put(b"sized")
    with KeepConnection(arv_cluster) as conn:
        assert conn.request("GET", "/" + loc[:32], arv_cluster.token("alice"))[0] == 405


def test_blocks_are_stored_by_hash_prefix(arv_cluster):
    data = os.urandom(5000)
    md5 = hashlib.md5(data).hexdigest()
    _keep(arv_cluster).put(data)
    blob = arv_cluster.dir / "keep" / md5[:3] / md5
    assert blob.read_bytes() == data
    assert not [p for p in blob.parent.iterdir() if p.name.startswith(".tmp-")]


def _image_manifest(loc):
    return ". %s 0:%s:sha256\\072abc.tar\n" % (loc, loc.split("+")[1])


def test_collection_create_accepts_own_signature(arv_cluster, arv_project):
    api = arv_cluster.api("alice")
    loc = _keep(arv_cluster).put(b"mine")
    coll = api.collections().create(body={"owner_uuid": arv_project["uuid"],
                                           "manifest_text": _image_manifest(loc)}).execute()
    assert coll["portable_data_hash"] == manifest.portable_data_hash(
        _image_manifest(loc.split("+A")[0]))


@pytest.mark.parametrize("kind", ["forged", "foreign", "expired", "missing"])
def test_collection_create_refuses_bad_signatures_with_403(arv_cluster, kind):
    data = os.urandom(100)
    loc = _keep(arv_cluster, "bob").put(data)   # signed for bob
    md5_size = loc.split("+A")[0]
    bad = {
        "forged": md5_size + "+A" + "2" * 40 + "@" + loc.rsplit("@", 1)[1],
        "foreign": loc,
        "expired": _signed(arv_cluster, data, "alice", expiry=int(time.time()) - 10),
        "missing": md5_size,
    }[kind]
    with pytest.raises(HttpError) as info:
        arv_cluster.api("alice").collections().create(
            body={"manifest_text": _image_manifest(bad)}).execute()
    assert info.value.resp.status == 403


def test_admin_collection_create_skips_signature_checks(arv_cluster):
    data = os.urandom(100)
    loc = _keep(arv_cluster, "bob").put(data)
    coll = arv_cluster.api("admin").collections().create(
        body={"manifest_text": _image_manifest(loc)}).execute()
    assert coll["portable_data_hash"] == manifest.portable_data_hash(_image_manifest(loc))


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, MiB - 1, MiB, MiB + 1, 2 * MiB + 4096])
def test_block_sizes_around_write_alignment_round_trip(arv_cluster, size):
    # Whole 4 KiB pages are written with O_DIRECT, an unaligned tail without it.
    data = os.urandom(size)
    md5 = hashlib.md5(data).hexdigest()
    keep = _keep(arv_cluster)
    loc = keep.put(data)
    assert (arv_cluster.dir / "keep" / md5[:3] / md5).read_bytes() == data
    assert keep.get(loc) == data
