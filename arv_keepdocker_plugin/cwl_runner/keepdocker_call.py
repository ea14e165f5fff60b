"""``arvados.commands.keepdocker.main`` exactly as arvados-cwl-runner 3.2.1 calls it.

a-c-r 3.2.1 stores a missing image with (``arv_docker_get_image`` in
``sdk/cwl/arvados_cwl/arvdocker.py`` in the Arvados repository)::

    keepdocker.main([--project-uuid=UUID,] image_name, image_tag,
                    stdout=sys.stderr, install_sig_handlers=False, api=api_client)

where ``image_name`` and ``image_tag`` are the first two parts of the
workflow's ``dockerImageId`` split at every ``:``, passed without ``--``: a
workflow naming ``--source=docker-archive:/home/me/private.tar`` becomes the
option ``--source=docker-archive`` and the image ``/home/me/private.tar``.
Arvados' own keepdocker has no such option; :func:`arv_keepdocker_plugin.compat.main`
(the full parser, kept for Python callers) has.

:func:`main` replaces it while the launcher is installed. It accepts exactly
that shape, vets the image with :mod:`.workflow_images`, and calls
:func:`~arv_keepdocker_plugin.compat.main` with ``--`` before the image, so
nothing a workflow names is ever an option. Two more reasons the image and
the tag may not start with ``-``: no image name or tag does, and argparse in
Python 3.11 drops a ``--`` found among the positionals after ``--``.

A ``TRANSPORT:DETAILS`` name that the lookups let through reaches keepdocker
split (``docker-archive``, ``/tmp/app.tar``); :meth:`.WorkflowImages.original`
gives back the whole name, so the upload stores the image the lookup found.
An image the lookups resolved in its registry because no engine answered
(:meth:`.WorkflowImages.from_registry`) is stored as resolved, linked under
the ``IMAGE:TAG`` a-c-r asked for. Anything else keeps 3.2.1's meaning: a
bare image name and tag.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence

from ..errors import KeepdockerError
from ..names import split_transport
from .workflow_images import PROG, Refused, current, shown

PROJECT_OPTION = "--project-uuid="
#: An Arvados uuid (``services/api/app/models/arvados_model.rb``, ``uuid_regex``).
_UUID = re.compile(r"^[a-z0-9]{5}-[a-z0-9]{5}-[a-z0-9]{15}$")
#: A Docker tag (``distribution/reference``'s grammar: ``[\w][\w.-]{0,127}``).
_TAG = re.compile(r"^\w[\w.-]{0,127}$")


class UnexpectedCall(KeepdockerError):
    """keepdocker was called with arguments a-c-r 3.2.1 never passes (a usage error)."""

    exit_code = 2


def upload_arguments(arguments: Sequence[str]) -> list[str]:
    """This tool's arguments for a-c-r's ``[--project-uuid=UUID] IMAGE [TAG]``.

    ``[--project-uuid=UUID] -- REFERENCE`` or ``... -- IMAGE TAG``.
    Raises :class:`UnexpectedCall` for any other shape and :class:`Refused`
    for an image the workflow may not name.
    """
    from ..plugins import get_plugin_manager

    args = list(arguments)
    project: list[str] = []
    if args and args[0].startswith(PROJECT_OPTION):
        if not _UUID.match(args[0][len(PROJECT_OPTION):]):
            raise UnexpectedCall(f"{shown(args[0])}: not a project uuid")
        project = [args.pop(0)]
    if len(args) not in (1, 2):
        raise UnexpectedCall(
            f"{PROG} takes keepdocker arguments only as arvados-cwl-runner 3.2.1 passes them, "
            f"[--project-uuid=UUID] IMAGE [TAG]; got {len(args)} more")
    image, tag = args[0], (args[1] if len(args) == 2 else None)

    pm = get_plugin_manager()
    images = current()
    whole = images.original(image, tag) if tag is not None else None
    if whole is not None:
        images.admit(pm, whole)
        return project + ["--", whole]
    joined = image if tag is None else f"{image}:{tag}"
    if tag is not None and split_transport(joined, pm.sources.prefixes())[0] is not None:
        # A TRANSPORT:DETAILS name the lookups never let through (Arvados
        # already had something under a-c-r's split name): refuse it as such
        # when the workflow may not name that source.
        images.admit(pm, joined)
    images.admit(pm, image, tag)
    if tag is not None and not _TAG.match(tag):
        raise Refused(f"refused to store the image {shown(joined)} named by the workflow: "
                      f"{shown(tag)} is not a "
                      "Docker tag")
    return project + ["--", image] + ([] if tag is None else [tag])


def main(arguments: Sequence[str] | None = None, stdout=sys.stdout, stderr=sys.stderr,
         install_sig_handlers: bool = True, api=None):
    """``keepdocker.main`` for a-c-r 3.2.1: :func:`upload_arguments`, then ``compat.main``.

    Same signature, return value and exits as :func:`~arv_keepdocker_plugin.compat.main`;
    a refused image or an unexpected call is one line on stderr and
    ``SystemExit`` 1 or 2 (a-c-r: "keepdocker exited with code N"). An image
    the lookups resolved in its registry (no engine answered) is stored as
    resolved: nothing is fetched twice.
    """
    from ..cli import execute

    try:
        forwarded = upload_arguments(sys.argv[1:] if arguments is None else arguments)
    except Refused as error:
        current().report(error, logging.ERROR)
        sys.exit(error.exit_code)
    except KeepdockerError as error:
        logging.getLogger("arvados.keepdocker").error("%s", error)
        sys.exit(error.exit_code)
    resolved = current().from_registry(tuple(forwarded[forwarded.index("--") + 1:]))
    # compat.main's ends, with the image already resolved when there is one
    status, outcome = execute(forwarded, stdout=stdout, install_sig_handlers=install_sig_handlers,
                              api=api, prog=sys.argv[0], resolved=resolved)
    if status == 0 and outcome == "uploaded":
        return None
    sys.exit(status)
