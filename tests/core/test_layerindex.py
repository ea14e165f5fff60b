"""Pure parts of the layer index and the Keep writer (no services needed)."""

import pytest

from arv_keepdocker_plugin.archive.tap import layer_digest
from arv_keepdocker_plugin.keep.block_writer import is_layer_member
from arv_keepdocker_plugin.keep.layer_links import locators_for_range
from arv_keepdocker_plugin.keep.locators import escape_name, manifest_text

A, B, C = ("a" * 32 + "+10+A" + "1" * 40 + "@7fffffff", "b" * 32 + "+20", "c" * 32 + "+5")
MANIFEST = f". {A} {B} {C} 0:35:sha256\\072x.tar\n"


@pytest.mark.parametrize("offset, size, expected", [
    (0, 10, [A]), (10, 20, [B]), (10, 25, [B, C]), (0, 35, [A, B, C]),
    (5, 5, None),     # not on a block boundary
    (10, 22, None),   # ends inside a block
    (0, 0, None),
])
def test_blocks_for_a_layer_only_when_aligned(offset, size, expected):
    assert locators_for_range(MANIFEST, offset, size) == expected


def test_only_one_file_manifests_are_used():
    two_files = f". {A} 0:5:a 5:5:b\n"
    assert locators_for_range(two_files, 0, 10) is None
    assert locators_for_range(MANIFEST + f"./sub {B} 0:20:y\n", 10, 20) is None


def test_manifest_text_escapes_the_tar_name():
    assert manifest_text([B], 20, "sha256:ab.tar") == f". {B} 0:20:sha256\\072ab.tar\n"
    assert manifest_text([], 0, "e.tar") == ". d41d8cd98f00b204e9800998ecf8427e+0 0:0:e.tar\n"
    assert escape_name("a b\\c") == "a\\040b\\134c"


def test_layer_members_and_their_digests():
    assert is_layer_member("0123/layer.tar", 1 << 20)
    assert is_layer_member("blobs/sha256/" + "0" * 64, 1 << 20)
    assert not is_layer_member("0123/layer.tar", 100)          # too small to align
    assert not is_layer_member("manifest.json", 1 << 20)
    blob = "blobs/sha256/" + "f" * 64
    assert layer_digest(blob, 0, [], 1) == "sha256:" + "f" * 64
    assert layer_digest("x/layer.tar", 1, ["sha256:1", "sha256:2"], 2) == "sha256:2"
    assert layer_digest("x/layer.tar", 1, ["sha256:1"], 2) is None
