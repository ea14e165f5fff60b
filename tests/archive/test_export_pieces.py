"""Image.export_pieces: the export stream with stored layers' data left unread.

Every archive source (docker-archive in both layouts, one image or one of
several, oci-archive, oci directory) must give pieces that, with each
:class:`StoredData` replaced by that layer's bytes, are exactly ``export()``;
the data of a stored layer must not be read, and every other byte is checked
as ``export()`` checks it.
"""

import argparse
import hashlib
import os
import tarfile

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.archive.members import TarMembers
from arv_keepdocker_plugin.errors import BadArchive
from arv_keepdocker_plugin.image import StoredData
from arv_keepdocker_plugin.plugins import get_plugin_manager

#: A layer big enough that reading it or not shows in the process's I/O counters.
BIG = 24 * 1024 * 1024


def resolve(reference: str):
    """The :class:`Image` a source gives for ``TRANSPORT:DETAILS``."""
    transport, _, details = reference.partition(":")
    source = get_plugin_manager(load_entrypoints=False).sources[transport]
    return source.resolve(source.parse(details, None), argparse.Namespace())


def exported(image) -> bytes:
    with image.export() as stream:
        return stream.read()


def sizes(image, skip):
    """What the core passes to export_pieces: each skipped digest with its stored size."""
    return {layer.digest: layer.size for layer in image.layers if layer.digest in skip}


def pieces_of(image, skip):
    with image.export_pieces(sizes(image, skip)) as pieces:
        return list(pieces)


def filled(pieces, export: bytes):
    """``pieces`` joined, each StoredData replaced by the export's bytes there.

    Returns the joined bytes and ``[(StoredData, the bytes it stands for)]``.
    """
    out, stored = [], []
    pos = 0
    for piece in pieces:
        if isinstance(piece, StoredData):
            data = export[pos:pos + piece.size]
            stored.append((piece, data))
        else:
            assert isinstance(piece, bytes)
            assert len(piece) <= 8 * 1024 * 1024
            data = piece
        out.append(data)
        pos += len(data)
    return b"".join(out), stored


def layer_data(built, digest):
    """Every byte string a built layer with this digest (or diff id) is stored as."""
    return {l.data for img in built for l in img.layers if digest in (l.digest, l.diff_id)}


def check_pieces(image, built, skip):
    """The pieces rebuild ``export()`` and each StoredData is right; returns them.

    ``built``: every image the archive was made of (in a classic archive a
    layer's member may come from another image with the same diff id).
    """
    export = exported(image)
    pieces = pieces_of(image, skip)
    joined, stored = filled(pieces, export)
    assert joined == export
    assert {p.digest for p, _ in stored} == set(skip)
    for piece, data in stored:
        assert piece.size == len(data)
        assert data in layer_data(built, piece.digest)
    return pieces


@pytest.fixture
def shared():
    """Two images sharing a base layer; the second's layers are gzip; the third
    repeats a layer (a symlink in the classic layout, one blob in Docker 25's)."""
    base = ib.make_layer({"etc/base": b"base\n" * 300})
    first = ib.build_image([base, {"app/one": b"one\n" * 700}], repo_tags=["first:1"])
    second = ib.build_image([{"etc/base": b"base\n" * 300}, {"app/two": b"two\n" * 100}],
                            repo_tags=["second:2"], compression="gzip",
                            created="2023-05-02T16:49:27Z")
    third = ib.build_image([base, {"mid": b"m" * 2000}, base], repo_tags=["third:3"])
    return first, second, third


def layouts(tmp_path, images):
    """``{label: reference}`` for every way the sources read ``images``."""
    refs = {}
    for layout in ("classic", "docker25"):
        one = tmp_path / ("one-%s.tar" % layout)
        ib.write_docker_archive(one, [images[-1]], layout=layout)
        refs[layout] = "docker-archive:%s" % one
        many = tmp_path / ("many-%s.tar" % layout)
        ib.write_docker_archive(many, images, layout=layout)
        for n in range(len(images)):
            refs["%s@%d" % (layout, n)] = "docker-archive:%s:@%d" % (many, n)
    ib.write_oci_layout(tmp_path / "oci.tar", [(str(n), img) for n, img in enumerate(images)])
    ib.write_oci_layout(tmp_path / "oci", [(str(n), img) for n, img in enumerate(images)],
                        as_tar=False)
    for n in range(len(images)):
        refs["oci-archive:%d" % n] = "oci-archive:%s:%d" % (tmp_path / "oci.tar", n)
        refs["oci:%d" % n] = "oci:%s:%d" % (tmp_path / "oci", n)
    return refs


LABELS = ["classic", "docker25"] + ["%s@%d" % (layout, n) for layout in ("classic", "docker25")
                                    for n in range(3)] + \
    ["%s:%d" % (t, n) for t in ("oci-archive", "oci") for n in range(3)]


@pytest.mark.parametrize("label", LABELS)
def test_every_layout_and_every_skip_rebuilds_the_export(tmp_path, shared, label):
    refs = layouts(tmp_path, shared)
    assert sorted(refs) == sorted(LABELS)
    reference = refs[label]
    image = resolve(reference)
    assert image.export_pieces is not None
    digests = [l.digest for l in image.layers]
    assert None not in digests
    # nothing skipped: the very same bytes as export()
    assert b"".join(pieces_of(image, set())) == exported(image)
    for skip in ({digests[0]}, {digests[-1]}, set(digests)):
        check_pieces(image, shared, skip)


@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_a_member_named_twice_is_one_placeholder(tmp_path, shared, layout):
    """The third image lists its base layer twice: a symlink in the classic
    layout (size 0, not data), the same blob in Docker 25's."""
    third = shared[2]
    path = tmp_path / "third.tar"
    ib.write_docker_archive(path, [third], layout=layout)
    if layout == "classic":
        kinds = [m.type for m in tarfile.open(path) if m.name.endswith("layer.tar")]
        assert kinds.count(tarfile.SYMTYPE) == 1
    image = resolve("docker-archive:%s" % path)
    base = image.layers[0].digest
    assert image.layers[2].digest == base
    pieces = check_pieces(image, shared, {base})
    assert [p for p in pieces if isinstance(p, StoredData)] == [
        StoredData(base, third.layers[0].size)]


@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_shared_layer_selected_from_several_images(tmp_path, shared, layout):
    """In a classic archive the second image's base layer is the first's member,
    and the third's repeated base a symlink to it: selected alone, each layer
    name becomes a regular member whose data is a placeholder."""
    path = tmp_path / "many.tar"
    ib.write_docker_archive(path, list(shared), layout=layout)
    for n in (1, 2):
        image = resolve("docker-archive:%s:@%d" % (path, n))
        base = image.layers[0].digest
        pieces = check_pieces(image, shared, {base})
        count = 2 if layout == "classic" and n == 2 else 1  # two names, two members
        assert [p.digest for p in pieces if isinstance(p, StoredData)] == [base] * count


def blob_offset(path, digest):
    """Offset and size of a blob member's data in a tar on disk."""
    with TarMembers(str(path)) as members:
        m = members.get("blobs/sha256/" + digest.split(":", 1)[1])
        return m.offset, m.size


def corrupt(path, offset, size):
    """Overwrite ``size`` bytes at ``offset`` with other bytes (same file size)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(size)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in old))


def tar_layouts(tmp_path, images):
    """References whose layers are checked by digest, in a tar file on disk."""
    d25 = tmp_path / "d25.tar"
    ib.write_docker_archive(d25, [images[0]], layout="docker25")
    many = tmp_path / "many25.tar"
    ib.write_docker_archive(many, images, layout="docker25")
    oci = tmp_path / "oci.tar"
    ib.write_oci_layout(oci, [("a", images[0]), ("b", images[1])])
    return [(d25, "docker-archive:%s" % d25), (many, "docker-archive:%s:@0" % many),
            (oci, "oci-archive:%s:a" % oci)]


def test_skipped_layer_in_a_tar_is_not_read(tmp_path, shared):
    for path, reference in tar_layouts(tmp_path, shared[:2]):
        image = resolve(reference)
        skipped = image.layers[1].digest
        before = exported(image)
        corrupt(path, *blob_offset(path, skipped))
        with pytest.raises(BadArchive, match="sha256"):
            exported(image)
        joined, stored = filled(pieces_of(image, {skipped}), before)
        assert joined == before
        assert [p.digest for p, _ in stored] == [skipped]


@pytest.mark.parametrize("how", ["deleted", "garbage"])
def test_skipped_blob_of_an_oci_directory_is_not_opened(tmp_path, shared, how):
    ib.write_oci_layout(tmp_path / "oci", [("a", shared[0])], as_tar=False)
    image = resolve("oci:%s:a" % (tmp_path / "oci"))
    skipped = image.layers[0].digest
    before = exported(image)
    blob = tmp_path / "oci" / "blobs" / "sha256" / skipped.split(":", 1)[1]
    if how == "deleted":
        blob.unlink()
    else:
        blob.write_bytes(b"\0" * blob.stat().st_size)
    with pytest.raises(BadArchive):
        exported(image)
    joined, stored = filled(pieces_of(image, {skipped}), before)
    assert joined == before
    assert [p.digest for p, _ in stored] == [skipped]


def test_other_corrupt_layers_are_still_refused(tmp_path, shared):
    for path, reference in tar_layouts(tmp_path, shared[:2]):
        image = resolve(reference)
        corrupt(path, *blob_offset(path, image.layers[0].digest))
        with pytest.raises(BadArchive, match="sha256"):
            pieces_of(image, {image.layers[1].digest})
    ib.write_oci_layout(tmp_path / "oci", [("a", shared[0])], as_tar=False)
    image = resolve("oci:%s:a" % (tmp_path / "oci"))
    blob = tmp_path / "oci" / "blobs" / "sha256" / image.layers[0].digest.split(":", 1)[1]
    blob.write_bytes(b"\0" * blob.stat().st_size)
    with pytest.raises(BadArchive, match="sha256"):
        pieces_of(image, {image.layers[1].digest})


def read_bytes_of_process() -> int:
    """Bytes this process has read with read(2) and friends (``rchar``)."""
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_a_big_skipped_layer_costs_no_reading(tmp_path, layout):
    big = ib.build_image([{"big": os.urandom(BIG)}, {"small": b"s"}], repo_tags=["big:1"])
    path = tmp_path / "big.tar"
    ib.write_docker_archive(path, [big], layout=layout)
    image = resolve("docker-archive:%s" % path)
    skipped = image.layers[0].digest
    start = read_bytes_of_process()
    total = 0
    h = hashlib.sha256()
    with image.export_pieces(sizes(image, {skipped})) as pieces:
        for piece in pieces:
            if isinstance(piece, StoredData):
                assert piece == StoredData(skipped, big.layers[0].size)
            else:
                total += len(piece)
                h.update(piece)
    assert read_bytes_of_process() - start < BIG // 8
    assert total + big.layers[0].size == os.path.getsize(path)
    with image.export() as stream:
        start = read_bytes_of_process()
        while stream.read(1024 * 1024):
            pass
    assert read_bytes_of_process() - start > BIG


def test_archive_changed_on_disk_is_refused(tmp_path, shared):
    path = tmp_path / "one.tar"
    ib.write_docker_archive(path, [shared[0]], layout="docker25")
    image = resolve("docker-archive:%s" % path)
    skip = {image.layers[0].digest}
    with image.export_pieces(sizes(image, skip)) as pieces:
        next(pieces)
        os.utime(path, ns=(0, 0))  # touched while being read
        with pytest.raises(BadArchive, match="changed while being read"):
            list(pieces)
    ib.write_docker_archive(path, [shared[1]], layout="docker25")
    with pytest.raises(BadArchive, match="changed while being read"):
        pieces_of(image, skip)


@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_real_docker_save_output(hello_world, layout):
    """Docker's own hello-world archives: the layer's placeholder is its exact data."""
    image = resolve("docker-archive:%s" % hello_world[layout])
    export = exported(image)
    assert export == open(hello_world[layout], "rb").read()
    skip = {l.digest for l in image.layers}
    joined, stored = filled(pieces_of(image, skip), export)
    assert joined == export
    assert [p.digest for p, _ in stored] == [l.digest for l in image.layers]
    for piece, data in stored:
        assert "sha256:" + hashlib.sha256(data).hexdigest() == piece.digest
