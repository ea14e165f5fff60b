"""Undo what one run created in Arvados when a later step fails.

Used as a context manager around the writes of a run: every collection and
link created through it is deleted again (links first) if the block raises,
so a failed run leaves no collection without its links and no orphan link.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

logger = logging.getLogger("arvados.keepdocker")


class Rollback:
    """Creates records and deletes them all again if the block fails."""

    def __init__(self, api, retries: int):
        self.api = api
        self.retries = retries
        #: Link records created so far, in order.
        self.records: list[dict[str, Any]] = []
        self.collection: str | None = None

    def created_collection(self, record: dict[str, Any]) -> dict[str, Any]:
        """Note a collection this run created; returns ``record``."""
        self.collection = record["uuid"]
        return record

    def link(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a link; it is deleted again if the block fails."""
        record = self.api.links().create(body=body).execute(num_retries=self.retries)
        self.records.append(record)
        return record

    def __enter__(self) -> Rollback:
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc_type is None:
            return False
        for record in reversed(self.records):
            self._quietly(self.api.links().delete(uuid=record["uuid"]))
        if self.collection:
            self._quietly(self.api.collections().delete(uuid=self.collection))
        return False

    def _quietly(self, request) -> None:
        try:
            request.execute(num_retries=self.retries)
        except Exception as error:
            logger.warning("could not undo a partial upload: %s", error)
