"""The plugin manager: default plugins, entry points one by one, disabling, listing.

Default plugins are registered first, in :data:`DEFAULT_PLUGINS` order;
third-party plugins come from the ``arv_keepdocker`` entry-point group, each
loaded on its own so that a broken package is reported (by entry-point and
distribution name) and skipped instead of crashing the command.
``ARV_KEEPDOCKER_DISABLE_PLUGINS=name,...`` disables plugins by name, default
ones included (their names are the short module names below).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
import os
from typing import Dict, List, Optional

import pluggy

from . import PROJECT_NAME, __version__, hookspecs
from .image import ImageSource

logger = logging.getLogger("arvados.keepdocker")

ENTRY_POINT_GROUP = PROJECT_NAME
DISABLE_ENV = "ARV_KEEPDOCKER_DISABLE_PLUGINS"

#: Short name -> module. Registered in this order; later plugins win ties.
DEFAULT_PLUGINS = {
    "docker_daemon": "arv_keepdocker_plugin.sources.docker_daemon",
    "containers_storage": "arv_keepdocker_plugin.sources.containers_storage",
    "docker_archive": "arv_keepdocker_plugin.sources.docker_archive",
    "oci": "arv_keepdocker_plugin.sources.oci",
    "source_choice": "arv_keepdocker_plugin.defaults.source_choice",
    "format_check": "arv_keepdocker_plugin.defaults.format_check",
    "links": "arv_keepdocker_plugin.defaults.links",
    "layer_index": "arv_keepdocker_plugin.defaults.layer_index",
}


@dataclasses.dataclass
class BrokenPlugin:
    name: str
    distribution: Optional[str]
    error: str


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers versions and broken entry points."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.versions: Dict[str, str] = {}
        self.distributions: Dict[str, Optional[str]] = {}
        self.broken: List[BrokenPlugin] = []

    def register_checked(self, plugin, name: str, version: str,
                         distribution: Optional[str] = None) -> bool:
        """Register ``plugin``; undo and report it when its hooks are invalid."""
        try:
            self.register(plugin, name=name)
            self.check_pending()
        except Exception as error:  # pluggy.PluginValidationError and friends
            if self.get_plugin(name) is not None:
                self.unregister(name=name)
            self._report_broken(name, distribution, error)
            return False
        self.versions[name] = version
        self.distributions[name] = distribution
        return True

    def _report_broken(self, name, distribution, error) -> None:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        self.broken.append(BrokenPlugin(name, distribution, text))
        logger.warning(
            "plugin %r from %s failed to load and was skipped: %s "
            "(disable it with %s=%s)", name, distribution or "an unknown distribution",
            text, DISABLE_ENV, name)

    def load_entrypoints(self, disabled: set) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled or self.get_plugin(ep.name) is not None:
                continue
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else "unknown"
            try:
                plugin = ep.load()
            except Exception as error:
                self._report_broken(ep.name, dist_name, error)
                continue
            self.register_checked(plugin, ep.name, version, dist_name)

    # -- what is loaded ---------------------------------------------------

    def sources(self) -> Dict[str, ImageSource]:
        """``{name: source}``; a later-registered plugin's source wins."""
        found: Dict[str, ImageSource] = {}
        for plugin_name, source in self.sources_by_plugin():
            found[source.name] = source
        return found

    def sources_by_plugin(self):
        """``(plugin name, source)`` in registration order."""
        impls = self.hook.keepdocker_image_sources.get_hookimpls()
        for impl in impls:  # pluggy lists implementations oldest first
            for source in impl.function() or ():
                yield impl.plugin_name, source

    def describe(self) -> List[dict]:
        """One dict per loaded plugin: name, version, distribution, hooks, sources."""
        sources: Dict[str, List[str]] = {}
        for plugin_name, source in self.sources_by_plugin():
            sources.setdefault(plugin_name, []).append(source.name)
        result = []
        for name, plugin in self.list_name_plugin():
            hooks = sorted(caller.name for caller in self.get_hookcallers(plugin) or ())
            result.append({
                "name": name,
                "version": self.versions.get(name, "unknown"),
                "distribution": self.distributions.get(name),
                "hooks": hooks,
                "sources": sources.get(name, []),
            })
        return result


def disabled_plugins() -> set:
    return {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",")
            if name.strip()}


def get_plugin_manager(load_entrypoints: bool = True) -> PluginManager:
    """A manager with the default plugins and (by default) third-party ones."""
    pm = PluginManager()
    disabled = disabled_plugins()
    for name, module_name in DEFAULT_PLUGINS.items():
        if name in disabled:
            continue
        module = importlib.import_module(module_name)
        pm.register_checked(module, name, __version__, "arv-keepdocker-plugin")
    if load_entrypoints:
        pm.load_entrypoints(disabled)
    return pm
