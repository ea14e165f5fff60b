"""A lock that Arvados itself enforces: one writer per image and owner, on any machine.

The local lock file serialises runs that share a HOME. Runs on different
machines (or HOMEs, or containers) serialise on a collection named after the
image id alone, owned by the upload's owner: Arvados keeps collection names
unique per owner among untrashed collections (the ``index_collections_on_owner_uuid
_and_name`` index, ``services/api/db/structure.sql``), so a second create of
that name is refused. The lock collection is a lease: created with a
``trash_at`` :data:`LEASE` seconds ahead, so that if its holder dies Arvados
trashes it by itself (the trash sweep of
``services/api/app/controllers/sys_controller.rb`` runs every minute or so)
and the name is free again. Its holder (host, boot id, PID namespace, pid and
the process's start time) is recorded, so that a holder on this same machine
and in this same PID namespace that is no longer running is recognised and
its lock removed at once; a holder anywhere else (another host, boot, or
container's PID namespace) is waited for until its lease ends.

Anyone who may write to the owner can create a collection of that name. A
record that is not a valid lease (no ``trash_at``, a ``trash_at`` more than
the lease and a minute ahead, a missing or malformed holder) is not a lock:
:meth:`ArvadosLock.check` refuses it before any block is uploaded, and the
lock refuses it instead of waiting, naming the record and who last wrote it.
Such a record is removed only if this user wrote it.

Only the short record step (collection and links) runs under the lock, never
the upload of the blocks. A run that finds the lock taken waits for it, then
looks again for what the holder stored (and adopts it).
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

import arvados.errors
import ciso8601

from ..errors import KeepdockerError

logger = logging.getLogger("arvados.keepdocker")

#: How long a lock holds without its holder (seconds).
LEASE = 600
#: Past the lease, how long the trash sweep may take to free the name.
SWEEP_GRACE = 180
#: A record whose ``trash_at`` is further ahead than the lease plus this is no lease.
LEASE_SLACK = 60
#: Between two tries.
POLL = 1.0
#: A refused create followed by no record of the lock's name, this many times running,
#: is a refusal for another reason than the name. Once is ordinary among several
#: runs: the holder released it and a third run took it between our two calls.
UNEXPLAINED_REFUSALS = 5
HOLDER_PROPERTY = "arv_keepdocker_lock_holder"


def lock_name(image_id: str) -> str:
    return f"arv-keepdocker upload lock {image_id}"


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    """This process's PID namespace (``pid:[<inode>]``), or "" when it cannot be read."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _process_start(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_process() -> dict[str, Any]:
    return {"host": socket.gethostname(), "boot": _boot_id(), "pidns": _pid_namespace(),
            "pid": os.getpid(), "start": _process_start(os.getpid())}


def _well_formed(holder: Any) -> bool:
    """A holder as :func:`this_process` records it (runs before PID namespaces were
    recorded leave no ``pidns``: a lease, but never judged here)."""
    if not isinstance(holder, dict):
        return False
    pid = holder.get("pid")
    return (isinstance(holder.get("host"), str) and isinstance(holder.get("boot"), str)
            and type(pid) is int and pid > 0
            and isinstance(holder.get("start"), (str, type(None)))
            and isinstance(holder.get("pidns", ""), str))


def holder_is_gone(holder: Any) -> bool:
    """Whether ``holder`` was a process that has ended, seen from here.

    Only a holder on this host, since this boot, in this PID namespace can be
    looked up; any other is never judged gone (its lease ends it).
    """
    if not _well_formed(holder):
        return False
    me = this_process()
    if not me["boot"] or not me["pidns"]:
        return False
    if (holder["host"], holder["boot"], holder.get("pidns")) != (
            me["host"], me["boot"], me["pidns"]):
        return False
    return _process_start(holder["pid"]) != holder.get("start")


def _parse_time(text: Any) -> datetime.datetime | None:
    try:
        return ciso8601.parse_datetime(text)
    except (TypeError, ValueError):
        return None


def lease_problem(record: Mapping[str, Any], now: datetime.datetime) -> str | None:
    """Why a record with the lock's name is not a lease, or None when it is one."""
    trash_at = record.get("trash_at")
    if not trash_at:
        return "it has no trash_at"
    until = _parse_time(trash_at)
    if until is None or until.tzinfo is None:
        return f"its trash_at {trash_at!r} is not a time"
    if (until - now).total_seconds() > LEASE + LEASE_SLACK:
        return f"its trash_at {trash_at} is more than {LEASE + LEASE_SLACK} s ahead"
    holder = (record.get("properties") or {}).get(HOLDER_PROPERTY)
    if holder is None:
        return "it names no holder"
    if not _well_formed(holder):
        return "its holder is malformed"
    return None


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class ArvadosLock:
    """``with ArvadosLock(api, owner, image_id, retries, user):`` holds the image's lock for owner.

    :param user_uuid: the user the run's token belongs to: a record with the
        lock's name that is no lease is removed only if this user wrote it.
    """

    def __init__(self, api, owner: str, image_id: str, retries: int, user_uuid: str,
                 wait: float = LEASE + SWEEP_GRACE):
        self.api = api
        self.owner = owner
        self.image_id = image_id
        self.retries = retries
        self.user_uuid = user_uuid
        self.wait = wait
        self.name = lock_name(image_id)
        self.uuid: str | None = None

    def check(self) -> None:
        """Refuse now (before any upload) a record with the lock's name that is no lease.

        A lease someone holds is fine here: only the record step waits for it.
        """
        record = self._current()
        if record is not None:
            self._not_a_lease(record)

    def __enter__(self) -> ArvadosLock:
        deadline = time.monotonic() + self.wait
        told = False
        unexplained = 0
        while True:
            if self._try_create(unexplained):
                return self
            record = self._current()
            if record is None:
                unexplained += 1  # released meanwhile (or taken again): try again at once
                continue
            unexplained = 0
            if self._not_a_lease(record):
                continue  # it was this user's, and is removed
            holder = record["properties"][HOLDER_PROPERTY]
            if holder_is_gone(holder):
                logger.info("removing the upload lock %s left by an ended run", record["uuid"])
                self._delete(record["uuid"])
                continue
            until = _parse_time(record["trash_at"])
            if (record.get("modified_by_user_uuid") == self.user_uuid
                    and until is not None and until <= _utcnow()):
                logger.info("removing the upload lock %s: its lease has ended", record["uuid"])
                self._delete(record["uuid"])
                continue
            if time.monotonic() > deadline:
                raise KeepdockerError(
                    "another upload of {} into {} still holds its lock {} (written by {}, "
                    "held by {}) after {:.0f}s; run again later".format(
                        self.image_id, self.owner, record["uuid"],
                        record.get("modified_by_user_uuid"), _describe(holder), self.wait))
            if not told:
                logger.info("waiting for another upload of %s into %s (lock %s, held by %s)",
                            self.image_id, self.owner, record["uuid"], _describe(holder))
                told = True
            time.sleep(POLL)

    def __exit__(self, *exc: object) -> None:
        if self.uuid is not None:
            self._delete(self.uuid)
            self.uuid = None

    def _not_a_lease(self, record: Mapping[str, Any]) -> bool:
        """False for a lease; True once this user's non-lease is removed; else refuse."""
        problem = lease_problem(record, _utcnow())
        if problem is None:
            return False
        writer = record.get("modified_by_user_uuid")
        if writer == self.user_uuid:
            logger.warning("removing collection %s, named like the upload lock of %s but not "
                           "a lock: %s", record["uuid"], self.image_id, problem)
            self._delete(record["uuid"])
            return True
        raise KeepdockerError(
            "collection {} in {} is named like the upload lock of {} but is not a lock ({}); "
            "it was last modified by {}: ask them or the project's manager to remove or "
            "rename it".format(record["uuid"], self.owner, self.image_id, problem, writer))

    def _try_create(self, unexplained: int) -> bool:
        trash_at = _utcnow() + datetime.timedelta(seconds=LEASE)
        body = {"name": self.name, "owner_uuid": self.owner, "manifest_text": "",
                "trash_at": trash_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "properties": {HOLDER_PROPERTY: this_process()}}
        try:
            record = self.api.collections().create(body=body).execute(
                num_retries=self.retries)
        except arvados.errors.ApiError as error:
            if (getattr(getattr(error, "resp", None), "status", None) != 422
                    or unexplained >= UNEXPLAINED_REFUSALS):
                raise  # refused for another reason than the name
            return False
        self.uuid = record["uuid"]
        return True

    def _current(self) -> dict[str, Any] | None:
        items = self.api.collections().list(
            filters=[["owner_uuid", "=", self.owner], ["name", "=", self.name]],
            select=["uuid", "properties", "trash_at", "modified_by_user_uuid"], limit=1,
        ).execute(num_retries=self.retries)["items"]
        return items[0] if items else None

    def _delete(self, uuid: str) -> None:
        try:
            self.api.collections().delete(uuid=uuid).execute(num_retries=self.retries)
        except Exception as error:  # the lease ends it anyway
            logger.warning("could not remove the upload lock %s: %s", uuid, error)


def _describe(holder: Mapping[str, Any]) -> str:
    return "pid {} on {} ({})".format(holder.get("pid"), holder.get("host"),
                                      holder.get("pidns") or "PID namespace not recorded")
