"""The resolve step: which source, which image.

* :func:`pick_source` picks the source from the reference's transport
  prefix, ``--source``, or (for a bare ``NAME[:TAG]``) the
  ``keepdocker_default_source`` hook; :func:`choose_source` then lets it
  parse the reference;
* :func:`resolve_image` asks the source for the image (pulling first with
  ``--pull``) and, when an engine store lacks it, falls back to the best
  copy already in Arvados, as arv-keepdocker 3.2.1 does, the user's own first
  (a copy that 3.2.1 named after a manifest digest stands for the image the
  user's own upload records under that digest).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

from .. import names as refs
from ..errors import SourceError
from ..hooktypes import HASH_LINK, INDEX_DIGEST_PROPERTY, MANIFEST_DIGEST_PROPERTY, REPO_TAG_LINK
from ..image import Image, ImageSource, Reference
from ..keep.trust_records import WriterRule
from ..names import checked_image_id
from .context import RunContext
from .image_trust import trusted_copies, vouched_for
from .listing import docker_links, list_images_in_arv

logger = logging.getLogger("arvados.keepdocker")


class PickedSource(NamedTuple):
    """Which source a reference selects, before the source has parsed it."""

    #: The source's transport name.
    name: str
    #: The reference without the source's prefix.
    details: str
    #: True for a bare name, where the ``keepdocker_default_source`` hook chose.
    by_default: bool


def pick_source(pm, options: argparse.Namespace) -> PickedSource:
    """Which source ``options.image`` selects: ``--source``, its transport prefix, or
    (for a bare ``NAME[:TAG]``) the ``keepdocker_default_source`` hook.

    Nothing is parsed or opened yet, so a caller can vet the choice first
    (the cwl launcher refuses sources a workflow may not name).
    """
    sources = pm.sources
    raw = options.image
    if getattr(options, "source", None):
        name, details = options.source, raw
        prefix = sources.require(name).prefix
        if raw.startswith(prefix):
            details = raw[len(prefix):]
        return PickedSource(name, details, False)
    name, details = refs.split_transport(raw, sources.prefixes())
    if name is not None:
        return PickedSource(name, details, False)
    name = pm.hook.keepdocker_default_source(reference=raw, sources=sources, options=options)
    return PickedSource(name, details, True)


def choose_source(pm, options: argparse.Namespace,
                  picked: PickedSource | None = None) -> tuple[ImageSource, Reference, bool]:
    """Pick the source for ``options.image`` and parse the reference with it.

    Returns ``(source, reference, chosen_by_default)``; the last is true for a
    bare name, where the ``keepdocker_default_source`` hook chose. ``picked``
    is :func:`pick_source`'s answer when the caller already has it.
    """
    name, details, by_default = picked or pick_source(pm, options)
    source = pm.sources.require(name)
    reference = dataclasses.replace(source.parse(details, options.tag), raw=options.image,
                                    transport=source.name)
    warn_if_platform_ignored(source, options)
    return source, reference, by_default


def warn_if_platform_ignored(source: ImageSource, options: argparse.Namespace) -> None:
    """``--platform`` is a core flag; a source that cannot honour it says so, once a run."""
    platform = getattr(options, "platform", None)
    if platform and not source.honours_platform:
        logger.warning("--platform %s is ignored: the %s source does not choose among "
                       "platforms", platform, source.name)


def resolve_image(ctx: RunContext, source: ImageSource, reference: Reference,
                  chosen_by_default: bool) -> Image:
    """The image ``reference`` names; an Arvados-only image when the store lacks it."""
    options = ctx.options
    try:
        if options.pull:
            try:
                source.resolve(reference, options)
            except SourceError:
                source.pull(reference, options)
        return source.resolve(reference, options)
    except SourceError as error:
        lookup_name = reference.name or reference.image_id
        in_arvados = []
        if source.serves_bare_names and lookup_name:
            in_arvados = list_images_in_arv(ctx.api, ctx.retries, lookup_name, reference.tag)
        if not in_arvados:
            if chosen_by_default and source.name != "docker-daemon":
                raise type(error)(f"{error} (looked in {source.name} since no Docker engine "
                                  "answers)") from None
            raise
        logger.debug("%s; using the image already in Arvados", error)
        info = preferred(ctx, in_arvados)
        image_id = checked_image_id(info["dockerhash"])
        # arv-keepdocker 3.2.1 on Docker's containerd store named its tar and
        # hash link after the manifest digest. When the user's own upload
        # records that digest as an image's manifest (or index) digest, it
        # names that image: look it up so, as for an engine's provisional id.
        return Image(image_id=image_id, source="arvados", repo_tag=reference.repo_tag,
                     provisional_id=names_a_stored_image(ctx.api, ctx.retries, image_id,
                                                         ctx.writer_rule))


def preferred(ctx: RunContext, in_arvados: list[tuple[str, dict]]) -> dict:
    """The best image the user's own records name and vouch for, else the best of all.

    Anyone can link a name to an image, in their projects or in a project
    shared with them. An image counts as the user's when the user's records
    vouch for its collection's content (:mod:`.image_trust`) and the link
    that names it (repo+tag, or hash for a lookup by id) was last written by
    the user. (Whichever is chosen is then checked like any other copy
    before it is reused: see :mod:`.reuse`.)
    """
    rule = ctx.writer_rule
    vouched = trusted_copies(ctx.api, ctx.retries, rule, [uuid for uuid, _ in in_arvados])
    if vouched:
        names = {(l["head_uuid"], l["link_class"], l["name"]) for l in docker_links(
            ctx.api, ctx.retries, [["head_uuid", "in", sorted(vouched)],
                                   ["link_class", "in", [HASH_LINK, REPO_TAG_LINK]],
                                   ["modified_by_user_uuid", "=", rule.user_uuid]])}
        for uuid, info in in_arvados:
            if info["repo"] != "<none>":
                name = (uuid, REPO_TAG_LINK, "{}:{}".format(info["repo"], info["tag"]))
            else:
                name = (uuid, HASH_LINK, info["dockerhash"])
            if uuid in vouched and name in names:
                return info
    return in_arvados[0][1]


def names_a_stored_image(api, retries: int, digest: str, rule: WriterRule) -> bool:
    """Whether a hash link the user's records vouch for records ``digest`` as an
    image's manifest or index digest, on a collection that still holds what it did."""
    mine: list[dict[str, Any]] = []
    for prop in (MANIFEST_DIGEST_PROPERTY, INDEX_DIGEST_PROPERTY):
        mine.extend(docker_links(api, retries, [
            ["link_class", "=", HASH_LINK], ["properties." + prop, "=", digest],
            ["modified_by_user_uuid", "=", rule.user_uuid]]))
    heads: set[str] = {link["head_uuid"] for link in mine}
    if not heads:
        return False
    contents: list[Mapping[str, Any]] = api.collections().list(
        filters=[["uuid", "in", sorted(heads)]], select=["uuid", "portable_data_hash"],
    ).execute(num_retries=retries)["items"]
    return bool(vouched_for(rule, contents, mine))
