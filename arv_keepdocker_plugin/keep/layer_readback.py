"""Reading stored bytes back from Keep to check them, as the tap checks a fresh upload.

Another user's record says a layer's bytes lie in some blocks; reading those
blocks and hashing them (sha256 of the bytes, and of what they decompress
to) proves it, or not, without believing the record. Reads go through
:func:`reading_client`, whose block cache holds one block (Keep's blocks are
at most 64 MiB): the SDK's default cache of 256 MiB would keep a whole
image's worth of blocks in memory while it is read once.
"""

from __future__ import annotations

from collections.abc import Sequence

import arvados.keep

from ..archive.layer_digests import Digests, MemberDigest

#: The block cache of a client that reads each block once (the SDK's minimum).
READ_ONCE_CACHE = 64 << 20


def reading_client(api, num_retries: int) -> arvados.keep.KeepClient:
    """A Keep client for reading stored bytes once, in order, with a one-block cache."""
    return arvados.keep.KeepClient(
        api_client=api, num_retries=num_retries,
        block_cache=arvados.keep.KeepBlockCache(cache_max=READ_ONCE_CACHE))


def read_back(keep, locators: Sequence[str], num_retries: int) -> Digests:
    """The digests of the bytes ``locators`` hold, read from Keep in order.

    Raises what the Keep client raises when a block cannot be read.
    """
    digest = MemberDigest()
    for locator in locators:
        digest.update(keep.get(locator, num_retries=num_retries))
    return digest.finish()


def problem_with_layer(keep, locators: Sequence[str], digest: str,
                       num_retries: int) -> tuple[str | None, str | None]:
    """``(problem, diff id)``: why the blocks are not layer ``digest``, or its diff id."""
    try:
        found = read_back(keep, locators, num_retries)
    except Exception as error:  # a block that cannot be read: the record is not usable
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"cannot read it back ({text})", None
    if found.raw != digest:
        return f"its bytes hash to {found.raw}", None
    if found.diff_id is None:
        return f"it cannot be decompressed ({found.problem})", None
    return None, found.diff_id
