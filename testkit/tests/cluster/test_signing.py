"""Block permission signatures (``sdk/go/arvados/blob_signature.go``), checked against
Arvados' own test vector (``services/api/test/unit/blob_test.rb``)."""

import pytest
from arv_keepdocker_testkit.cluster import signing

# services/api/test/unit/blob_test.rb and sdk/go/arvados/blob_signature_test.go
KNOWN_KEY = (
    "13u9fkuccnboeewr0ne3mvapk28epf68a3bhj9q8sb4l6e4e5mkk"
    "p6nhj2mmpscgu1zze5h5enydxfe3j215024u16ij4hjaiqs5u4pzsl3nczmaoxnc"
    "ljkm4875xqn4xv058koz3vkptmzhyheiy6wzevzjmdvxhvcqsvr5abhl15c2d4o4"
    "jhl0s91lojy1mtrzqqvprqcverls0xvy9vai9t1l1lvvazpuadafm71jl4mrwq2y"
    "gokee3eamvjy8qq1fvy238838enjmy5wzy2md7yvsitp5vztft6j4q866efym7e6"
    "vu5wm9fpnwjyxfldw3vbo01mgjs75rgo7qioh8z8ij7jpyp8508okhgbbex3ceei"
    "786u5rw2a9gx743dj3fgq2irk"
)
KNOWN_TOKEN = "hocfupkn2pjhrpgp2vxv8rsku7tvtx49arbc9s4bvu7p7wxqvk"
KNOWN_LOCATOR = "acbd18db4cc2f85cedef654fccc4a4d8+3"
KNOWN_SIGNATURE = "89118b78732c33104a4d6231e8b5a5fa1e4301e3"
KNOWN_EXPIRY = 0x7FFFFFFF
TTL = 1209600
SIGNED = KNOWN_LOCATOR + "+A" + KNOWN_SIGNATURE + "@7fffffff"


def test_signature_matches_arvados_test_vector():
    assert signing.signature(KNOWN_LOCATOR[:32], KNOWN_TOKEN, KNOWN_KEY, TTL,
                             KNOWN_EXPIRY) == KNOWN_SIGNATURE


def test_sign_locator_matches_arvados_signed_locator():
    assert signing.sign_locator(KNOWN_LOCATOR, KNOWN_TOKEN, KNOWN_KEY, TTL, KNOWN_EXPIRY) == SIGNED


def test_sign_locator_replaces_old_permission_hint_and_keeps_others():
    old = KNOWN_LOCATOR + "+Afff0000000000000000000000000000000000000@12345678+Kzzzzz"
    signed = signing.sign_locator(old, KNOWN_TOKEN, KNOWN_KEY, TTL, KNOWN_EXPIRY)
    assert signed == KNOWN_LOCATOR + "+Kzzzzz+A" + KNOWN_SIGNATURE + "@7fffffff"


def test_expiry_is_written_as_eight_hex_digits():
    signed = signing.sign_locator(KNOWN_LOCATOR, KNOWN_TOKEN, KNOWN_KEY, TTL, 0x1234)
    assert signed.endswith("@00001234")
    signing.verify_locator(signed, KNOWN_TOKEN, KNOWN_KEY, TTL, now=0x1000)


def test_verify_accepts_the_test_vector():
    assert signing.verify_locator(SIGNED, KNOWN_TOKEN, KNOWN_KEY, TTL, now=1_700_000_000) is None


@pytest.mark.parametrize("token, key, ttl", [
    ("someone-else", KNOWN_KEY, TTL),          # a foreign user's token
    (KNOWN_TOKEN, "another-key", TTL),          # another cluster's key
    (KNOWN_TOKEN, KNOWN_KEY, TTL + 1),          # another TTL
])
def test_verify_refuses_signature_made_for_something_else(token, key, ttl):
    with pytest.raises(signing.InvalidSignatureError):
        signing.verify_locator(SIGNED, token, key, ttl, now=1_700_000_000)


def test_verify_refuses_a_forged_signature():
    forged = KNOWN_LOCATOR + "+A" + "0" * 40 + "@7fffffff"
    with pytest.raises(signing.InvalidSignatureError):
        signing.verify_locator(forged, KNOWN_TOKEN, KNOWN_KEY, TTL, now=0)


def test_verify_refuses_a_moved_expiry():
    moved = KNOWN_LOCATOR + "+A" + KNOWN_SIGNATURE + "@7ffffffe"
    with pytest.raises(signing.InvalidSignatureError):
        signing.verify_locator(moved, KNOWN_TOKEN, KNOWN_KEY, TTL, now=0)


def test_verify_reports_expiry():
    signed = signing.sign_locator(KNOWN_LOCATOR, KNOWN_TOKEN, KNOWN_KEY, TTL, 1000)
    with pytest.raises(signing.ExpiredSignatureError):
        signing.verify_locator(signed, KNOWN_TOKEN, KNOWN_KEY, TTL, now=1001)


@pytest.mark.parametrize("locator, token",
                         [(KNOWN_LOCATOR, KNOWN_TOKEN), (SIGNED, None), (SIGNED, "")])
def test_verify_reports_missing_signature_or_token(locator, token):
    with pytest.raises(signing.MissingSignatureError):
        signing.verify_locator(locator, token, KNOWN_KEY, TTL, now=0)


@pytest.mark.parametrize("locator", [
    "acbd18db4cc2f85cedef654fccc4a4d8",              # no size
    "ACBD18DB4CC2F85CEDEF654FCCC4A4D8+3",            # upper case hash
    KNOWN_LOCATOR + "+A1234@7fffffff",               # short signature
    KNOWN_LOCATOR + "+A" + KNOWN_SIGNATURE,          # no expiry
    SIGNED + "+A" + KNOWN_SIGNATURE + "@7fffffff",   # two permission hints
])
def test_verify_refuses_malformed_locators(locator):
    with pytest.raises(signing.InvalidSignatureError):
        signing.verify_locator(locator, KNOWN_TOKEN, KNOWN_KEY, TTL, now=0)


def test_every_failure_is_a_signature_error_with_a_reason():
    for cls in (signing.MissingSignatureError, signing.ExpiredSignatureError,
                signing.InvalidSignatureError):
        assert issubclass(cls, signing.SignatureError)
    with pytest.raises(signing.SignatureError) as info:
        signing.verify_locator(KNOWN_LOCATOR, KNOWN_TOKEN, KNOWN_KEY, TTL, now=0)
    assert info.value.reason
