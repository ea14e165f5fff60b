"""Manifest parsing, digests and platform choice, with no registry."""

import json

import pytest

from arv_keepdocker_plugin.archive.platforms import Platform
from arv_keepdocker_plugin.distribution.digests import check_bytes, require_digest, sha256_digest
from arv_keepdocker_plugin.distribution.manifests import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    MANIFEST_ACCEPT,
    MANIFEST_SIZE_LIMIT,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_manifest,
    select_platform,
)
from arv_keepdocker_plugin.distribution.registry_errors import (
    DigestMismatch,
    ManifestRefused,
    PlatformNotFound,
)


def digest(n):
    return "sha256:" + ("%x" % n) * 64


def descriptor(n, size=10, media_type="application/vnd.oci.image.layer.v1.tar", **extra):
    return dict({"mediaType": media_type, "digest": digest(n), "size": size}, **extra)


def image_manifest(media_type=OCI_MANIFEST, with_type=True):
    document = {"schemaVersion": 2, "config": descriptor(1, media_type="c"),
                "layers": [descriptor(2), descriptor(3, 0)]}
    if with_type:
        document["mediaType"] = media_type
    return json.dumps(document).encode()


def index(entries, media_type=OCI_INDEX):
    return json.dumps({"schemaVersion": 2, "mediaType": media_type,
                       "manifests": entries}).encode()


def entry(n, platform):
    os_name, arch, *variant = platform.split("/")
    p = {"os": os_name, "architecture": arch}
    if variant:
        p["variant"] = variant[0]
    return descriptor(n, media_type=OCI_MANIFEST, platform=p)


def test_accept_header_names_all_four_types():
    for media_type in (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST):
        assert media_type in MANIFEST_ACCEPT
    assert "distribution.manifest.v1" not in MANIFEST_ACCEPT


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_image_manifests(media_type):
    raw = image_manifest(media_type)
    manifest = parse_manifest(raw, "application/json", "x")
    assert manifest.media_type == media_type and not manifest.is_index
    assert manifest.digest == sha256_digest(raw) and manifest.raw == raw
    assert manifest.config.digest == digest(1)
    assert [(l.digest, l.size) for l in manifest.layers] == [(digest(2), 10), (digest(3), 0)]


def test_media_type_from_header_or_content():
    raw = image_manifest(with_type=False)
    assert parse_manifest(raw, DOCKER_MANIFEST, "x").media_type == DOCKER_MANIFEST
    assert parse_manifest(raw, None, "x").media_type == OCI_MANIFEST
    untyped_index = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert parse_manifest(untyped_index, "", "x").is_index


@pytest.mark.parametrize("raw, content_type", [
    (b'{"schemaVersion": 1, "name": "x", "fsLayers": []}', "application/json"),
    (b'{"schemaVersion": 1}', None),
    (b"anything", "application/vnd.docker.distribution.manifest.v1+prettyjws"),
    (b"{}", "application/vnd.docker.distribution.manifest.v1+json; charset=utf-8"),
])
def test_schema1_is_refused(raw, content_type):
    with pytest.raises(ManifestRefused, match="schema 1 manifests are not supported") as info:
        parse_manifest(raw, content_type, "h/r:t")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("raw, message", [
    (b"x" * (MANIFEST_SIZE_LIMIT + 1), "larger than"),
    (b"\xff", "x: the manifest is not UTF-8 text"),
    (b"{", r"x: the manifest is not valid JSON \(Expecting"),
    (b"[" * 100_000 + b"]" * 100_000, "x: the manifest is nested more than 100 levels deep"),
    (b'{"schemaVersion": "%s"}' % (b"9" * 10_000), r"schemaVersion '9999.*\.\.\.$"),
    (b"[]", "not a JSON object"),
    (b'{"schemaVersion": 3}', "schemaVersion 3"),
    (b'{"schemaVersion": 2, "mediaType": "text/plain"}', "unsupported manifest type"),
    (b'{"schemaVersion": 2, "mediaType": "%s", "layers": []}' % OCI_MANIFEST.encode(),
     "config descriptor"),
    (b'{"schemaVersion": 2, "mediaType": "%s", "config": {"digest": "%s", "size": -1}, '
     b'"layers": []}' % (OCI_MANIFEST.encode(), digest(1).encode()), "valid size"),
    (b'{"schemaVersion": 2, "mediaType": "%s", "config": {"digest": "sha512:ab", "size": 1},'
     b' "layers": []}' % OCI_MANIFEST.encode(), "algorithm 'sha512'"),
    (b'{"schemaVersion": 2, "mediaType": "%s"}' % OCI_INDEX.encode(), "no manifests list"),
])
def test_malformed_manifests(raw, message):
    with pytest.raises(ManifestRefused, match=message):
        parse_manifest(raw, None, "x")


def test_platform_choice():
    raw = index([entry(1, "linux/amd64"), entry(2, "linux/arm/v6"), entry(3, "linux/arm/v7"),
                 entry(4, "linux/arm64"), entry(5, "linux/arm64/v8"),
                 descriptor(6, media_type=OCI_MANIFEST,
                            platform={"os": "unknown", "architecture": "unknown"})],
                DOCKER_LIST)
    idx = parse_manifest(raw, None, "x")
    assert idx.is_index and idx.media_type == DOCKER_LIST

    def pick(text):
        return select_platform(idx, Platform.parse(text), "x").digest

    assert pick("linux/amd64") == digest(1)
    assert pick("linux/arm/v7") == digest(3)
    assert pick("linux/arm") == digest(2)
    assert pick("linux/arm64/v8") == digest(5)  # the exact variant beats the first match
    assert pick("linux/aarch64") == digest(4)
    with pytest.raises(PlatformNotFound) as info:
        pick("linux/s390x")
    assert str(info.value) == ("x: no image for platform linux/s390x; the index holds "
                               "linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64, "
                               "linux/arm64/v8, unknown/unknown")


def test_digest_helpers():
    assert require_digest(digest(1), "x") == digest(1)
    with pytest.raises(ManifestRefused, match="invalid digest"):
        require_digest("sha256:AB", "x")
    check_bytes(b"abc", sha256_digest(b"abc"), 3, "x")
    with pytest.raises(DigestMismatch, match="got 3 bytes, expected 4"):
        check_bytes(b"abc", sha256_digest(b"abc"), 4, "x")
    with pytest.raises(DigestMismatch, match="content has digest"):
        check_bytes(b"abd", sha256_digest(b"abc"), None, "x")


def test_an_index_of_12000_entries_is_named_in_a_bounded_line():
    entries = [{"digest": "sha256:%064x" % n, "size": 1,
                "platform": {"os": "linux", "architecture": "arch%d" % n}}
               for n in range(1, 12_001)]
    entries[1]["platform"]["architecture"] = "long" * 10_000
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries},
                     separators=(",", ":")).encode()
    idx = parse_manifest(raw, None, "x")
    with pytest.raises(PlatformNotFound) as info:
        select_platform(idx, Platform.parse("linux/s390x"), "x")
    message = str(info.value)
    assert message.startswith("x: no image for platform linux/s390x; the index holds "
                              "linux/arch1, linux/longlonglong")
    assert message.endswith(", linux/arch10 and 11990 more (12000 images in all)")
    assert len(message) < 1000, len(message)
