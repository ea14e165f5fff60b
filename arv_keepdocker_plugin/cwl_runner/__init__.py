"""Run arvados-cwl-runner with this tool in place of Arvados' own keepdocker.

arvados-cwl-runner 3.2.1 (``sdk/cwl/arvados_cwl/arvdocker.py`` in the Arvados
repository, ``arv_docker_get_image``) finds or stores a workflow's images with
Arvados' keepdocker and the Docker CLI:

1. ``arvados.commands.keepdocker.list_images_in_arv`` looks in Arvados;
2. with ``--match-submitter-images`` (and by default with
   ``--create-workflow`` / ``--update-workflow``), ``determine_image_id`` runs
   ``docker images`` to prefer the copy that matches the local image;
3. when Arvados has no copy, ``cwltool.docker.DockerCommandLineJob(...).get_image``
   checks the local engine (``docker inspect``, then ``docker pull`` when asked);
4. ``arvados.commands.keepdocker.main`` uploads the image.

:func:`install` replaces all four, process-wide, by module attribute (a-c-r
looks each one up through its module at call time), and the function that
calls them:

* ``arvados.commands.keepdocker.list_images_in_arv`` becomes
  :func:`arv_keepdocker_plugin.compat.list_images_in_arv`;
* ``arvados.commands.keepdocker.main`` becomes :func:`keepdocker_main`
  (:mod:`.keepdocker_call`), which takes only what a-c-r passes and calls
  :func:`arv_keepdocker_plugin.compat.main` with ``--`` before the image;
* ``arvados_cwl.arvdocker.determine_image_id`` becomes
  :func:`determine_image_id`;
* ``cwltool.docker.DockerCommandLineJob`` becomes a subclass whose
  ``get_image`` asks this tool's image sources (:mod:`.image_checks`), and
  resolves a ``dockerPull`` in its registry when no engine answers;
* ``arv_docker_get_image`` itself, in ``arvados_cwl.arvdocker`` and in the two
  modules that import it by name (:data:`GET_IMAGE_MODULES`), is wrapped by
  :mod:`.acr_lookup`: registry ports, image ids and digests are looked up as
  the names they are, and ``--force-docker-pull`` resolves tags again.

A workflow is untrusted input: :mod:`.workflow_images` decides which image
names a workflow may use (bare names, ``docker://``, ``docker-daemon:``,
``containers-storage:``) unless the person running the launcher trusts it
(:data:`TRUST_FLAG`, :data:`TRUST_ENV`). The checks and the upload go
through the same rule and pick the source as the upload will.

Nothing changes on import: only :func:`install` (called by :func:`main`, the
``arv-keepdocker-cwl-runner`` command and ``python -m
arv_keepdocker_plugin.cwl_runner``) patches, and :func:`uninstall` restores.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import KeepdockerError
from . import acr_lookup
from .image_checks import determine_image_id, image_check_class, local_image_id
from .keepdocker_call import main as keepdocker_main
from .workflow_images import (
    PROG,
    TRUST_ENV,
    TRUST_FLAG,
    WorkflowImages,
    activate,
    trust_from_env,
)

__all__ = ["CwlRunnerUnavailable", "PROG", "TRUST_ENV", "TRUST_FLAG", "determine_image_id",
           "install", "installed", "keepdocker_main", "local_image_id", "main",
           "split_launcher_options", "uninstall"]

logger = logging.getLogger("arvados.keepdocker")

#: Where a-c-r 3.2.1 holds ``arv_docker_get_image``: its own module, and the two
#: that import it by name.
GET_IMAGE_MODULES = ("arvados_cwl.arvdocker", "arvados_cwl.arvcontainer",
                     "arvados_cwl.arvworkflow")
#: The arvados-cwl-runner release this launcher was written and tested against.
SUPPORTED_SERIES = "3.2."
#: What :func:`install` replaces: ``(module, attribute)``.
PATCHED: tuple[tuple[str, str], ...] = (
    ("arvados.commands.keepdocker", "main"),
    ("arvados.commands.keepdocker", "list_images_in_arv"),
    ("arvados_cwl.arvdocker", "determine_image_id"),
    ("cwltool.docker", "DockerCommandLineJob"),
) + tuple((module, "arv_docker_get_image") for module in GET_IMAGE_MODULES)
#: The launcher's own options: ``{flag: what it sets}``. They come first, before
#: arvados-cwl-runner's arguments, and a-c-r never sees them.
LAUNCHER_FLAGS = {TRUST_FLAG: "trust_workflow_sources"}

#: ``{(module, attribute): original}`` while installed.
_originals: dict[tuple[str, str], Any] = {}


class CwlRunnerUnavailable(KeepdockerError):
    """arvados-cwl-runner is missing, or is not a version whose parts we can replace."""


# -- installing ----------------------------------------------------------------

def _modules() -> dict[str, Any]:
    """The modules :func:`install` patches; :class:`CwlRunnerUnavailable` if any is missing."""
    try:
        arvados_cwl = importlib.import_module("arvados_cwl")
        modules = {name: importlib.import_module(name)
                   for name in sorted({module for module, _ in PATCHED})}
    except ImportError as error:
        raise CwlRunnerUnavailable(
            "arvados-cwl-runner is not installed "
            f"({str(error).splitlines()[0] if str(error) else type(error).__name__}); install it "
            "with "
            "pip install 'arv-keepdocker-plugin[cwl]'") from None
    version = getattr(arvados_cwl, "__version__", "unknown")
    for module, attribute in PATCHED:
        if not hasattr(modules[module], attribute):
            raise CwlRunnerUnavailable(
                f"arvados-cwl-runner {version} is not supported: {module}.{attribute} is missing")
    if not str(version).startswith(SUPPORTED_SERIES):
        logger.warning("arvados-cwl-runner %s: %s was written for %sx; its image "
                       "lookups may not go through this tool", version, PROG, SUPPORTED_SERIES)
    return modules


def installed() -> bool:
    """Whether :func:`install` is in effect in this process."""
    return bool(_originals)


def install(trust_workflow_sources: bool | None = None) -> None:
    """Make arvados-cwl-runner use this tool for image lookups and uploads, process-wide.

    Replaces the module attributes in :data:`PATCHED` (see the module
    docstring). ``trust_workflow_sources`` lets workflows name any image
    source (see :mod:`.workflow_images`); ``None`` reads :data:`TRUST_ENV`.
    Idempotent: while installed, a second call changes nothing;
    :func:`uninstall` undoes it. Raises :class:`CwlRunnerUnavailable` (one
    line) when arvados-cwl-runner is not installed or lacks one of those
    attributes, and a :class:`~arv_keepdocker_plugin.errors.KeepdockerError`
    for a malformed :data:`TRUST_ENV`; nothing is patched then.
    """
    if installed():
        return
    trust = trust_from_env() if trust_workflow_sources is None else trust_workflow_sources
    modules = _modules()
    from .. import compat

    docker = modules["cwltool.docker"]
    get_image = acr_lookup.replacement(modules["arvados_cwl.arvdocker"].arv_docker_get_image)
    replacements = {  # the keys are PATCHED's
        ("arvados.commands.keepdocker", "main"): keepdocker_main,
        ("arvados.commands.keepdocker", "list_images_in_arv"): compat.list_images_in_arv,
        ("arvados_cwl.arvdocker", "determine_image_id"): determine_image_id,
        ("cwltool.docker", "DockerCommandLineJob"):
            image_check_class(docker.DockerCommandLineJob),
    }
    replacements.update({(module, "arv_docker_get_image"): get_image
                         for module in GET_IMAGE_MODULES})
    activate(WorkflowImages(trust_sources=trust))
    for (module, attribute), replacement in replacements.items():
        _originals[(module, attribute)] = getattr(modules[module], attribute)
        setattr(modules[module], attribute, replacement)
    logger.debug("arvados-cwl-runner now finds and stores images through %s%s", __name__,
                 " (workflows may name any image source)" if trust else "")


def uninstall() -> None:
    """Put back what :func:`install` replaced (nothing happens if it is not installed)."""
    while _originals:
        (module, attribute), original = _originals.popitem()
        setattr(sys.modules[module], attribute, original)
    activate(None)


# -- the command ----------------------------------------------------------------

def split_launcher_options(args: Sequence[str]) -> tuple[dict[str, bool], list[str]]:
    """``({setting: True}, the rest)``: the leading :data:`LAUNCHER_FLAGS` and a-c-r's arguments.

    Only leading flags are the launcher's: after the first other argument
    everything is arvados-cwl-runner's (its workflow inputs included), so a
    workflow input can never be taken for a launcher option.
    """
    settings: dict[str, bool] = {}
    rest = list(args)
    while rest and rest[0] in LAUNCHER_FLAGS:
        settings[LAUNCHER_FLAGS[rest.pop(0)]] = True
    return settings, rest


def main(argv: Sequence[str] | None = None) -> int:
    """``arv-keepdocker-cwl-runner [LAUNCHER OPTIONS] ARGS``: :func:`install`, then
    ``arvados-cwl-runner ARGS``.

    The launcher's options (:data:`LAUNCHER_FLAGS`) come first and are removed
    before arvados-cwl-runner parses the rest. Returns arvados-cwl-runner's
    exit status (its own ``SystemExit``, as for ``--version`` or a usage
    error, passes through); 1 with a one-line message when
    arvados-cwl-runner cannot be used, 2 for a malformed :data:`TRUST_ENV`.
    """
    settings, args = split_launcher_options(sys.argv[1:] if argv is None else argv)
    try:
        install(trust_workflow_sources=settings.get("trust_workflow_sources"))
    except KeepdockerError as error:
        sys.stderr.write(f"{PROG}: {error}\n")
        return error.exit_code
    import arvados_cwl
    status = arvados_cwl.main(args, stdout=sys.stdout, stderr=sys.stderr)
    return int(status or 0)
