"""What one run knows from its start: who runs it, where the image goes, the cluster.

:class:`RunContext` is built once (:meth:`RunContext.build`, one
``users().current()`` request and the discovery document the API client
already holds) and handed to every step in place of loose arguments and the
whole command line. Hooks and sources still receive the parsed command line
as ``options`` (third-party plugins read their own options there).
"""

from __future__ import annotations

import argparse
import dataclasses
import weakref
from typing import Any

import arvados.util

from ..errors import KeepdockerError
from ..keep.progress import mode_from_options
from ..keep.trust_records import WriterRule


@dataclasses.dataclass(frozen=True)
class RunContext:
    """The facts of one run.

    :ivar api: the Arvados API client.
    :ivar pm: the plugin manager.
    :ivar options: the parsed command line, for hooks and sources only.
    :ivar user_uuid: the user the token belongs to.
    :ivar project_uuid: ``--project-uuid``, when given.
    :ivar retries: ``--retries``, for API and Keep requests.
    :ivar formats: the cluster's ``dockerImageFormats`` (``None`` when absent).
    :ivar replication: the cluster's ``defaultCollectionReplication`` (default 2).
    :ivar progress: the progress mode: ``"human"``, ``"machine"`` or ``None``.
    """

    api: Any
    pm: Any
    options: argparse.Namespace
    user_uuid: str
    project_uuid: str | None
    retries: int
    formats: tuple[str, ...] | None
    replication: int
    progress: str | None

    @classmethod
    def build(cls, api: Any, pm: Any, options: argparse.Namespace) -> RunContext:
        """Ask Arvados who the user is, check ``--project-uuid``, read the cluster's settings."""
        retries = options.retries
        user = current_user(api, retries)
        if options.project_uuid:
            check_project(api, options.project_uuid, retries)
        root = getattr(api, "_rootDesc", None) or {}
        formats = root.get("dockerImageFormats")
        return cls(api=api, pm=pm, options=options, user_uuid=user,
                   project_uuid=options.project_uuid or None, retries=retries,
                   formats=tuple(formats) if formats is not None else None,
                   replication=root.get("defaultCollectionReplication") or 2,
                   progress=mode_from_options(options))

    @property
    def owner_uuid(self) -> str:
        """Who will own what this run writes: the destination project, else the user."""
        return self.project_uuid or self.user_uuid

    @property
    def writer_rule(self) -> WriterRule:
        """Whose records are trusted unread: this user's, for content still stored.

        Not the destination's owners: anyone with ``can_write`` on a project
        makes records the project owns (docs/trust.md).
        """
        return WriterRule(self.user_uuid)

    # -- command-line facts the steps act on -----------------------------------

    @property
    def force(self) -> bool:
        return bool(self.options.force)

    @property
    def silent(self) -> bool:
        return bool(self.options.silent)

    @property
    def resume(self) -> bool:
        return bool(self.options.resume)

    @property
    def use_cache(self) -> bool:
        return bool(self.options.use_cache)

    @property
    def force_image_format(self) -> bool:
        return bool(self.options.force_image_format)

    @property
    def collection_name(self) -> str | None:
        """``--name``, when given."""
        return self.options.name


#: The user each API client's token belongs to, asked once per client (``--cwl``
#: stores several images with one client, each run building its context).
_USERS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def current_user(api: Any, retries: int) -> str:
    """The UUID of the user ``api``'s token belongs to (one request per client)."""
    try:
        return _USERS[api]
    except (KeyError, TypeError):
        pass
    user = api.users().current().execute(num_retries=retries)["uuid"]
    try:
        _USERS[api] = user
    except TypeError:  # a client that takes no weak reference: ask each time
        pass
    return user


def check_project(api: Any, uuid: str, retries: int) -> None:
    """``--project-uuid`` must be a readable user or project (as arv-put checks)."""
    if arvados.util.user_uuid_pattern.match(uuid):
        api.users().get(uuid=uuid).execute(num_retries=retries)
    elif arvados.util.group_uuid_pattern.match(uuid):
        api.groups().get(uuid=uuid).execute(num_retries=retries)
    else:
        raise KeepdockerError(f"Not a valid project UUID: {uuid}")
