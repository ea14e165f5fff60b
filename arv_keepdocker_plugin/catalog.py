"""The source registry: every image source of this run, by transport name.

Built once per run from one ``keepdocker_register_sources`` hook call, as
containers/image builds its transport registry and llm its model list from a
``register`` callback. A name is registered once: a second source of the
same name is refused and reported (the plugin that offered it appears among
broken plugins), so a third-party plugin can never silently take over a
default transport.
"""

from __future__ import annotations

import sys
from typing import Dict, Iterator, List, Mapping, Optional, Tuple

from .errors import BadReference
from .image import ImageSource


class SourceClash(Exception):
    """Two plugins registered a source of the same name."""


class SourceRegistry(Mapping[str, ImageSource]):
    """``{transport name: ImageSource}``, in registration order.

    ``registry[name]`` and iteration behave as a read-only mapping;
    :meth:`get` raises a one-line :class:`BadReference` for an unknown name.
    """

    def __init__(self) -> None:
        self._sources: Dict[str, ImageSource] = {}
        self._plugins: Dict[str, str] = {}
        #: ``(plugin, source name, message)`` for every refused registration.
        self.clashes: List[Tuple[str, str, str]] = []

    # -- building ------------------------------------------------------------

    def add(self, source: ImageSource, plugin: str) -> None:
        """Register ``source`` for ``plugin``; a clash is recorded, not raised."""
        name = getattr(source, "name", "")
        if not isinstance(source, ImageSource) or not name:
            self.clashes.append((plugin, str(name), "registered {!r}, which is not an "
                                 "ImageSource with a name".format(source)))
            return
        owner = self._plugins.get(name)
        if owner is not None:
            self.clashes.append((plugin, name, "source name {!r} is already registered by "
                                 "plugin {!r}".format(name, owner)))
            return
        self._sources[name] = source
        self._plugins[name] = plugin

    # -- reading -------------------------------------------------------------

    def __getitem__(self, name: str) -> ImageSource:
        return self._sources[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    def names(self) -> List[str]:
        """Every transport name, in registration order."""
        return list(self._sources)

    def prefixes(self) -> Dict[str, str]:
        """``{transport name: the prefix that selects it}`` (``NAME:`` or ``NAME://``)."""
        return {name: source.prefix for name, source in self._sources.items()}

    def get(self, name: Optional[str], default: object = None) -> ImageSource:
        """The source called ``name``; :class:`BadReference` if there is none.

        ``default`` is accepted for :class:`Mapping` compatibility but never
        returned: asking for a source that does not exist is a user error.
        """
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

    def by_plugin(self) -> Dict[str, List[str]]:
        """``{plugin: [source names]}``."""
        result: Dict[str, List[str]] = {}
        for name, plugin in self._plugins.items():
            result.setdefault(plugin, []).append(name)
        return result


def calling_plugin(impls: Mapping[object, str]) -> str:
    """The plugin whose hook implementation is on the call stack.

    ``impls`` maps each implementation's code object to its plugin name. The
    ``register`` callback uses it to know who registers a source without
    calling implementations itself: pluggy calls each implementation in
    turn, so the caller's frame (or one further up, when a plugin registers
    from a helper) belongs to exactly one of them.
    """
    frame = sys._getframe(1)
    while frame is not None:
        plugin = impls.get(frame.f_code)
        if plugin is not None:
            return plugin
        frame = frame.f_back  # type: ignore[assignment]
    return "unknown"
