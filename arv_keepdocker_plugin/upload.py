"""The upload pipeline: reference -> source -> format check -> Keep -> links.

Mirrors arv-keepdocker 3.2.1's ``main`` step by step (FACTS 6.5), with the
engine-specific parts behind the source hooks and the Arvados records behind
the linking hooks. Nothing half-written is left in Arvados: the collection is
created only after every byte is in Keep, and if adding properties or links
fails, the links made so far and the collection are removed again.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import List, Optional, Tuple

import arvados.collection
import arvados.keep
import arvados.util

from . import reference as refs
from .archive.tap import TarTap, layer_digest
from .errors import BadReference, FormatRefused, KeepdockerError, SourceError
from .image import Image, ImageSource, Layer, Reference
from .journal import Journal
from .keepwriter import (BlockWriter, block_key, is_layer_member, manifest_text, stream_pieces,
                         write_pieces)
from .layerindex import find_stored_layers
from .listing import HASH, REPO_TAG, docker_links, list_images_in_arv
from .locking import image_lock
from .progress import Progress, mode_from_options

logger = logging.getLogger("arvados.keepdocker")
put_logger = logging.getLogger("arvados.arv_put")


def choose_source(pm, options) -> Tuple[ImageSource, Reference, bool]:
    """Pick the source for ``options.image`` and parse the reference with it.

    Returns ``(source, reference, chosen_by_default)``; the last is true for a
    bare name, where the ``keepdocker_default_source`` hook chose.
    """
    sources = pm.sources()
    raw = options.image
    by_default = False
    if getattr(options, "source", None):
        name, details = options.source, raw
        prefix = name + ":"
        if raw.startswith(prefix):
            details = raw[len(prefix):]
    else:
        name, details = refs.split_transport(raw, sources)
        if name is None:
            by_default = True
            name = pm.hook.keepdocker_default_source(
                reference=raw, sources=sources, options=options)
    if name not in sources:
        raise BadReference("unknown image source {!r} (available: {})".format(
            name, ", ".join(sorted(sources)) or "none"))
    source = sources[name]
    reference = source.parse(details, options.tag)
    reference.raw = raw
    reference.transport = name
    return source, reference, by_default


class Upload:
    """One ``arv keepdocker IMAGE`` run."""

    def __init__(self, api, pm, options: argparse.Namespace, stdout):
        put_logger.setLevel(logging.WARNING if options.silent else logging.INFO)
        self.api = api
        self.pm = pm
        self.options = options
        self.stdout = stdout
        self.retries = options.retries

    # -- steps ------------------------------------------------------------

    def run(self) -> str:
        """Upload or reuse; print the collection UUID; return the outcome."""
        source, reference, self.chosen_by_default = choose_source(self.pm, self.options)
        if self.options.project_uuid:
            self._check_project(self.options.project_uuid)
        image = self._resolve(source, reference)
        repo_tag = image.repo_tag
        if repo_tag and reference.name and image.image_id.startswith(reference.name.lower()):
            repo_tag = None  # the user typed an id, as 3.2.1 decides it
        name = self.options.name or default_collection_name(image.image_id, repo_tag)
        with image_lock(image.image_id):
            if not self.options.force:
                uuid = self._reuse(image, repo_tag, name)
                if uuid:
                    self.stdout.write(uuid + "\n")
                    return "reused"
            if image.export is None:
                raise KeepdockerError(
                    "image {} is only available from Arvados, so it cannot be "
                    "uploaded again with --force".format(image.image_id))
            collection = self._write(image, repo_tag, name)
        # What arv-put says and prints at the end of a 3.2.1 upload.
        put_logger.info("Collection saved as '%s'", collection["name"])
        if not self.options.silent:
            self.stdout.write(collection["uuid"] + "\n")
        return "uploaded"

    def _check_project(self, uuid: str) -> None:
        if arvados.util.user_uuid_pattern.match(uuid):
            self.api.users().get(uuid=uuid).execute(num_retries=self.retries)
        elif arvados.util.group_uuid_pattern.match(uuid):
            self.api.groups().get(uuid=uuid).execute(num_retries=self.retries)
        else:
            raise KeepdockerError("Not a valid project UUID: {}".format(uuid))

    def _resolve(self, source, reference) -> Image:
        try:
            if self.options.pull:
                try:
                    source.resolve(reference, self.options)
                except SourceError:
                    source.pull(reference, self.options)
            image = source.resolve(reference, self.options)
        except SourceError as error:
            # An engine store without the image (or no engine): as 3.2.1, use
            # the best copy already in Arvados if there is one.
            lookup_name = reference.name or reference.image_id
            in_arvados = []
            if source.serves_bare_names and lookup_name:
                in_arvados = list_images_in_arv(self.api, self.retries, lookup_name,
                                                reference.tag)
            if not in_arvados:
                if self.chosen_by_default and source.name != "docker-daemon":
                    raise type(error)("{} (looked in {} since no Docker engine "
                                      "answers)".format(error, source.name)) from None
                raise
            logger.debug("%s; using the image already in Arvados", error)
            info = in_arvados[0][1]
            return Image(image_id=info["dockerhash"], source="arvados",
                         repo_tag=reference.repo_tag)
        self._check_format(image)
        return image

    def _check_format(self, image: Image) -> None:
        formats = self.api._rootDesc.get("dockerImageFormats")
        verdict = self.pm.hook.keepdocker_check_format(
            image=image, supported_formats=formats, options=self.options)
        if verdict is None:
            return
        ok, message = verdict
        if ok:
            return
        if message:
            (logger.warning if not formats else logger.error)(message)
        if self.options.force_image_format:
            logger.warning("forcing incompatible image")
            return
        raise FormatRefused(
            "refusing to store incompatible format (use --force-image-format to override)")

    def _reuse(self, image: Image, repo_tag: Optional[str], name: str) -> Optional[str]:
        """3.2.1's "already in Arvados" path: copy into the project, add its links."""
        parent = self.options.project_uuid or self.api.users().current().execute(
            num_retries=self.retries)["uuid"]
        hash_links = docker_links(self.api, self.retries, [
            ["link_class", "=", HASH], ["name", "=", image.image_id]])
        if not hash_links:
            return None
        collections = self.api.collections().list(
            filters=[["uuid", "in", [link["head_uuid"] for link in hash_links]]],
            select=["uuid", "owner_uuid", "name", "manifest_text"],
        ).execute(num_retries=self.retries)["items"]
        if not collections:
            return None
        tag_links = []
        if repo_tag:
            tag_links = docker_links(self.api, self.retries, [
                ["link_class", "=", REPO_TAG], ["name", "=", repo_tag],
                ["head_uuid", "in", [c["uuid"] for c in collections]]])
        with Rollback(self.api, self.retries) as rollback:
            owned = [c for c in collections if c["owner_uuid"] == parent]
            if owned:
                record = owned[0]
            else:
                properties = self._properties(image, repo_tag)
                record = rollback.created_collection(self.api.collections().create(
                    body={"manifest_text": collections[0]["manifest_text"],
                          "name": name, "owner_uuid": parent,
                          "properties": properties},
                    ensure_unique_name=True).execute(num_retries=self.retries))
            base = {"owner_uuid": parent, "head_uuid": record["uuid"],
                    "properties": hash_links[0]["properties"]}
            if not any(link["owner_uuid"] == parent for link in hash_links):
                rollback.link(dict(base, link_class=HASH, name=image.image_id))
            if repo_tag and not any(link["owner_uuid"] == parent for link in tag_links):
                rollback.link(dict(base, link_class=REPO_TAG, name=repo_tag))
        self._notify(image, record, rollback.records)
        return record["uuid"]

    def _notify(self, image: Image, record: dict, links: List[dict]) -> None:
        try:
            self.pm.hook.keepdocker_after_upload(
                image=image, collection=record, links=links, api=self.api)
        except Exception as error:  # a notification must not undo the upload
            logger.warning("after-upload hook failed: %s", error)

    def _properties(self, image: Image, repo_tag: Optional[str]) -> dict:
        merged: dict = {}
        # pluggy calls the newest plugin first; apply defaults first so that
        # third-party plugins can override them.
        for result in reversed(self.pm.hook.keepdocker_collection_properties(
                image=image, repo_tag=repo_tag, options=self.options)):
            if result:
                merged.update(result)
        return merged

    def _link_specs(self, image: Image, repo_tag: Optional[str]) -> List[dict]:
        specs: List[dict] = []
        for result in reversed(self.pm.hook.keepdocker_links(
                image=image, repo_tag=repo_tag, options=self.options)):
            specs.extend(result or ())
        return specs

    def _write(self, image: Image, repo_tag: Optional[str], name: str) -> dict:
        tar = self._store_tar(image)
        # The archive's own config is the truth: its digest is the image id
        # (whatever the engine printed) and its "created" is the timestamp.
        if tar.config_digest != image.image_id and image.format == "v2":
            if not image.manifest_digest:
                image.manifest_digest = image.image_id
            image.image_id = tar.config_digest
            if not self.options.name:
                name = default_collection_name(image.image_id, repo_tag)
        collection = arvados.collection.Collection(
            manifest_text(tar.locators, tar.size, "{}.tar".format(image.image_id)),
            api_client=self.api, num_retries=self.retries)
        properties = self._properties(image, repo_tag)
        owner = self.options.project_uuid
        with Rollback(self.api, self.retries) as rollback:
            # Properties go in with the record, so it never exists without them;
            # the server adds its managed properties beside ours, as it would to
            # arv-put's record before 3.2.1's separate update.
            collection.save_new(name=name, owner_uuid=owner, properties=properties,
                                ensure_unique_name=True, num_retries=self.retries)
            record = rollback.created_collection(collection.api_response())
            for spec in self._link_specs(image, repo_tag):
                body = dict(spec, head_uuid=record["uuid"])
                if owner is not None:
                    body["owner_uuid"] = owner
                rollback.link(body)
        self._notify(image, record, rollback.records)
        tar.journal.discard()
        return record

    def _store_tar(self, image: Image) -> "StoredTar":
        """Stream the image into Keep blocks, layers aligned; reuse what is stored."""
        journal = Journal(image.image_id, enabled=self.options.use_cache)
        if not self.options.resume:
            journal.discard()
        keep = getattr(self.api, "keep", None) or arvados.keep.KeepClient(
            api_client=self.api, num_retries=self.retries)
        stored = {}
        if self.pm.get_plugin("layer_index") is not None:
            sizes = {l.digest: l.size for l in image.layers if l.digest}
            stored = {digest: layer for digest, layer in find_stored_layers(
                self.api, self.retries, list(sizes)).items()
                if sizes[digest] in (None, layer.size)}
        known = {block_key(loc): loc for layer in stored.values() for loc in layer.locators}
        if self.options.resume:
            known.update(journal.load(keep))
        progress = Progress(mode_from_options(self.options))
        copies = self.api._rootDesc.get("defaultCollectionReplication") or 2
        writer = BlockWriter(keep, copies, self.retries, progress, known, journal.record)

        def align(name, offset, size):
            if is_layer_member(name, size):
                writer.cut_at(offset)
                writer.cut_at(offset + size)

        tap = TarTap(None, archive=image.source, on_data=align)
        try:
            if image.export_pieces is not None and stored:
                with image.export_pieces(set(stored)) as pieces:
                    write_pieces(pieces, tap, writer,
                                 {d: layer.locators for d, layer in stored.items()})
            else:
                with image.export() as stream:
                    write_pieces(stream_pieces(stream), tap, writer, {})
            locators = writer.close()
        except BaseException:
            writer.abort()
            raise
        finally:
            journal.close()
        progress.finish()
        image.config = tap.config
        image.layers = aligned_layers(tap)
        return StoredTar(locators, writer.position, tap.config_digest, journal)


@dataclasses.dataclass
class StoredTar:
    locators: List[str]
    size: int
    config_digest: str
    journal: Journal


def aligned_layers(tap) -> List[Layer]:
    """The image's layers as stored: digest, size and offset of each aligned one."""
    diff_ids = ((tap.config or {}).get("rootfs") or {}).get("diff_ids") or []
    names = tap.manifest.get("Layers") or []
    members = {name: (offset, size) for name, offset, size in tap.members}
    layers = []
    for index, name in enumerate(names):
        member = tap.resolve(name)
        offset, size = members.get(member, (None, 0))
        digest = layer_digest(member, index, diff_ids, len(names))
        aligned = offset is not None and is_layer_member(member, size)
        layers.append(Layer(digest, size, offset if aligned else None))
    return layers


def default_collection_name(image_id: str, repo_tag: Optional[str]) -> str:
    if repo_tag:
        return "Docker image {} {}".format(repo_tag.replace("/", " "), image_id[0:12])
    return "Docker image {}".format(image_id[0:12])


class Rollback:
    """Creates records and deletes them all again if the block fails."""

    def __init__(self, api, retries: int):
        self.api = api
        self.retries = retries
        self.records: List[dict] = []
        self.collection: Optional[str] = None

    def created_collection(self, record: dict) -> dict:
        self.collection = record["uuid"]
        return record

    def link(self, body: dict) -> dict:
        record = self.api.links().create(body=body).execute(num_retries=self.retries)
        self.records.append(record)
        return record

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            return False
        for record in reversed(self.records):
            self._quietly(self.api.links().delete(uuid=record["uuid"]))
        if self.collection:
            self._quietly(self.api.collections().delete(uuid=self.collection))
        return False

    def _quietly(self, request) -> None:
        try:
            request.execute(num_retries=self.retries)
        except Exception as error:
            logger.warning("could not undo a partial upload: %s", error)
