"""Small stand-ins for the Arvados SDK's clients, for fast unit tests of our own logic.

The real clients are exercised end to end against the local cluster
(``tests/e2e``); these only record what our code asks of them.
"""

import hashlib
import threading
import time


def signed(block: bytes, expiry: int = None) -> str:
    """A locator as Keep answers a PUT: ``<md5>+<size>+A<sig>@<expiry hex>``."""
    expiry = int(time.time()) + 14 * 86400 if expiry is None else expiry
    return "{}+{}+A{}@{:08x}".format(hashlib.md5(block).hexdigest(), len(block), "0" * 40,
                                     expiry)


class FakeKeep:
    """Records ``put`` calls; ``head`` answers for the blocks it holds."""

    def __init__(self, fail_puts=0):
        self.puts = []
        self.heads = []
        self.blocks = {}
        self.fail_puts = fail_puts
        self._lock = threading.Lock()

    def put(self, block, copies=2, num_retries=0):
        with self._lock:
            if self.fail_puts:
                self.fail_puts -= 1
                raise IOError("Keep refused the block")
            self.puts.append((bytes(block), copies))
            locator = signed(bytes(block))
            self.blocks[locator.split("+")[0]] = bytes(block)
            return locator

    def head(self, locator, num_retries=0):
        self.heads.append(locator)
        if locator.split("+")[0] not in self.blocks:
            raise IOError("404 not found")
        return True


class _Request:
    def __init__(self, log, call, result):
        self.log, self.call, self.result = log, call, result

    def execute(self, num_retries=0):
        self.log.append(self.call)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class _Resource:
    def __init__(self, api, kind):
        self.api, self.kind = api, kind

    def create(self, body, **kwargs):
        self.api.serial += 1
        uuid = "zzzzz-{}-{:015d}".format(self.api.infix[self.kind], self.api.serial)
        result = self.api.failures.pop(("create", self.kind), None) or dict(body, uuid=uuid)
        return _Request(self.api.log, ("create", self.kind, body.get("name")), result)

    def delete(self, uuid):
        result = self.api.failures.pop(("delete", self.kind), None) or {"uuid": uuid}
        return _Request(self.api.log, ("delete", self.kind, uuid), result)


class FakeApi:
    """``links()`` and ``collections()`` with create/delete, logging every executed call.

    ``failures[("create", "links")] = error`` makes the next such call raise.
    """

    infix = {"links": "o0j2j", "collections": "4zz18"}

    def __init__(self):
        self.log = []
        self.failures = {}
        self.serial = 0

    def links(self):
        return _Resource(self, "links")

    def collections(self):
        return _Resource(self, "collections")
