"""The plugin manager: default plugins, entry points one by one, disabling, listing.

Default plugins are registered first, in :data:`DEFAULT_PLUGINS` order;
third-party plugins come from the ``arv_keepdocker`` entry-point group, each
loaded on its own so that a broken package is reported (by entry-point and
distribution name) and skipped instead of crashing the command.
``ARV_KEEPDOCKER_DISABLE_PLUGINS=name,...`` disables plugins by name, except
the :data:`ESSENTIAL_PLUGINS`, which hold arv-keepdocker 3.2.1's rules (as
pytest's essential plugins cannot be disabled). A third-party entry point
named like a default plugin, a second one of one name, and a source name
registered twice are reported among broken plugins, never dropped silently.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
import os
from typing import Any, Dict, List, Optional, Set

import pluggy

from . import PROJECT_NAME, __version__, hookspecs
from .catalog import SourceRegistry, calling_plugin
from .image import ImageSource

logger = logging.getLogger("arvados.keepdocker")

ENTRY_POINT_GROUP = PROJECT_NAME
DISABLE_ENV = "ARV_KEEPDOCKER_DISABLE_PLUGINS"
OUR_DISTRIBUTION = "arv-keepdocker-plugin"

#: Short name -> module. Registered in this order.
DEFAULT_PLUGINS = {
    "docker_daemon": "arv_keepdocker_plugin.sources.docker_daemon",
    "containers_storage": "arv_keepdocker_plugin.sources.containers_storage",
    "docker_archive": "arv_keepdocker_plugin.sources.docker_archive",
    "oci": "arv_keepdocker_plugin.sources.oci",
    "registry": "arv_keepdocker_plugin.sources.registry",
    "source_choice": "arv_keepdocker_plugin.defaults.source_choice",
    "format_check": "arv_keepdocker_plugin.defaults.format_check",
    "links": "arv_keepdocker_plugin.defaults.links",
    "layer_index": "arv_keepdocker_plugin.defaults.layer_index",
}

#: Default plugins that cannot be disabled: without them the command would
#: bypass the cluster's format rule, lose 3.2.1's links or choose no source.
ESSENTIAL_PLUGINS = ("source_choice", "format_check", "links")


@dataclasses.dataclass
class BrokenPlugin:
    name: str
    distribution: Optional[str]
    error: str


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers versions, broken plugins and the sources."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.versions: Dict[str, str] = {}
        self.distributions: Dict[str, Optional[str]] = {}
        self.broken: List[BrokenPlugin] = []
        self._sources: Optional[SourceRegistry] = None

    def register_checked(self, plugin: object, name: str, version: str,
                         distribution: Optional[str] = None) -> bool:
        """Register ``plugin``; undo and report it when its hooks are invalid."""
        try:
            self.register(plugin, name=name)
            self.check_pending()
        except Exception as error:  # pluggy.PluginValidationError and friends
            if self.get_plugin(name) is not None:
                self.unregister(name=name)
            self.report_broken(name, distribution, error)
            return False
        self.versions[name] = version
        self.distributions[name] = distribution
        return True

    def report_broken(self, name: str, distribution: Optional[str], error: object,
                      what: str = "failed to load and was skipped") -> None:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        self.broken.append(BrokenPlugin(name, distribution, text))
        logger.warning("plugin %r from %s %s: %s (disable it with %s=%s)",
                       name, distribution or "an unknown distribution", what, text,
                       DISABLE_ENV, name)

    def load_entrypoints(self, disabled: Set[str]) -> None:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled:
                continue
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else None
            version = dist.version if dist is not None else "unknown"
            if ep.name in DEFAULT_PLUGINS:
                self.report_broken(ep.name, dist_name, "its name is the name of a default "
                                   "plugin; rename the entry point")
                continue
            if self.get_plugin(ep.name) is not None:
                self.report_broken(ep.name, dist_name, "another plugin of this name is "
                                   "already loaded (from {})".format(
                                       self.distributions.get(ep.name) or "unknown"))
                continue
            try:
                plugin = ep.load()
            except Exception as error:
                self.report_broken(ep.name, dist_name, error)
                continue
            self.register_checked(plugin, ep.name, version, dist_name)

    # -- the source registry ----------------------------------------------------

    @property
    def sources(self) -> SourceRegistry:
        """Every registered source, built once from one hook call."""
        if self._sources is None:
            self._sources = self._build_sources()
        return self._sources

    def _build_sources(self) -> SourceRegistry:
        registry = SourceRegistry()
        impls = {}
        for impl in self.hook.keepdocker_register_sources.get_hookimpls():
            function = getattr(impl.function, "__func__", impl.function)
            impls[function.__code__] = impl.plugin_name
        order = {name: n for n, (name, _) in enumerate(self.list_name_plugin())}
        offered = []

        def register(source: ImageSource) -> None:
            offered.append((calling_plugin(impls), source))

        self.hook.keepdocker_register_sources(register=register)
        # pluggy calls the newest plugin first; register in plugin order so
        # that defaults own their names and a third party's clash is refused.
        offered.sort(key=lambda item: order.get(item[0], len(order)))
        for plugin, source in offered:
            registry.add(source, plugin)
        for plugin, name, message in registry.clashes:
            self.report_broken(plugin, self.distributions.get(plugin),
                               "source {!r} refused: {}".format(name, message),
                               what="offered a source that was refused")
        return registry

    # -- hooks split between essential and other plugins ------------------------

    def essential_hook(self, name: str) -> pluggy.HookCaller:
        """The hook ``name`` over the essential default plugins only."""
        others = [plugin for plugin_name, plugin in self.list_name_plugin()
                  if plugin_name not in ESSENTIAL_PLUGINS]
        return self.subset_hook_caller(name, remove_plugins=others)

    def other_hook(self, name: str) -> pluggy.HookCaller:
        """The hook ``name`` over every plugin but the essential ones."""
        essential = [self.get_plugin(n) for n in ESSENTIAL_PLUGINS if self.get_plugin(n)]
        return self.subset_hook_caller(name, remove_plugins=essential)

    # -- what is loaded ---------------------------------------------------------

    def describe(self) -> List[Dict[str, Any]]:
        """One dict per loaded plugin: name, version, distribution, hooks, sources."""
        sources = self.sources.by_plugin()
        result = []
        for name, plugin in self.list_name_plugin():
            hooks = sorted(caller.name for caller in self.get_hookcallers(plugin) or ())
            result.append({
                "name": name,
                "version": self.versions.get(name, "unknown"),
                "distribution": self.distributions.get(name),
                "essential": name in ESSENTIAL_PLUGINS,
                "hooks": hooks,
                "sources": sources.get(name, []),
            })
        return result


def disabled_plugins() -> Set[str]:
    """Names in ``ARV_KEEPDOCKER_DISABLE_PLUGINS``; essential ones are refused with a warning."""
    names = {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",")
             if name.strip()}
    for name in sorted(names & set(ESSENTIAL_PLUGINS)):
        logger.warning("plugin %r is essential and cannot be disabled; %s=%s is ignored",
                       name, DISABLE_ENV, name)
    return names - set(ESSENTIAL_PLUGINS)


def get_plugin_manager(load_entrypoints: bool = True) -> PluginManager:
    """A manager with the default plugins and (by default) third-party ones."""
    pm = PluginManager()
    disabled = disabled_plugins()
    for name, module_name in DEFAULT_PLUGINS.items():
        if name in disabled:
            continue
        module = importlib.import_module(module_name)
        pm.register_checked(module, name, __version__, OUR_DISTRIBUTION)
    if load_entrypoints:
        pm.load_entrypoints(disabled)
    return pm
