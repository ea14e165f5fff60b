"""The one docker-archive writer (``to_docker_archive``) with data from a callable.

Layouts and registries both use it: layers as planned (passed through, or
written otherwise than their descriptor, such as a zstd layer stored
decompressed), skipped layers as :class:`StoredData`, then config, manifest
and metadata. The tap that stores the stream must accept the result.
"""

import dataclasses
import hashlib
import io
import json

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.archive.docker_archive_writer import (
    PlannedLayer,
    rewritten_manifest,
    to_docker_archive,
)
from arv_keepdocker_plugin.archive.tap import TarTap
from arv_keepdocker_plugin.errors import BadArchive
from arv_keepdocker_plugin.image import StoredData

CHUNKED = "io.github.containers.zstd-chunked.manifest-checksum"


@dataclasses.dataclass
class Documents:
    path: str
    config: dict
    config_bytes: bytes
    manifest_bytes: bytes
    manifest_media_type: str = ib.MT_OCI_MANIFEST

    @property
    def image_id(self):
        return "sha256:" + hashlib.sha256(self.config_bytes).hexdigest()

    @property
    def manifest_digest(self):
        return "sha256:" + hashlib.sha256(self.manifest_bytes).hexdigest()


def documents(image, manifest_bytes=None):
    return Documents("test image", image.config, image.config_bytes,
                     manifest_bytes or image.manifest_bytes)


def with_annotation(image):
    """The image's manifest with a zstd:chunked annotation on its zstd layer."""
    manifest = json.loads(image.manifest_bytes)
    manifest["layers"][1]["annotations"] = {CHUNKED: "sha256:" + "c" * 64, "keep": "me"}
    return ib.canonical_json(manifest)


@pytest.fixture
def image():
    """gzip layer, then a zstd layer (to be stored decompressed)."""
    gz = ib.make_layer({"a": b"a" * 100}, "gzip")
    zs = ib.make_layer({"b": b"b" * 200}, "zstd")
    return ib.build_image([gz, zs])


def plan(image, manifest_bytes):
    descs = json.loads(manifest_bytes)["layers"]
    return [PlannedLayer.as_served(descs[0]),
            PlannedLayer(image.layers[1].diff_id, None, ib.MT_LAYER["none"], descs[1])]


def uncompressed(layer):
    return ib.layer_tar({"b": b"b" * 200})


def opener(image, opened):
    def open_layer(layer):
        opened.append(layer.digest)
        if layer.converted:
            data = ib.layer_tar({"b": b"b" * 200})
        else:
            data = next(l.data for l in image.layers if l.digest == layer.digest)
        return len(data), [data]
    return open_layer


def tap_of(pieces, fill=None):
    data = b"".join(piece if isinstance(piece, bytes) else fill[piece.digest]
                    for piece in pieces)
    return data, TarTap(io.BytesIO(data)).consume()


def test_a_converted_layer_is_written_under_its_diff_id_and_the_manifest_says_so(image):
    manifest_bytes = with_annotation(image)
    opened = []
    data, tap = tap_of(to_docker_archive(documents(image, manifest_bytes),
                                         plan(image, manifest_bytes), opener(image, opened),
                                         "reg.example/app:1"))
    zs = image.layers[1]
    assert opened == [image.layers[0].digest, zs.diff_id]
    assert tap.config_digest == image.image_id  # the id never changes
    assert tap.manifest["Layers"] == ["blobs/sha256/" + image.layers[0].hex,
                                      "blobs/sha256/" + zs.diff_id.split(":")[1]]
    assert [d.diff_id for d in tap.layer_digests] == image.config["rootfs"]["diff_ids"]
    # The archive's OCI manifest describes what it holds.
    assert tap.manifest_digest != documents(image, manifest_bytes).manifest_digest
    name = "blobs/sha256/" + tap.manifest_digest.split(":")[1]
    offset, size = [(o, s) for n, o, s in tap.members if n == name][0]
    manifest = json.loads(data[offset:offset + size])
    assert manifest["config"] == json.loads(image.manifest_bytes)["config"]
    assert manifest["layers"][0] == json.loads(image.manifest_bytes)["layers"][0]
    assert manifest["layers"][1] == {"mediaType": ib.MT_LAYER["none"], "digest": zs.diff_id,
                                     "size": len(uncompressed(zs)), "annotations": {"keep": "me"}}


def test_unconverted_layers_keep_the_manifest_bytes(image):
    descs = json.loads(image.manifest_bytes)["layers"]
    _, tap = tap_of(to_docker_archive(documents(image), [PlannedLayer.as_served(d) for d in descs],
                                      opener(image, [])))
    assert tap.manifest_digest == image.manifest_digest


def test_a_skipped_layer_of_unknown_size_takes_its_size_from_the_skip_mapping(image):
    manifest_bytes = image.manifest_bytes
    zs = image.layers[1]
    stored = uncompressed(zs)
    opened = []
    skip = {zs.diff_id: len(stored)}
    pieces = list(to_docker_archive(documents(image), plan(image, manifest_bytes),
                                    opener(image, opened), None, skip))
    assert [p for p in pieces if isinstance(p, StoredData)] == [
        StoredData(zs.diff_id, len(stored))]
    assert opened == [image.layers[0].digest]
    _, tap = tap_of(pieces, {zs.diff_id: stored})
    assert tap.config_digest == image.image_id


def test_a_manifest_whose_layers_do_not_match_is_refused(image):
    layers = plan(image, image.manifest_bytes)
    with pytest.raises(BadArchive, match="the manifest's layers do not match"):
        rewritten_manifest("x", image.manifest_bytes, layers[:1], {})
