"""Manifest validation, portable data hash and signature checks.

(``doc/architecture/manifest-format.html.textile.liquid``,
``services/api/app/models/collection.rb``.)"""

import pytest
from arv_keepdocker_testkit.cluster import manifest, signing

KEY = "k" * 50
TTL = 1209600
NOW = 1_800_000_000
EXPIRY = NOW + TTL
ALICE = "v2/zzzzz-gj3su-aaaaaaaaaaaaaaa/alicesecret"
BOB = "v2/zzzzz-gj3su-bbbbbbbbbbbbbbb/bobsecret"
B1 = "6cbb085209cbd1f1f4e4644bca9f2252+23040"
B2 = "acbd18db4cc2f85cedef654fccc4a4d8+3"
EMPTY = "d41d8cd98f00b204e9800998ecf8427e+0"
IMAGE_NAME = "sha256\\072d2c94e258dcb3c5ac2798d32e1249e42ef01cba4841c2234249495f87264ac5a.tar"
HELLO = ". %s 0:23040:%s\n" % (B1, IMAGE_NAME)


@pytest.mark.parametrize("text", [
    "",
    HELLO,
    ". %s %s 0:23043:big 23040:3:tail\n" % (B1, B2),              # file spanning blocks
    ". %s 0:3:a\\040b 0:0:empty\n./sub/dir %s 1:2:x/y\n" % (B2, B2),  # escapes, sub-paths
    "./empty %s 0:0:.\n" % EMPTY,                                  # empty directory marker
    ". %s+Kzzzzz+A%s@7fffffff 0:3:foo\n" % (B2, "0" * 40),          # other and permission hints
    ". %s 0:3:caf\u00e9\n" % B2,                                    # UTF-8 name
    ". %s 0:3:back\\\\slash\n" % B2,                               # Ruby-style \\ escape
    ". %s 0:1:a 0:1:a 2:1:a\n" % B2,                               # repeated segments of a file
])
def test_valid_manifests_pass(text):
    manifest.validate(text)


@pytest.mark.parametrize("text, message", [
    (". %s 0:3:foo" % B2, "end with a newline"),
    (". %s 0:3:foo\n\n" % B2, "empty line"),
    (". %s  0:3:foo\n" % B2, "empty token"),
    (". %s 0:3:foo \n" % B2, "empty token"),
    (".\t%s 0:3:foo\n" % B2, "control character"),
    ("foo %s 0:3:foo\n" % B2, "stream name"),
    ("./a//b %s 0:3:foo\n" % B2, "stream name"),
    ("./a/.. %s 0:3:foo\n" % B2, "stream name"),
    (". 0:3:foo\n", "before any locator"),
    (". %s\n" % B2, "no file token"),
    (".\n", "no block locator"),
    (". %s 0:3:foo %s\n" % (B2, B2), "after file tokens"),
    (". ACBD18DB4CC2F85CEDEF654FCCC4A4D8+3 0:3:foo\n", "neither a locator"),
    (". acbd18db4cc2f85cedef654fccc4a4d8 0:3:foo\n", "neither a locator"),
    (". %s+Abad@7fffffff 0:3:foo\n" % B2, "malformed permission hint"),
    (". %s 0:4:foo\n" % B2, "past the end"),
    (". %s 2:2:foo\n" % B2, "past the end"),
    (". %s 0:3:a/../b\n" % B2, "file name"),
    (". %s 0:3:a/\n" % B2, "file name"),
    (". %s 0:3:/a\n" % B2, "file name"),
    (". %s 0:3:.\n" % B2, "empty directory marker"),
    (". %s 0:3:bad\\477escape\n" % B2, "invalid escape"),
    (". %s 0:3:bad\\x\n" % B2, "invalid escape"),
    (". %s 0:3:short\\07\n" % B2, "invalid escape"),
    (b". " + B2.encode() + b" 0:3:\xff\xfe\n", "UTF-8"),
])
def test_invalid_manifests_fail_with_a_clear_message(text, message):
    with pytest.raises(ValueError, match=message):
        manifest.validate(text)


def test_pdh_worked_example_from_facts():
    assert len(HELLO.encode()) == 128
    assert manifest.portable_data_hash(HELLO) == "a1edf71112224c684ae467f226047e8a+128"


def test_pdh_ignores_every_hint():
    signed = manifest.sign_manifest(HELLO, ALICE, KEY, TTL, EXPIRY)
    hinted = HELLO.replace(B1, B1 + "+Kzzzzz")
    assert signed != HELLO
    assert manifest.portable_data_hash(signed) == manifest.portable_data_hash(HELLO)
    assert manifest.portable_data_hash(hinted) == manifest.portable_data_hash(HELLO)


def test_pdh_of_empty_manifest():
    assert manifest.portable_data_hash("") == "d41d8cd98f00b204e9800998ecf8427e+0"


def test_strip_permission_hints_keeps_other_hints():
    text = ". %s+Kzzzzz+A%s@7fffffff 0:3:foo\n" % (B2, "1" * 40)
    assert manifest.strip_permission_hints(text) == ". %s+Kzzzzz 0:3:foo\n" % B2


def test_sign_manifest_signs_every_locator_for_the_token():
    text = ". %s %s 0:23043:big\n./d %s 0:3:x\n" % (B1, B2, B2)
    signed = manifest.sign_manifest(text, ALICE, KEY, TTL, EXPIRY)
    locs = manifest.locators(signed)
    assert len(locs) == 3
    for loc in locs:
        signing.verify_locator(loc, ALICE, KEY, TTL, NOW)
    assert manifest.strip_permission_hints(signed) == text
    manifest.validate(signed)


def test_check_signatures_accepts_own_valid_signatures():
    signed = manifest.sign_manifest(HELLO, ALICE, KEY, TTL, EXPIRY)
    manifest.check_signatures(signed, ALICE, KEY, TTL, NOW)


def test_check_signatures_refuses_forged_signature():
    forged = HELLO.replace(B1, B1 + "+A" + "f" * 40 + "@%08x" % EXPIRY)
    with pytest.raises(PermissionError, match="invalid"):
        manifest.check_signatures(forged, ALICE, KEY, TTL, NOW)


def test_check_signatures_refuses_another_users_signature():
    bobs = manifest.sign_manifest(HELLO, BOB, KEY, TTL, EXPIRY)
    manifest.check_signatures(bobs, BOB, KEY, TTL, NOW)
    with pytest.raises(PermissionError):
        manifest.check_signatures(bobs, ALICE, KEY, TTL, NOW)


def test_check_signatures_refuses_expired_signature():
    old = manifest.sign_manifest(HELLO, ALICE, KEY, TTL, NOW - 1)
    with pytest.raises(PermissionError, match="expired"):
        manifest.check_signatures(old, ALICE, KEY, TTL, NOW)


def test_check_signatures_refuses_missing_signature():
    with pytest.raises(PermissionError, match="no permission signature"):
        manifest.check_signatures(HELLO, ALICE, KEY, TTL, NOW)


def test_check_signatures_lets_the_empty_block_go_unsigned():
    text = ". %s 0:0:empty.txt\n" % EMPTY
    manifest.check_signatures(text, ALICE, KEY, TTL, NOW)
    manifest.check_signatures("", ALICE, KEY, TTL, NOW)
    forged = text.replace(EMPTY, EMPTY + "+A" + "0" * 40 + "@%08x" % EXPIRY)
    with pytest.raises(PermissionError):
        manifest.check_signatures(forged, ALICE, KEY, TTL, NOW)


def test_check_signatures_refuses_one_bad_locator_among_good_ones():
    good = manifest.sign_manifest(". %s %s 0:23043:big\n" % (B1, B2), ALICE, KEY, TTL, EXPIRY)
    bad = good.replace(manifest.locators(good)[1], B2)
    with pytest.raises(PermissionError, match=B2[:32]):
        manifest.check_signatures(bad, ALICE, KEY, TTL, NOW)


def test_files_unescape_names_and_add_up_segments():
    text = (". %s %s 0:3:a\\040b 3:23040:sha256\\072x.tar 0:1:a\\040b\n"
            "./sub\\040dir %s 0:3:deep/file 0:0:.\n"
            "./empty %s 0:0:.\n") % (B2, B1, B2, EMPTY)
    assert manifest.files(text) == [
        ("a b", 4),
        ("sha256:x.tar", 23040),
        ("sub dir/deep/file", 3),
    ]
    assert manifest.files("") == []


def test_unescape_octal():
    assert manifest.unescape("a\\040b\\072c\\134d\\\\e") == "a b:c\\d\\e"
