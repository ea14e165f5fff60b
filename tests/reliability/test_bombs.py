"""Decompression bombs through archives, and running out of memory, as the real command.

Each bomb is a few kilobytes of zstd or gzip that inflate to gigabytes of zeros:
a whole archive compressed (``docker-archive:`` and ``oci-archive:`` of a
``.tar.zst`` / ``.tar.gz`` holding one huge member), or one layer of a plain
archive (whose digests the upload checks by decompressing it, whatever its
media type says). Every run is under ``ulimit -v 1600000`` and measured as the
benchmarks measure (process tree RSS): one line, exit 1, nothing written in
Arvados, peak memory under 300 MiB.
"""

import io
import logging
import tarfile

import pytest
from arv_keepdocker_testkit import bombs
from arv_keepdocker_testkit import imagebuild as ib

from arv_keepdocker_plugin import Image, ImageSource, Reference, cli, hookimpl
from arv_keepdocker_plugin.archive import compression
from arv_keepdocker_plugin.plugins import get_plugin_manager

from . import measured

GiB = 1 << 30
#: zstd squeezes 2 GiB of zeros into 64 KiB, gzip 1 GiB into 1 MiB.
SIZES = {"zstd": 2 * GiB, "gzip": GiB}
SUFFIX = {"zstd": ".tar.zst", "gzip": ".tar.gz"}

pytest.importorskip("backports.zstd")


@pytest.fixture(scope="module")
def archive_bombs(tmp_path_factory):
    """``{kind: path}`` of a compressed tar holding one member of zeros."""
    directory = tmp_path_factory.mktemp("bombs")
    paths = {}
    for kind, size in SIZES.items():
        paths[kind] = directory / ("bomb" + SUFFIX[kind])
        paths[kind].write_bytes(bombs.tar_bomb(kind, size))
    return paths


@pytest.fixture(scope="module")
def layer_bombs(tmp_path_factory):
    """``{(layout, kind): path}`` of plain archives whose second layer is a bomb.

    The layer's media type says gzip whatever its bytes are: the checks go by
    the bytes. It claims a diff id it does not decompress to.
    """
    directory = tmp_path_factory.mktemp("layer-bombs")
    paths = {}
    for kind, size in SIZES.items():
        layer = bombs.bomb_layer(kind, size)
        layer.media_type = ib.MT_LAYER["gzip"]
        image = ib.build_image([{"small": b"s"}, layer], repo_tags=["bomb/%s:1" % kind])
        paths["docker", kind] = directory / ("docker-%s.tar" % kind)
        ib.write_docker_archive(paths["docker", kind], [image])
        paths["oci", kind] = directory / ("oci-%s.tar" % kind)
        ib.write_oci_layout(paths["oci", kind], [("1", image)], as_tar=True)
    return paths


def command(*args):
    import sys
    return [sys.executable, "-m", "arv_keepdocker_plugin", "--no-progress", *args]


@pytest.mark.parametrize("transport, missing", [("docker-archive", "no manifest.json"),
                                                ("oci-archive", "no index.json")])
@pytest.mark.parametrize("kind", ["zstd", "gzip"])
def test_a_compressed_archive_bomb(archive_bombs, user_env, arvados_state, tmp_path, kind,
                                   transport, missing, record_property):
    before = arvados_state.snapshot()
    path = archive_bombs[kind]
    result = measured.run(command("%s:%s" % (transport, path)), user_env,
                          str(tmp_path / "run"))
    message = measured.one_line_refusal(result)
    assert message.startswith("%s: %s" % (path, missing)), message
    assert arvados_state.snapshot() == before
    record_property("peak_mib", measured.peak(result) >> 20)
    print("\n%s %s bomb (%d MiB of zeros in %d KiB): %.1f s, peak %d MiB"
          % (transport, kind, SIZES[kind] >> 20, path.stat().st_size >> 10, result.wall,
             measured.peak(result) >> 20))


@pytest.mark.parametrize("layout", ["docker", "oci"])
@pytest.mark.parametrize("kind", ["zstd", "gzip"])
def test_a_layer_bomb_in_an_archive(layer_bombs, user_env, arvados_state, tmp_path, kind,
                                    layout, record_property):
    before = arvados_state.snapshot()
    path = layer_bombs[layout, kind]
    transport = "docker-archive" if layout == "docker" else "oci-archive"
    result = measured.run(command("%s:%s" % (transport, path)), user_env,
                          str(tmp_path / "run"))
    message = measured.one_line_refusal(result)
    if layout == "oci" and kind == "zstd":
        # An OCI layout's zstd layer is refused unread: docker load could not read it.
        assert "zstd-compressed layers cannot be loaded by docker load" in message
    else:
        assert "does not match its diff id" in message and bombs.WRONG_DIFF_ID in message
    assert arvados_state.snapshot() == before
    record_property("peak_mib", measured.peak(result) >> 20)
    print("\n%s layer bomb, %s: %.1f s, peak %d MiB" % (kind, transport, result.wall,
                                                       measured.peak(result) >> 20))


def test_a_zstd_layer_bomb_in_a_zstd_archive_with_the_largest_windows(
        user_env, arvados_state, tmp_path, record_property):
    # The most a zstd input can make the decoders hold: the archive and a layer in
    # it decompressed at once, each with the largest window accepted (32 MiB), the
    # archive's filled by a 96 MiB layer before the bomb.
    window = compression.DECODER_MEMORY.bit_length() - 1
    filler = tmp_path / "filler.tar"
    with tarfile.open(filler, "w") as tar:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 96 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    bomb = bombs.bomb_layer("zstd", 2 * GiB, window_log=window)
    image = ib.build_image([str(filler), bomb], repo_tags=["bomb/nested:1"])
    plain = tmp_path / "nested.tar"
    ib.write_docker_archive(plain, [image])
    path = tmp_path / "nested.tar.zst"
    bombs.zstd_file(str(plain), str(path), window_log=window)
    plain.unlink()
    before = arvados_state.snapshot()
    result = measured.run(command("docker-archive:%s" % path), user_env, str(tmp_path / "run"))
    message = measured.one_line_refusal(result)
    assert "does not match its diff id" in message and bombs.WRONG_DIFF_ID in message
    assert arvados_state.snapshot() == before
    record_property("peak_mib", measured.peak(result) >> 20)
    print("\nnested zstd bomb, largest windows: %.1f s, peak %d MiB"
          % (result.wall, measured.peak(result) >> 20))


class _Greedy(ImageSource):
    """``greedy:NAME``: a third-party source that tries to hold an impossible export."""

    name = "greedy"
    description = "a source that runs out of memory (test plugin)"

    def parse(self, details, tag):
        return Reference(raw=details, name=details, tag=tag or "latest")

    def resolve(self, reference, options):
        image = ib.build_image([{"x": b"x"}])

        def export():
            bytearray(1 << 60)  # a real MemoryError: no machine has an exabyte
        return Image(image_id=image.image_id, source=self.name, repo_tag=None,
                     config=image.config, export=export)


class _GreedyPlugin:
    @hookimpl
    def keepdocker_register_sources(self, register):
        register(_Greedy())


def test_running_out_of_memory_is_one_line_and_writes_nothing(arv_api, arvados_state,
                                                              monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(_GreedyPlugin(), name="greedy")
    lines = []

    class Lines(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Lines(logging.WARNING)
    logger = logging.getLogger("arvados.keepdocker")
    logger.addHandler(handler)
    before = arvados_state.snapshot()
    out = io.StringIO()
    try:
        status, outcome = cli.execute(["--no-progress", "greedy:app"], stdout=out,
                                      install_sig_handlers=False, api=arv_api, pm=pm)
    finally:
        logger.removeHandler(handler)
    assert (status, outcome, out.getvalue()) == (1, "failed", "")
    assert lines == ["out of memory; nothing was stored"]
    assert arvados_state.snapshot() == before
