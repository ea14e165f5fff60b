"""The plugin manager: default plugins, entry points one by one, disabling, listing.

Default plugins are registered first, in :data:`DEFAULT_PLUGINS` order;
third-party plugins come from the ``arv_keepdocker`` entry-point group, each
loaded on its own so that a broken package is reported (by entry-point and
distribution name) and skipped instead of crashing the command.
``ARV_KEEPDOCKER_DISABLE_PLUGINS=name,...`` disables plugins by name, except
the :data:`ESSENTIAL_PLUGINS`, which hold arv-keepdocker 3.2.1's rules (as
pytest's essential plugins cannot be disabled); a name that is no plugin's
is warned about. A third-party entry point named like a default plugin, a
second one of one name, and a source name registered twice are reported
among broken plugins, never dropped silently.

Sources are credited to the plugin that registered them through pluggy
itself: each plugin's ``keepdocker_register_sources`` is called on its own
(a hook caller over that plugin alone) with a ``register`` bound to that
plugin, so decorated, wrapped or shared implementations are credited right.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
import os
from collections.abc import Iterable
from typing import Any

import pluggy

from . import PROJECT_NAME, __version__, hookspecs
from .catalog import SourceCatalog

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
    distribution: str | None
    error: str


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers versions, broken plugins and the sources."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.versions: dict[str, str] = {}
        self.distributions: dict[str, str | None] = {}
        self.broken: list[BrokenPlugin] = []
        self._sources: SourceCatalog | None = None

    def register_checked(self, plugin: object, name: str, version: str,
                         distribution: str | None = None) -> bool:
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

    def report_broken(self, name: str, distribution: str | None, error: object,
                      what: str = "failed to load and was skipped") -> None:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        if not isinstance(error, pluggy.PluginValidationError):
            lines = lines[:1]  # the rest of a traceback-like message says nothing more
        text = "; ".join(lines) or type(error).__name__
        self.broken.append(BrokenPlugin(name, distribution, text))
        logger.warning("plugin %r from %s %s: %s (disable it with %s=%s)",
                       name, distribution or "an unknown distribution", what, text,
                       DISABLE_ENV, name)

    def load_entrypoints(self, disabled: set[str]) -> set[str]:
        """Register every ``arv_keepdocker`` entry point not in ``disabled``, one by one.

        Returns the names of every entry point found, disabled ones included.
        """
        found: set[str] = set()
        for ep in installed_entry_points():
            found.add(ep.name)
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
        return found

    # -- the catalogue of sources ---------------------------------------------

    @property
    def sources(self) -> SourceCatalog:
        """Every registered source, built once per run (see the module docstring)."""
        if self._sources is None:
            self._sources = self._build_sources()
        return self._sources

    def _build_sources(self) -> SourceCatalog:
        catalog = SourceCatalog()
        offering = {impl.plugin_name for impl in
                    self.hook.keepdocker_register_sources.get_hookimpls()}
        plugins = [(name, plugin) for name, plugin in self.list_name_plugin()
                   if plugin is not None]
        # In registration order, so that defaults own their names and a third
        # party's clash is refused.
        for name, plugin in plugins:
            if name not in offering:
                continue
            offered: list[object] = []
            own = self.subset_hook_caller("keepdocker_register_sources",
                                          remove_plugins=[other for _, other in plugins
                                                          if other is not plugin])
            try:
                own(register=offered.append)
            except Exception as error:
                self.report_broken(name, self.distributions.get(name),
                                   "keepdocker_register_sources failed: {}".format(
                                       str(error).splitlines()[0] if str(error)
                                       else type(error).__name__),
                                   what="registered no source")
                continue
            for source in offered:
                catalog.add(source, name)
        for plugin, source_name, message in catalog.clashes:
            self.report_broken(plugin, self.distributions.get(plugin),
                               f"source {source_name!r} refused: {message}",
                               what="offered a source that was refused")
        return catalog

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

    def describe(self) -> list[dict[str, Any]]:
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


def installed_entry_points() -> Iterable[importlib.metadata.EntryPoint]:
    """The ``arv_keepdocker`` entry points of every installed distribution.

    Tests replace what is installed by faking ``importlib.metadata``, as
    pytest's and pluggy's own tests do
    (:func:`arv_keepdocker_testkit.plugin_kit.installed_only`).
    """
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def disabled_plugins() -> set[str]:
    """Names in ``ARV_KEEPDOCKER_DISABLE_PLUGINS``; essential ones are refused with a warning."""
    names = {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",")
             if name.strip()}
    for name in sorted(names & set(ESSENTIAL_PLUGINS)):
        logger.warning("plugin %r is essential and cannot be disabled; %s=%s is ignored",
                       name, DISABLE_ENV, name)
    return names - set(ESSENTIAL_PLUGINS)


def get_plugin_manager(load_entrypoints: bool = True,
                       disabled: set[str] | None = None) -> PluginManager:
    """A manager with the default plugins and (by default) third-party ones.

    ``disabled``: plugin names to leave out; by default those of
    ``ARV_KEEPDOCKER_DISABLE_PLUGINS`` (see :func:`disabled_plugins`).
    """
    pm = PluginManager()
    if disabled is None:
        disabled = disabled_plugins()
    for name, module_name in DEFAULT_PLUGINS.items():
        if name in disabled:
            continue
        module = importlib.import_module(module_name)
        pm.register_checked(module, name, __version__, OUR_DISTRIBUTION)
    if load_entrypoints:
        found = pm.load_entrypoints(disabled)
        for name in sorted(disabled - set(DEFAULT_PLUGINS) - found):
            logger.warning("%s names %r, which is no plugin's name; see "
                           "arv keepdocker --list-plugins", DISABLE_ENV, name)
    return pm
