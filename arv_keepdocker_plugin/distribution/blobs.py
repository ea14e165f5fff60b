"""Streaming a blob from a registry, verified while it streams.

:class:`BlobStream` yields a blob's bytes in chunks of at most
:data:`CHUNK_SIZE`. It counts and hashes them as they arrive and raises
:class:`~.registry_errors.DigestMismatch` *before* handing over the chunk that would
complete a blob of the wrong size or digest: a caller never sees a complete
wrong blob.

A connection dropped in the middle (or a body that ends early) is resumed
with ``Range: bytes=N-``; the answer must be ``206`` with ``Content-Range:
bytes N-END/SIZE``. A server that answers ``200`` instead is read again from
the start and the first ``N`` bytes are skipped. Resumes are bounded by the
retry policy (that many in a row without progress).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from typing import Any

import requests

from .client import RegistryClient
from .manifests import Descriptor
from .registry_errors import DigestMismatch, RegistryError, RegistryUnreachable, one_line

log = logging.getLogger(__name__)

#: Largest chunk handed to the caller.
CHUNK_SIZE = 1024 * 1024
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_DROPPED = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
            requests.exceptions.Timeout)


class _EndedEarly(Exception):
    """The body ended before the blob's size."""


class BlobStream:
    """The bytes of one blob, from ``offset`` on, verified against its descriptor.

    Iterate once to get the chunks; :meth:`close` (or leaving a ``with``
    block) releases the connection if iteration stops early.

    :param client: the endpoint's client.
    :param repository: the repository at that endpoint.
    :param descriptor: the blob's digest and size (what is checked).
    :param offset: hand over bytes from this position on (for a resume
        journal). The digest still covers the whole blob: pass ``hasher``,
        a ``hashlib.sha256()`` already fed with the first ``offset`` bytes
        (it is updated in place), and the download starts at ``offset``;
        without it, the first ``offset`` bytes are downloaded and hashed but
        not handed over.
    :param chunk_size: largest chunk (at most :data:`CHUNK_SIZE`).
    """

    def __init__(self, client: RegistryClient, repository: str, descriptor: Descriptor, *,
                 offset: int = 0, hasher: Any | None = None,
                 chunk_size: int = CHUNK_SIZE) -> None:
        if not 0 <= offset <= descriptor.size:
            raise ValueError("offset %d outside blob of %d bytes" % (offset, descriptor.size))
        if hasher is not None and getattr(hasher, "name", "") != "sha256":
            raise ValueError("hasher must be a hashlib.sha256() object")
        self.client = client
        self.repository = repository
        self.descriptor = descriptor
        self.offset = offset
        self.chunk_size = max(1, min(chunk_size, CHUNK_SIZE))
        self._hasher = hasher if hasher is not None else hashlib.sha256()
        #: Next byte position to hash (everything before it is in the hasher).
        self._position = offset if hasher is not None else 0
        #: How many times the download was resumed or restarted.
        self.resumes = 0
        self._response: requests.Response | None = None
        self._iterator: Iterator[bytes] | None = None

    @property
    def what(self) -> str:
        return "blob %s from %s/%s" % (self.descriptor.digest, self.client.registry,
                                      self.repository)

    def __iter__(self) -> Iterator[bytes]:
        if self._iterator is None:
            self._iterator = self._chunks()
        return self._iterator

    def __enter__(self) -> BlobStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection; further iteration ends."""
        if self._iterator is not None:
            self._iterator.close()  # type: ignore[attr-defined]
        self._close_response()

    def read_all(self, limit: int) -> bytes:
        """The whole (verified) rest of the blob, refused above ``limit`` bytes."""
        if self.descriptor.size - self.offset > limit:
            raise RegistryError("%s is %d bytes, more than the %d allowed"
                                % (self.what, self.descriptor.size, limit))
        return b"".join(self)

    # -- internals -----------------------------------------------------------

    def _close_response(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None

    def _open(self) -> tuple[requests.Response, int]:
        """GET the blob from ``self._position``; return the response and where its body starts."""
        start = self._position
        headers = {"Range": "bytes=%d-" % start} if start else {}
        path = "/v2/%s/blobs/%s" % (self.repository, self.descriptor.digest)
        response = self.client.request(
            "GET", path, repository=self.repository, headers=headers, expect=(200, 206),
            what="GET " + self.what,
            not_found=lambda detail: self.client.fail(
                RegistryError, "%s: blob unknown%s" % (self.what, " (%s)" % detail
                                                       if detail else "")))
        if response.status_code == 200:
            if start:
                log.info("%s: the registry ignored Range: bytes=%d-; reading again from the "
                         "start", self.what, start)
            return response, 0
        if not start:
            response.close()
            raise self.client.fail(RegistryError, "%s: answered 206 to a request without Range"
                                   % self.what)
        self._check_content_range(response, start)
        return response, start

    def _check_content_range(self, response: requests.Response, start: int) -> None:
        value = response.headers.get("Content-Range", "")
        match = _CONTENT_RANGE.match(value.strip())
        size = self.descriptor.size
        if match is None or int(match.group(1)) != start or int(match.group(2)) != size - 1 \
                or match.group(3) not in ("*", str(size)):
            response.close()
            raise self.client.fail(RegistryError, "%s: asked for bytes=%d- and got Content-Range "
                                   "%r (expected bytes %d-%d/%d)"
                                   % (self.what, start, one_line(value, 80), start, size - 1,
                                      size))

    def _chunks(self) -> Iterator[bytes]:
        failures = 0
        try:
            while True:
                progress_before = self._position
                try:
                    yield from self._download()
                    return
                except _DROPPED + (_EndedEarly,) as e:
                    self._close_response()
                    failures = 0 if self._position > progress_before else failures
                    failures += 1
                    reason = self._drop_reason(e)
                    if failures >= self.client.retry.attempts:
                        raise self.client.fail(
                            RegistryUnreachable, "%s: connection dropped at byte %d of %d "
                            "(%s) %d times in a row" % (self.what, self._position,
                                                        self.descriptor.size, reason,
                                                        failures)) from None
                    log.info("%s: connection dropped at byte %d of %d (%s); resuming",
                             self.what, self._position, self.descriptor.size, reason)
                    self.client.retry.wait(failures)
                    self.resumes += 1
        finally:
            self._close_response()

    def _drop_reason(self, error: BaseException) -> str:
        if isinstance(error, _EndedEarly):
            return "the body ended early"
        if isinstance(error, requests.exceptions.Timeout) or "timed out" in str(error).lower():
            return "no data for %gs" % self.client.timeout
        return "the connection was cut"

    def _download(self) -> Iterator[bytes]:
        """One response's worth of verified chunks; raises on drops and mismatches."""
        size = self.descriptor.size
        if self._position == size:  # nothing left to fetch (an empty blob, a full hasher)
            self._finish()
            return
        response, body_position = self._open()
        self._response = response
        chunks = response.iter_content(self.chunk_size)
        for data in chunks:
            self.client.bytes_received += len(data)
            if body_position < self._position:  # restarted from 0: skip what we have
                skip = min(len(data), self._position - body_position)
                body_position += skip
                data = data[skip:]
                if not data:
                    continue
            body_position += len(data)
            start = self._position
            if start + len(data) > size:
                raise self.client.fail(DigestMismatch, "%s: the registry sent more than its "
                                       "%d bytes" % (self.what, size))
            self._hasher.update(data)
            self._position += len(data)
            out = data[max(0, self.offset - start):] if start < self.offset else data
            if self._position == size:
                self._refuse_more(chunks)
                self._finish()
                if out:
                    yield out
                return
            if out:
                yield out
        raise _EndedEarly()

    def _refuse_more(self, rest: Iterator[bytes]) -> None:
        """Refuse a body longer than the blob (a connection cut there does no harm)."""
        try:
            longer = any(rest)
        except _DROPPED:
            longer = False
        if longer:
            raise self.client.fail(DigestMismatch, "%s: the registry sent more than its %d bytes"
                                   % (self.what, self.descriptor.size))

    def _finish(self) -> None:
        """All ``size`` bytes are hashed: check the digest."""
        actual = "sha256:" + self._hasher.hexdigest()
        if actual != self.descriptor.digest:
            raise self.client.fail(DigestMismatch, "%s: content has digest %s, expected %s; "
                                   "refusing it" % (self.what, actual, self.descriptor.digest))
        log.debug("%s: %d bytes verified", self.what, self.descriptor.size)
