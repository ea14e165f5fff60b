"""A bare name to pull when no engine answers: taken from its registry instead.

``arv keepdocker --pull NAME[:TAG]`` asks the engine to pull; on a machine
where neither the Docker engine nor podman answers (a laptop, a login node, a
CI runner) there is nothing to pull into. ``docker pull NAME`` would have
fetched the image from its registry, and the ``docker://`` source fetches the
same image with no engine at all, so :func:`from_registry` resolves the name
there: Docker's rules make ``debian:12`` ``docker.io/library/debian:12``
(no short-name search; see :func:`~..names.parse_image_name`), and the
``docker://`` source's credentials, registries.conf, certs.d, trust policy and
``--platform`` apply as for ``arv keepdocker docker://NAME``.

The image is linked under the name as typed (arv-keepdocker 3.2.1's rule for
``--pull NAME``), not the registry's familiar form, and one line says where it
came from. An engine that answers always wins (:func:`engine_answers`), and
without ``--pull`` a bare name never reaches a registry, as in 3.2.1.

The cwl launcher (:mod:`..cwl_runner`) resolves a ``dockerPull`` the same way
and hands the :class:`FromRegistry` to the upload that follows
(:func:`.pipeline.run`'s ``resolved``), so nothing is fetched twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from ..errors import BadReference
from ..image import Image, ImageSource, Reference
from ..names import parse_image_name
from ..sources.registry import NAME as REGISTRY_SOURCE
from ..sources.registry import PREFIX as REGISTRY_PREFIX
from ..sources.registry import with_tag

logger = logging.getLogger("arvados.keepdocker")


@dataclasses.dataclass(frozen=True)
class FromRegistry:
    """A bare name resolved in its registry: what the upload stores and links.

    :ivar typed: the name as typed (or as a workflow names it).
    :ivar location: ``docker://`` and the fully qualified reference.
    :ivar reference: the registry source's reference; ``name`` and ``tag`` are
        what will be linked.
    :ivar image: the resolved image (manifest and config already fetched; the
        layers are read when it is stored); its ``repo_tag`` is the name linked.
    """

    typed: str
    location: str
    reference: Reference
    image: Image

    def options_for(self, options: argparse.Namespace) -> argparse.Namespace:
        """``options`` as ``arv keepdocker docker://...`` would have parsed them."""
        return registry_options(options, self.location)


def registry_options(options: argparse.Namespace, location: str) -> argparse.Namespace:
    """A copy of ``options`` naming ``location`` (``docker://...``) as the image.

    Hooks and the source see the image's real origin (the registry source
    records its reference by digest from it); everything else is the run's own.
    """
    return argparse.Namespace(**dict(vars(options), image=location, tag=None, source=None))


def engine_answers(source: ImageSource, options: argparse.Namespace) -> bool:
    """Whether the source chosen for a bare name (an engine) answers."""
    return bool(source.available(options))


def registry_location(typed: str, tag: str | None = None) -> str | None:
    """``docker://<normalised>`` for a bare ``NAME[:TAG][@DIGEST]``; None when it names
    no registry image (an image id, a name Docker refuses)."""
    try:
        return REGISTRY_PREFIX + str(parse_image_name(with_tag(typed, tag)))
    except BadReference:
        return None


def from_registry(pm, options: argparse.Namespace, typed: str, tag: str | None,
                  linked: str | None) -> FromRegistry:
    """Resolve ``typed`` (and a separate ``tag``) in its registry, to be linked as ``linked``.

    ``linked`` is the ``repo:tag`` the upload links (None: only the hash
    link, as for a reference by digest). Logs the one line that says where
    the image comes from.

    :raises BadReference: the name names no registry image.
    :raises KeepdockerError: from the ``docker://`` source (policy, registry,
        credentials), one line.
    """
    source = pm.sources.require(REGISTRY_SOURCE)
    details = with_tag(typed, tag)
    reference = source.parse(details, None)
    location = REGISTRY_PREFIX + (reference.ref or details)
    reference = dataclasses.replace(reference, raw=location)
    if linked is not None:
        name, _, linked_tag = linked.rpartition(":")
        reference = dataclasses.replace(reference, name=name, tag=linked_tag)
    else:
        reference = dataclasses.replace(reference, name=None)
    image = source.resolve(reference, registry_options(options, location))
    logger.info("%s: no Docker engine or podman answers; taking it from its registry, %s",
                typed if tag is None else f"{typed}:{tag}", location)
    return FromRegistry(typed, location, reference,
                        dataclasses.replace(image, repo_tag=linked))


def fallback_for_pull(pm, options: argparse.Namespace, source: ImageSource,
                      reference: Reference, by_default: bool) -> FromRegistry | None:
    """The registry fallback of ``--pull`` for a bare name, or None (the engine's turn).

    Only with ``--pull``, only for a bare ``NAME[:TAG]`` the default source
    chose (never an image id), and only when that source does not answer.
    """
    if not (by_default and getattr(options, "pull", False) and reference.name):
        return None
    if engine_answers(source, options):
        return None
    return from_registry(pm, options, options.image, options.tag, reference.repo_tag)
