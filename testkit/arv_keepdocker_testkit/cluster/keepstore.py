"""The cluster's Keep service: block PUT, GET and HEAD, as keepstore answers them.

See ``services/keepstore/router.go`` and ``services/keepstore/keepstore.go``
in the Arvados repository.

The API server's request handler hands every request whose path starts with
``/<32 hex>`` to :func:`handle_put` or :func:`handle_get`; they write the whole
response themselves. Blocks live in ``<blob_dir>/<first 3 hex>/<md5>``.

Behaviour worth knowing:

* PUT needs a token the API server knows (401), a ``Content-Length`` (411) of
  at most 64 MiB (413), and a body whose md5 is the URL's hash (422). It
  answers ``<md5>+<size>+A<sig>@<expiry>`` signed for the caller's token and
  claims as many replicas as asked for (one node standing in for a proxy).
* GET/HEAD need a known token (401) and a valid signature for that token on
  the locator: expired -> 401, missing or invalid -> 400 (keepstore's codes);
  admins get no exemption. Unknown block -> 404.
* ``Expect: 100-continue``: when the server defers it (see
  :func:`defer_expect_100`), ``100 Continue`` is sent only for an accepted PUT;
  a refusal then closes the connection instead of reading the body. When the
  client is already sending, a refused body is read and discarded first.
* Faults armed on ``keep_put`` / ``keep_get`` (:mod:`.faults`) stall and/or
  answer their status.
"""

import errno
import fcntl
import hashlib
import json
import mmap
import os
import re
import ssl
import threading
import time
import uuid

from . import signing

MAX_BLOCK_SIZE = 1 << 26  # 64 MiB, Arvados' block size limit
CHUNK = 1 << 20  # body streaming unit
MAX_DISCARD = 1 << 28  # bodies larger than this are not drained: close instead
EMPTY_BLOCK = "d41d8cd98f00b204e9800998ecf8427e"
DIRECT_ALIGN = 4096  # O_DIRECT needs buffer, offset and length multiples of this

_PUT_PATH_RE = re.compile(r"^/([0-9a-f]{32})(?:[+/?].*)?$", re.S)
_GET_PATH_RE = re.compile(r"^/([0-9a-f]{32}(?:\+[^/?]*)?)(?:\?.*)?$", re.S)

_local = threading.local()


def defer_expect_100(handler):
    """Let Keep decide on ``Expect: 100-continue`` instead of answering at once.

    Call from the request handler's ``handle_expect_100`` for Keep paths and
    return its result (True). Keep then sends ``100 Continue`` only for a PUT
    it accepts, so a refused upload is never sent.
    """
    handler.keep_continue_pending = True
    return True


def block_path(blob_dir, md5hex):
    """Where a block with this md5 is stored."""
    return blob_dir / md5hex[:3] / md5hex


def _buffer():
    """This thread's reusable, page-aligned 1 MiB buffer (aligned for O_DIRECT)."""
    buf = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = memoryview(mmap.mmap(-1, CHUNK))
    return buf


def _send(handler, status, body=b"", headers=(), close=False, head=False, length=None):
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    if close:
        handler.send_header("Connection", "close")
        handler.close_connection = True
    handler.end_headers()
    if body and not head:
        handler.wfile.write(body)


def _send_error(handler, status, message, close=False, head=False):
    body = (json.dumps({"errors": [message]}) + "\n").encode()
    _send(handler, status, body, [("Content-Type", "application/json")], close=close, head=head)


def _content_length(handler):
    value = handler.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _discard(handler, length):
    """Read and drop ``length`` body bytes; False if the client went away."""
    buf = _buffer()
    while length > 0:
        n = handler.rfile.readinto(buf[: min(CHUNK, length)])
        if not n:
            return False
        length -= n
    return True


def _refuse_put(handler, status, message):
    """Answer a PUT we will not serve, without leaving its body in the pipe."""
    length = _content_length(handler)
    if getattr(handler, "keep_continue_pending", False):
        # The client waits for 100 Continue before sending: answer and close.
        handler.keep_continue_pending = False
        _send_error(handler, status, message, close=True)
    elif length is not None and length <= MAX_DISCARD and _discard(handler, length):
        _send_error(handler, status, message)
    else:
        _send_error(handler, status, message, close=True)


def _apply_fault(handler, ctx, target):
    """Apply an armed fault; True if it answered the request already."""
    fault = ctx.faults.take(target) if ctx.faults is not None else None
    if fault is None:
        return False
    if fault.stall:
        time.sleep(fault.stall)
    if fault.status is None:
        return False
    message = "injected fault (%s)" % target
    if target == "keep_put":
        if getattr(handler, "keep_continue_pending", False):
            _send_continue(handler)
        _refuse_put(handler, fault.status, message)
    else:
        _send_error(handler, fault.status, message, head=handler.command == "HEAD")
    return True


def _send_continue(handler):
    if getattr(handler, "keep_continue_pending", False):
        handler.keep_continue_pending = False
        handler.send_response_only(100)
        handler.end_headers()


def _open_block_file(path):
    """Create ``path`` for writing; return ``(fd, direct)``.

    Blocks are written with ``O_DIRECT`` where the filesystem allows it: the
    kernel then copies nothing and allocates no page cache, which is most of
    the cost of storing a block on a small machine (tmpfs and others refuse
    ``O_DIRECT``; plain writes are used there).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    direct = getattr(os, "O_DIRECT", 0)
    if direct:
        try:
            return os.open(path, flags | direct, 0o644), True
        except OSError:
            pass
    return os.open(path, flags, 0o644), False


def _write_all(fd, data, direct):
    """Write all of ``data``; return whether ``fd`` is still in O_DIRECT mode.

    O_DIRECT needs aligned lengths: an unaligned tail (the last piece of a
    block) switches the file back to ordinary buffered writes.
    """
    if direct and len(data) % DIRECT_ALIGN:
        direct = _stop_direct(fd)
    written = 0
    while written < len(data):
        try:
            written += os.write(fd, data[written:])
        except OSError as err:
            if not (direct and err.errno == errno.EINVAL):
                raise
            direct = _stop_direct(fd)  # a filesystem that opens O_DIRECT but cannot write it
    return direct


def _stop_direct(fd):
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_DIRECT)
    return False


class StorageError(Exception):
    """The block could not be written to disk (reported as 422, not 5xx)."""


def _receive_block(handler, length, tmp_path):
    """Stream ``length`` body bytes into ``tmp_path``; return their md5 or None if cut short.

    Disk errors raise :class:`StorageError` after the rest of the body has
    been read (so the client still gets an answer); socket errors propagate.
    """
    buf = _buffer()
    digest = hashlib.md5()
    try:
        fd, direct = _open_block_file(tmp_path)
    except OSError as err:
        fd, failure = None, err
    else:
        failure = None
    try:
        remaining = length
        while remaining > 0:
            want = min(CHUNK, remaining)
            n = handler.rfile.readinto(buf[:want])
            if n != want:
                return None  # BufferedReader only comes up short at end of stream
            chunk = buf[:n]
            digest.update(chunk)
            if failure is None:
                try:
                    direct = _write_all(fd, chunk, direct)
                except OSError as err:
                    failure = err
            remaining -= n
    finally:
        if fd is not None:
            os.close(fd)
    if failure is not None:
        raise StorageError("cannot store block: %s" % failure)
    return digest.hexdigest()


def _note_expect(handler):
    # The deferral flag lives on the (keep-alive) handler: clear it unless
    # this very request asked for 100 Continue.
    if handler.headers.get("Expect", "").strip().lower() != "100-continue":
        handler.keep_continue_pending = False


def handle_put(handler, ctx):
    """Serve ``PUT /<md5>``: store the body as a block, answer its signed locator."""
    _note_expect(handler)
    if _apply_fault(handler, ctx, "keep_put"):
        return
    match = _PUT_PATH_RE.match(handler.path)
    if not match:
        return _refuse_put(handler, 400, "bad block PUT path %r" % handler.path)
    md5hex = match.group(1)
    if not ctx.token or ctx.user is None:
        return _refuse_put(handler, 401, "a valid API token is required to write blocks")
    if handler.headers.get("Transfer-Encoding"):
        handler.keep_continue_pending = False
        return _send_error(handler, 411, "Content-Length is required", close=True)
    length = _content_length(handler)
    if length is None:
        return _refuse_put(handler, 411, "Content-Length is required")
    if length > MAX_BLOCK_SIZE:
        return _refuse_put(handler, 413, "block is larger than 64 MiB")

    final = block_path(ctx.blob_dir, md5hex)
    tmp = final.parent / (".tmp-%s-%s" % (md5hex, uuid.uuid4().hex))
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return _refuse_put(handler, 422, "cannot store block: %s" % err)
    _send_continue(handler)
    try:
        received = _receive_block(handler, length, tmp)
        if received is None:
            handler.close_connection = True
            return  # the client went away: nothing to answer
        if received != md5hex:
            return _send_error(handler, 422, "hash mismatch: body md5 is %s, URL says %s"
                               % (received, md5hex))
        os.replace(tmp, final)
    except StorageError as err:
        return _send_error(handler, 422, str(err))
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass

    expiry = int(time.time()) + ctx.ttl
    locator = signing.sign_locator("%s+%d" % (md5hex, length), ctx.token, ctx.signing_key,
                                   ctx.ttl, expiry)
    replicas = _desired_replicas(handler, ctx)
    classes = [c.strip() for c in handler.headers.get("X-Keep-Storage-Classes", "").split(",")
               if c.strip()] or ["default"]
    _send(handler, 200, (locator + "\n").encode(), [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("X-Keep-Replicas-Stored", str(replicas)),
        ("X-Keep-Storage-Classes-Confirmed", ", ".join("%s=%d" % (c, replicas) for c in classes)),
    ])


def _desired_replicas(handler, ctx):
    value = handler.headers.get("X-Keep-Desired-Replicas", "")
    try:
        wanted = int(value)
    except ValueError:
        wanted = 0
    return max(wanted, 1) if value else max(int(ctx.replication or 1), 1)


def handle_get(handler, ctx, head):
    """Serve ``GET|HEAD /<md5>+<size>+A<sig>@<expiry>``: the block's bytes (or headers)."""
    handler.keep_continue_pending = False
    if _apply_fault(handler, ctx, "keep_get"):
        return
    match = _GET_PATH_RE.match(handler.path)
    if not match:
        return _send_error(handler, 400, "bad block locator in %r" % handler.path, head=head)
    locator = match.group(1)
    md5hex = locator[:32]
    if not ctx.token or ctx.user is None:
        return _send_error(handler, 401, "a valid API token is required to read blocks", head=head)
    if "+" not in locator or not locator.split("+")[1].isdigit():
        if md5hex != EMPTY_BLOCK:
            return _send_error(handler, 405, "locator needs a size hint", head=head)
        locator = EMPTY_BLOCK + "+0" + locator[32:]
    try:
        signing.verify_locator(locator, ctx.token, ctx.signing_key, ctx.ttl, time.time())
    except signing.ExpiredSignatureError as err:
        return _send_error(handler, 401, err.reason, head=head)
    except signing.SignatureError as err:
        return _send_error(handler, 400, err.reason, head=head)

    headers = [("Content-Type", "application/octet-stream"), ("Vary", "X-Keep-Signature")]
    path = block_path(ctx.blob_dir, md5hex)
    try:
        blob = open(path, "rb", buffering=0)
    except FileNotFoundError:
        if md5hex == EMPTY_BLOCK:
            return _send(handler, 200, b"", headers, head=head)
        return _send_error(handler, 404, "block not found", head=head)
    with blob:
        size = os.fstat(blob.fileno()).st_size
        if not head and hasattr(os, "posix_fadvise"):
            # Blocks are written with O_DIRECT, so usually not cached: start
            # reading all of it now instead of one readahead window at a time.
            os.posix_fadvise(blob.fileno(), 0, size, os.POSIX_FADV_WILLNEED)
        _send(handler, 200, b"", headers, head=head, length=size)
        if not head:
            _stream_file(handler, blob, size)


def _stream_file(handler, blob, size):
    """Write ``size`` bytes of the open ``blob`` to the client.

    Plain sockets use ``sendfile``; TLS sockets cannot, so 1 MiB chunks are
    read into a reused buffer and written.
    """
    sock = handler.connection
    if not isinstance(sock, ssl.SSLSocket):
        handler.wfile.flush()
        sock.sendfile(blob, 0, size)
        return
    buf = _buffer()
    remaining = size
    while remaining > 0:
        n = blob.readinto(buf[: min(CHUNK, remaining)])
        if not n:
            break
        handler.wfile.write(buf[:n])
        remaining -= n
