"""What the Docker and podman sources share: running an engine CLI and reading its answers.

Both engines are driven through their command-line tools, so the user's own
configuration (``DOCKER_HOST``, contexts, ``storage.conf``) applies unchanged.
The image is exported by streaming ``docker save`` / ``podman save`` from the
CLI's stdout, never through a temporary file.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from .. import stagetimes
from ..errors import ImageNotFound, SourceError
from ..image import ByteStream, Image, Layer, Reference

#: Pipe buffer for an export (large reads keep the stream fast).
EXPORT_BUFSIZE = 1 << 20
#: How long a failing consumer waits for the command to report its own error.
ERROR_GRACE = 1


def first_line(text: str) -> str:
    """The first meaningful line of a CLI's stderr (skipping deprecation notes)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    for line in lines:
        if not line.startswith(("DEPRECATED", "WARNING", "BuildKit")):
            return line
    return lines[0] if lines else "(no message)"


def inspected(stdout: bytes, target: str, command: str) -> dict[str, Any]:
    """The one image record that ``docker``/``podman image inspect TARGET`` printed.

    Both engines print a JSON list of records. :class:`ImageNotFound` when it
    is empty or names several images; :class:`SourceError` when the output
    is not such a list (``command`` names the command in the message).
    """
    try:
        matches = json.loads(stdout)
    except (ValueError, RecursionError):
        raise SourceError(f"{command} {target} printed no JSON") from None
    if not isinstance(matches, list) or not all(isinstance(m, dict) for m in matches):
        raise SourceError(f"{command} {target} printed no list of images")
    if not matches:
        raise ImageNotFound(f"no matching image found for {target}")
    if len(matches) > 1:
        raise ImageNotFound(f"{len(matches)} images match {target}")
    return matches[0]


@contextlib.contextmanager
def exporting(argv: Sequence[str], what: str) -> Iterator[ByteStream]:
    """Run ``argv`` and yield its stdout as a binary stream.

    At exit the process is always reaped. A consumer that read to the end
    gets :class:`SourceError` (with the CLI's stderr line) when the command
    failed; a consumer that stops early has the command killed. When the
    consumer raises and the command had already failed by itself, the
    command's error is raised instead (it is the cause).
    """
    stagetimes.mark("export start")
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=errors,
                                   bufsize=EXPORT_BUFSIZE)

        def failure() -> SourceError:
            errors.seek(0)
            message = first_line(errors.read().decode("utf-8", "replace"))
            return SourceError(f"{what} failed: {message}")

        stdout = process.stdout
        assert stdout is not None  # stdout=PIPE
        try:
            yield stdout
        except BaseException as error:
            # A consumer that hit the end of a failed stream races the exit.
            try:
                exited_by_itself = process.wait(timeout=ERROR_GRACE)
            except subprocess.TimeoutExpired:
                exited_by_itself = None
            _kill(process)
            if isinstance(error, Exception) and exited_by_itself not in (None, 0):
                raise failure() from error
            raise
        else:
            at_end = stdout.read(1) == b""
            if not at_end:
                _kill(process)  # the consumer chose to stop early
                return
            stdout.close()
            if process.wait() != 0:
                raise failure()
        finally:
            if process.poll() is None:
                _kill(process)
            if process.stdout and not process.stdout.closed:
                process.stdout.close()


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


def image_from_inspect(info: dict[str, Any], source: str, reference: Reference,
                       image_id: str, export: Callable[[], AbstractContextManager[ByteStream]],
                       manifest_digest: str | None = None) -> Image:
    """Build an :class:`Image` from one ``docker``/``podman image inspect`` record."""
    config = {"created": info.get("Created"), "config": info.get("Config") or {},
              "architecture": info.get("Architecture"), "os": info.get("Os")}
    config = {key: value for key, value in config.items() if value is not None}
    layers = [Layer(digest) for digest in ((info.get("RootFS") or {}).get("Layers") or [])]
    # The engine's image size: what the export holds, give or take (an estimate).
    size = info.get("Size")
    return Image(image_id=image_id, source=source, repo_tag=reference.repo_tag,
                 config=config, layers=tuple(layers), export=export,
                 manifest_digest=manifest_digest,
                 export_size=size if isinstance(size, int) and size > 0 else None,
                 export_size_estimated=True)
