"""``docker save IMAGE | gzip > image.tar.gz`` (or xz): stored, and loaded back by a
real Docker engine with the same id; a new version uploads only its new layer."""

import re
import subprocess

import pytest
from arv_keepdocker_testkit.engines import build_layered_image

from .conftest import collection_files, load_from_keep
from .test_upload_docker import uploaded_uuid

MiB = 1 << 20
COMPRESS = {"gz": ["gzip", "-c"], "xz": ["xz", "-T1", "-0", "-c"]}


def saved(engine, name, path, kind):
    """``docker save NAME | gzip`` (or xz) into ``path``."""
    with open(path, "wb") as out:
        save = subprocess.Popen(["docker", "save", name], env=engine.env(),
                                stdout=subprocess.PIPE)
        subprocess.run(COMPRESS[kind], stdin=save.stdout, stdout=out, check=True)
        assert save.wait() == 0
    return path


@pytest.mark.parametrize("kind", ["gz", "xz"])
def test_a_compressed_docker_save_uploads_and_loads_with_its_id(
        keepdocker, keepdocker_docker_engine, arv_api, tmp_path, unique, kind):
    tag = f"{unique}:{kind}"
    image_id = build_layered_image(keepdocker_docker_engine, tag, [
        {"base.bin": bytes(range(256)) * 4096}, {"app.txt": unique.encode()}])
    path = saved(keepdocker_docker_engine, tag, str(tmp_path / ("image.tar." + kind)), kind)
    uuid = uploaded_uuid(keepdocker("--no-progress", "docker-archive:" + path))
    assert list(collection_files(arv_api, uuid)) == [image_id + ".tar"]
    keepdocker_docker_engine.docker("rmi", "-f", image_id)
    assert load_from_keep(arv_api, uuid, keepdocker_docker_engine) == image_id
    # The repository and tag come from the archive's RepoTags, as for a plain tar.
    links = arv_api.links().list(filters=[["head_uuid", "=", uuid],
                                          ["link_class", "=", "docker_image_repo+tag"]]
                                 ).execute()["items"]
    assert [l["name"] for l in links] == [tag]
    # Run again: the image is found by its id after the first pass; nothing uploaded.
    again = keepdocker("--no-progress", "docker-archive:" + path)
    assert again.stdout.strip() == uuid


def test_a_new_version_in_a_gzip_archive_uploads_only_its_new_layer(
        keepdocker, keepdocker_docker_engine, arv_api, tmp_path, unique):
    base = bytes(range(256)) * (24 * MiB // 256)  # 24 MiB shared by both versions
    v1 = build_layered_image(keepdocker_docker_engine, unique + ":1", [
        {"base.bin": base}, {"v.txt": b"1"}])
    v2 = build_layered_image(keepdocker_docker_engine, unique + ":2", [
        {"base.bin": base}, {"v.txt": b"2" * 1000}])
    assert v1 != v2
    for version in ("1", "2"):
        path = saved(keepdocker_docker_engine, unique + ":" + version,
                     str(tmp_path / (version + ".tar.gz")), "gz")
        proc = keepdocker("--batch-progress", "docker-archive:" + path)
        uploaded_uuid(proc)
        last = proc.stderr.strip().splitlines()[-2 if "Collection saved" in proc.stderr
                                                 else -1]
        counts = dict(re.findall(r"(\d+) (read|uploaded|reused)", last)[i][::-1]
                      for i in range(3))
        if version == "2":
            # The 24 MiB base layer is decompressed and read again, but not uploaded.
            assert int(counts["uploaded"]) < 2 * MiB, counts
            assert int(counts["reused"]) >= 24 * MiB, counts


@pytest.mark.parametrize("kind", ["gz", "xz"])
def test_a_compressed_oci_archive_read_once_loads_with_its_id(
        keepdocker, keepdocker_docker_engine, arv_api, tmp_path, unique, kind):
    """The docker-archive a compressed layout tar becomes in one pass is what docker load
    takes: the same image id (blobs written as they pass, documents at the end)."""
    import io

    from arv_keepdocker_testkit import imagebuild as ib
    image = ib.build_image([{"base.bin": bytes(range(256)) * 2048},
                            {"app.txt": unique.encode()}], compression="gzip")
    out = io.BytesIO()
    ib.write_oci_layout(out, [(unique + ":1", image)])
    plain = tmp_path / "image-oci.tar"
    plain.write_bytes(out.getvalue())
    with open(str(plain) + "." + kind, "wb") as f:
        subprocess.run(COMPRESS[kind] + [str(plain)], stdout=f, check=True)
    uuid = uploaded_uuid(keepdocker("--no-progress", f"oci-archive:{plain}.{kind}"))
    assert list(collection_files(arv_api, uuid)) == [image.image_id + ".tar"]
    assert load_from_keep(arv_api, uuid, keepdocker_docker_engine) == image.image_id
