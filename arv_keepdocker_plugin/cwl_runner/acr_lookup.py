"""arvados-cwl-runner 3.2.1's ``arv_docker_get_image``, with its names read correctly.

a-c-r finds (or stores) every image a workflow needs through
``arv_docker_get_image(api_client, dockerRequirement, pull_image,
runtimeContext)`` (``sdk/cwl/arvados_cwl/arvdocker.py`` in the Arvados
repository), which ``arvcontainer`` and ``arvworkflow`` import by name and
``runner`` calls through ``arvdocker``. :func:`replacement` wraps it:

* a name 3.2.1 reads correctly (:attr:`.ImageLookup.as_321`), and anything
  that is no image name here (``TRANSPORT:DETAILS``), goes to a-c-r's own
  function, unchanged: what it records stays what it records with Arvados'
  keepdocker;
* ``host:port/name:tag``, ``sha256:<hex>`` and ``NAME@sha256:<hex>`` go
  through :func:`get_image`, the same steps with the name read by
  :mod:`.lookup_names` (found by its link, its id or its digest; never
  another image);
* ``--force-docker-pull`` resolves a ``dockerPull`` again even when Arvados
  has the tag (3.2.1 only passes it to the local check, which it skips then),
  and stores a new image only if the tag moved.

:func:`get_image` follows 3.2.1 step for step (the lookup cache, the
project copy with ``--copy-deps``, ``--match-submitter-images``, the local
check, the upload through ``arvados.commands.keepdocker.main``, the lookup
after it, the same ``WorkflowException`` messages), calling each of those
through its module, so the launcher's other replacements answer them.
"""

from __future__ import annotations

import copy
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

from .image_checks import local_image_id
from .lookup_names import AmbiguousImageId, ImageLookup, lookup_for

logger = logging.getLogger("arvados.cwl-runner")

#: Where a packed workflow records the image collection a-c-r chose.
PDH_FIELD = "http://arvados.org/cwl#dockerCollectionPDH"

Listed = list[tuple[str, dict[str, Any]]]


def replacement(original: Callable[..., str]) -> Callable[..., str]:
    """``arv_docker_get_image`` for the launcher, falling back on a-c-r's ``original``."""
    @functools.wraps(original)
    def arv_docker_get_image(api_client, dockerRequirement, pull_image, runtimeContext):
        if PDH_FIELD in dockerRequirement:
            return original(api_client, dockerRequirement, pull_image, runtimeContext)
        lookup = lookup_for(dockerRequirement.get("dockerImageId")
                            or dockerRequirement.get("dockerPull"))
        refresh = bool(runtimeContext.force_docker_pull and pull_image
                       and "dockerPull" in dockerRequirement)
        if lookup is None or (lookup.as_321 and not refresh):
            return original(api_client, dockerRequirement, pull_image, runtimeContext)
        return get_image(api_client, dockerRequirement, pull_image, runtimeContext, lookup,
                         refresh)
    return arv_docker_get_image


def get_image(api_client, dockerRequirement, pull_image: bool, runtimeContext,
              lookup: ImageLookup, refresh: bool) -> str:
    """3.2.1's ``arv_docker_get_image`` for ``lookup``; the image collection's PDH.

    :raises WorkflowException: a-c-r's own messages ("Docker image '...' not
        available", "keepdocker exited with code N", "Could not find Docker
        image ..."), and one line for an image id naming several images.
    """
    from arvados_cwl import arvdocker
    from cwltool.errors import WorkflowException
    from schema_salad.sourceline import SourceLine

    project_uuid = runtimeContext.project_uuid
    cached_lookups = runtimeContext.cached_docker_lookups
    if "dockerImageId" not in dockerRequirement and "dockerPull" in dockerRequirement:
        dockerRequirement = copy.deepcopy(dockerRequirement)
        dockerRequirement["dockerImageId"] = dockerRequirement["dockerPull"]
        if hasattr(dockerRequirement, "lc"):
            dockerRequirement.lc.data["dockerImageId"] = dockerRequirement.lc.data["dockerPull"]
    image_id = dockerRequirement["dockerImageId"]
    if image_id in cached_lookups:
        return cached_lookups[image_id]

    with SourceLine(dockerRequirement, "dockerImageId", WorkflowException,
                    logger.isEnabledFor(logging.DEBUG)):
        out_of_project_images = find(api_client, lookup, None)
        if runtimeContext.copy_deps:
            images = find(api_client, lookup, project_uuid)
        else:
            images = out_of_project_images

        wanted = None
        if refresh:
            # --force-docker-pull: what the tag names now (pulled, or resolved
            # in its registry when no engine answers).
            wanted = local_image_id(dockerRequirement["dockerPull"], pull=True)
            if wanted is None:
                raise WorkflowException("Docker image '%s' not available" % image_id)
            images = named(images, wanted)
            out_of_project_images = named(out_of_project_images, wanted)
        elif runtimeContext.match_local_docker:
            local = arvdocker.determine_image_id(image_id)
            if local:
                images, out_of_project_images = matching_submitter(
                    images, out_of_project_images, local)

        if not images:
            if not out_of_project_images and wanted is None:
                check_locally(dockerRequirement, pull_image, runtimeContext)
            upload(api_client, project_uuid, lookup)
            images = find(api_client, lookup, project_uuid)
            if wanted is not None:
                images = named(images, wanted)

        if not images:
            raise WorkflowException("Could not find Docker image %s" % lookup.shown)
        pdh = api_client.collections().get(uuid=images[0][0]).execute()["portable_data_hash"]
        cached_lookups[image_id] = pdh
    return pdh


def find(api_client, lookup: ImageLookup, project_uuid: str | None) -> Listed:
    """The images ``lookup`` names, in a-c-r's order (``list_images_in_arv``'s).

    :raises WorkflowException: an image id prefix naming several images.
    """
    import arvados.commands.keepdocker
    from cwltool.errors import WorkflowException

    listed = arvados.commands.keepdocker.list_images_in_arv(
        api_client, 3, image_name=lookup.name, image_tag=lookup.tag, project_uuid=project_uuid)
    try:
        return lookup.chosen(listed)
    except AmbiguousImageId as error:
        raise WorkflowException(str(error)) from None


def named(images: Listed, image_id: str) -> Listed:
    """The first of ``images`` whose image is ``image_id`` (none: an empty list)."""
    return [image for image in images if image[1]["dockerhash"] == image_id][:1]


def matching_submitter(images: Listed, out_of_project_images: Listed,
                       local_image_id: str) -> tuple[Listed, Listed]:
    """3.2.1's ``--match-submitter-images`` filter, as it is (``found`` carries over)."""
    found = False
    for image in images:
        if image[1]["dockerhash"] == local_image_id:
            found = True
            images = [image]
            break
    if not found:
        images = []
    for image in out_of_project_images:
        if image[1]["dockerhash"] == local_image_id:
            found = True
            out_of_project_images = [image]
            break
    if not found:
        out_of_project_images = []
    return images, out_of_project_images


def check_locally(dockerRequirement, pull_image: bool, runtimeContext) -> None:
    """3.2.1's local check (cwltool's ``get_image``, which the launcher replaces)."""
    import cwltool.docker
    from cwltool.errors import WorkflowException

    image_id = dockerRequirement["dockerImageId"]
    try:
        job_class: Any = cwltool.docker.DockerCommandLineJob  # a-c-r builds it with six Nones
        job = job_class(None, None, None, None, None, None)
        result = job.get_image(dockerRequirement, pull_image,
                               runtimeContext.force_docker_pull,
                               runtimeContext.tmp_outdir_prefix)
        if not result:
            raise WorkflowException("Docker image '%s' not available" % image_id)
    except OSError as error:
        raise WorkflowException("While trying to get Docker image '%s', failed to execute "
                                "'docker': %s" % (image_id, error)) from None


def upload(api_client, project_uuid: str | None, lookup: ImageLookup) -> None:
    """3.2.1's upload: ``keepdocker.main([--project-uuid=P,] IMAGE [TAG])``."""
    import arvados.commands.keepdocker
    import arvados.commands.put
    from cwltool.errors import WorkflowException

    args = (["--project-uuid=" + project_uuid] if project_uuid else []) + list(lookup.upload)
    logger.info("Uploading Docker image %s", lookup.shown)
    try:
        arvados.commands.put.api_client = api_client
        arvados.commands.keepdocker.main(args, stdout=sys.stderr, install_sig_handlers=False,
                                         api=api_client)
    except SystemExit as error:
        if error.code:
            raise WorkflowException("keepdocker exited with code %s" % error.code) from None
