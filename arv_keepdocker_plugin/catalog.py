"""The catalogue of sources: every image source of this run, by transport name.

Built once per run from the ``keepdocker_register_sources`` hook, as
containers/image builds its transport registry and llm its model list from a
``register`` callback; the plugin manager calls each plugin's implementation
with a ``register`` of its own, so every source is credited to the plugin
that registered it (:meth:`.plugins.PluginManager.sources`). A name is
registered once: a second source of the same name is refused and reported
(the plugin that offered it appears among broken plugins), so a third-party
plugin can never silently take over a default transport.

:class:`SourceCatalog` is a read-only :class:`~collections.abc.Mapping` of
``{name: ImageSource}`` (``get(name, default)`` returns the default, as any
mapping's does); :meth:`SourceCatalog.require` is the lookup for a name a
user typed, which fails with one line naming what is available.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from .errors import BadReference
from .image import ImageSource

__all__ = ["SourceCatalog"]


class SourceCatalog(Mapping[str, ImageSource]):
    """``{transport name: ImageSource}``, in registration order (a read-only mapping)."""

    def __init__(self) -> None:
        self._sources: dict[str, ImageSource] = {}
        self._plugins: dict[str, str] = {}
        #: ``(plugin, source name, message)`` for every refused registration.
        self.clashes: list[tuple[str, str, str]] = []

    # -- building ------------------------------------------------------------

    def add(self, source: object, plugin: str) -> None:
        """Register ``source`` for ``plugin``; a refusal is recorded, not raised."""
        name = getattr(source, "name", "")
        if not isinstance(source, ImageSource) or not name:
            self.clashes.append((plugin, str(name), f"registered {source!r}, which is not an "
                                 "ImageSource with a name"))
            return
        owner = self._plugins.get(name)
        if owner is not None:
            self.clashes.append((plugin, name, f"source name {name!r} is already registered by "
                                 f"plugin {owner!r}"))
            return
        self._sources[name] = source
        self._plugins[name] = plugin

    # -- the mapping ---------------------------------------------------------

    def __getitem__(self, name: str) -> ImageSource:
        return self._sources[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    # -- reading -------------------------------------------------------------

    def names(self) -> list[str]:
        """Every transport name, in registration order."""
        return list(self._sources)

    def prefixes(self) -> dict[str, str]:
        """``{transport name: the prefix that selects it}`` (``NAME:`` or ``NAME://``)."""
        return {name: source.prefix for name, source in self._sources.items()}

    def require(self, name: str | None) -> ImageSource:
        """The source called ``name``, which a user chose: a one-line
        :class:`BadReference` naming the available ones if there is none."""
        if name is None:
            raise BadReference("no image source was chosen for this reference "
                               "(available: {}); give a TRANSPORT: prefix or --source"
                               .format(", ".join(self._sources) or "none"))
        try:
            return self._sources[name]
        except KeyError:
            raise BadReference("unknown image source {!r} (available: {})".format(
                name, ", ".join(sorted(self._sources)) or "none")) from None

    def plugin_of(self, name: str) -> str:
        """The plugin that registered the source ``name``."""
        return self._plugins[name]

    def by_plugin(self) -> dict[str, list[str]]:
        """``{plugin: [source names]}``."""
        result: dict[str, list[str]] = {}
        for name, plugin in self._plugins.items():
            result.setdefault(plugin, []).append(name)
        return result

    def describe(self) -> list[dict[str, Any]]:
        """One dict per source, for ``--list-plugins``: name, prefix, syntax,
        plugin, description, and whether it honours ``--platform``."""
        return [{"name": name, "prefix": source.prefix, "syntax": source.syntax,
                 "plugin": self._plugins[name], "description": source.description,
                 "honours_platform": source.honours_platform}
                for name, source in self._sources.items()]


def __getattr__(name: str) -> Any:
    # 0.2's name for the catalogue; "registry" now means the registry client only.
    if name == "SourceRegistry":
        warnings.warn("arv_keepdocker_plugin.catalog.SourceRegistry is deprecated and will "
                      "be removed in 0.4; use SourceCatalog", DeprecationWarning, stacklevel=2)
        return SourceCatalog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
