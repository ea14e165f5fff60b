"""The local image checks a-c-r 3.2.1 runs, answered by this tool's sources.

a-c-r asks whether the submitter's machine has a workflow's image in two
places (``sdk/cwl/arvados_cwl/arvdocker.py`` in the Arvados repository):
``determine_image_id`` (``docker images``, with ``--match-submitter-images``)
and cwltool's ``DockerCommandLineJob(...).get_image`` (``docker inspect``,
then ``docker pull``) when Arvados has no copy. Both become
:func:`local_image_id`, which picks the source as the upload will, after
:mod:`.workflow_images` has vetted the name: a name a workflow may not use is
never parsed by a source, so no path it names is opened.

When a pull is asked for (a ``dockerPull``) and no engine answers, the name
is resolved in its registry instead (:mod:`..steps.registry_fallback`), and
the upload that follows stores that image without fetching it again.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..errors import KeepdockerError
from .lookup_names import BY_IMAGE_ID, BY_NAME, lookup_for
from .workflow_images import Refused, current

logger = logging.getLogger("arvados.keepdocker")


def resolve_for_workflow(reference: str, pull: bool, pm=None,
                         base: argparse.Namespace | None = None) -> str:
    """The id of the image a workflow names as ``reference``, pulled first with ``pull``.

    The source is picked as the upload will pick it, after the workflow rule
    (:func:`.workflow_images.current`) let the name through; with ``pull`` and
    no engine answering, a bare name comes from its registry
    (:func:`_from_registry`). ``base`` is a command line whose options
    (registry credentials, ``--platform``...) apply (see
    :meth:`.WorkflowImages.admit`).

    :raises Refused: the workflow may not name it.
    :raises KeepdockerError: the image cannot be had (one line).
    """
    from ..plugins import get_plugin_manager
    from ..steps.resolve import choose_source

    pm = pm or get_plugin_manager()
    images = current()
    options, picked = images.admit(pm, reference, base=base)
    images.remember(reference, picked)
    if pull and picked.by_default:
        found = _from_registry(pm, options, picked, reference)
        if found is not None:
            return found
    source, parsed, _by_default = choose_source(pm, options, picked)
    if pull:
        source.pull(parsed, options)
    return source.resolve(parsed, options).image_id


def _image_id(reference: str, pull: bool) -> str | None:
    """:func:`local_image_id`, raising :class:`Refused` for a name the workflow may not use."""
    try:
        return resolve_for_workflow(reference, pull)
    except Refused:
        raise
    except KeepdockerError as error:
        logger.log(logging.WARNING if pull else logging.INFO,
                   "image %s %s: %s", reference, "pull failed" if pull else "not found locally",
                   error)
        return None


def _from_registry(pm, options, picked, reference: str) -> str | None:
    """The id of a bare name pulled from its registry when no engine answers, else None.

    The image is remembered for the upload that follows
    (:meth:`.WorkflowImages.remember_registry`), under the ``IMAGE TAG``
    keepdocker will be asked to store. A reference by digest always comes
    from its registry: no engine source here takes one, and a digest names
    one image wherever it is fetched from.
    """
    from ..steps.registry_fallback import engine_answers, from_registry

    lookup = lookup_for(reference)
    if lookup is None or lookup.kind == BY_IMAGE_ID:
        return None
    if lookup.kind == BY_NAME:
        source = pm.sources.get(picked.name)
        if source is not None and engine_answers(source, options):
            return None
    images = current()
    images.admit_registry_fallback(pm, reference)
    found = from_registry(pm, options, reference, None,
                          lookup.shown if lookup.kind == BY_NAME else None)
    images.remember_registry(lookup.upload, found)
    return found.image.image_id


def local_image_id(reference: str, pull: bool = False) -> str | None:
    """The id of ``reference`` in the source a bare ``arv keepdocker REFERENCE`` uses.

    ``reference`` is what a ``DockerRequirement`` names (``NAME[:TAG]``, an
    image id, or ``TRANSPORT:DETAILS``). The source is chosen exactly as the
    upload that follows will choose it: the transport prefix, else the
    ``keepdocker_default_source`` hook (the Docker engine if it answers, else
    podman). With ``pull`` the source pulls the image first; when no engine
    answers, a bare name (or a reference by digest) is resolved in its
    registry instead, and remembered for the upload.

    Returns ``sha256:<hex>``, or ``None`` when the image cannot be had; the
    reason (refused by the workflow rule, not found, no engine, bad name,
    failed pull) is logged as one line. Never raises for an absent image or
    a bad reference.
    """
    try:
        return _image_id(reference, pull)
    except Refused as error:
        current().report(error)
        return None


def determine_image_id(dockerImageId: str) -> str | None:
    """a-c-r 3.2.1's ``arvdocker.determine_image_id``, answered by this tool's sources.

    The local image's id (``sha256:<hex>``) for a ``DockerRequirement``'s
    ``dockerImageId``, or ``None`` when there is no such local image (or the
    workflow may not name it); a-c-r then uploads it again only if it can
    find it.
    """
    return local_image_id(dockerImageId)


def image_check_class(base: type) -> type:
    """A subclass of cwltool's ``DockerCommandLineJob`` whose ``get_image`` asks our sources.

    A subclass, not a look-alike, so anything else that finds
    ``cwltool.docker.DockerCommandLineJob`` while installed still gets a
    working Docker job class.
    """
    class SourcesImageCheck(base):
        """``get_image`` as a-c-r 3.2.1 uses it, answered by this tool's sources."""

        def get_image(self, docker_requirement: dict[str, Any], pull_image: bool,
                      force_pull: bool, tmp_outdir_prefix: str) -> bool:
            """True when the image is now where ``arv keepdocker NAME`` will find it.

            Same contract as cwltool's: fills in ``dockerImageId`` from
            ``dockerPull``; pulls ``dockerPull`` when ``pull_image`` and the
            image is missing (or ``force_pull``); returns False when the image
            cannot be had, so that a-c-r reports "Docker image ... not
            available". A ``dockerImageId`` the workflow may not name stops
            the check there (one line says why). ``dockerFile`` (a build from
            the workflow's text) is left to cwltool's Docker CLI code, as are
            ``dockerLoad`` / ``dockerImport`` of a missing image when the
            submitter trusts the workflow's sources: no source of ours builds,
            loads or imports.
            """
            if "dockerImageId" not in docker_requirement and "dockerPull" in docker_requirement:
                docker_requirement["dockerImageId"] = docker_requirement["dockerPull"]
            if "dockerFile" in docker_requirement:
                return bool(super().get_image(docker_requirement, pull_image, force_pull,
                                              tmp_outdir_prefix))
            images = current()
            try:
                image = docker_requirement.get("dockerImageId")
                found = image is not None and _image_id(image, pull=False) is not None
                if (force_pull or not found) and pull_image:
                    if "dockerPull" in docker_requirement:
                        found = _image_id(docker_requirement["dockerPull"], pull=True) is not None
                    else:
                        for field in ("dockerLoad", "dockerImport"):
                            if field in docker_requirement:
                                images.admit_cwltool_load(field, docker_requirement[field])
                                return bool(super().get_image(
                                    docker_requirement, pull_image, force_pull,
                                    tmp_outdir_prefix))
            except Refused as error:
                images.report(error)
                return False
            return found

    SourcesImageCheck.__qualname__ = SourcesImageCheck.__name__
    return SourcesImageCheck
