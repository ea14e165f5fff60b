"""``docker-archive:PATH[:NAME[:TAG]]`` or ``docker-archive:PATH:@INDEX`` - a ``docker save`` tar.

As in skopeo, ``DETAILS`` is split at its first ``:``: the path cannot
contain one. Which image and which name:

* ``PATH`` alone: the archive's only image (an archive of several is
  refused, listing them); its name is the image's ``RepoTags`` entry when it
  has exactly one (in Docker's short form, ``docker.io/library/`` dropped),
  else none;
* ``PATH:NAME[:TAG]``: the image tagged so (``TAG`` defaults to ``latest``;
  ``docker.io/library/`` and podman's ``localhost/`` prefixes are matched
  too); it is linked under the name typed, as arv-keepdocker does;
* ``PATH:@INDEX``: the ``INDEX``-th image of ``manifest.json`` (from 0), with
  no name (like an image given by id).

The image id is the config digest. A single-image archive is stored byte for
byte; one image of several becomes a new docker-archive streamed on the fly.
Either way, layers already stored in Keep are not read (``export_pieces``).

A compressed archive (``PATH`` or ``PATH:NAME[:TAG]``) is decompressed once:
the core stores it while learning the image (:class:`~..image.ReadOnce`), and
this source names what was read. ``PATH:@INDEX``, a dry run, and an archive
that turns out to hold several images are read twice as before (a first
pass learns the members, a second stores the image's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from typing import Any

from .. import hookimpl
from ..archive import safety
from ..archive.docker_archive_reader import DockerArchive
from ..archive.streamed import compression_of, decompressed, estimated_length, placeholder_id
from ..errors import BadReference, ImageNotFound
from ..image import Image, ImageSource, ReadOnce, Reference
from ..names import familiar, matching, split_name_tag, split_path


class DockerArchiveSource(ImageSource):
    name = "docker-archive"
    description = "a docker save or podman save tar, plain or compressed"
    syntax = "PATH[:NAME[:TAG]|:@INDEX]"

    def parse(self, details: str, tag: str | None) -> Reference:
        raw = f"{self.name}:{details}"
        path, rest = split_path(details, self.name)
        ref = Reference(raw=raw, transport=self.name, path=path)
        if rest is None or rest == "":
            if tag is not None:
                raise BadReference(f"{raw}: a tag needs a name: {self.name}:{path}:NAME:{tag}")
            return ref
        if rest.startswith("@"):
            if tag is not None:
                raise BadReference(f"{raw}: an image chosen by @INDEX takes no tag")
            if not rest[1:].isdigit():
                raise BadReference(f"{raw}: @INDEX must be a number from 0")
            ref.index = int(rest[1:])
            return ref
        ref.name, ref.tag = split_name_tag(rest, tag)
        return ref

    def resolve(self, reference: Reference, options: argparse.Namespace) -> Image:
        path = reference.file_path
        kind = compression_of(path)
        if kind is not None and reference.index is None:
            return self._read_once(reference, options, path, kind)
        return self._resolve(reference, options)

    def _read_once(self, reference: Reference, options: argparse.Namespace, path: str,
                   kind: str) -> Image:
        """A compressed archive, to be decompressed once: learnt as it is stored."""
        placeholder = placeholder_id(path)

        def export():
            return decompressed(path, kind)

        def identify(entry: dict[str, Any]) -> Image:
            tags = entry.get("RepoTags") or []
            wanted = reference.repo_tag
            if wanted is not None:
                if not matching(wanted, [tags], lambda t: t):
                    raise ImageNotFound("{}: no image tagged {}; it holds @0 ({})".format(
                        path, wanted, ", ".join(tags) or "untagged"))
                repo_tag: str | None = wanted
            elif len(tags) == 1:
                repo_tag = familiar(tags[0])
            else:
                repo_tag = None
            return Image(image_id=placeholder, source=self.name, repo_tag=repo_tag,
                         export=export)

        def resolve() -> Image:
            return self._resolve(reference, options)

        return Image(image_id=placeholder, source=self.name, provisional_id=True,
                     export=export, export_size=estimated_length(path, kind),
                     export_size_estimated=True,
                     read_once=ReadOnce(identify, resolve, path))

    def _resolve(self, reference: Reference, options: argparse.Namespace) -> Image:
        with DockerArchive(reference.file_path) as archive:
            entry = archive.select(index=reference.index, repo_tag=reference.repo_tag,
                                   transport=self.name)
            config_bytes = archive.config_bytes(entry)
            config = safety.parse_json(archive.path, "image config", config_bytes)
            if not isinstance(config, dict):
                raise safety.bad(archive.path, "image config is not a JSON object")
            image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
            layers = archive.layers(entry, config)
            manifest_digest = _manifest_digest(archive, image_id)
            size, estimated = archive.export_length(entry, config)
        if reference.name is not None:
            repo_tag = reference.repo_tag
        elif reference.index is None and len(entry.repo_tags) == 1:
            repo_tag = familiar(entry.repo_tags[0])
        else:
            repo_tag = None
        return Image(image_id=image_id, source=self.name, repo_tag=repo_tag, config=config,
                     manifest_digest=manifest_digest, layers=tuple(layers),
                     export_size=size, export_size_estimated=estimated,
                     export=lambda: archive.export(entry, expected_id=image_id),
                     # A compressed archive is read in order, whole: no layer is skipped.
                     export_pieces=None if archive.compression else (
                         lambda skip: archive.export_pieces(entry, skip, expected_id=image_id)))


def _manifest_digest(archive: DockerArchive, image_id: str) -> str | None:
    """The manifest digest from a Docker 25 archive's ``index.json``, if any."""
    if archive.members.find("index.json") is None:
        return None
    index = archive.members.read_json("index.json")
    for desc in (index.get("manifests") or []) if isinstance(index, dict) else []:
        digest = desc.get("digest") if isinstance(desc, dict) else None
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            continue
        member = archive.members.find("blobs/sha256/" + digest[7:])
        if member is None or member.size > safety.JSON_SIZE_LIMIT:
            continue
        data = archive.members.read(member, "manifest")
        if hashlib.sha256(data).hexdigest() != digest[7:]:
            raise safety.bad(archive.path, f"manifest blob {digest} does not match its digest"
                             )
        try:
            manifest = json.loads(data)
        except (ValueError, RecursionError):
            continue
        if isinstance(manifest, dict) and (manifest.get("config") or {}).get("digest") == image_id:
            return digest
    return None


@hookimpl
def keepdocker_register_sources(register):
    register(DockerArchiveSource())
