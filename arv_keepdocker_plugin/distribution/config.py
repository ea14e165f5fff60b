"""registries.conf (version 2): where an image is really pulled from.

Files, as podman reads them:

* the main file: an explicit path (tests, a future option), else
  ``$CONTAINERS_REGISTRIES_CONF``, else the user's
  ``${XDG_CONFIG_HOME:-~/.config}/containers/registries.conf`` if it exists,
  else ``/etc/containers/registries.conf``;
* then drop-ins, ``*.conf`` in lexical order: from
  ``/etc/containers/registries.conf.d/`` and then the user's
  ``registries.conf.d/``; only the user's when the main file is not the
  system one. A ``[[registry]]`` with the prefix of an earlier one replaces it.

Only ``[[registry]]`` tables are used: ``prefix``, ``location``,
``insecure``, ``blocked``, ``mirror-by-digest-only`` and
``[[registry.mirror]]`` (``location``, ``insecure``, ``pull-from-mirror`` =
``all``, ``digest-only`` or ``tag-only``). Other keys
(``unqualified-search-registries``, aliases, the version 1 tables) are
ignored: there is no short-name search here.

The table with the longest matching ``prefix`` decides: a blocked one is
refused, otherwise its mirrors are tried first (as ``pull-from-mirror``
allows), then the primary ``location``; the matched prefix is replaced by
each ``location``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import BadReference
from .reference import RegistryReference, parse_reference
from .registry_errors import RegistryBlocked, RegistryConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python < 3.11 only
    import tomli as tomllib

SYSTEM_REGISTRIES_CONF = "/etc/containers/registries.conf"
ENV_OVERRIDE = "CONTAINERS_REGISTRIES_CONF"
PULL_FROM_MIRROR = ("all", "digest-only", "tag-only")


@dataclasses.dataclass(frozen=True)
class Mirror:
    """A ``[[registry.mirror]]``: ``location`` may hold a path (``host/ns``)."""

    location: str
    insecure: bool = False
    pull_from_mirror: str = ""


@dataclasses.dataclass(frozen=True)
class RegistryEntry:
    """A ``[[registry]]`` table; ``source`` is the file that defined it."""

    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirror_by_digest_only: bool = False
    mirrors: tuple[Mirror, ...] = ()
    source: str = ""

    def matches(self, ref_text: str) -> int:
        """The length of the matched prefix in ``ref_text``, or -1.

        ``ref_text`` is ``registry/repository[:tag][@digest]``. A prefix
        matches whole components only: ``example.com`` matches
        ``example.com/x`` but neither ``example.com.evil/x`` nor
        ``example.com:5000/x``. ``*.example.com`` matches any host below
        ``example.com``.
        """
        prefix = self.prefix
        if prefix.startswith("*."):
            host = ref_text.split("/", 1)[0]
            return len(host) if host.endswith(prefix[1:]) else -1
        if not ref_text.startswith(prefix):
            return -1
        if len(ref_text) == len(prefix):
            return len(prefix)
        following = ref_text[len(prefix)]
        if following == "/" or following == "@" or (following == ":" and "/" in prefix):
            return len(prefix)
        return -1


@dataclasses.dataclass(frozen=True)
class PullSource:
    """One place to try: the reference there and how to reach it.

    :ivar reference: the reference at this endpoint (prefix rewritten).
    :ivar insecure: plain HTTP and unverified TLS are allowed here.
    :ivar mirror: whether this is a mirror rather than the primary location.
    """

    reference: RegistryReference
    insecure: bool = False
    mirror: bool = False

    def describe(self) -> str:
        """``mirror HOST/REPO`` or ``HOST/REPO``, for messages."""
        return ("mirror " if self.mirror else "") + self.reference.name


@dataclasses.dataclass(frozen=True)
class RegistriesConf:
    """The ``[[registry]]`` tables of all files read; ``files`` lists them in order."""

    entries: tuple[RegistryEntry, ...] = ()
    files: tuple[str, ...] = ()

    def find(self, ref: RegistryReference) -> RegistryEntry | None:
        """The entry with the longest prefix matching ``ref``, or ``None``."""
        text = str(ref)
        best, best_length = None, -1
        for entry in self.entries:
            length = entry.matches(text)
            if length > best_length:
                best, best_length = entry, length
        return best

    def pull_sources(self, ref: RegistryReference) -> list[PullSource]:
        """Where to try ``ref``, in order: usable mirrors, then the primary.

        :raises RegistryBlocked: when the matching entry is blocked.
        """
        entry = self.find(ref)
        if entry is None:
            return [PullSource(ref)]
        if entry.blocked:
            raise RegistryBlocked("%s is blocked by registries.conf (prefix %r in %s)"
                                  % (ref.name, entry.prefix, entry.source or "registries.conf"))
        sources = []
        for mirror in entry.mirrors:
            mode = mirror.pull_from_mirror or (
                "digest-only" if entry.mirror_by_digest_only else "all")
            if (mode == "digest-only" and not ref.digest) or (mode == "tag-only" and ref.digest):
                continue
            sources.append(PullSource(_rewrite(ref, entry, mirror.location),
                                      insecure=mirror.insecure, mirror=True))
        sources.append(PullSource(_rewrite(ref, entry, entry.location), insecure=entry.insecure))
        return sources


def _rewrite(ref: RegistryReference, entry: RegistryEntry, location: str) -> RegistryReference:
    """``ref`` with ``entry.prefix`` replaced by ``location``."""
    if entry.prefix.startswith("*.") or location == entry.prefix:
        return ref
    rest = str(ref)[len(entry.prefix):]
    try:
        moved = parse_reference(location + rest)
    except BadReference as e:
        raise RegistryConfigError("registries.conf %s: location %r cannot hold %s (%s)"
                                  % (entry.source, location, ref.name, e)) from None
    return ref.with_location(moved.registry, moved.repository)


def _table_bool(table: Mapping[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise RegistryConfigError("%s: %s must be true or false" % (where, key))
    return value


def _table_str(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise RegistryConfigError("%s: %s must be a string" % (where, key))
    return value.strip()


def _check_location(value: str, where: str, what: str) -> None:
    if value.startswith("*."):
        raise RegistryConfigError("%s: a %s cannot be a wildcard (%r)" % (where, what, value))
    try:
        parse_reference(value)
    except BadReference:
        raise RegistryConfigError("%s: invalid %s %r" % (where, what, value)) from None


def _parse_entry(table: object, path: str, number: int) -> RegistryEntry:
    where = "%s: [[registry]] #%d" % (path, number)
    if not isinstance(table, dict):
        raise RegistryConfigError("%s is not a table" % where)
    prefix = _table_str(table, "prefix", where)
    location = _table_str(table, "location", where)
    if not prefix and not location:
        raise RegistryConfigError("%s needs a prefix or a location" % where)
    prefix = prefix or location
    if prefix.startswith("*."):
        if location:
            raise RegistryConfigError("%s: a wildcard prefix %r cannot have a location"
                                      % (where, prefix))
        location = prefix
    else:
        _check_location(prefix, where, "prefix")
        location = location or prefix
        _check_location(location, where, "location")
    by_digest_only = _table_bool(table, "mirror-by-digest-only", where)
    mirrors = []
    raw_mirrors = table.get("mirror", [])
    if not isinstance(raw_mirrors, list):
        raise RegistryConfigError("%s: mirror must be an array of tables" % where)
    for n, raw in enumerate(raw_mirrors, 1):
        mwhere = "%s mirror #%d" % (where, n)
        if not isinstance(raw, dict):
            raise RegistryConfigError("%s is not a table" % mwhere)
        mlocation = _table_str(raw, "location", mwhere)
        if not mlocation:
            raise RegistryConfigError("%s has no location" % mwhere)
        _check_location(mlocation, mwhere, "location")
        mode = _table_str(raw, "pull-from-mirror", mwhere)
        if mode and mode not in PULL_FROM_MIRROR:
            raise RegistryConfigError("%s: pull-from-mirror must be one of %s, not %r"
                                      % (mwhere, ", ".join(PULL_FROM_MIRROR), mode))
        if mode and by_digest_only:
            raise RegistryConfigError("%s: mirror-by-digest-only and pull-from-mirror cannot "
                                      "be used together" % mwhere)
        mirrors.append(Mirror(mlocation, _table_bool(raw, "insecure", mwhere), mode))
    return RegistryEntry(prefix=prefix, location=location,
                         insecure=_table_bool(table, "insecure", where),
                         blocked=_table_bool(table, "blocked", where),
                         mirror_by_digest_only=by_digest_only, mirrors=tuple(mirrors),
                         source=path)


def parse_file(path: str) -> list[RegistryEntry] | None:
    """The ``[[registry]]`` entries of one file; ``None`` if it does not exist."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise RegistryConfigError("cannot read %s: %s" % (path, e.strerror)) from None
    except tomllib.TOMLDecodeError as e:
        raise RegistryConfigError("%s is not valid TOML: %s" % (path, e)) from None
    tables = data.get("registry", [])
    if not isinstance(tables, list):
        raise RegistryConfigError("%s: registry must be an array of tables ([[registry]])" % path)
    return [_parse_entry(table, path, n) for n, table in enumerate(tables, 1)]


def _drop_ins(directory: str | None) -> list[str]:
    if not directory or not os.path.isdir(directory):
        return []
    return [os.path.join(directory, name) for name in sorted(os.listdir(directory))
            if name.endswith(".conf") and os.path.isfile(os.path.join(directory, name))]


def config_files(path: str | None = None, *, system_path: str = SYSTEM_REGISTRIES_CONF,
                 user_path: str | None = None,
                 env: Mapping[str, str] | None = None) -> list[str]:
    """The registries.conf files to read, main file first, then drop-ins.

    :param path: an explicit main file; like ``$CONTAINERS_REGISTRIES_CONF``,
        it replaces both the system and the user file.
    :param system_path: the system file (``/etc/containers/registries.conf``);
        its drop-in directory is ``system_path + ".d"``.
    :param user_path: the user's file; default
        ``${XDG_CONFIG_HOME:-~/.config}/containers/registries.conf``.
    """
    env = os.environ if env is None else env
    if user_path is None:
        home = env.get("HOME") or os.path.expanduser("~")
        config_home = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
        user_path = os.path.join(config_home, "containers", "registries.conf")
    main = path or env.get(ENV_OVERRIDE) or None
    if main is None and os.path.exists(user_path):
        main = user_path
    dirs: Sequence[str | None]
    if main is None:
        main = system_path
        dirs = (system_path + ".d", user_path + ".d")
    else:
        dirs = (user_path + ".d",)
    files = [main]
    for directory in dirs:
        files.extend(_drop_ins(directory))
    return files


def load_registries_conf(path: str | None = None, *,
                         system_path: str = SYSTEM_REGISTRIES_CONF,
                         user_path: str | None = None,
                         env: Mapping[str, str] | None = None) -> RegistriesConf:
    """Read registries.conf and its drop-ins (see :func:`config_files`).

    Missing files are skipped; invalid ones raise :class:`RegistryConfigError`.
    """
    by_prefix: dict[str, RegistryEntry] = {}
    read = []
    for file in config_files(path, system_path=system_path, user_path=user_path, env=env):
        entries = parse_file(file)
        if entries is None:
            continue
        read.append(file)
        for entry in entries:
            by_prefix.pop(entry.prefix, None)  # a later file's entry replaces it
            by_prefix[entry.prefix] = entry
    return RegistriesConf(tuple(by_prefix.values()), tuple(read))
