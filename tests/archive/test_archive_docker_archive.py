"""Reading docker-archives on disk: listing, selection, checks and export."""

import io
import json
import tarfile

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.archive.docker_archive_reader import DockerArchive
from arv_keepdocker_plugin.archive.tap import TarTap
from arv_keepdocker_plugin.errors import BadArchive, BadReference, ImageNotFound

HELLO_WORLD_ID = "sha256:d2c94e258dcb3c5ac2798d32e1249e42ef01cba4841c2234249495f87264ac5a"


def export_bytes(archive, entry, **kw):
    with archive.export(entry, **kw) as stream:
        return stream.read()


@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_single_image_archive_exports_byte_for_byte(tmp_path, layout, two_images):
    path = tmp_path / "one.tar"
    ib.write_docker_archive(path, [two_images[1]], layout=layout)
    with DockerArchive(str(path)) as archive:
        entry = archive.select()
        assert archive.image_id(entry) == two_images[1].image_id
        assert archive.config(entry)["config"]["Labels"] == {"k": "v"}
        assert [l.size for l in archive.layers(entry)] == [l.size for l in two_images[1].layers]
    # export works after close: it reopens the file
    assert export_bytes(archive, entry, expected_id=two_images[1].image_id) == path.read_bytes()


@pytest.mark.parametrize("layout", ["classic", "docker25"])
def test_select_by_index_and_name_from_multi_image_archive(tmp_path, layout, two_images):
    first, second = two_images
    path = tmp_path / "two.tar"
    ib.write_docker_archive(path, [first, second], layout=layout)
    with DockerArchive(str(path)) as archive:
        assert archive.select(index=0).repo_tags == ["first:1"]
        assert archive.select(repo_tag="example.org/second:2").index == 1
        assert archive.select(repo_tag="docker.io/library/first:1").index == 0
        for entry, image in zip(archive.entries, two_images, strict=True):
            data = export_bytes(archive, entry)
            tap = TarTap(io.BytesIO(data)).consume()
            assert tap.config_digest == image.image_id
            assert tap.manifest["RepoTags"] == image.repo_tags
            # the exported archive is itself a readable single-image docker-archive
            out = tmp_path / ("out%d.tar" % entry.index)
            out.write_bytes(data)
            with DockerArchive(str(out)) as again:
                assert again.image_id(again.select()) == image.image_id
                assert len(again.entries) == 1
            names = tarfile.open(out).getnames()
            other = two_images[1 - entry.index]
            assert ib.sha256_hex(other.config_bytes) not in " ".join(names)


def test_unknown_or_ambiguous_selection_lists_the_images(tmp_path, two_images):
    path = tmp_path / "two.tar"
    ib.write_docker_archive(path, list(two_images))
    with DockerArchive(str(path)) as archive:
        with pytest.raises(BadReference, match=r"two.tar holds 2 images; choose one with "
                           r"docker-archive:.*two.tar:NAME:TAG or :@INDEX "
                           r"\(@0 \(first:1\), @1 \(example.org/second:2\)\)"):
            archive.select()
        with pytest.raises(ImageNotFound, match=r"no image tagged nope:1; it holds @0 "
                           r"\(first:1\), @1 \(example.org/second:2\)"):
            archive.select(repo_tag="nope:1")
        with pytest.raises(ImageNotFound, match=r"no image @2; it holds"):
            archive.select(index=2)


def test_podman_localhost_names_match_short_names(tmp_path, two_images):
    image = ib.build_image([{"a": b"a"}], repo_tags=["localhost/mine:3"])
    path = tmp_path / "p.tar"
    ib.write_docker_archive(path, [image, two_images[0]])
    with DockerArchive(str(path)) as archive:
        assert archive.select(repo_tag="mine:3").index == 0


def test_classic_shared_layer_symlink_is_dereferenced_on_export(tmp_path):
    # same layer content under two different parent chains: docker save writes
    # the second layer.tar as a symlink to the first
    shared = ib.make_layer({"shared": b"same\n"})
    a = ib.build_image([shared], repo_tags=["a:1"])
    b = ib.build_image([{"other": b"x"}, shared], repo_tags=["b:1"])
    path = tmp_path / "links.tar"
    ib.write_docker_archive(path, [a, b])
    assert any(m.issym() for m in tarfile.open(path))
    with DockerArchive(str(path)) as archive:
        data = export_bytes(archive, archive.select(repo_tag="b:1"))
    members = {m.name: m for m in tarfile.open(fileobj=io.BytesIO(data))}
    assert not any(m.issym() for m in members.values())
    tap = TarTap(io.BytesIO(data)).consume()
    assert tap.config_digest == b.image_id


def test_export_verifies_docker25_layers_while_streaming(tmp_path, two_images):
    first, second = two_images
    path = tmp_path / "two.tar"
    ib.write_docker_archive(path, [first, second], layout="docker25")
    raw = bytearray(path.read_bytes())
    layer = second.layers[1].data
    pos = raw.find(layer)
    raw[pos + 20] ^= 0xFF
    path.write_bytes(bytes(raw))
    with DockerArchive(str(path)) as archive:
        entry = archive.select(index=1)
        with pytest.raises(BadArchive, match=r"two.tar: layer 'blobs/sha256/[0-9a-f]{64}' "
                           r"has sha256:[0-9a-f]{64}, its descriptor says sha256:"):
            export_bytes(archive, entry)
    # a single image archive is checked by the tap as it streams through
    one = tmp_path / "one.tar"
    ib.write_docker_archive(one, [second], layout="docker25")
    raw = bytearray(one.read_bytes())
    raw[raw.find(layer) + 20] ^= 0xFF
    one.write_bytes(bytes(raw))
    with DockerArchive(str(one)) as archive:
        with pytest.raises(BadArchive, match="not the digest its name says"):
            export_bytes(archive, archive.select())


def test_layer_size_mismatch_with_layer_sources_is_refused(tmp_path, two_images):
    first, second = two_images
    manifest = [{"Config": "blobs/sha256/" + ib.sha256_hex(img.config_bytes),
                 "RepoTags": img.repo_tags,
                 "Layers": ["blobs/sha256/" + l.hex for l in img.layers],
                 "LayerSources": {l.digest: {"digest": l.digest, "size": l.size + 1,
                                             "mediaType": l.media_type} for l in img.layers}}
                for img in (first, second)]
    members = [("manifest.json", json.dumps(manifest).encode())]
    for img in (first, second):
        for hexd, _size, chunks in img.blobs():
            members.append(("blobs/sha256/" + hexd, b"".join(chunks)))
    path = tmp_path / "sizes.tar"
    seen, unique = set(), []
    for name, data in members:
        if name not in seen:
            seen.add(name)
            unique.append((name, data))
    ib.write_tar(path, unique)
    with DockerArchive(str(path)) as archive:
        with pytest.raises(BadArchive, match=r"its descriptor says \d+"):
            export_bytes(archive, archive.select(index=0))


def test_config_digest_must_match_its_name(tmp_path, two_images):
    image = two_images[0]
    wrong = ib.sha256_hex(b"other") + ".json"
    path = tmp_path / "renamed.tar"
    ib.write_tar(path, [(wrong, image.config_bytes),
                        ("manifest.json", json.dumps([{"Config": wrong, "Layers": []}]).encode())])
    with DockerArchive(str(path)) as archive:
        with pytest.raises(BadArchive, match=r"renamed.tar: config '[0-9a-f]{64}.json' has "
                           r"sha256:[0-9a-f]{64}, not the digest its name says"):
            archive.image_id(archive.select())


def test_export_refuses_an_archive_changed_since_it_was_read(tmp_path, two_images):
    path = tmp_path / "one.tar"
    ib.write_docker_archive(path, [two_images[0]])
    with DockerArchive(str(path)) as archive:
        entry = archive.select()
    ib.write_docker_archive(path, [two_images[1]])
    with pytest.raises(BadArchive, match="changed while being read: image id is now"):
        export_bytes(archive, entry, expected_id=two_images[0].image_id)


def test_hello_world_archives_give_the_same_image(hello_world):
    for path in hello_world.values():
        with DockerArchive(path) as archive:
            entry = archive.select()
            assert archive.image_id(entry) == HELLO_WORLD_ID
            assert archive.config(entry)["created"] == "2023-05-02T16:49:27Z"
            assert entry.repo_tags == ["hello-world:latest"]
            data = export_bytes(archive, entry)
        with open(path, "rb") as f:
            assert data == f.read()
