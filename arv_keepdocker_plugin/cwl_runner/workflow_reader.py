"""The images a CWL document names, read with the CWL project's own tools (cwl-utils).

``cwl_utils.docker_extract.traverse`` (cwl-utils, installed with
arvados-cwl-runner by the ``[cwl]`` extra) walks a process and, for a
workflow, every step, nested workflows and packed ``$graph`` documents
included, yielding each ``DockerRequirement``. Two things are this module's
own, because a workflow is someone else's input:

* **No network, and only local documents.** The documents are loaded with a
  fetcher that reads ``file:`` URIs only (:class:`LocalFetcher`): a
  ``$import`` or ``$include`` of anything else fails with one line, and a
  reference is never checked over the network. Before ``traverse`` runs,
  every step's ``run:`` that is a URI is loaded here (:func:`load_runs`),
  once per document, and put in place of the URI, so ``traverse`` never
  loads anything itself; a ``run:`` naming a remote URL is not loaded but
  reported (:attr:`WorkflowRead.unread`), as is a cycle of ``run:``.
* **Names as written.** ``traverse`` appends ``:latest`` to a ``dockerPull``
  that has no ``:`` (in place); the value read here is the one written in the
  document (recorded before ``traverse`` runs), and names are read with this
  tool's rules (:mod:`.lookup_names`).

A packed ``$graph`` with a ``#main`` is read from ``#main``; without one (and
without a ``#fragment`` in the path), from every process in the graph.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import urllib.parse
from pathlib import Path
from typing import Any

from ..errors import KeepdockerError, printable

#: ``DockerRequirement`` fields, in the order they are reported.
FIELDS = ("dockerPull", "dockerLoad", "dockerFile", "dockerImport", "dockerImageId")
#: What the command says when the ``[cwl]`` extra is missing.
INSTALL = "pip install 'arv-keepdocker-plugin[cwl]'"
#: How much of a document's text a message shows.
SHOWN = 200


class CwlUtilsMissing(KeepdockerError):
    """cwl-utils is not installed (the ``[cwl]`` extra)."""


class WorkflowUnreadable(KeepdockerError):
    """The CWL document cannot be read (missing, invalid, or it imports a remote file)."""


class RemoteDocument(KeepdockerError):
    """A document names a remote URL to load: nothing is fetched from the network."""


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One ``DockerRequirement`` as the document writes it.

    :ivar fields: the fields it sets (of :data:`FIELDS`), with their values.
    """

    fields: tuple[tuple[str, str], ...]

    def get(self, field: str) -> str | None:
        return dict(self.fields).get(field)


@dataclasses.dataclass
class WorkflowRead:
    """What :func:`read_workflow` found.

    :ivar requirements: every ``DockerRequirement``, once each, in the order
        ``traverse`` met them.
    :ivar unread: one line for each ``run:`` that was not read (a remote URL,
        a cycle).
    """

    requirements: list[Requirement] = dataclasses.field(default_factory=list)
    unread: list[str] = dataclasses.field(default_factory=list)


def _cwl_utils():
    """``(cwl_utils.parser, cwl_utils.docker_extract)``, or one line naming the install."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import cwl_utils.docker_extract as docker_extract
        import cwl_utils.parser as parser
    except ImportError as error:
        raise CwlUtilsMissing("--cwl reads workflows with cwl-utils, which is not installed "
                              "({}); install it with {}".format(
                                  str(error).splitlines()[0] if str(error) else "ImportError",
                                  INSTALL)) from None
    finally:
        # cwl_utils.image_puller (imported by docker_extract) calls
        # logging.basicConfig() on import: every message would print twice.
        root.handlers[:] = handlers
        root.setLevel(level)
    return parser, docker_extract


def local_fetcher_class():
    """:class:`LocalFetcher`, built on schema-salad's ``DefaultFetcher`` (imported late)."""
    from schema_salad.fetcher import DefaultFetcher

    class LocalFetcher(DefaultFetcher):
        """schema-salad's fetcher for ``file:`` URIs only: never a network request.

        A reference to anything else is taken to exist (it is never followed:
        :func:`load_runs` reports remote ``run:``), and fetching one raises
        :class:`RemoteDocument`.
        """

        def __init__(self) -> None:
            super().__init__({}, None)

        def fetch_text(self, url: str, content_types: list[str] | None = None) -> str:
            if not is_local(url):
                raise RemoteDocument(f"refused to fetch {shown(url)}: --cwl reads local files "
                                     "only, "
                                     "never the network")
            return str(super().fetch_text(url, content_types))

        def check_exists(self, url: str) -> bool:
            if not is_local(url):
                return True
            return bool(super().check_exists(url))

    return LocalFetcher


def is_local(uri: str) -> bool:
    return urllib.parse.urlsplit(uri).scheme == "file"


def shown(text: str) -> str:
    text = printable(str(text))
    return "'{}'".format(text if len(text) <= SHOWN else text[:SHOWN] + "...")


class Reader:
    """Loads one workflow's documents, each once, with the local-only fetcher."""

    def __init__(self) -> None:
        self.parser, self.docker_extract = _cwl_utils()
        self.fetcher = local_fetcher_class()()
        self.loaded: dict[str, Any] = {}
        self.unread: list[str] = []
        #: ``id(requirement object) -> {field: value as written}``.
        self.written: dict[int, dict[str, str]] = {}

    def load(self, uri: str, load_all: bool = False) -> Any:
        """The process (or, with ``load_all``, the processes) at ``uri``."""
        from cwl_utils.parser import cwl_v1_2

        document, _, fragment = uri.partition("#")
        options = cwl_v1_2.LoadingOptions(fetcher=self.fetcher, fileuri=document,
                                          baseuri=document.rsplit("/", 1)[0] + "/")
        return self.parser.load_document_by_uri(uri, loadingOptions=options,
                                                load_all=load_all)

    def top(self, path: str) -> list[Any]:
        """The processes to read ``path`` from: ``#main`` (or the fragment), else all."""
        from cwl_utils.errors import GraphTargetMissingException

        location, _, fragment = path.partition("#")
        uri = Path(location).resolve().as_uri() + ("#" + fragment if fragment else "")
        if not os.path.exists(location):
            raise WorkflowUnreadable(f"cannot read the workflow {shown(location)}: no such file")
        try:
            return [self.load(uri)]
        except GraphTargetMissingException:
            if fragment:
                raise
        loaded = self.load(uri, load_all=True)
        return list(loaded) if isinstance(loaded, list) else [loaded]

    def load_runs(self, process: Any, path: tuple[str, ...] = ()) -> None:
        """Load every step's ``run:`` URI (each document once) and put it in place."""
        self.note_written(process)
        steps = getattr(process, "steps", None)
        if not steps:
            return
        kept = []
        for step in steps:
            self.note_written(step)
            run = step.run
            if isinstance(run, str):
                if not is_local(run):
                    self.unread.append(f"refused the run: {shown(run)} of step {shown(step.id)}: a "
                                       "remote document "
                                       "(--cwl reads local files only, never the network)"
                                       )
                    continue
                if run in path:
                    self.unread.append(f"refused the run: {shown(run)} of step {shown(step.id)}: "
                                       "it runs a workflow "
                                       "that contains it")
                    continue
                if run not in self.loaded:
                    self.loaded[run] = self.load(run)
                    self.load_runs(self.loaded[run], path + (run,))
                step.run = self.loaded[run]
            elif run is not None:
                self.load_runs(run, path)
            kept.append(step)
        # a step not read is left out, so that traverse never loads it
        process.steps = kept

    def note_written(self, process: Any) -> None:
        """Record each ``DockerRequirement``'s fields before ``traverse`` rewrites them."""
        for req in self.docker_extract.extract_docker_reqs(process):
            self.written.setdefault(id(req), {
                field: getattr(req, field) for field in FIELDS
                if isinstance(getattr(req, field, None), str)})

    def requirements(self, processes: list[Any]) -> list[Requirement]:
        found: list[Requirement] = []
        seen: set[tuple[tuple[str, str], ...]] = set()
        for process in processes:
            for req in self.docker_extract.traverse(process):
                written = self.written.get(id(req))
                if written is None:  # a step's own requirement object, met first here
                    written = {field: getattr(req, field) for field in FIELDS
                               if isinstance(getattr(req, field, None), str)}
                fields = tuple((f, written[f]) for f in FIELDS if f in written)
                if fields and fields not in seen:
                    seen.add(fields)
                    found.append(Requirement(fields))
        return found


def read_workflow(path: str) -> WorkflowRead:
    """Every ``DockerRequirement`` of the CWL document at ``path`` (``PATH[#ID]``).

    :raises CwlUtilsMissing: cwl-utils is not installed.
    :raises WorkflowUnreadable: the document cannot be read (one line).
    """
    reader = Reader()
    try:
        processes = reader.top(path)
        for process in processes:
            reader.load_runs(process, (getattr(process, "id", None) or "",))
        requirements = reader.requirements(processes)
    except KeepdockerError as error:
        if isinstance(error, WorkflowUnreadable):
            raise
        raise WorkflowUnreadable(f"cannot read the workflow {shown(path)}: {error}") from None
    except RecursionError:
        raise WorkflowUnreadable(f"cannot read the workflow {shown(path)}: nested too "
                                 "deeply") from None
    except BaseException as error:
        if isinstance(error, (KeyboardInterrupt, SystemExit, MemoryError)):
            raise
        raise WorkflowUnreadable(f"cannot read the workflow {shown(path)}: "
                                 f"{one_line(error)}") from None
    return WorkflowRead(requirements, reader.unread)


def one_line(error: BaseException) -> str:
    """A parser's (often multi-line) message as one line."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    text = printable(text or type(error).__name__)
    return text if len(text) <= 2 * SHOWN else text[:2 * SHOWN] + "..."
