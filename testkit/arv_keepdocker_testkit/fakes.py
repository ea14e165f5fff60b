"""Small stand-ins for the Arvados SDK's clients, for fast tests without services.

The light tier of the test kit: they record what the code under test asks
and answer only what is needed to get that far. Use them for unit tests of
your own logic (a hook that receives ``api``, a Keep writer) and for runs
that stop before anything is looked up or written in Arvados (a refused
format, a bad reference, an image no source has). Anything that lists,
reads back or reuses records needs the real thing: the local cluster's
``arv_api`` fixture (:mod:`.cluster.fixtures`), the heavy tier.

* :class:`FakeKeep` -- ``put`` and ``head``, as ``arvados.keep.KeepClient``.
* :class:`FakeApi` -- ``users().current()``, ``users().get()``,
  ``groups().get()``, ``links()`` and ``collections()`` ``create`` and
  ``delete``, the discovery document's ``dockerImageFormats`` and
  ``defaultCollectionReplication``; every executed call is logged in
  :attr:`FakeApi.log`. ``list`` is refused with a message pointing at the
  heavy tier.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from typing import Any

#: The user every :class:`FakeApi` belongs to.
FAKE_USER_UUID = "zzzzz-tpzed-000000000000000"


def signed(block: bytes, expiry: int | None = None) -> str:
    """A locator as Keep answers a PUT: ``<md5>+<size>+A<sig>@<expiry hex>``."""
    expiry = int(time.time()) + 14 * 86400 if expiry is None else expiry
    return "{}+{}+A{}@{:08x}".format(hashlib.md5(block).hexdigest(), len(block), "0" * 40,
                                     expiry)


class FakeKeep:
    """Records ``put`` calls; ``head`` answers for the blocks it holds.

    ``fail_puts=n`` makes the next ``n`` puts raise ``IOError``.
    """

    def __init__(self, fail_puts: int = 0) -> None:
        self.puts: list[tuple[bytes, int]] = []
        self.heads: list[str] = []
        self.blocks: dict[str, bytes] = {}
        self.fail_puts = fail_puts
        self._lock = threading.Lock()

    def put(self, block, copies=2, num_retries=0) -> str:
        with self._lock:
            if self.fail_puts:
                self.fail_puts -= 1
                raise OSError("Keep refused the block")
            self.puts.append((bytes(block), copies))
            locator = signed(bytes(block))
            self.blocks[locator.split("+")[0]] = bytes(block)
            return locator

    def head(self, locator, num_retries=0) -> bool:
        self.heads.append(locator)
        if locator.split("+")[0] not in self.blocks:
            raise OSError("404 not found")
        return True


class _Request:
    def __init__(self, log: list, call: tuple, result: Any) -> None:
        self.log, self.call, self.result = log, call, result

    def execute(self, num_retries: int = 0) -> Any:
        self.log.append(self.call)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class _Resource:
    def __init__(self, api: FakeApi, kind: str) -> None:
        self.api, self.kind = api, kind

    def create(self, body, **kwargs) -> _Request:
        self.api.serial += 1
        uuid = f"zzzzz-{self.api.infix[self.kind]}-{self.api.serial:015d}"
        result = self.api.failures.pop(("create", self.kind), None) or dict(body, uuid=uuid)
        return _Request(self.api.log, ("create", self.kind, body.get("name")), result)

    def delete(self, uuid) -> _Request:
        result = self.api.failures.pop(("delete", self.kind), None) or {"uuid": uuid}
        return _Request(self.api.log, ("delete", self.kind, uuid), result)

    def get(self, uuid) -> _Request:
        result = self.api.failures.pop(("get", self.kind), None) or {"uuid": uuid}
        return _Request(self.api.log, ("get", self.kind, uuid), result)

    def list(self, **kwargs):
        raise NotImplementedError(
            f"FakeApi answers no {self.kind}().list(): a run that looks records up needs a real "
            "API server; use the arv_api fixture (the test kit's local cluster)"
            )


class _Users(_Resource):
    def current(self) -> _Request:
        return _Request(self.api.log, ("current", "users"), {"uuid": self.api.user_uuid})


class FakeApi:
    """``arvados.api('v1')`` as far as a run goes before it looks anything up.

    ``failures[("create", "links")] = error`` makes the next such call raise.
    ``formats`` is the cluster's ``dockerImageFormats`` (by default ``v2``, as
    ``Containers.SupportedDockerImageFormats`` is by default; ``None``: not set).
    """

    infix = {"links": "o0j2j", "collections": "4zz18", "users": "tpzed", "groups": "j7d0g"}

    def __init__(self, formats: Sequence[str] | None = ("v2",), replication: int = 2,
                 user_uuid: str = FAKE_USER_UUID) -> None:
        self.log: list[tuple] = []
        self.failures: dict[tuple[str, str], Exception] = {}
        self.serial = 0
        self.user_uuid = user_uuid
        self.keep = FakeKeep()
        self.api_token = "fake-token"
        self._rootDesc: dict[str, Any] = {"defaultCollectionReplication": replication}
        if formats is not None:
            self._rootDesc["dockerImageFormats"] = list(formats)

    def links(self) -> _Resource:
        return _Resource(self, "links")

    def collections(self) -> _Resource:
        return _Resource(self, "collections")

    def users(self) -> _Users:
        return _Users(self, "users")

    def groups(self) -> _Resource:
        return _Resource(self, "groups")
