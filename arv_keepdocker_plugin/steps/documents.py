"""The ``--json`` documents: an upload's outcome, and the listing.

Each is one JSON object, the only thing on stdout, with a ``version`` key
(:data:`JSON_VERSION`, raised when a key changes meaning or goes away; new
keys may appear). docs/command.md describes every key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from .outcome import Outcome

JSON_VERSION = 1

#: The byte counters of an upload, as the progress counts them.
COUNTERS = ("written", "read", "uploaded", "reused", "downloaded")


def upload_document(outcome: Outcome) -> dict[str, Any]:
    """What an upload run did (or, with ``--dry-run``, would do)."""
    record = outcome.record
    image = outcome.image
    progress = outcome.progress
    return {
        "version": JSON_VERSION,
        "action": outcome.action,
        "dry_run": outcome.dry_run,
        "writes": outcome.writes,
        "collection": None if record is None else {
            key: record.get(key) for key in ("uuid", "portable_data_hash", "name",
                                             "owner_uuid")},
        "copied_from": (outcome.source_record or {}).get("uuid"),
        "image": {
            "id": image.image_id,
            # The engine named the image by a manifest digest; a dry run stops
            # before the export that gives its config digest.
            "provisional_id": image.provisional_id,
            "manifest_digest": image.manifest_digest,
            "index_digest": image.index_digest,
            "repo_tag": outcome.repo_tag,
            "source": image.source,
        },
        "bytes": {key: getattr(progress, key) if progress is not None else 0
                  for key in COUNTERS},
    }


def with_portable_data_hash(outcome: Outcome, api: Any, retries: int) -> Outcome:
    """``outcome`` whose collection record says its portable data hash (the record a
    run holds may have been read with a few fields only)."""
    record = outcome.record
    if record is None or record.get("portable_data_hash"):
        return outcome
    found = api.collections().get(uuid=record["uuid"]).execute(num_retries=retries)
    return dataclasses.replace(outcome, record=dict(
        record, portable_data_hash=found["portable_data_hash"]))


def listing_document(images: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The listing: 3.2.1's columns with full ids, one object per row, in its order.

    ``picked`` marks, for each ``repository:tag``, the row arvados-cwl-runner
    uses (the first that ``list_images_in_arv`` gives for that name and tag,
    ``sdk/cwl/arvados_cwl/arvdocker.py``): the listing's order is that
    preference order.
    """
    rows: list[dict[str, Any]] = []
    seen = set()
    for uuid, info in images:
        repo = _named(info.get("repo"))
        tag = _named(info.get("tag"))
        name = (repo, tag)
        rows.append({
            "repository": repo,
            "tag": tag,
            "image_id": _named(info.get("dockerhash")),
            "collection": uuid,
            "created": info["timestamp"].isoformat() + "Z",
            "picked": repo is not None and name not in seen,
        })
        seen.add(name)
    return {"version": JSON_VERSION, "images": rows}


def error_document(message: str) -> dict[str, Any]:
    """A run that failed: its one-line error."""
    return {"version": JSON_VERSION, "error": message}


def _named(value: str | None) -> str | None:
    """3.2.1's ``<none>`` and ``<unknown>`` placeholders as JSON null."""
    return None if value in (None, "<none>", "<unknown>") else value
