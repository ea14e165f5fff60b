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
looks each one up through its module at call time):

* ``arvados.commands.keepdocker.main`` and ``.list_images_in_arv`` become
  :func:`arv_keepdocker_plugin.compat.main` and ``.list_images_in_arv``;
* ``arvados_cwl.arvdocker.determine_image_id`` becomes
  :func:`determine_image_id`;
* ``cwltool.docker.DockerCommandLineJob`` becomes a subclass whose
  ``get_image`` asks this tool's image sources.

Both checks go through :func:`local_image_id`, which picks the source as the
upload will, so the checks and the upload agree on where the image is.

Nothing changes on import: only :func:`install` (called by :func:`main`, the
``arv-keepdocker-cwl-runner`` command and ``python -m
arv_keepdocker_plugin.cwl_runner``) patches, and :func:`uninstall` restores.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import KeepdockerError

__all__ = ["CwlRunnerUnavailable", "determine_image_id", "install", "installed",
           "local_image_id", "main", "uninstall"]

logger = logging.getLogger("arvados.keepdocker")

PROG = "arv-keepdocker-cwl-runner"
#: The arvados-cwl-runner release this launcher was written and tested against.
SUPPORTED_SERIES = "3.2."
#: What :func:`install` replaces: ``(module, attribute)``.
PATCHED: Tuple[Tuple[str, str], ...] = (
    ("arvados.commands.keepdocker", "main"),
    ("arvados.commands.keepdocker", "list_images_in_arv"),
    ("arvados_cwl.arvdocker", "determine_image_id"),
    ("cwltool.docker", "DockerCommandLineJob"),
)

#: ``{(module, attribute): original}`` while installed.
_originals: Dict[Tuple[str, str], Any] = {}


class CwlRunnerUnavailable(KeepdockerError):
    """arvados-cwl-runner is missing, or is not a version whose parts we can replace."""


# -- the one place that asks the core ------------------------------------------

def local_image_id(reference: str, pull: bool = False) -> Optional[str]:
    """The id of ``reference`` in the source a bare ``arv keepdocker REFERENCE`` uses.

    ``reference`` is what a ``DockerRequirement`` names (``NAME[:TAG]``, an
    image id, or ``TRANSPORT:DETAILS``). The source is chosen exactly as the
    upload that follows will choose it: the transport prefix, else the
    ``keepdocker_default_source`` hook (the Docker engine if it answers, else
    podman). With ``pull`` the source pulls the image first.

    Returns ``sha256:<hex>``, or ``None`` when the image cannot be had; the
    reason (not found, no engine, bad name, failed pull) is logged as one line.
    Never raises for an absent image or a bad reference.
    """
    from .cli import build_parser
    from .plugins import get_plugin_manager
    from .steps.resolve import choose_source

    pm = get_plugin_manager()
    try:
        options = build_parser(pm, PROG).parse_args(["--", reference])
        source, parsed, _by_default = choose_source(pm, options)
        if pull:
            source.pull(parsed, options)
        return source.resolve(parsed, options).image_id
    except KeepdockerError as error:
        logger.log(logging.WARNING if pull else logging.INFO,
                   "image %s %s: %s", reference, "pull failed" if pull else "not found locally",
                   error)
        return None


# -- the checks a-c-r runs against the local engine ----------------------------

def determine_image_id(dockerImageId: str) -> Optional[str]:
    """a-c-r 3.2.1's ``arvdocker.determine_image_id``, answered by this tool's sources.

    The local image's id (``sha256:<hex>``) for a ``DockerRequirement``'s
    ``dockerImageId``, or ``None`` when there is no such local image; a-c-r
    then uploads it again only if it can find it.
    """
    return local_image_id(dockerImageId)


def _image_check_class(base: type) -> type:
    """A subclass of cwltool's ``DockerCommandLineJob`` whose ``get_image`` asks our sources.

    A subclass, not a look-alike, so anything else that finds
    ``cwltool.docker.DockerCommandLineJob`` while installed still gets a
    working Docker job class.
    """
    class SourcesImageCheck(base):
        """``get_image`` as a-c-r 3.2.1 uses it, answered by this tool's sources."""

        def get_image(self, docker_requirement: Dict[str, str], pull_image: bool,
                      force_pull: bool, tmp_outdir_prefix: str) -> bool:
            """True when the image is now where ``arv keepdocker NAME`` will find it.

            Same contract as cwltool's: fills in ``dockerImageId`` from
            ``dockerPull``; pulls ``dockerPull`` when ``pull_image`` and the
            image is missing (or ``force_pull``); returns False when the image
            cannot be had, so that a-c-r reports "Docker image ... not
            available". ``dockerFile`` (a build) and ``dockerLoad`` /
            ``dockerImport`` (when the image is missing) are left to cwltool's
            Docker CLI code: no source of ours builds, loads or imports.
            """
            if "dockerImageId" not in docker_requirement and "dockerPull" in docker_requirement:
                docker_requirement["dockerImageId"] = docker_requirement["dockerPull"]
            if "dockerFile" in docker_requirement:
                return bool(super().get_image(docker_requirement, pull_image, force_pull,
                                              tmp_outdir_prefix))
            image = docker_requirement.get("dockerImageId")
            found = image is not None and local_image_id(image) is not None
            if (force_pull or not found) and pull_image:
                if "dockerPull" in docker_requirement:
                    found = local_image_id(docker_requirement["dockerPull"], pull=True) is not None
                elif "dockerLoad" in docker_requirement or "dockerImport" in docker_requirement:
                    return bool(super().get_image(docker_requirement, pull_image, force_pull,
                                                  tmp_outdir_prefix))
            return found

    SourcesImageCheck.__qualname__ = SourcesImageCheck.__name__
    return SourcesImageCheck


# -- installing ----------------------------------------------------------------

def _modules() -> Dict[str, Any]:
    """The modules :func:`install` patches; :class:`CwlRunnerUnavailable` if any is missing."""
    try:
        arvados_cwl = importlib.import_module("arvados_cwl")
        modules = {name: importlib.import_module(name)
                   for name in sorted({module for module, _ in PATCHED})}
    except ImportError as error:
        raise CwlRunnerUnavailable(
            "arvados-cwl-runner is not installed ({}); install it with "
            "pip install 'arv-keepdocker-plugin[cwl]'".format(
                str(error).splitlines()[0] if str(error) else type(error).__name__)) from None
    version = getattr(arvados_cwl, "__version__", "unknown")
    for module, attribute in PATCHED:
        if not hasattr(modules[module], attribute):
            raise CwlRunnerUnavailable(
                "arvados-cwl-runner {} is not supported: {}.{} is missing".format(
                    version, module, attribute))
    if not str(version).startswith(SUPPORTED_SERIES):
        logger.warning("arvados-cwl-runner %s: %s was written for %sx; its image "
                       "lookups may not go through this tool", version, PROG, SUPPORTED_SERIES)
    return modules


def installed() -> bool:
    """Whether :func:`install` is in effect in this process."""
    return bool(_originals)


def install() -> None:
    """Make arvados-cwl-runner use this tool for image lookups and uploads, process-wide.

    Replaces the module attributes in :data:`PATCHED` (see the module
    docstring). Idempotent; :func:`uninstall` undoes it. Raises
    :class:`CwlRunnerUnavailable` (one line) when arvados-cwl-runner is not
    installed or lacks one of those attributes; nothing is patched then.
    """
    if installed():
        return
    modules = _modules()
    from . import compat

    docker = modules["cwltool.docker"]
    replacements = {  # the keys are PATCHED's
        ("arvados.commands.keepdocker", "main"): compat.main,
        ("arvados.commands.keepdocker", "list_images_in_arv"): compat.list_images_in_arv,
        ("arvados_cwl.arvdocker", "determine_image_id"): determine_image_id,
        ("cwltool.docker", "DockerCommandLineJob"):
            _image_check_class(docker.DockerCommandLineJob),
    }
    for (module, attribute), replacement in replacements.items():
        _originals[(module, attribute)] = getattr(modules[module], attribute)
        setattr(modules[module], attribute, replacement)
    logger.debug("arvados-cwl-runner now finds and stores images through %s", __name__)


def uninstall() -> None:
    """Put back what :func:`install` replaced (nothing happens if it is not installed)."""
    while _originals:
        (module, attribute), original = _originals.popitem()
        setattr(sys.modules[module], attribute, original)


# -- the command ----------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> int:
    """``arv-keepdocker-cwl-runner ARGS``: :func:`install`, then ``arvados-cwl-runner ARGS``.

    Returns arvados-cwl-runner's exit status (its own ``SystemExit``, as for
    ``--version`` or a usage error, passes through); 1 with a one-line
    message when arvados-cwl-runner cannot be used.
    """
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    try:
        install()
    except CwlRunnerUnavailable as error:
        sys.stderr.write("{}: {}\n".format(PROG, error))
        return 1
    import arvados_cwl
    status = arvados_cwl.main(args, stdout=sys.stdout, stderr=sys.stderr)
    return int(status or 0)


if __name__ == "__main__":
    # Run the importable module's main, not this __main__ copy, so that one
    # set of patches exists however the launcher was started.
    from arv_keepdocker_plugin.cwl_runner import main as _main

    sys.exit(_main())
