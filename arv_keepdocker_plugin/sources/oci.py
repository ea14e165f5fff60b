"""``oci-archive:PATH[:REF]`` and ``oci:DIR[:REF]`` - OCI image layouts.

``REF`` selects the manifest whose ``org.opencontainers.image.ref.name``
annotation equals it (as skopeo does). When a layout (or the manifest a REF
names) is an index of several platforms, ``--platform OS/ARCH[/VARIANT]``
chooses one; by default this machine's platform is used.

The image is stored as a docker-archive (what ``docker load`` and crunch-run
need) converted on the fly, keeping the config blob byte for byte, so the
image id is the config digest. Layer blobs already stored in Keep are not
read (``export_pieces``). A compressed layout tar is decompressed once: the
core stores it while learning the image (:class:`~..image.ReadOnce`); a
layout of several images or platforms is read twice.

Name linked (``repo_tag``):

* ``REF`` when it has the form ``NAME:TAG`` (``oci-archive:x.tar:foo:1`` is
  linked as ``foo:1``);
* a bare tag (``oci-archive:x.tar:latest``) or no REF: the selected
  manifest's ``io.containerd.image.name`` annotation (what Docker 25 and
  containerd write, in Docker's short form) when there is one, else the
  ``ref.name`` annotation when it has the ``NAME:TAG`` form, else none.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from .. import hookimpl
from ..archive.docker_archive_writer import IMAGE_NAME, export_length
from ..archive.oci_layout_reader import OciImage, OciLayout, read_once_docker_archive
from ..archive.streamed import compression_of, decompressed, estimated_length, placeholder_id
from ..archive.streams import ChunkReader
from ..errors import BadReference
from ..image import ByteStream, Image, ImageSource, ReadOnce, Reference
from ..names import as_repo_tag, familiar, split_path


class _LayoutSource(ImageSource):
    directory = False
    honours_platform = True

    def parse(self, details: str, tag: str | None) -> Reference:
        raw = f"{self.name}:{details}"
        path, ref_name = split_path(details, self.name)
        if tag is not None:
            raise BadReference(f"{raw}: {self.name} takes no separate tag; select with "
                               f"{self.name}:{path}:REF")
        ref = Reference(raw=raw, transport=self.name, path=path, ref=ref_name or None)
        repo_tag = as_repo_tag(ref.ref)
        if repo_tag:
            ref.name, _, ref.tag = repo_tag.rpartition(":")
        return ref

    def resolve(self, reference: Reference, options: argparse.Namespace) -> Image:
        if not self.directory:
            kind = compression_of(reference.file_path)
            if kind is not None:
                return self._read_once(reference, options, reference.file_path, kind)
        return self._resolve(reference, options)

    def _read_once(self, reference: Reference, options: argparse.Namespace, path: str,
                   kind: str) -> Image:
        """A compressed layout tar, decompressed once: learnt as it is stored."""
        platform = getattr(options, "platform", None)
        placeholder = placeholder_id(path)
        chosen: dict[str, str | None] = {}

        def name_of(image: OciImage) -> str | None:
            chosen["repo_tag"] = _repo_tag(reference, image)
            return chosen["repo_tag"]

        @contextlib.contextmanager
        def export() -> Iterator[ByteStream]:
            with decompressed(path, kind) as stream:
                with ChunkReader(read_once_docker_archive(
                        stream, path, kind, lambda layout: layout.select(
                            ref=reference.ref, platform=platform, transport=self.name),
                        name_of)) as reader:
                    yield reader

        def identify(entry: dict[str, Any]) -> Image:
            return Image(image_id=placeholder, source=self.name,
                         repo_tag=chosen.get("repo_tag"), export=export)

        return Image(image_id=placeholder, source=self.name, provisional_id=True,
                     export=export, export_size=estimated_length(path, kind),
                     export_size_estimated=True,
                     read_once=ReadOnce(identify, lambda: self._resolve(reference, options),
                                        path))

    def _resolve(self, reference: Reference, options: argparse.Namespace) -> Image:
        platform = getattr(options, "platform", None)
        with OciLayout(reference.file_path, directory=self.directory) as layout:
            image = layout.select(ref=reference.ref, platform=platform, transport=self.name)
        repo_tag = _repo_tag(reference, image)
        return Image(image_id=image.image_id, source=self.name, repo_tag=repo_tag,
                     config=image.config, manifest_digest=image.manifest_digest,
                     layers=image.layers, export=lambda: image.export(repo_tag),
                     export_size=export_length(image, image.planned_layers, repo_tag),
                     # A compressed layout tar is read in order, whole: nothing is skipped.
                     export_pieces=None if image.compression else (
                         lambda skip: image.export_pieces(skip, repo_tag)))


def _repo_tag(reference: Reference, image: OciImage) -> str | None:
    """The name to link (see the module docstring)."""
    repo_tag = reference.repo_tag
    if repo_tag is None:
        full = image.annotations.get(IMAGE_NAME)
        repo_tag = as_repo_tag(familiar(full)) if full else None
    if repo_tag is None:
        repo_tag = as_repo_tag(image.ref)
    return repo_tag


class OciArchiveSource(_LayoutSource):
    name = "oci-archive"
    description = "a tar of an OCI image layout"
    syntax = "PATH[:REF]"


class OciDirectorySource(_LayoutSource):
    name = "oci"
    description = "an OCI image layout directory"
    syntax = "DIR[:REF]"
    directory = True


@hookimpl
def keepdocker_register_sources(register):
    register(OciArchiveSource())
    register(OciDirectorySource())
