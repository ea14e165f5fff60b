"""Every record of an Arvados list call, in one request when one page holds them all.

``arvados.util.keyset_list_all`` (``sdk/python/arvados/util.py``) asks with
``count=none`` and learns that it has everything only from an empty next
page: two requests for the handful of links and collections a lookup finds.
:func:`list_all` asks for the first page with ``count=exact`` in the same
order; when the page holds ``items_available`` records (the server's count
of every match, ``services/api/app/controllers/application_controller.rb``,
``render_list``), that is all of them. Otherwise (a server that caps the page,
as Arvados does for large responses) it goes through ``keyset_list_all``
from the start, so the result is what ``keyset_list_all`` gives either way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import arvados.util

#: keyset_list_all's own page size and order (created_at, then uuid).
PAGE_SIZE = 1000
ORDER = ["created_at asc", "uuid asc"]


def list_all(fn: Callable[..., Any], num_retries: int, **kwargs: Any) -> list[dict[str, Any]]:
    """Every record ``fn(**kwargs)`` matches (``fn`` as ``api.links().list``)."""
    first = dict(kwargs, limit=PAGE_SIZE, count="exact", order=ORDER)
    if "select" in first:
        first["select"] = list(dict.fromkeys([*first["select"], "uuid", "created_at"]))
    page = fn(**first).execute(num_retries=num_retries)
    items = page.get("items") or []
    available = page.get("items_available")
    if isinstance(available, int) and len(items) >= available:
        return list(items)
    return list(arvados.util.keyset_list_all(fn, num_retries=num_retries, **kwargs))
