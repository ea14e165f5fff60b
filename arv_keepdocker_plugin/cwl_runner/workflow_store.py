"""``arv keepdocker --cwl WORKFLOW``: store every image a workflow names, ahead of time.

"Make sure every image this workflow needs is in project P" before a run or a
release, as ``cwl-docker-extract``, Toil's prepull and ``nf-core download``
do for other engines. Each ``dockerPull`` of the document
(:mod:`.workflow_reader`) goes through the steps arvados-cwl-runner takes for
it when it submits (:mod:`.acr_lookup`), with the launcher's rules:

1. the workflow rule (:mod:`.workflow_images`): a workflow is untrusted input,
   so it may name only bare names, ``docker://``, ``docker-daemon:`` and
   ``containers-storage:`` images unless the person running the command
   trusts it (``--trust-workflow-sources`` or
   ``ARV_KEEPDOCKER_TRUST_WORKFLOW_SOURCES=1``);
2. the lookup a-c-r makes (:mod:`.lookup_names`): in ``--project-uuid``,
   else anywhere the user can read. A tag already there is not resolved
   again (``--refresh`` resolves it, and stores a new image only if it
   moved); one stored elsewhere is copied into the project;
3. otherwise the image is checked where ``arv keepdocker NAME`` looks (the
   Docker engine if it answers, else podman), pulled if missing, and when no
   engine answers resolved in its registry; then stored through the
   pipeline, linked under the name a-c-r looks up.

``dockerLoad``, ``dockerFile``, ``dockerImport`` and ``dockerImageId``-only
requirements are skipped with one line each (nothing here loads, builds or
imports); a ``run:`` naming a remote URL is not read (one line, no network).
Every image is tried; the exit status is 1 if any could not be stored.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from ..errors import KeepdockerError, printable
from ..steps.outcome import COPIED, FOUND, LINKED, STORED
from .image_checks import resolve_for_workflow
from .lookup_names import ImageLookup, lookup_for
from .workflow_images import Refused, WorkflowImages, activate, current, trust_from_env
from .workflow_reader import FIELDS, WorkflowRead, read_workflow

logger = logging.getLogger("arvados.keepdocker")

FAILED = "failed"    #: the image could not be stored (the reason is logged)
REFUSED = "refused"  #: the workflow may not name it (the reason is logged)
SKIPPED = "skipped"  #: a requirement with nothing to pull
#: Why each kind of requirement without ``dockerPull`` is skipped.
SKIP_REASONS = {
    "dockerLoad": "cwltool loads it from a file or URL when the workflow runs",
    "dockerFile": "cwltool builds it when the workflow runs",
    "dockerImport": "cwltool imports it from a file or URL when the workflow runs",
    "dockerImageId": "an image id or name with no dockerPull to fetch it from",
}
COLLECTION_KEYS = ("uuid", "portable_data_hash", "name", "owner_uuid")


@dataclasses.dataclass
class ImageResult:
    """What happened to one image.

    :ivar image: the ``dockerPull`` as written.
    :ivar name: the name a-c-r looks it up by (``NAME:TAG``, an id, a digest).
    :ivar action: ``stored``, ``copied``, ``linked``, ``found``, ``failed``, ``refused``.
    :ivar collection: the image collection's ``uuid``, ``portable_data_hash``,
        ``name`` and ``owner_uuid`` (None when there is none, or a dry run
        would create it).
    :ivar source: where the image was read from (``docker`` for a registry,
        ``arvados`` for a stored copy, an engine's source name).
    :ivar error: the one-line reason of a failure or refusal.
    """

    image: str
    name: str | None
    action: str
    collection: dict[str, Any] | None = None
    source: str | None = None
    error: str | None = None

    @property
    def writes(self) -> bool:
        return self.action in (STORED, COPIED, LINKED)


@dataclasses.dataclass
class WorkflowReport:
    """The whole run: every image, every skipped requirement, every ``run:`` not read."""

    workflow: str
    dry_run: bool
    images: list[ImageResult]
    skipped: list[tuple[str, str]]
    unread: list[str]

    def counts(self) -> dict[str, int]:
        counts = {action: 0 for action in (STORED, COPIED, LINKED, FOUND, FAILED, REFUSED)}
        for result in self.images:
            counts[result.action] += 1
        counts[SKIPPED] = len(self.skipped)
        counts["unread"] = len(self.unread)
        return counts

    @property
    def failed(self) -> bool:
        return bool(self.unread) or any(r.action in (FAILED, REFUSED) for r in self.images)

    def status(self) -> int:
        """1 if anything failed; with ``--dry-run``, 2 if anything would be written."""
        if self.failed:
            return 1
        if self.dry_run and any(r.writes for r in self.images):
            return 2
        return 0

    def document(self) -> dict[str, Any]:
        """The ``--json`` document (docs/command.md)."""
        from ..steps.documents import JSON_VERSION

        return {
            "version": JSON_VERSION,
            "workflow": self.workflow,
            "dry_run": self.dry_run,
            "images": [dataclasses.asdict(result) for result in self.images],
            "skipped": [{"field": field, "value": value} for field, value in self.skipped],
            "unread": list(self.unread),
            "counts": self.counts(),
        }

    def summary(self) -> str:
        counts = self.counts()
        done = ", ".join(f"{counts[a]} {a}" for a in (STORED, COPIED, LINKED, FOUND)
                         if counts[a])
        parts = ["{} image{}{}".format(len(self.images), "" if len(self.images) == 1 else "s",
                                       ": " + done if done else "")]
        if counts[FAILED] or counts[REFUSED]:
            parts.append(f"{counts[FAILED] + counts[REFUSED]} not stored")
        if self.skipped:
            parts.append("{} requirement{} skipped ({})".format(
                len(self.skipped), "" if len(self.skipped) == 1 else "s",
                ", ".join(sorted({field for field, _ in self.skipped}))))
        if self.unread:
            parts.append(f"{len(self.unread)} run: not read")
        return "{}{}: {}".format("dry run: " if self.dry_run else "", printable(self.workflow),
                                 "; ".join(parts))


def line(result: ImageResult) -> str:
    """The one stdout line of an image: ``ACTION NAME COLLECTION``."""
    uuid = (result.collection or {}).get("uuid") or "-"
    return f"{result.action:8} {printable(result.image)} {uuid}"


def skipped_line(field: str, value: str) -> str:
    shown = printable(value.splitlines()[0] if value.strip() else value)
    if len(shown) > 60 or "\n" in value:
        shown = shown[:60] + "..."
    return f"{SKIPPED:8} {field}: {shown} ({SKIP_REASONS[field]})"


def images_and_skipped(read: WorkflowRead) -> tuple[list[str], list[tuple[str, str]]]:
    """The ``dockerPull`` names, each once (by the name a-c-r looks up), and the
    requirements with nothing to pull."""
    images: list[str] = []
    keys = set()
    skipped: list[tuple[str, str]] = []
    for requirement in read.requirements:
        pull = requirement.get("dockerPull")
        if pull is None:
            field = next(f for f in FIELDS if requirement.get(f) is not None)
            if (field, requirement.get(field) or "") not in skipped:
                skipped.append((field, requirement.get(field) or ""))
            continue
        lookup = lookup_for(pull)
        key = lookup.shown if lookup is not None else pull
        if key not in keys:
            keys.add(key)
            images.append(pull)
    return images, skipped


def store_workflow_images(options: argparse.Namespace, pm, connect, stdout) -> int:
    """Run ``--cwl``; return the exit status. ``connect()`` gives the API client.

    :raises KeepdockerError: the workflow cannot be read, or cwl-utils is
        missing (one line; nothing was stored).
    """
    read = read_workflow(options.cwl)
    trust = bool(getattr(options, "trust_workflow_sources", False)) or trust_from_env()
    images, skipped = images_and_skipped(read)
    api = connect()
    if options.project_uuid:
        from ..steps.context import check_project
        check_project(api, options.project_uuid, options.retries)
    previous = current()
    activate(WorkflowImages(trust_sources=trust))
    try:
        report = WorkflowReport(options.cwl, bool(options.dry_run), [], skipped, read.unread)
        for text in read.unread:
            logger.error("%s", text)
        for field, value in skipped:
            if not options.json:
                stdout.write(skipped_line(field, value) + "\n")
        for text in images:
            result = store_image(api, pm, options, text)
            report.images.append(result)
            if result.error:
                logger.error("%s", result.error)
            if not options.json:
                stdout.write(line(result) + "\n")
                stdout.flush()
    finally:
        activate(previous)
    logger.info("%s", report.summary())
    if options.json:
        from ..cli import write_json
        write_json(report.document(), stdout)
    return report.status()


def store_image(api, pm, options: argparse.Namespace, text: str) -> ImageResult:
    """Find ``text`` as a-c-r would, or store it; never raises for the image's faults."""
    from ..cli import _api_error_line

    lookup = lookup_for(text)
    name = lookup.shown if lookup is not None else None
    try:
        current().admit(pm, text, base=options)
        return _store_image(api, pm, options, text, lookup)
    except Refused as error:
        return ImageResult(text, name, REFUSED, error=str(error))
    except KeepdockerError as error:
        return ImageResult(text, name, FAILED, error=f"{printable(text)}: {error}")
    except Exception as error:
        message = _api_error_line(error)
        if message is None:
            raise
        return ImageResult(text, name, FAILED, error=f"{printable(text)}: {message}")


def _store_image(api, pm, options: argparse.Namespace, text: str,
                 lookup: ImageLookup | None) -> ImageResult:
    from ..steps import pipeline
    from ..steps.documents import with_portable_data_hash

    name = lookup.shown if lookup is not None else None
    project = options.project_uuid
    elsewhere: list[tuple[str, dict[str, Any]]] = []
    if lookup is not None and not options.refresh:
        found = find(api, options, lookup, project)
        if found:
            return ImageResult(text, name, FOUND, collection=collection(api, options,
                                                                          found[0][0]),
                               source="arvados")
        if project:
            elsewhere = find(api, options, lookup, None)
    if options.dry_run:
        return ImageResult(text, name, COPIED if elsewhere else STORED)
    upload = lookup.upload if lookup is not None else (text,)
    resolved = None
    if not elsewhere:
        # a-c-r's check: the local image, else a pull (the registry when no engine answers)
        if options.refresh:
            resolve_for_workflow(text, pull=True, pm=pm, base=options)
        else:
            try:
                resolve_for_workflow(text, pull=False, pm=pm, base=options)
            except Refused:
                raise
            except KeepdockerError:
                resolve_for_workflow(text, pull=True, pm=pm, base=options)
        if lookup is not None:
            resolved = current().from_registry(upload)
    run_options = argparse.Namespace(**dict(
        vars(options), image=upload[0], tag=upload[1] if len(upload) > 1 else None,
        pull=False, json=False, cwl=None, dry_run=False))
    outcome = pipeline.run(api, pm, run_options, resolved)
    outcome = with_portable_data_hash(outcome, api, options.retries)
    record = outcome.record or {}
    return ImageResult(text, name, outcome.action,
                       collection={key: record.get(key) for key in COLLECTION_KEYS},
                       source=outcome.image.source)


def find(api, options: argparse.Namespace, lookup: ImageLookup,
         project: str | None) -> list[tuple[str, dict[str, Any]]]:
    """The stored images ``lookup`` names, in a-c-r's order (``list_images_in_arv``'s)."""
    from ..steps.listing import list_images_in_arv

    return lookup.chosen(list_images_in_arv(api, options.retries, lookup.name, lookup.tag,
                                            project))


def collection(api, options: argparse.Namespace, uuid: str) -> dict[str, Any]:
    record = api.collections().get(uuid=uuid).execute(num_retries=options.retries)
    return {key: record.get(key) for key in COLLECTION_KEYS}
