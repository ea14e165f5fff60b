"""xz archives decompressed on every core, by the ``xz`` command of XZ Utils 5.4 or later.

``docker save IMAGE | xz -T0`` writes a stream of independent blocks, each
with its size in its header, which liblzma's threaded decoder (XZ Utils
5.4.0, ``lzma_stream_decoder_mt``) decompresses in parallel. Python's
``lzma`` module has no threaded decoder, so a whole xz archive is handed to
the ``xz`` command when one of that age is on PATH (Debian 12 has 5.4.1);
otherwise, and for xz layers inside an archive, the in-process decoder of
:mod:`.compression` is used.

The bounds are the in-process decoder's: ``--memlimit-decompress`` is
:data:`~.compression.DECODER_MEMORY`, which also caps the threaded decoder
(XZ Utils uses the lower of the two limits for it). Streams of light presets
(``xz -T0 -1`` to ``-3``) then decompress on every core; a ``-6`` stream's
threads would need about 120 MiB, past what a run may use beside its upload
buffers, so xz decodes it on one thread, as fast as the in-process decoder.
What xz refuses is one line, in the words :class:`~.compression.Decompressor`
uses for the same fault.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import IO

from .compression import DECODER_MEMORY, OUT_CHUNK, CompressionError, too_much_memory

#: ``XZ_VERSION`` of XZ Utils 5.4.0 (``xz --robot --version``): the threaded decoder.
THREADED_SINCE = 50040002
#: What xz says of a stream that ends early (``LC_ALL=C``).
TRUNCATED = "Unexpected end of input"
#: What xz says of a stream that needs more memory than allowed.
MEMORY = "Memory usage limit reached"


@functools.cache
def command() -> tuple[str, ...] | None:
    """The ``xz`` command line that decompresses stdin to stdout on every core, or None.

    None when no ``xz`` is on PATH or it predates the threaded decoder.
    """
    path = shutil.which("xz")
    if path is None:
        return None
    try:
        out = subprocess.run([path, "--robot", "--version"], capture_output=True, text=True,
                             timeout=30, env=dict(os.environ, LC_ALL="C")).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    version = fields.get("XZ_VERSION", "")
    if not version.isdigit() or int(version) < THREADED_SINCE:
        return None
    return (path, "--decompress", "--stdout", "--threads=0",
            f"--memlimit-decompress={DECODER_MEMORY}")


class XzProcess:
    """``xz -d -T0`` reading ``source`` (a file opened for reading) from where it stands.

    :meth:`pieces` yields the decompressed bytes, at most :data:`OUT_CHUNK` at
    a time, and raises :class:`CompressionError` if xz refuses the stream;
    :meth:`close` stops xz if the reader stopped early.
    """

    def __init__(self, source: IO[bytes], argv: tuple[str, ...]) -> None:
        self.proc = subprocess.Popen(argv, stdin=source, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE,
                                     env=dict(os.environ, LC_ALL="C"))

    def pieces(self) -> Iterator[bytes]:
        stdout, stderr = self.proc.stdout, self.proc.stderr
        assert stdout is not None and stderr is not None
        try:
            while True:
                data = stdout.read(OUT_CHUNK)
                if not data:
                    break
                yield data
            # xz's few lines of complaint fit any pipe buffer: no deadlock here.
            said = stderr.read().decode(errors="replace")
        finally:
            stdout.close()
            stderr.close()
        if self.proc.wait() != 0:
            raise CompressionError(refusal(said))

    def close(self) -> None:
        """Stop xz if it still runs (the reader of :meth:`pieces` then meets the end)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def refusal(said: str) -> str:
    """The one line for what xz wrote on stderr when it refused a stream."""
    lines = [line.split(": ", 2)[-1].strip() for line in said.splitlines() if line.strip()]
    if any(MEMORY in line for line in lines):
        return too_much_memory("xz")
    if any(TRUNCATED in line for line in lines):
        return "truncated xz data"
    return "corrupt xz data ({})".format(lines[0] if lines else "xz failed")
