"""``oci-archive:PATH[:REF]`` and ``oci:DIR[:REF]`` - OCI image layouts.

``REF`` selects the manifest whose ``org.opencontainers.image.ref.name``
annotation equals it (as skopeo does). When a layout (or the manifest a REF
names) is an index of several platforms, ``--platform OS/ARCH[/VARIANT]``
chooses one; by default this machine's platform is used.

The image is stored as a docker-archive (what ``docker load`` and crunch-run
need) converted on the fly, keeping the config blob byte for byte, so the
image id is the config digest. Layer blobs already stored in Keep are not
read (``export_pieces``).

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
from typing import Optional

from .. import hookimpl
from ..archive.docker_archive_writer import IMAGE_NAME, export_length
from ..archive.oci_layout_reader import OciLayout
from ..errors import BadReference
from ..image import Image, ImageSource, Reference
from ..names import as_repo_tag, familiar, split_path


class _LayoutSource(ImageSource):
    directory = False
    honours_platform = True

    def parse(self, details: str, tag: Optional[str]) -> Reference:
        raw = "{}:{}".format(self.name, details)
        path, ref_name = split_path(details, self.name)
        if tag is not None:
            raise BadReference("{}: {} takes no separate tag; select with {}:{}:REF".format(
                raw, self.name, self.name, path))
        ref = Reference(raw=raw, transport=self.name, path=path, ref=ref_name or None)
        repo_tag = as_repo_tag(ref.ref)
        if repo_tag:
            ref.name, _, ref.tag = repo_tag.rpartition(":")
        return ref

    def resolve(self, reference: Reference, options: argparse.Namespace) -> Image:
        platform = getattr(options, "platform", None)
        with OciLayout(reference.file_path, directory=self.directory) as layout:
            image = layout.select(ref=reference.ref, platform=platform, transport=self.name)
        repo_tag = reference.repo_tag
        if repo_tag is None:
            full = image.annotations.get(IMAGE_NAME)
            repo_tag = as_repo_tag(familiar(full)) if full else None
        if repo_tag is None:
            repo_tag = as_repo_tag(image.ref)
        return Image(image_id=image.image_id, source=self.name, repo_tag=repo_tag,
                     config=image.config, manifest_digest=image.manifest_digest,
                     layers=image.layers, export=lambda: image.export(repo_tag),
                     export_size=export_length(image, image.planned_layers, repo_tag),
                     # A compressed layout tar is read in order, whole: nothing is skipped.
                     export_pieces=None if image.compression else (
                         lambda skip: image.export_pieces(skip, repo_tag)))


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
