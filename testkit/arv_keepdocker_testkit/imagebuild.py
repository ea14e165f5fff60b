"""Build container images in pure Python: docker-archives and OCI layouts.

No engine needed: the project's demo and tests make images with this module,
and tests also use it to make broken archives. Output is deterministic (fixed
mtimes, owners and gzip headers), so an image's id never changes.

Typical use::

    from arv_keepdocker_testkit import imagebuild as ib

    img = ib.build_image([{"hello": b"hi\\n"}], repo_tags=["demo:1"])
    ib.write_docker_archive("demo.tar", [img])                  # docker save style
    ib.write_docker_archive("demo25.tar", [img], layout="docker25")
    ib.write_oci_layout("demo-oci.tar", [("1", img)], as_tar=True)
    img.image_id   # sha256:<config digest>, what `docker load` reports

A layer is a ``{path: bytes}`` dict (parent directories are added), or the
path of a layer tar already on disk (read in chunks: large layers need no
memory). ``compression`` is ``"none"``, ``"gzip"`` or ``"zstd"`` (a real zstd
frame made of raw blocks, enough to test that zstd layers are refused).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from typing import IO

#: Fixed mtime of every tar member written here.
MTIME = 0
DEFAULT_CREATED = "2024-01-02T03:04:05Z"

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
REF_NAME = "org.opencontainers.image.ref.name"
CHUNK = 1024 * 1024


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj) -> bytes:
    """Compact JSON with sorted keys: same object, same bytes, same digest."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclasses.dataclass
class LayerBlob:
    """A layer as stored: ``data`` in memory or in the file ``path``."""

    digest: str
    size: int
    diff_id: str
    media_type: str
    data: bytes | None = None
    path: str | None = None

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
            return
        with open(self.path, "rb") as f:
            while True:
                data = f.read(CHUNK)
                if not data:
                    return
                yield data

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]


@dataclasses.dataclass
class BuiltImage:
    """An image: config and manifest bytes (digests are of these exact bytes)."""

    config: dict
    config_bytes: bytes
    layers: list[LayerBlob]
    manifest_bytes: bytes
    platform: dict
    repo_tags: list[str]

    @property
    def image_id(self) -> str:
        """``sha256:`` of the config: what ``docker load`` / ``inspect`` report."""
        return "sha256:" + sha256_hex(self.config_bytes)

    config_digest = image_id

    @property
    def manifest_digest(self) -> str:
        return "sha256:" + sha256_hex(self.manifest_bytes)

    def descriptor(self, annotations: dict | None = None) -> dict:
        d = {"mediaType": MT_OCI_MANIFEST, "digest": self.manifest_digest,
             "size": len(self.manifest_bytes), "platform": dict(self.platform)}
        if annotations:
            d["annotations"] = dict(annotations)
        return d

    def blobs(self) -> Iterator[tuple[str, int, Iterable[bytes]]]:
        """``(hex, size, chunks)`` of every blob: layers, config, manifest."""
        for layer in self.layers:
            yield layer.hex, layer.size, layer.chunks()
        yield sha256_hex(self.config_bytes), len(self.config_bytes), [self.config_bytes]
        yield sha256_hex(self.manifest_bytes), len(self.manifest_bytes), [self.manifest_bytes]


@dataclasses.dataclass
class BuiltIndex:
    """An OCI image index over several images (one per platform, typically)."""

    images: list[BuiltImage]
    index_bytes: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + sha256_hex(self.index_bytes)

    manifest_digest = digest

    def descriptor(self, annotations: dict | None = None) -> dict:
        d = {"mediaType": MT_OCI_INDEX, "digest": self.digest, "size": len(self.index_bytes)}
        if annotations:
            d["annotations"] = dict(annotations)
        return d

    def blobs(self):
        for image in self.images:
            yield from image.blobs()
        yield sha256_hex(self.index_bytes), len(self.index_bytes), [self.index_bytes]


# -- tar helpers -------------------------------------------------------------

def _tarinfo(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE,
             linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind in (tarfile.DIRTYPE, tarfile.SYMTYPE) else 0o644
    info.mtime = MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _Chunks(io.RawIOBase):
    """Chunks of bytes as a raw stream (``io.BufferedReader`` makes it a file)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def add_file(tar: tarfile.TarFile, name: str,
             data: bytes | tuple[int, Iterable[bytes]]) -> None:
    """Add a regular file from bytes or ``(size, chunks)``."""
    if isinstance(data, bytes):
        tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))
    else:
        size, chunks = data
        tar.addfile(_tarinfo(name, size), io.BufferedReader(_Chunks(chunks), 1 << 20))


def add_dir(tar: tarfile.TarFile, name: str) -> None:
    tar.addfile(_tarinfo(name.rstrip("/") + "/", kind=tarfile.DIRTYPE))


def add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    tar.addfile(_tarinfo(name, kind=tarfile.SYMTYPE, linkname=target))


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed layer tar of ``{path: bytes}``, parents added, sorted."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for path in sorted(files):
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    add_dir(tar, d)
            add_file(tar, "/".join(parts), files[path])
    return out.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip (no file name, mtime 0)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as f:
        f.write(data)
    return out.getvalue()


def zstd_bytes(data: bytes) -> bytes:
    """A valid zstd frame holding ``data`` in raw (uncompressed) blocks."""
    out = bytearray(b"\x28\xb5\x2f\xfd")
    out += bytes([0x00, 0x38])  # frame header: no size, window 128 KiB
    block = 128 * 1024
    pieces = [data[i:i + block] for i in range(0, len(data), block)] or [b""]
    for n, piece in enumerate(pieces):
        last = 1 if n == len(pieces) - 1 else 0
        out += ((len(piece) << 3) | last).to_bytes(3, "little")  # raw block
        out += piece
    return bytes(out)


def make_layer(layer: dict[str, bytes] | str | os.PathLike,
               compression: str = "none") -> LayerBlob:
    """Make a :class:`LayerBlob` from files or from a layer tar on disk."""
    if compression not in MT_LAYER:
        raise ValueError("compression must be one of %s" % sorted(MT_LAYER))
    if isinstance(layer, dict):
        raw = layer_tar(layer)
        diff_id = "sha256:" + sha256_hex(raw)
        stored = {"none": lambda b: b, "gzip": gzip_bytes, "zstd": zstd_bytes}[compression](raw)
        return LayerBlob("sha256:" + sha256_hex(stored), len(stored), diff_id,
                         MT_LAYER[compression], data=stored)
    if compression != "none":
        raise ValueError("a layer given as a file must be an uncompressed tar")
    path = os.fspath(layer)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for data in iter(lambda: f.read(CHUNK), b""):
            h.update(data)
    digest = "sha256:" + h.hexdigest()
    return LayerBlob(digest, os.path.getsize(path), digest, MT_LAYER["none"], path=path)


def build_image(layers: Sequence[dict[str, bytes] | str | os.PathLike | LayerBlob],
                *, repo_tags: Sequence[str] = (), labels: dict | None = None,
                created: str | None = DEFAULT_CREATED, architecture: str = "amd64",
                os_name: str = "linux", variant: str | None = None,
                env: list[str] | None = None, cmd: list[str] | None = None,
                compression: str = "none") -> BuiltImage:
    """Build an image's config, layers and OCI manifest.

    :param layers: bottom first; each a ``{path: bytes}`` dict, a layer tar
        file path, or a :class:`LayerBlob` (to share one between images).
    :param repo_tags: names for docker-archive ``RepoTags``.
    :param created: the config's ``created`` (omitted when ``None``).
    """
    blobs = [l if isinstance(l, LayerBlob) else make_layer(l, compression) for l in layers]
    inner = {}
    if env is not None:
        inner["Env"] = list(env)
    if cmd is not None:
        inner["Cmd"] = list(cmd)
    if labels:
        inner["Labels"] = dict(labels)
    config = {"architecture": architecture, "os": os_name, "config": inner,
              "rootfs": {"type": "layers", "diff_ids": [b.diff_id for b in blobs]},
              "history": [{"created_by": "arv_keepdocker_testkit.imagebuild"}
                          for _ in blobs]}
    if variant:
        config["variant"] = variant
    if created is not None:
        config["created"] = created
        for h in config["history"]:
            h["created"] = created
    config_bytes = canonical_json(config)
    manifest = {
        "schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": MT_OCI_CONFIG, "digest": "sha256:" + sha256_hex(config_bytes),
                   "size": len(config_bytes)},
        "layers": [{"mediaType": b.media_type, "digest": b.digest, "size": b.size}
                   for b in blobs],
    }
    platform = {"architecture": architecture, "os": os_name}
    if variant:
        platform["variant"] = variant
    return BuiltImage(json.loads(config_bytes), config_bytes, blobs, canonical_json(manifest),
                      platform, list(repo_tags))


def build_index(images: Sequence[BuiltImage], annotations: dict | None = None) -> BuiltIndex:
    """A multi-platform OCI image index over ``images``."""
    index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
             "manifests": [img.descriptor() for img in images]}
    if annotations:
        index["annotations"] = dict(annotations)
    return BuiltIndex(list(images), canonical_json(index))


# -- writers -----------------------------------------------------------------

def _open_tar(dest: str | os.PathLike | IO[bytes]) -> tarfile.TarFile:
    if isinstance(dest, (str, os.PathLike)):
        return tarfile.open(os.fspath(dest), mode="w", format=tarfile.PAX_FORMAT)
    return tarfile.open(fileobj=dest, mode="w", format=tarfile.PAX_FORMAT)


def _v1_ids(image: BuiltImage) -> list[str]:
    """Legacy per-layer ids, chained like Docker's (any stable hex works for load)."""
    ids, parent = [], ""
    for layer in image.layers:
        parent = sha256_hex((parent + " " + layer.diff_id).encode())
        ids.append(parent)
    return ids


def _repositories(images: Sequence[BuiltImage], top: dict[int, str]) -> bytes:
    repos: dict[str, dict[str, str]] = {}
    for n, image in enumerate(images):
        for tag in image.repo_tags:
            name, _, t = tag.rpartition(":")
            repos.setdefault(name, {})[t] = top[n]
    return json.dumps(repos, sort_keys=True).encode() if repos else b""


def write_docker_archive(dest: str | os.PathLike | IO[bytes],
                         images: Sequence[BuiltImage], layout: str = "classic") -> None:
    """Write a ``docker save``-style archive of one or more images.

    :param layout: ``"classic"`` (``<id>.json``, ``<v1 id>/{VERSION,json,layer.tar}``;
        a layer already written for another chain becomes a relative symlink,
        as Docker writes it) or ``"docker25"`` (``blobs/sha256/*``,
        ``index.json``, ``oci-layout`` plus ``manifest.json``).
    """
    if layout not in ("classic", "docker25"):
        raise ValueError("layout must be 'classic' or 'docker25'")
    entries, top = [], {}
    with _open_tar(dest) as tar:
        if layout == "classic":
            written_dirs: dict[str, str] = {}
            by_diff: dict[str, str] = {}
            for n, image in enumerate(images):
                layer_names = []
                ids = _v1_ids(image)
                for i, (layer, v1) in enumerate(zip(image.layers, ids, strict=True)):
                    if v1 not in written_dirs:
                        add_dir(tar, v1)
                        add_file(tar, v1 + "/VERSION", b"1.0")
                        v1json = {"id": v1, "created": image.config.get("created", "")}
                        if i:
                            v1json["parent"] = ids[i - 1]
                        add_file(tar, v1 + "/json", canonical_json(v1json))
                        if layer.diff_id in by_diff:
                            add_symlink(tar, v1 + "/layer.tar",
                                        "../" + by_diff[layer.diff_id] + "/layer.tar")
                        else:
                            add_file(tar, v1 + "/layer.tar", (layer.size, layer.chunks()))
                            by_diff[layer.diff_id] = v1
                        written_dirs[v1] = v1
                    layer_names.append(v1 + "/layer.tar")
                config_name = sha256_hex(image.config_bytes) + ".json"
                add_file(tar, config_name, image.config_bytes)
                top[n] = ids[-1] if ids else ""
                entries.append({"Config": config_name, "RepoTags": image.repo_tags or None,
                                "Layers": layer_names})
        else:
            add_dir(tar, "blobs")
            add_dir(tar, "blobs/sha256")
            seen = set()
            descriptors = []
            for n, image in enumerate(images):
                for hexd, size, chunks in image.blobs():
                    if hexd not in seen:
                        seen.add(hexd)
                        add_file(tar, "blobs/sha256/" + hexd, (size, chunks))
                top[n] = image.layers[-1].hex if image.layers else ""
                entries.append({
                    "Config": "blobs/sha256/" + sha256_hex(image.config_bytes),
                    "RepoTags": image.repo_tags or None,
                    "Layers": ["blobs/sha256/" + l.hex for l in image.layers],
                    "LayerSources": {l.digest: {"mediaType": l.media_type, "size": l.size,
                                                "digest": l.digest} for l in image.layers},
                })
                for tag in image.repo_tags or [None]:
                    ann = {}
                    if tag:
                        ann = {"io.containerd.image.name": tag,
                               REF_NAME: tag.rpartition(":")[2]}
                    descriptors.append(image.descriptor(ann))
            add_file(tar, "index.json", canonical_json(
                {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": descriptors}))
            add_file(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_file(tar, "manifest.json", canonical_json(entries))
        repos = _repositories(images, top)
        if repos:
            add_file(tar, "repositories", repos)


Entry = BuiltImage | BuiltIndex | tuple[str | None, BuiltImage | BuiltIndex]


def oci_index(entries: Sequence[Entry]) -> bytes:
    """The ``index.json`` of a layout holding ``entries``."""
    descriptors = []
    for entry in entries:
        ref, item = entry if isinstance(entry, tuple) else (None, entry)
        descriptors.append(item.descriptor({REF_NAME: ref} if ref else None))
    return canonical_json({"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
                           "manifests": descriptors})


def _layout_blobs(entries: Sequence[Entry]):
    seen = set()
    for entry in entries:
        item = entry[1] if isinstance(entry, tuple) else entry
        for hexd, size, chunks in item.blobs():
            if hexd not in seen:
                seen.add(hexd)
                yield hexd, size, chunks


def write_oci_layout(dest: str | os.PathLike | IO[bytes], entries: Sequence[Entry],
                     as_tar: bool = True) -> None:
    """Write an OCI image layout: a tar (``oci-archive``) or a directory (``oci``).

    :param entries: images or indexes, each optionally as ``(ref, item)`` to
        carry an ``org.opencontainers.image.ref.name`` annotation.
    """
    index = oci_index(entries)
    layout = b'{"imageLayoutVersion":"1.0.0"}'
    if as_tar:
        with _open_tar(dest) as tar:
            add_file(tar, "oci-layout", layout)
            add_file(tar, "index.json", index)
            add_dir(tar, "blobs")
            add_dir(tar, "blobs/sha256")
            for hexd, size, chunks in _layout_blobs(entries):
                add_file(tar, "blobs/sha256/" + hexd, (size, chunks))
        return
    root = os.fspath(dest)
    os.makedirs(os.path.join(root, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(root, "oci-layout"), "wb") as f:
        f.write(layout)
    with open(os.path.join(root, "index.json"), "wb") as f:
        f.write(index)
    for hexd, _size, chunks in _layout_blobs(entries):
        with open(os.path.join(root, "blobs", "sha256", hexd), "wb") as f:
            for data in chunks:
                f.write(data)


def write_tar(dest: str | os.PathLike | IO[bytes],
              members: Sequence[tuple[str, bytes | str | None]],
              symlinks: dict[str, str] = None) -> None:
    """Write an arbitrary tar of ``(name, bytes)`` (``None`` makes a directory).

    For tests that need archives no real tool would write.
    """
    with _open_tar(dest) as tar:
        for name, data in members:
            if data is None:
                add_dir(tar, name)
            else:
                add_file(tar, name, data)
        for name, target in (symlinks or {}).items():
            add_symlink(tar, name, target)
