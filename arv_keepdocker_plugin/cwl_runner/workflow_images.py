"""What a workflow may name as its image, and what the person running the launcher allows.

A workflow is someone else's input. arvados-cwl-runner 3.2.1 hands each
``DockerRequirement``'s name to the image lookups and then to keepdocker
(``arv_docker_get_image`` in ``sdk/cwl/arvados_cwl/arvdocker.py`` in the
Arvados repository), so a workflow author chooses what this tool is asked to
read on the submitter's machine. Without the submitter's opt-in a workflow
may name only:

* a bare ``NAME[:TAG]`` or image id, served by the source the
  ``keepdocker_default_source`` hook picks (the Docker engine if it answers,
  else podman), as ``arv keepdocker NAME`` is;
* ``docker://`` references: a registry, which is what ``dockerPull`` means;
* ``docker-daemon:`` and ``containers-storage:`` names, without a store spec
  (``containers-storage:[driver@/root+/run]NAME`` would name a directory).

Each of those must be served by this package's own default plugin. Every
other source (``docker-archive:``, ``oci-archive:``, ``oci:``, any
third-party source, a default source replaced by a plugin) reads what the
submitter can read, and cwltool's ``dockerLoad`` and ``dockerImport`` load a
file or URL on this machine: those need the opt-in, :data:`TRUST_FLAG` or
:data:`TRUST_ENV`. A name starting with ``-`` is refused even then: it is
never an image, and a-c-r would hand it to keepdocker as an option.

:class:`WorkflowImages` holds one launcher run's decision and what it has
seen: the references the lookups let through, by the ``(name, tag)`` pair
a-c-r 3.2.1 will pass to keepdocker for them (see :meth:`WorkflowImages.original`),
and the images the lookups resolved in their registry because no engine
answered (:meth:`WorkflowImages.from_registry`), which the upload then stores.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import KeepdockerError, printable

if TYPE_CHECKING:
    from ..steps.registry_fallback import FromRegistry
    from ..steps.resolve import PickedSource

logger = logging.getLogger("arvados.keepdocker")

PROG = "arv-keepdocker-cwl-runner"
#: The launcher flag that lets workflows name any image source.
TRUST_FLAG = "--trust-workflow-sources"
#: The environment variable that does the same (``1``; ``0`` or unset: not).
TRUST_ENV = "ARV_KEEPDOCKER_TRUST_WORKFLOW_SOURCES"
#: The sources any workflow may name: ``{source name: the default plugin serving it}``.
WORKFLOW_SOURCES: Mapping[str, str] = {
    "docker-daemon": "docker_daemon",
    "containers-storage": "containers_storage",
    "docker": "registry",
}
#: Engine stores, where details starting ``[`` would be a store spec (a directory).
ENGINE_STORES = ("docker-daemon", "containers-storage")
#: How much of a workflow's text a message shows.
SHOWN = 200


class Refused(KeepdockerError):
    """A workflow named an image this launcher will not look up or store."""


class LauncherUsageError(KeepdockerError):
    """The launcher's own options or environment are malformed (exit status 2)."""

    exit_code = 2


def shown(text: str) -> str:
    """``text`` from a workflow, escaped and cut to :data:`SHOWN` characters, quoted."""
    text = printable(text)
    if len(text) > SHOWN:
        text = text[:SHOWN] + "..."
    return f"'{text}'"


def trust_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """:data:`TRUST_ENV`: ``1`` trusts, ``0`` or unset does not; anything else is an error."""
    value = (os.environ if environ is None else environ).get(TRUST_ENV, "")
    if value in ("", "0"):
        return False
    if value == "1":
        return True
    raise LauncherUsageError(f"{TRUST_ENV}={shown(value)}: use 1 to let workflows name any image "
                             "source, or 0"
                             )


def acr_split(reference: str) -> tuple[str, str]:
    """The ``(image_name, image_tag)`` a-c-r 3.2.1 passes to keepdocker for ``reference``.

    ``arv_docker_get_image`` splits ``dockerImageId`` at every ``:`` and keeps
    the first two parts (``sp[0]``, ``sp[1]`` or ``latest``).
    """
    parts = reference.split(":")
    return parts[0], parts[1] if len(parts) > 1 else "latest"


class WorkflowImages:
    """One launcher run's rule for a workflow's image names, and what it has let through.

    Shared by the lookups and the upload wrapper (a-c-r may look images up
    from several threads).
    """

    def __init__(self, trust_sources: bool = False) -> None:
        #: Whether the person running the launcher lets workflows name any source.
        self.trust_sources = trust_sources
        self._lock = threading.Lock()
        self._split: dict[tuple[str, str], set[str]] = {}
        self._from_registry: dict[tuple[str, ...], FromRegistry] = {}
        self._reported: set[str] = set()

    # -- the rule ------------------------------------------------------------

    def admit(self, pm, reference: str, tag: str | None = None,
              base: argparse.Namespace | None = None
              ) -> tuple[argparse.Namespace, PickedSource]:
        """The options and source for ``reference`` (and a separate ``tag``), if allowed.

        The options are this tool's own, parsed from ``-- REFERENCE [TAG]``, so
        nothing in the names can be an option; or, given ``base`` (the command
        line of ``arv keepdocker --cwl``), a copy of it naming ``reference``, so
        its registry options apply. Raises :class:`Refused` (not logged: see
        :meth:`report`) before anything is parsed by a source or opened.
        """
        for text in (reference, tag or ""):
            if text.startswith("-"):
                raise Refused(f"refused the image {shown(text)} named by the workflow: an image "
                              "name "
                              "cannot start with '-' (arvados-cwl-runner would pass it to "
                              "keepdocker as an option)")
        from ..cli import build_parser
        from ..steps.resolve import pick_source

        if base is not None:
            options = argparse.Namespace(**dict(vars(base), image=reference, tag=tag,
                                                source=None))
        else:
            options = build_parser(pm, PROG).parse_args(
                ["--", reference] + ([] if tag is None else [tag]))
        picked = pick_source(pm, options)
        sources = pm.sources
        if self.trust_sources or picked.name not in sources:
            # No such source (every engine source disabled): nothing can parse
            # the name, and choosing the source says so in one line.
            return options, picked
        plugin = sources.plugin_of(picked.name)
        if WORKFLOW_SOURCES.get(picked.name) != plugin:
            served = "" if picked.name not in WORKFLOW_SOURCES else (
                f" (served by plugin {plugin!r})")
            raise self._refusal(reference, "a workflow may name only NAME[:TAG], docker://, "
                                "docker-daemon: and containers-storage: images, not the "
                                f"{shown(str(picked.name))} "
                                f"source{served}")
        if picked.name in ENGINE_STORES and picked.details.startswith("["):
            raise self._refusal(reference, f"a workflow cannot choose the {picked.name} store "
                                "([...] names a directory on this machine)")
        return options, picked

    def admit_registry_fallback(self, pm, reference: str) -> None:
        """Refuse to take ``reference`` from its registry when another plugin serves
        ``docker://`` (unless trusted): the fallback is this package's registry source."""
        sources = pm.sources
        name = "docker"
        if self.trust_sources or (name in sources
                                  and sources.plugin_of(name) == WORKFLOW_SOURCES[name]):
            return
        raise self._refusal(reference, "no engine answers, and the docker:// source that "
                            "would take it from its registry is served by plugin "
                            f"{sources.plugin_of(name) if name in sources else None!r}")

    def admit_cwltool_load(self, field: str, value: str) -> None:
        """Refuse ``dockerLoad`` / ``dockerImport`` (cwltool loads a file or URL) unless trusted."""
        if not self.trust_sources:
            raise self._refusal(f"{field}: {value}",
                                "cwltool would load it from a file or URL on this machine",
                                quoted=False)

    def _refusal(self, what: str, why: str, quoted: bool = True) -> Refused:
        return Refused(f"refused the image {shown(what) if quoted else printable(what)[:SHOWN]} "
                       f"named by the workflow: {why}; if you trust the "
                       f"workflow, run {PROG} {TRUST_FLAG} (or set {TRUST_ENV}=1)")

    def report(self, error: Refused, level: int = logging.WARNING) -> None:
        """Log ``error`` as one line, once per launcher run."""
        message = str(error)
        with self._lock:
            if message in self._reported:
                return
            self._reported.add(message)
        logger.log(level, "%s", message)

    # -- names as a-c-r splits them ------------------------------------------

    def remember(self, reference: str, picked: PickedSource) -> None:
        """Note a ``TRANSPORT:DETAILS`` reference the lookups let through.

        a-c-r 3.2.1 will ask keepdocker to store it as :func:`acr_split`'s
        pair; :meth:`original` turns that pair back into ``reference``. Bare
        names reach keepdocker as 3.2.1 splits them (3.2.1's own behaviour).
        """
        if picked.by_default:
            return
        with self._lock:
            self._split.setdefault(acr_split(reference), set()).add(reference)

    def remember_registry(self, upload: tuple[str, ...], found: FromRegistry) -> None:
        """Note that the image keepdocker will be asked to store as ``upload``
        (``IMAGE [TAG]``) was resolved in its registry: the upload stores ``found``."""
        with self._lock:
            self._from_registry[tuple(upload)] = found

    def from_registry(self, upload: tuple[str, ...]) -> FromRegistry | None:
        """What :meth:`remember_registry` noted for ``upload``, if anything."""
        with self._lock:
            return self._from_registry.get(tuple(upload))

    def original(self, image: str, tag: str) -> str | None:
        """The reference the lookups let through that a-c-r split into ``image``, ``tag``.

        ``None`` when there is none; :class:`Refused` when two references
        split the same way (``docker-daemon:app:1`` and ``docker-daemon:app:2``
        both become ``docker-daemon``, ``app``): which one a-c-r means is lost.
        """
        with self._lock:
            found = sorted(self._split.get((image, tag), ()))
        if len(found) > 1:
            raise Refused("refused to store {} {}: arvados-cwl-runner 3.2.1 passes the "
                          "workflow's images {} to keepdocker under that same name".format(
                              shown(image), shown(tag), ", ".join(shown(f) for f in found[:5])))
        return found[0] if found else None


#: The rule in force: set by :func:`activate`, an untrusting one otherwise.
_current: WorkflowImages | None = None


def activate(images: WorkflowImages | None) -> None:
    """Make ``images`` the rule the lookups and the upload wrapper use (``None``: none)."""
    global _current
    _current = images


def current() -> WorkflowImages:
    """The rule in force; when the launcher is not installed, a fresh untrusting one."""
    return _current if _current is not None else WorkflowImages()
