"""A lock that Arvados itself enforces: one writer per image and owner, on any machine.

The local lock file serialises runs that share a HOME. Runs on different
machines (or HOMEs) serialise on a collection named after the image id
alone, owned by the upload's owner: Arvados keeps collection names unique
per owner among untrashed collections (the ``index_collections_on_owner_uuid
_and_name`` index, ``services/api/db/structure.sql``), so a second create of
that name is refused. The lock collection is created with a ``trash_at``
(a lease): if its holder dies, Arvados trashes it by itself (the trash sweep
of ``services/api/app/controllers/sys_controller.rb`` runs every minute or so)
and the name is free again. A holder on this same machine that is no longer
running is recognised and its lock removed at once.

Only the short record step (collection and links) runs under it, never the
upload of the blocks. A run that finds the lock taken waits for it, then
looks again for what the holder stored (and adopts it).
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import time
from typing import Any, Dict, Optional

import arvados.errors

from ..errors import KeepdockerError

logger = logging.getLogger("arvados.keepdocker")

#: How long a lock holds without its holder (seconds).
LEASE = 600
#: Past the lease, how long the trash sweep may take to free the name.
SWEEP_GRACE = 180
#: Between two tries.
POLL = 1.0
HOLDER_PROPERTY = "arv_keepdocker_lock_holder"


def lock_name(image_id: str) -> str:
    return "arv-keepdocker upload lock {}".format(image_id)


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> Optional[str]:
    """A process's start time (clock ticks since boot), to tell a reused pid apart."""
    try:
        with open("/proc/{}/stat".format(pid)) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_process() -> Dict[str, Any]:
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": os.getpid(),
            "start": _process_start(os.getpid())}


def holder_is_gone(holder: Any) -> bool:
    """Whether ``holder`` (a lock's record) was a process on this machine that has ended."""
    if not isinstance(holder, dict):
        return False
    me = this_process()
    if holder.get("host") != me["host"] or holder.get("boot") != me["boot"] or not me["boot"]:
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    return _process_start(pid) != holder.get("start")


class ArvadosLock:
    """``with ArvadosLock(api, owner, image_id, retries):`` holds the image's lock for owner."""

    def __init__(self, api, owner: str, image_id: str, retries: int,
                 wait: float = LEASE + SWEEP_GRACE):
        self.api = api
        self.owner = owner
        self.image_id = image_id
        self.retries = retries
        self.wait = wait
        self.name = lock_name(image_id)
        self.uuid: Optional[str] = None

    def __enter__(self) -> "ArvadosLock":
        deadline = time.monotonic() + self.wait
        told = False
        unexplained = 0
        while True:
            if self._try_create(unexplained):
                return self
            holder = self._current_holder()
            if holder is None:
                unexplained += 1  # released meanwhile: try again at once
                continue
            unexplained = 0
            if holder_is_gone(holder[1]):
                logger.info("removing the upload lock %s left by an ended run", holder[0])
                self._delete(holder[0])
                continue
            if time.monotonic() > deadline:
                raise KeepdockerError(
                    "another upload of {} into {} still holds its lock{} after {:.0f}s; "
                    "run again later".format(self.image_id, self.owner, " " + holder[0],
                                             self.wait))
            if not told:
                logger.info("waiting for another upload of %s into %s (lock %s)",
                            self.image_id, self.owner, holder[0])
                told = True
            time.sleep(POLL)

    def __exit__(self, *exc: object) -> None:
        if self.uuid is not None:
            self._delete(self.uuid)
            self.uuid = None

    def _try_create(self, unexplained: int) -> bool:
        trash_at = (datetime.datetime.now(datetime.timezone.utc)
                    + datetime.timedelta(seconds=LEASE))
        body = {"name": self.name, "owner_uuid": self.owner, "manifest_text": "",
                "trash_at": trash_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "properties": {HOLDER_PROPERTY: this_process()}}
        try:
            record = self.api.collections().create(body=body).execute(
                num_retries=self.retries)
        except arvados.errors.ApiError as error:
            if getattr(getattr(error, "resp", None), "status", None) != 422 or unexplained:
                raise  # refused for another reason than the name
            return False
        self.uuid = record["uuid"]
        return True

    def _current_holder(self):
        items = self.api.collections().list(
            filters=[["owner_uuid", "=", self.owner], ["name", "=", self.name]],
            select=["uuid", "properties"], limit=1).execute(
                num_retries=self.retries)["items"]
        if not items:
            return None
        return items[0]["uuid"], (items[0].get("properties") or {}).get(HOLDER_PROPERTY)

    def _delete(self, uuid: str) -> None:
        try:
            self.api.collections().delete(uuid=uuid).execute(num_retries=self.retries)
        except Exception as error:  # the lease ends it anyway
            logger.warning("could not remove the upload lock %s: %s", uuid, error)
