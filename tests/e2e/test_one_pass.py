"""Compressed archives decompressed once (issue 19): stored while the image is learnt.

Against the local cluster (no engine): the stored ``<id>.tar`` is the archive's
own decompressed bytes (what ``docker load`` reads; ``test_compressed_archives``
loads one into a real engine), a second run uploads nothing (no block PUT, read
off the cluster's Keep directory), a new version adds only its new layer's
bytes, and a bad archive leaves nothing in Arvados.
"""

import bz2
import gzip
import io
import lzma
import os
import re
import tarfile

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from .conftest import Runner, collection_files, error_lines, layer_links

MiB = 1 << 20


def compress(data: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, 1)
    if kind == "bzip2":
        return bz2.compress(data, 1)
    if kind == "xz":
        return lzma.compress(data, preset=0)
    from backports import zstd
    return zstd.compress(data)


SUFFIX = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "zstd": ".zst"}


def noise(seed: int, size: int) -> bytes:
    import random
    return random.Random(seed).randbytes(size)


def plain_archive(tmp_path, name, layers, tag, layout="classic", config_first=False) -> bytes:
    return built(layers, tag, layout, config_first)[1]


def built(layers, tag, layout="classic", config_first=False):
    """``(image id, plain docker-archive bytes)``."""
    image = ib.build_image(layers, repo_tags=[tag])
    buf = io.BytesIO()
    ib.write_docker_archive(buf, [image], layout=layout)
    data = buf.getvalue()
    if config_first:
        data = reordered(data, lambda m: not (m.name.endswith(".json") or
                                              m.name.startswith("blobs/sha256/")
                                              and m.size < 64 * 1024))
    return image.image_id, data


def reordered(data: bytes, later) -> bytes:
    """The tar ``data`` with the members ``later`` says no to moved first, in order."""
    src = tarfile.open(fileobj=io.BytesIO(data))
    members = src.getmembers()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for member in sorted(members, key=lambda m: bool(later(m))):
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    return out.getvalue()


def write(tmp_path, name, data) -> str:
    path = str(tmp_path / name)
    with open(path, "wb") as f:
        f.write(data)
    return path


class KeepDir:
    """The cluster's Keep blocks: ``{path: inode}`` (every PUT replaces its file)."""

    def __init__(self, cluster):
        self.root = os.path.join(str(cluster.dir), "keep")

    def snapshot(self):
        out = {}
        for root, _dirs, files in os.walk(self.root):
            for name in files:
                if not name.startswith(".tmp"):
                    st = os.stat(os.path.join(root, name))
                    out[os.path.join(root, name)] = (st.st_ino, st.st_size)
        return out

    @staticmethod
    def puts(before, after):
        """Blocks written between two snapshots (new, or replaced by a PUT)."""
        return {path: size for path, (ino, size) in after.items()
                if before.get(path, (None, 0))[0] != ino}


@pytest.fixture
def run(user_env):
    return Runner(user_env)


@pytest.fixture
def keep_dir(arv_cluster):
    return KeepDir(arv_cluster)


def uuid_of(proc):
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def tar_bytes(api, uuid):
    import arvados.collection
    reader = arvados.collection.CollectionReader(uuid, api_client=api)
    (name,) = list(reader.keys())
    with reader.open(name, "rb") as f:
        return name, f.read()


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz", "zstd"])
@pytest.mark.parametrize("layout,config_first", [("classic", False), ("classic", True),
                                                 ("docker25", False)])
def test_one_pass_stores_the_archive_and_a_second_run_uploads_nothing(
        run, arv_api, keep_dir, tmp_path, unique, kind, layout, config_first):
    tag = f"{unique}/{kind}:{layout}"
    image_id, data = built([{"base.bin": noise(1, 300 * 1024)},
                            {"app.txt": unique.encode() * 50000}], tag, layout, config_first)
    path = write(tmp_path, "image.tar" + SUFFIX[kind], compress(data, kind))
    proc = run("--no-progress", "docker-archive:" + path)
    uuid = uuid_of(proc)
    name, stored = tar_bytes(arv_api, uuid)
    # A single-image archive is stored byte for byte: what docker load reads.
    assert stored == data
    assert name == image_id + ".tar"
    links = arv_api.links().list(filters=[["head_uuid", "=", uuid],
                                          ["link_class", "=", "docker_image_repo+tag"]]
                                 ).execute()["items"]
    assert [l["name"] for l in links] == [tag]
    assert len(layer_links(arv_api, uuid)) == 2
    before = keep_dir.snapshot()
    again = run("--no-progress", "docker-archive:" + path)
    assert uuid_of(again) == uuid
    assert keep_dir.puts(before, keep_dir.snapshot()) == {}


def test_a_new_version_adds_only_its_new_layer(run, arv_api, keep_dir, tmp_path, unique):
    base = {"base.bin": noise(2, 3 * MiB)}
    v1 = plain_archive(tmp_path, "v1", [base, {"v": noise(3, MiB)}], unique + ":1")
    v2 = plain_archive(tmp_path, "v2", [base, {"v": noise(4, MiB)}], unique + ":2")
    uuid_of(run("--no-progress", "docker-archive:" + write(tmp_path, "v1.tar.gz",
                                                             compress(v1, "gzip"))))
    before = keep_dir.snapshot()
    proc = run("--batch-progress", "docker-archive:" + write(tmp_path, "v2.tar.gz",
                                                             compress(v2, "gzip")))
    uuid_of(proc)
    added = sum(keep_dir.puts(before, keep_dir.snapshot()).values())
    # The new 1 MiB layer (in its tar) and the small blocks around it; not the base.
    assert MiB < added < MiB + 256 * 1024, added
    last = [line for line in proc.stderr.splitlines() if "uploaded" in line][-1]
    counts = {what: int(n) for n, what in re.findall(r"(\d+) (read|uploaded|reused)", last)}
    assert counts["uploaded"] < MiB + 256 * 1024, counts
    assert counts["reused"] >= 3 * MiB, counts


@pytest.mark.parametrize("kind", ["gzip", "xz"])
def test_a_corrupt_layer_in_a_compressed_archive_leaves_nothing(
        run, nothing_written, tmp_path, unique, kind):
    data = bytearray(plain_archive(tmp_path, "image", [{"a.bin": noise(5, 200 * 1024)}],
                                   unique + ":bad"))
    at = bytes(data).index(noise(5, 200 * 1024)[:64])
    data[at + 1000] ^= 0xFF  # the layer no longer hashes to its diff id
    path = write(tmp_path, "image.tar" + SUFFIX[kind], compress(bytes(data), kind))
    proc = run("--no-progress", "docker-archive:" + path)
    assert proc.returncode == 1
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "does not match its diff id" in lines[0], lines


def test_a_truncated_compressed_archive_leaves_nothing(run, nothing_written, tmp_path, unique):
    data = plain_archive(tmp_path, "image", [{"a.bin": noise(6, 400 * 1024)}],
                         unique + ":cut")
    packed = compress(data, "gzip")
    path = write(tmp_path, "image.tar.gz", packed[:len(packed) * 2 // 3])
    proc = run("--no-progress", "docker-archive:" + path)
    assert proc.returncode == 1
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "truncated" in lines[0], lines


def test_a_name_the_archive_does_not_hold_leaves_nothing(run, nothing_written, tmp_path,
                                                         unique):
    data = plain_archive(tmp_path, "image", [{"a.bin": b"x" * 1000}], unique + ":1")
    path = write(tmp_path, "image.tar.gz", compress(data, "gzip"))
    proc = run("--no-progress", f"docker-archive:{path}:{unique}:2")
    assert proc.returncode == 1
    assert f"no image tagged {unique}:2" in proc.stderr


def test_one_image_of_a_compressed_multi_image_archive_is_read_twice(
        run, arv_api, tmp_path, unique):
    one = ib.build_image([{"a.txt": b"one"}], repo_tags=[unique + ":one"])
    two = ib.build_image([{"a.txt": b"two"}], repo_tags=[unique + ":two"])
    buf = io.BytesIO()
    ib.write_docker_archive(buf, [one, two])
    path = write(tmp_path, "both.tar.gz", compress(buf.getvalue(), "gzip"))
    uuid = uuid_of(run("--no-progress", f"docker-archive:{path}:{unique}:two"))
    assert list(collection_files(arv_api, uuid)) == [two.image_id + ".tar"]


@pytest.fixture
def in_process(monkeypatch, tmp_path, arv_api):
    """Run ``arv keepdocker ARGS`` in this process (to count what it decompresses)."""
    from arv_keepdocker_plugin import cli
    from arv_keepdocker_plugin.plugins import get_plugin_manager
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def run(*args):
        out = io.StringIO()
        status, _outcome = cli.execute(list(args), stdout=out, install_sig_handlers=False,
                                       api=arv_api, pm=get_plugin_manager(
                                           load_entrypoints=False))
        assert status == 0
        return out.getvalue().strip()
    return run


@pytest.fixture
def decompressions(monkeypatch):
    """How many times an archive stream is decompressed (each starts a Decompressor,
    or for xz the xz command)."""
    from arv_keepdocker_plugin.archive import compression, streamed, xz_threads
    started = []

    class Counted(compression.Decompressor):
        def __init__(self, kind):
            started.append(kind)
            super().__init__(kind)

    class CountedProcess(xz_threads.XzProcess):
        def __init__(self, source, argv):
            started.append("xz")
            super().__init__(source, argv)
    monkeypatch.setattr(streamed, "Decompressor", Counted)
    monkeypatch.setattr(streamed, "XzProcess", CountedProcess)
    return started


@pytest.mark.parametrize("config_first", [True, False])
def test_the_archive_is_decompressed_once_and_stored_layers_after_the_config_are_not_uploaded(
        in_process, decompressions, monkeypatch, keep_dir, tmp_path, unique, config_first):
    from arv_keepdocker_plugin.steps import one_pass
    base = {"base.bin": noise(7, 2 * MiB)}
    _, v1 = built([base, {"v": b"1" * 100000}], unique + ":1")
    in_process("--no-progress", "docker-archive:" + write(tmp_path, "v1.tar", v1))
    # No recent record is known beforehand: only the config, met in the stream,
    # names the stored base layer.
    monkeypatch.setattr(one_pass, "RECENT_RECORDS", 0)
    _, v2 = built([base, {"v": noise(8, MiB)}], unique + ":2", config_first=config_first)
    before = keep_dir.snapshot()
    in_process("--no-progress", "docker-archive:" + write(tmp_path, "v2.tar.xz",
                                                          compress(v2, "xz")))
    assert decompressions == ["xz"]
    added = sum(keep_dir.puts(before, keep_dir.snapshot()).values())
    if config_first:
        assert added < MiB + 256 * 1024, added
    # Else the base passed before its config named it: its blocks may be
    # uploaded again (Keep already has them: no bytes are added to its store).


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
@pytest.mark.parametrize("index_last", [False, True])
def test_a_compressed_oci_archive_in_one_pass(run, arv_api, keep_dir, tmp_path, unique, kind,
                                               index_last):
    image = ib.build_image([{"base.bin": noise(9, 300 * 1024)}, {"app": unique.encode()}],
                           compression="gzip")
    out = io.BytesIO()
    ib.write_oci_layout(out, [(unique + ":1", image)])
    data = out.getvalue()
    if index_last:  # as a directory tarred in name order: blobs/, index.json, oci-layout
        data = reordered(data, lambda m: not m.name.startswith("blobs"))
    path = write(tmp_path, "image-oci.tar" + SUFFIX[kind], compress(data, kind))
    uuid = uuid_of(run("--no-progress", "oci-archive:" + path))
    assert list(collection_files(arv_api, uuid)) == [image.image_id + ".tar"]
    assert len(layer_links(arv_api, uuid)) == 1  # the small layer shares a block
    links = arv_api.links().list(filters=[["head_uuid", "=", uuid],
                                          ["link_class", "=", "docker_image_repo+tag"]]
                                 ).execute()["items"]
    assert [l["name"] for l in links] == [unique + ":1"]
    before = keep_dir.snapshot()
    assert uuid_of(run("--no-progress", "oci-archive:" + path)) == uuid
    assert keep_dir.puts(before, keep_dir.snapshot()) == {}


def test_one_platform_of_a_compressed_oci_index_is_read_twice(run, arv_api, tmp_path):
    amd = ib.build_image([{"p": b"amd" * 1000}], compression="gzip")
    arm = ib.build_image([{"p": b"arm"}], architecture="arm64", variant="v8")
    out = io.BytesIO()
    ib.write_oci_layout(out, [("m", ib.build_index([amd, arm]))])
    path = write(tmp_path, "multi.tar.gz", compress(out.getvalue(), "gzip"))
    uuid = uuid_of(run("--no-progress", "--platform", "linux/arm64/v8", "oci-archive:" + path))
    assert list(collection_files(arv_api, uuid)) == [arm.image_id + ".tar"]


def test_an_oci_layout_given_as_a_compressed_docker_archive_is_named(run, nothing_written,
                                                                       tmp_path):
    image = ib.build_image([{"a": b"a"}])
    out = io.BytesIO()
    ib.write_oci_layout(out, [("x:1", image)])
    path = write(tmp_path, "layout.tar.gz", compress(out.getvalue(), "gzip"))
    proc = run("--no-progress", "docker-archive:" + path)
    assert proc.returncode == 1
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and lines[0].endswith(
        f"{path}: no manifest.json: this is an OCI layout, use oci-archive:{path}"), lines


def test_a_dry_run_of_a_compressed_archive_reads_it_and_writes_nothing(
        run, nothing_written, keep_dir, tmp_path, unique):
    data = plain_archive(tmp_path, "image", [{"a.bin": noise(10, 200 * 1024)}], unique + ":d")
    path = write(tmp_path, "image.tar.xz", compress(data, "xz"))
    before = keep_dir.snapshot()
    proc = run("--no-progress", "--dry-run", "docker-archive:" + path)
    assert proc.returncode == 2, proc.stderr  # something would be written
    assert keep_dir.puts(before, keep_dir.snapshot()) == {}
