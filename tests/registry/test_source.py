"""``arv keepdocker docker://...`` for real: loopback registries, the local cluster, engines.

What a user gets from the ``docker://`` source: the links and properties it
leaves, names as Docker gives them (Docker Hub through a registries.conf
``location`` or a mirror), multi-platform indexes, images by digest, zstd
layers stored decompressed, a 64 MiB + 1 byte layer, and a second version
that downloads only its new layer. Stored tars are loaded into the real
Docker engine (and podman) and must give the id ``docker pull`` gives.
"""

import argparse
import io
import os
import random
import tarfile
import tracemalloc

import pytest
from arv_keepdocker_testkit import imagebuild as ib
from e2e.conftest import layer_links, load_from_keep

from arv_keepdocker_plugin.archive.compression import ZSTD_MODULES
from arv_keepdocker_plugin.archive.tap import TarTap
from arv_keepdocker_plugin.keep.block_writer import BLOCK_SIZE
from arv_keepdocker_plugin.keep.layer_links import locators_for_range
from arv_keepdocker_plugin.sources.registry import RegistrySource

from .conftest import BIG_SIZE
from .harness import dead_address
from .source_fixtures import MiB, blob_gets, counts, links_of, one_error, tar_bytes, uploaded

pytestmark = [pytest.mark.engines, pytest.mark.cluster]

HASH, TAG = "docker_image_hash", "docker_image_repo+tag"
CREATED = ib.DEFAULT_CREATED


def noise(seed: str, size: int) -> bytes:
    """Incompressible, reproducible bytes."""
    return random.Random(seed).randbytes(size)


def go_layer(files) -> ib.LayerBlob:
    """A gzip layer whose tar ends right after its end-of-archive blocks, as Go's
    archive/tar writes it (Python's tarfile pads to 10 KiB records, which
    zstd:chunked does not keep, so such a layer would no longer match its
    diff id once recompressed)."""
    raw = ib.layer_tar(files)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        last = tar.getmembers()[-1]
    end = last.offset_data + -(-last.size // 512) * 512 + 1024
    raw = raw[:end]
    stored = ib.gzip_bytes(raw)
    return ib.LayerBlob("sha256:" + ib.sha256_hex(stored), len(stored),
                        "sha256:" + ib.sha256_hex(raw), ib.MT_LAYER["gzip"], data=stored)


def test_plain_http_only_when_insecure_and_the_tar_loads_as_docker_pull_gives_it(
        source_run, push, registry_images, arv_api, arvados_state, keepdocker_docker_engine,
        keepdocker_podman_store, unique, tmp_path):
    address = registry_images.plain.address
    image = ib.build_image([{"etc/base": unique.encode() * 100},
                            {"app/data": noise(unique, 300 * 1024)}],
                           compression="gzip", labels={"k": unique})
    digest = push(address, "demo/%s:1" % unique, image)
    ref = "%s/demo/%s:1" % (address, unique)
    before = arvados_state.snapshot()
    assert one_error(source_run("--no-progress", "docker://" + ref)) == (
        "%s answered plain HTTP to HTTPS; mark it insecure in registries.conf or pass "
        "--src-tls-verify=false to allow plain HTTP" % address)
    assert arvados_state.snapshot() == before

    source_run.insecure(address)
    proc = source_run("--batch-progress", "docker://" + ref)
    uuid = uploaded(proc)
    progress = counts(proc.stderr)
    layer_bytes = sum(l.size for l in image.layers)
    documents = len(image.manifest_bytes) + len(image.config_bytes)
    assert progress["downloaded"] == layer_bytes + documents
    assert progress["read"] == progress["written"] == progress["uploaded"]
    # The total is known from the manifests before anything is downloaded.
    assert progress["total"] == progress["written"]
    assert all(" {} total ".format(progress["written"]) in line
               for line in proc.stderr.splitlines() if " written " in line)
    record = arv_api.collections().get(uuid=uuid).execute()
    assert record["name"] == "Docker image %s demo %s:1 %s" % (address, unique,
                                                               image.image_id[:12])
    assert record["properties"] == {
        "docker-image-repo-tag": ref,
        "docker-image-reference": "%s/demo/%s@%s" % (address, unique, digest)}
    properties = {"image_timestamp": CREATED, "image_manifest_digest": digest}
    assert links_of(arv_api, uuid) == {(HASH, image.image_id): properties, (TAG, ref): properties}

    # docker pull gives this id; the stored tar loads into an engine without it, as it.
    engine = keepdocker_docker_engine
    engine.docker("pull", ref)
    try:
        assert engine.image_id(ref) == image.image_id
        engine.docker("rmi", "-f", image.image_id)
        assert load_from_keep(arv_api, uuid, engine) == image.image_id
        assert engine.image_id(ref) == image.image_id  # tagged as pulled
    finally:
        engine.docker("rmi", "-f", image.image_id, check=False)
    stored = tmp_path / "stored.tar"
    stored.write_bytes(tar_bytes(arv_api, uuid))
    podman = keepdocker_podman_store
    podman.podman("load", "-i", str(stored))
    try:
        assert podman.image_id(ref) == image.image_id
    finally:
        podman.podman("rmi", "-f", image.image_id, check=False)


def test_docker_hub_names_through_a_location_and_then_a_mirror_with_the_primary_down(
        source_run, push, registry_images, arv_api, unique):
    address = registry_images.plain.address
    debian = registry_images.images["library/debian:12"]
    user_image = ib.build_image([{"u": unique.encode()}], compression="gzip")
    user_digest = push(address, "someone/%s:1" % unique, user_image)
    source_run.conf("""
        [[registry]]
        prefix = "docker.io"
        location = "%s"
        insecure = true
    """ % address)
    first = uploaded(source_run("--no-progress", "docker://debian:12"))
    assert links_of(arv_api, first) == {
        (HASH, debian.built.image_id): {"image_timestamp": CREATED,
                                        "image_manifest_digest": debian.digest},
        (TAG, "debian:12"): {"image_timestamp": CREATED, "image_manifest_digest": debian.digest}}
    properties = arv_api.collections().get(uuid=first).execute()["properties"]
    assert properties["docker-image-reference"] == "docker.io/library/debian@" + debian.digest
    assert properties["docker-image-repo-tag"] == "debian:12"
    user = uploaded(source_run("--no-progress", "docker://docker.io/someone/%s:1" % unique))
    assert (TAG, "someone/%s:1" % unique) in links_of(arv_api, user)
    assert links_of(arv_api, user)[(HASH, user_image.image_id)]["image_manifest_digest"] == \
        user_digest

    source_run.conf("""
        [[registry]]
        prefix = "docker.io"
        location = "%s"
        [[registry.mirror]]
        location = "%s"
        insecure = true
    """ % (dead_address(), address))
    again = uploaded(source_run("--no-progress", "--force", "docker://debian:12"))
    assert again != first
    assert set(links_of(arv_api, again)) == {(HASH, debian.built.image_id), (TAG, "debian:12")}


def test_a_multi_platform_index_records_the_manifest_and_the_index_digest(
        source_run, registry_images, arv_api):
    address = registry_images.plain.address
    pushed = registry_images.images["demo/multi:1"]
    amd64, arm64 = pushed.built.images[0], pushed.built.images[1]
    source_run.insecure(address)
    ref = "docker://%s/demo/multi:1" % address
    for platform, image in (("linux/arm64", arm64), (None, amd64)):
        uuid = uploaded(source_run("--no-progress", *(["--platform", platform] if platform
                                                      else []), ref))
        links = links_of(arv_api, uuid)
        assert set(links) == {(HASH, image.image_id), (TAG, "%s/demo/multi:1" % address)}
        assert links[(HASH, image.image_id)] == {
            "image_timestamp": CREATED, "image_manifest_digest": image.manifest_digest,
            "image_index_digest": pushed.digest}
    assert "no image for platform linux/s390x; the index holds linux/amd64, linux/arm64/v8, " \
        "linux/arm/v7" in one_error(source_run("--no-progress", "--platform", "linux/s390x",
                                               ref))


def test_by_digest_only_the_hash_link_and_a_rerun_writes_nothing(
        source_run, push, registry_images, arv_api, arvados_state, unique):
    address = registry_images.plain.address
    image = ib.build_image([{"d": unique.encode() * 50}], compression="gzip")
    digest = push(address, "demo/%s:1" % unique, image)
    source_run.insecure(address)
    ref = "docker://%s/demo/%s@%s" % (address, unique, digest)
    uuid = uploaded(source_run("--no-progress", ref))
    assert links_of(arv_api, uuid) == {
        (HASH, image.image_id): {"image_timestamp": CREATED, "image_manifest_digest": digest}}
    record = arv_api.collections().get(uuid=uuid).execute()
    assert record["name"] == "Docker image " + image.image_id[:12]
    assert record["properties"] == {
        "docker-image-repo-tag": None,
        "docker-image-reference": "%s/demo/%s@%s" % (address, unique, digest)}
    tap = TarTap(io.BytesIO(tar_bytes(arv_api, uuid))).consume()
    assert tap.manifest["RepoTags"] is None and tap.config_digest == image.image_id
    before = arvados_state.snapshot()
    assert uploaded(source_run("--no-progress", ref)) == uuid
    assert arvados_state.snapshot() == before


def test_a_second_version_downloads_and_uploads_only_its_new_layer(
        source_run, push, registry_images, registry_proxy, arv_api, keepdocker_docker_engine,
        unique, record_property):
    address = registry_images.plain.address
    base = ib.make_layer({"base.bin": noise(unique + "base", 6 * MiB)}, "gzip")
    lib = ib.make_layer({"lib.bin": noise(unique + "lib", 3 * MiB)}, "gzip")
    tops = [ib.make_layer({"top.bin": noise(unique + str(n), MiB)}, "gzip") for n in (1, 2)]
    v1, v2 = (ib.build_image([base, lib, top]) for top in tops)
    push(address, "demo/%s:1" % unique, v1)
    push(address, "demo/%s:2" % unique, v2)
    proxy = registry_proxy.address
    source_run.insecure(proxy)
    uploaded(source_run("--no-progress", "docker://%s/demo/%s:1" % (proxy, unique)))
    start = len(registry_proxy.seen)
    proc = source_run("--batch-progress", "docker://%s/demo/%s:2" % (proxy, unique))
    uuid = uploaded(proc)
    # Only the new layer's blob and the config were downloaded, then stored.
    assert sorted(blob_gets(registry_proxy, start)) == sorted([v2.image_id, tops[1].digest])
    progress = counts(proc.stderr)
    documents = len(v2.manifest_bytes) + len(v2.config_bytes)
    assert progress["downloaded"] == tops[1].size + documents
    assert progress["reused"] == base.size + lib.size
    assert progress["uploaded"] == progress["written"] - progress["reused"]
    assert tops[1].size < progress["uploaded"] < tops[1].size + 64 * 1024  # + tar metadata
    record_property("second_version", progress)
    print("\nsecond version: {downloaded} bytes downloaded, {uploaded} uploaded, {reused} "
          "reused, {written} written (new layer {new} bytes)".format(new=tops[1].size,
                                                                     **progress))
    assert set(layer_links(arv_api, uuid)) >= {base.digest, lib.digest, tops[1].digest}
    ref = "%s/demo/%s:2" % (address, unique)
    engine = keepdocker_docker_engine
    engine.docker("pull", ref)
    try:
        assert engine.image_id(ref) == v2.image_id
        engine.docker("rmi", "-f", v2.image_id)
        assert load_from_keep(arv_api, uuid, engine) == v2.image_id
    finally:
        engine.docker("rmi", "-f", v2.image_id, check=False)


def test_a_64_mib_plus_1_layer_spans_two_blocks_in_bounded_memory(
        source_run, registry_images, arv_api, record_property):
    address = registry_images.plain.address
    pushed = registry_images.images["demo/big:1"]
    proc = source_run.start("--batch-progress", "--force", "--src-tls-verify=false",
                            "docker://%s/demo/big:1" % address)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err
    uuid = out.strip()
    layers = layer_links(arv_api, uuid)
    assert list(layers) == [pushed.layer_digest]
    (offset, size), = layers.values()
    assert size == BIG_SIZE
    manifest = arv_api.collections().get(uuid=uuid).execute()["manifest_text"]
    assert [int(l.split("+")[1]) for l in locators_for_range(manifest, offset, size)] == [
        BLOCK_SIZE, 1]
    progress = counts(err)
    assert BIG_SIZE < progress["downloaded"] < BIG_SIZE + 8192
    # Measured, not asserted (the Keep writer's buffer, two 64 MiB blocks in
    # flight and the SDK's copies of them); the export's own memory is
    # asserted in test_the_export_holds_a_chunk_at_a_time.
    record_property("big_layer_peak_rss_bytes", usage.ru_maxrss * 1024)
    print(f"\n64 MiB + 1 layer: peak RSS {usage.ru_maxrss // 1024} MiB")


def test_the_export_holds_a_chunk_at_a_time(registry_images, tmp_path, monkeypatch):
    """The source's export of the 64 MiB + 1 layer, alone, under tracemalloc."""
    address = registry_images.plain.address
    pushed = registry_images.images["demo/big:1"]
    conf = tmp_path / "registries.conf"
    conf.write_text('[[registry]]\nlocation = "%s"\ninsecure = true\n' % address)
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(conf))
    monkeypatch.setenv("HOME", str(tmp_path))
    source = RegistrySource()
    image = source.resolve(source.parse("%s/demo/big:1" % address, None),
                           argparse.Namespace(platform=None))
    tracemalloc.start()
    try:
        total = 0
        with image.export_pieces({}) as pieces:
            for piece in pieces:
                assert isinstance(piece, bytes)
                total += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > BIG_SIZE
    assert image.downloaded() >= BIG_SIZE
    assert peak < 8 * MiB, peak
    assert [l.digest for l in image.layers] == [pushed.layer_digest]


def test_zstd_layers_are_stored_decompressed_and_load_with_the_same_id(
        source_run, push, registry_images, arv_api, keepdocker_docker_engine, unique, tmp_path):
    address = registry_images.plain.address
    zstd = ib.build_image([{"z1": unique.encode() * 3000}, {"z2": noise(unique, 200 * 1024)}],
                          compression="zstd")
    zstd_digest = push(address, "demo/%s-zstd:1" % unique, zstd)
    gzipped = ib.build_image([go_layer({"c1": noise(unique + "c", 300 * 1024)}),
                              go_layer({"c2": b"chunked"})])
    chunked_digest = push(address, "demo/%s-chunked:1" % unique, gzipped,
                          "--dest-compress-format", "zstd:chunked")
    source_run.insecure(address)
    hidden = tmp_path / "no-zstd"
    hidden.mkdir()  # a sitecustomize on PYTHONPATH makes every zstd module fail to import
    (hidden / "sitecustomize.py").write_text(
        "import sys\nsys.modules.update(dict.fromkeys(%r))\n" % (ZSTD_MODULES,))
    message = one_error(source_run("--no-progress", "docker://%s/demo/%s-zstd:1"
                                   % (address, unique), env={"PYTHONPATH": str(hidden)}))
    assert message == (
        "%s/demo/%s-zstd:1: layer %s is zstd-compressed, which docker load cannot read, and no "
        "zstd decompressor is installed to store it uncompressed (pip install "
        "'arv-keepdocker-plugin[zstd]')" % (address, unique, zstd.layers[0].digest))

    for name, image, digest in (("zstd", zstd, zstd_digest),
                                ("chunked", gzipped, chunked_digest)):
        uuid = uploaded(source_run("--no-progress", "docker://%s/demo/%s-%s:1"
                                   % (address, unique, name)))
        # The id (the config digest) is unchanged; the registry's manifest digest recorded.
        links = links_of(arv_api, uuid)
        assert links[(HASH, image.image_id)]["image_manifest_digest"] == digest
        tap = TarTap(io.BytesIO(tar_bytes(arv_api, uuid))).consume()
        diff_ids = image.config["rootfs"]["diff_ids"]
        assert tap.manifest["Layers"] == ["blobs/sha256/" + d.split(":")[1] for d in diff_ids]
        assert [d.compression for d in tap.layer_digests] == [None, None]
        assert tap.manifest_digest not in (None, digest)  # the archive's own manifest
        engine = keepdocker_docker_engine
        try:
            assert load_from_keep(arv_api, uuid, engine) == image.image_id
        finally:
            engine.docker("rmi", "-f", image.image_id, check=False)
