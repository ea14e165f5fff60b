"""What an upload run did, or in a dry run would do: :class:`Outcome`.

:func:`.pipeline.run` returns one; the command prints the collection UUID
from it (3.2.1's output), or with ``--json`` its document
(:func:`.documents.upload_document`). :class:`NotingRecorder` is the
:class:`~.record.Recorder` a run uses to learn which writes an image already in
Arvados needed (a copy, links, finishing a pending collection), and, in a dry
run, to make none of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..image import Image
from ..keep.progress import Progress
from .context import RunContext
from .record import ExistingPlan, Recorder
from .reuse import tar_name

STORED = "stored"    #: the image was uploaded: a new collection and its links
COPIED = "copied"    #: a stored copy was copied into the destination, and linked
LINKED = "linked"    #: a stored copy got the links it lacked (or its pending mark cleared)
FOUND = "found"      #: a stored copy was complete: nothing written


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One run's result.

    :ivar action: :data:`STORED`, :data:`COPIED`, :data:`LINKED` or :data:`FOUND`.
    :ivar image: the image as stored (its id, digests, name).
    :ivar record: the image's collection; None when a dry run would create it.
    :ivar repo_tag: the ``repo:tag`` linked (None for an image given by id).
    :ivar progress: the byte counters of the upload (None when nothing was uploaded).
    :ivar dry_run: whether nothing was written (``--dry-run``).
    :ivar source_record: the collection a copy is (or would be) made from.
    """

    action: str
    image: Image
    record: Mapping[str, Any] | None
    repo_tag: str | None
    progress: Progress | None = None
    dry_run: bool = False
    source_record: Mapping[str, Any] | None = None

    @property
    def writes(self) -> bool:
        """Whether Arvados was written to (or, in a dry run, would be)."""
        return self.action != FOUND

    @property
    def status(self) -> str:
        """What :func:`..cli.execute` reports: ``uploaded`` or ``reused`` (3.2.1's
        two ends, for :func:`..compat.main`), ``dry-run`` for a dry run."""
        if self.dry_run:
            return "dry-run"
        return "uploaded" if self.action == STORED else "reused"

    def describe(self) -> str:
        """One line for a dry run: what the run would do."""
        image = self.image.image_id
        if self.action == FOUND:
            return "dry run: {} is stored in {}; nothing to write".format(
                image, (self.record or {}).get("uuid"))
        if self.action == LINKED:
            return "dry run: {} is stored in {}; would add the links it lacks".format(
                image, (self.record or {}).get("uuid"))
        if self.action == COPIED:
            return "dry run: would copy {} ({}) into the destination and link it".format(
                (self.source_record or {}).get("uuid"), image)
        return f"dry run: would upload {image} as a new collection"


class NotingRecorder(Recorder):
    """A :class:`~.record.Recorder` that notes the plan it applies to a stored copy.

    With ``dry_run`` it writes nothing: :meth:`apply` hands back the chosen
    copy, no after-upload hook is called, and :meth:`create` is refused.
    """

    def __init__(self, ctx: RunContext, dry_run: bool = False):
        super().__init__(ctx)
        self.dry_run = dry_run
        self.applied: ExistingPlan | None = None

    def apply(self, image: Image, plan: ExistingPlan) -> dict[str, Any]:
        self.applied = plan
        if self.dry_run:
            return dict(plan.chosen)
        return super().apply(image, plan)

    def notify(self, image: Image, record: Mapping[str, Any], links) -> None:
        if not self.dry_run:
            super().notify(image, record, links)

    def create(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if self.dry_run:
            raise AssertionError("a dry run creates no collection")
        return super().create(*args, **kwargs)

    def reused(self, image: Image, record: Mapping[str, Any], repo_tag: str | None
               ) -> Outcome:
        """The outcome of a run that found a stored copy (:meth:`apply` ran or not)."""
        image = as_found(image, record)
        plan = self.applied
        if plan is None:
            return Outcome(FOUND, image, record, repo_tag, dry_run=self.dry_run)
        if plan.copy:
            return Outcome(COPIED, image, None if self.dry_run else record, repo_tag,
                           dry_run=self.dry_run, source_record=plan.chosen)
        return Outcome(LINKED, image, record, repo_tag, dry_run=self.dry_run)


def as_found(image: Image, record: Mapping[str, Any]) -> Image:
    """``image`` with the id of the stored copy, when the source named it provisionally."""
    name = tar_name(record.get("manifest_text") or "") or ""
    if not image.provisional_id or not name.endswith(".tar"):
        return image
    return dataclasses.replace(image, image_id=name[:-len(".tar")], provisional_id=False)
