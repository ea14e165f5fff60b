"""The Docker engine's own files as the export (sources/engine_files.py, archive/tar_split.py).

Against real engines (Docker 20.10 with vfs and overlay2, Docker 26 classic with vfs): the
layers rebuilt from the engine's tar-split records and files are byte for
byte the tars the image was loaded from (links, whiteouts, long and non-UTF-8
names included); the archive loads back into the engine under the same id;
the docker-daemon source uses them instead of the engine's export; a stored
layer is not read; anything unexpected before the first byte falls back to
the export; a file is never opened through a symbolic link.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid

import pytest
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin.archive import tar_split
from arv_keepdocker_plugin.archive.tar_split import TarSplitError, open_beneath
from arv_keepdocker_plugin.sources import engine_files
from arv_keepdocker_plugin.sources.docker_daemon import DockerDaemonSource
from arv_keepdocker_plugin.sources.engine_api import EngineApi
from arv_keepdocker_plugin.sources.engine_files import chain_ids, exporters

OPTIONS = argparse.Namespace()


def member(tar, name, data=b"", **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1700000000
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def varied_layers(tmp_path, unique):
    """Two layer tars with what tar-split must carry: directories, a symlink, a
    hard link, empty and long-named files, a non-UTF-8 name, a whiteout and an
    opaque directory."""
    base = io.BytesIO()
    with tarfile.open(fileobj=base, mode="w", format=tarfile.GNU_FORMAT,
                      encoding="utf-8", errors="surrogateescape") as tar:
        member(tar, "etc", type=tarfile.DIRTYPE, mode=0o755)
        member(tar, "etc/app.conf", unique.encode() * 1000, mode=0o644)
        member(tar, "etc/empty", mode=0o600)
        member(tar, "etc/link", type=tarfile.SYMTYPE, linkname="app.conf")
        member(tar, "etc/hard", type=tarfile.LNKTYPE, linkname="etc/app.conf")
        member(tar, "etc/" + "long-name-" * 15, b"long\n" * 300)
        member(tar, "etc/caf\udce9", b"latin-1 name\n")  # b"caf\xe9"
        member(tar, "var", type=tarfile.DIRTYPE, mode=0o755)
        member(tar, "var/cache", type=tarfile.DIRTYPE, mode=0o755)
        member(tar, "var/cache/old", b"old" * 5000)
        member(tar, "big.bin", os.urandom(3 << 20))
    top = io.BytesIO()
    with tarfile.open(fileobj=top, mode="w", format=tarfile.PAX_FORMAT) as tar:
        member(tar, "etc", type=tarfile.DIRTYPE, mode=0o755)
        member(tar, "etc/.wh.empty")
        member(tar, "var", type=tarfile.DIRTYPE, mode=0o755)
        member(tar, "var/cache", type=tarfile.DIRTYPE, mode=0o755)
        member(tar, "var/cache/.wh..wh..opq")
        member(tar, "var/cache/new", b"new\n")
        member(tar, "etc/app.conf", b"changed\n", mode=0o644)
    paths = []
    for name, data in (("base", base.getvalue()), ("top", top.getvalue())):
        path = tmp_path / f"{name}.tar"
        path.write_bytes(data)
        paths.append(str(path))
    return paths


def socket_of(engine):
    return engine.host[len("unix://"):]


@pytest.fixture(params=["keepdocker_docker_engine", "keepdocker_docker_overlay2",
                        "keepdocker_docker26"])
def engine(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def loaded(engine, tmp_path):
    """A varied image loaded into the engine: ``(engine, image, layer tars)``."""
    unique = "ef-" + uuid.uuid4().hex[:8]
    paths = varied_layers(tmp_path, unique)
    image = ib.build_image(paths, repo_tags=[unique + ":1"])
    archive = tmp_path / "image.tar"
    ib.write_docker_archive(str(archive), [image])
    engine.docker("load", "-i", str(archive))
    yield engine, image, [open(p, "rb").read() for p in paths]
    engine.docker("rmi", "-f", image.image_id)


def files_of(engine, image_id):
    api = EngineApi(socket_of(engine))
    files = engine_files.engine_files(api.info(), image_id)
    assert files is not None, "the engine's files were not found"
    return api, files


def test_layers_rebuilt_from_the_engines_files_are_the_loaded_tars(loaded):
    engine, image, tars = loaded
    _, files = files_of(engine, image.image_id)
    assert [l.diff_id for l in files.layers] == image.config["rootfs"]["diff_ids"]
    for planned, tar in zip(files.planned_layers, tars, strict=True):
        size, chunks = files.layer_data(planned)
        rebuilt = b"".join(chunks)
        assert (size, rebuilt) == (len(tar), tar)
        assert "sha256:" + hashlib.sha256(rebuilt).hexdigest() == planned.digest


def test_the_archive_loads_back_under_the_same_id(loaded, tmp_path):
    engine, image, _ = loaded
    api, files = files_of(engine, image.image_id)
    export, _ = exporters(files, lambda: pytest.fail("the engine's export was used"))
    with export() as stream:
        data = stream.read()
    assert len(data) == files.length()
    engine.docker("rmi", "-f", image.image_id)
    path = tmp_path / "rebuilt.tar"
    path.write_bytes(data)
    out = engine.docker("load", "-i", str(path)).stdout.decode()
    assert image.image_id in out, out


def test_the_source_reads_the_files_not_the_export_and_skips_stored_layers(
        loaded, monkeypatch):
    engine, image, tars = loaded
    monkeypatch.setenv("DOCKER_HOST", engine.host)
    monkeypatch.setattr(EngineApi, "export", lambda self, image_id: pytest.fail(
        "the engine's export was used"))
    source = DockerDaemonSource()
    resolved = source.resolve(source.parse(image.image_id, None), OPTIONS)
    assert resolved.export_pieces is not None
    rebuilt = []
    real_assemble = engine_files.assemble
    monkeypatch.setattr(engine_files, "assemble", lambda record, directory: (
        rebuilt.append(record), real_assemble(record, directory))[1])
    base = image.config["rootfs"]["diff_ids"][0]
    with resolved.export_pieces({base: len(tars[0])}) as pieces:
        items = list(pieces)
    assert len(rebuilt) == 1 and rebuilt[0].split(os.sep)[-2] == chain_ids(
        image.config["rootfs"]["diff_ids"])[1].split(":")[1]
    stored = [p for p in items if not isinstance(p, bytes)]
    assert [(p.digest, p.size) for p in stored] == [(base, len(tars[0]))]


def test_switched_off_or_in_another_store_the_export_is_used(loaded, monkeypatch,
                                                              keepdocker_docker26_containerd):
    engine, image, _ = loaded
    info = EngineApi(socket_of(engine)).info()
    monkeypatch.setenv(engine_files.SWITCH, "0")
    assert engine_files.engine_files(info, image.image_id) is None
    monkeypatch.delenv(engine_files.SWITCH)
    assert engine_files.engine_files(dict(info, Driver="btrfs"), image.image_id) is None
    assert engine_files.engine_files(dict(info, DockerRootDir="/nonexistent"),
                                     image.image_id) is None
    containerd = EngineApi(socket_of(keepdocker_docker26_containerd)).info()
    assert engine_files.engine_files(containerd, image.image_id) is None


def copied_root(engine, image, tmp_path):
    """The image's part of the engine's data root, copied (real files) to change."""
    info = EngineApi(socket_of(engine)).info()
    root, driver = info["DockerRootDir"], info["Driver"]
    copy = tmp_path / "root"
    diff_ids = image.config["rootfs"]["diff_ids"]
    hex_id = image.image_id.split(":")[1]
    content = copy / "image" / driver / "imagedb" / "content" / "sha256"
    content.mkdir(parents=True)
    shutil.copy(os.path.join(root, "image", driver, "imagedb", "content", "sha256", hex_id),
                content / hex_id)
    for chain in chain_ids(diff_ids):
        entry = os.path.join(root, "image", driver, "layerdb", "sha256", chain.split(":")[1])
        shutil.copytree(entry, copy / os.path.relpath(entry, root))
        cache_id = open(os.path.join(entry, "cache-id")).read().strip()
        target = engine_files.LAYER_DIRS[driver](str(copy), cache_id)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        # cp -a: overlay2 keeps whiteouts as character devices, which copytree refuses.
        subprocess.run(["cp", "-a", engine_files.LAYER_DIRS[driver](root, cache_id), target],
                       check=True)
    return dict(info, DockerRootDir=str(copy)), copy, driver


def test_a_record_that_does_not_parse_falls_back_to_the_export_before_the_first_byte(
        loaded, tmp_path):
    engine, image, _ = loaded
    info, copy, driver = copied_root(engine, image, tmp_path)
    chain = chain_ids(image.config["rootfs"]["diff_ids"])[1].split(":")[1]
    record = copy / "image" / driver / "layerdb" / "sha256" / chain / "tar-split.json.gz"
    record.write_bytes(gzip.compress(b'{"type": 7}\n'))
    files = engine_files.engine_files(info, image.image_id)
    api = EngineApi(socket_of(engine))
    used = []

    def engine_export():
        used.append("engine")
        return api.export(image.image_id)

    export, export_pieces = exporters(files, engine_export)
    with export() as stream:
        assert stream.read(512)
    assert used == ["engine"]
    with pytest.raises(Exception, match=f"cannot be read.*{engine_files.SWITCH}=0"):
        with export_pieces({}):
            pass


def test_a_symlink_planted_in_a_layer_directory_is_never_followed(loaded, tmp_path):
    engine, image, tars = loaded
    info, copy, driver = copied_root(engine, image, tmp_path)
    files = engine_files.engine_files(info, image.image_id)
    layer = files.layers[0]
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 100000)
    conf = os.path.join(layer.directory, "etc", "app.conf")
    os.remove(conf)
    os.symlink(str(secret), conf)
    with pytest.raises(TarSplitError, match="app.conf"):
        b"".join(tar_split.assemble(layer.record, layer.directory))
    shutil.rmtree(os.path.join(layer.directory, "etc"))
    os.symlink(str(tmp_path), os.path.join(layer.directory, "etc"))
    with pytest.raises(TarSplitError, match="etc"):
        b"".join(tar_split.assemble(layer.record, layer.directory))


def test_open_beneath_refuses_what_is_not_a_regular_file_beneath(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"ok")
    os.mkfifo(tmp_path / "fifo")
    os.symlink("d", tmp_path / "dlink")
    root = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = open_beneath(root, b"./d/f")
        assert os.read(fd, 10) == b"ok"
        os.close(fd)
        for name in (b"../d/f", b"dlink/f", b"fifo", b"d", b"", b"missing"):
            with pytest.raises(TarSplitError):
                open_beneath(root, name)
    finally:
        os.close(root)


def test_a_hand_made_record_rebuilds_its_tar(tmp_path):
    # The format as vbatts/tar-split writes it: segments (type 2, base64 bytes)
    # and files (type 1, name or name_raw, size).
    (tmp_path / "layer").mkdir()
    (tmp_path / "layer" / "a").write_bytes(b"A" * 700)
    (tmp_path / "layer" / os.fsdecode(b"caf\xe9")).write_bytes(
        b"B")
    import base64
    entries = [{"type": 2, "payload": base64.b64encode(b"H" * 512).decode()},
               {"type": 1, "name": "a", "size": 700},
               {"type": 2, "payload": base64.b64encode(b"\0" * 324).decode()},
               {"type": 1, "name_raw": base64.b64encode(b"caf\xe9").decode(), "size": 1},
               {"type": 1, "name": "dir/", "size": 0}]
    record = tmp_path / "tar-split.json.gz"
    record.write_bytes(gzip.compress("".join(json.dumps(e) + "\n" for e in entries).encode()))
    rebuilt = b"".join(tar_split.assemble(str(record), str(tmp_path / "layer")))
    assert rebuilt == b"H" * 512 + b"A" * 700 + b"\0" * 324 + b"B"
    assert tar_split.tar_length(str(record)) == len(rebuilt)
    (tmp_path / "layer" / "a").write_bytes(b"A" * 10)  # shorter than its member
    with pytest.raises(TarSplitError, match="shorter"):
        b"".join(tar_split.assemble(str(record), str(tmp_path / "layer")))


def test_a_user_who_cannot_read_the_data_root_gets_the_export(loaded):
    """Who may use the engine's socket but not read its data root (a docker group
    member, a container given only the socket) is not offered the files: run as
    ``nobody`` against the same engine record."""
    engine, image, _ = loaded
    info = EngineApi(socket_of(engine)).info()
    probe = ("import json, sys\n"
             "from arv_keepdocker_plugin.sources.engine_files import engine_files\n"
             "print(engine_files(json.loads(sys.argv[1]), sys.argv[2]) is None)\n")
    as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run as nobody")
    if subprocess.run(as_nobody + [sys.executable, "-c", "import arv_keepdocker_plugin"],
                      capture_output=True).returncode != 0:
        pytest.skip("nobody cannot import this checkout here")
    assert os.stat(info["DockerRootDir"]).st_mode & 0o007 == 0  # dockerd makes it 0710
    done = subprocess.run(as_nobody + [sys.executable, "-c", probe, json.dumps(info),
                                       image.image_id], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr
    assert engine_files.engine_files(info, image.image_id) is not None  # root may
