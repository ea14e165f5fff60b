"""What a hook author's tests need: a checked plugin manager, a run, a known world.

The light tier of the test kit (no cluster, no engine, fast):

* :func:`plugin_manager` -- a fresh plugin manager with the default plugins
  and yours, registered the checked way the command registers installed
  plugins: a misspelt hook name, a hook argument that does not exist, a
  function named like a hook but not marked ``@hookimpl``, a source that is
  refused, a ``keepdocker_register_sources`` that raises... each fails the
  test with :class:`PluginProblem` instead of being skipped quietly.
* :func:`run_keepdocker` -- ``arv keepdocker ARGS`` in-process with that
  manager; returns a :class:`RunResult`: the exit status, the outcome
  (``uploaded``, ``reused``, ``failed``...), what was printed, and the
  records the run wrote in Arvados (and did not remove again).
* :class:`InstalledDistributions` (the ``keepdocker_installed`` fixture) --
  what is installed, as far as plugin discovery sees: arv-keepdocker-plugin
  and the distributions a test adds, nothing else of the environment, as
  pytest's and pluggy's own tests fake ``importlib.metadata``.
* :mod:`.fakes` -- ``FakeApi`` and ``FakeKeep``, for hooks that receive
  ``api`` and for runs that stop before Arvados is asked anything.

The heavy tier (:mod:`.cluster`, :mod:`.engines`, their fixtures) runs the
same helpers against a real local cluster (``arv_api``) and real engines.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import io
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arv_keepdocker_plugin import PROJECT_NAME, cli
from arv_keepdocker_plugin.plugins import (
    OUR_DISTRIBUTION,
    PluginManager,
    get_plugin_manager,
    installed_entry_points,
)

#: The entry-point groups plugin discovery reads: plugins, and ``arv`` subcommands.
GROUPS = (PROJECT_NAME, "arv.commands")
#: The prefix of every hook name.
HOOK_PREFIX = "keepdocker_"

#: A plugin to register: a module or object with ``@hookimpl`` functions
#: (named after its ``__name__`` or class), ``(name, plugin)``, or the name of
#: an installed ``arv_keepdocker`` entry point (loaded as the command loads it).
PluginSpec = str | tuple[str, object] | object


class PluginProblem(AssertionError):
    """A plugin the command would report as broken, or a hook it would never call."""


# -- a fresh, checked plugin manager ---------------------------------------------


def plugin_manager(*plugins: PluginSpec, defaults: bool = True) -> PluginManager:
    """A fresh manager: the default plugins (unless ``defaults=False``), then ``plugins``.

    ``ARV_KEEPDOCKER_DISABLE_PLUGINS`` and whatever else is installed are
    ignored, so the result is the same on every machine. Raises
    :class:`PluginProblem` (a test failure) when a plugin would be reported
    broken by the command or has a function named like a hook that pluggy
    would never call.
    """
    if defaults:
        pm = get_plugin_manager(load_entrypoints=False, disabled=set())
    else:
        pm = PluginManager()
    for spec in plugins:
        name, plugin, version, distribution = _resolve(spec)
        unmarked = _unmarked_hooks(plugin)
        if unmarked:
            raise PluginProblem("plugin {!r}: {} named like a hook but not marked @hookimpl "
                                "(from arv_keepdocker_plugin import hookimpl)".format(
                                    name, ", ".join(unmarked)))
        pm.register_checked(plugin, name, version, distribution)
    pm.sources  # noqa: B018  (built once: refused sources are reported now)
    if pm.broken:
        raise PluginProblem("; ".join(f"plugin {b.name!r}: {b.error}"
                                      for b in pm.broken))
    return pm


def _resolve(spec: PluginSpec) -> tuple[str, object, str, str | None]:
    """``(name, plugin, version, distribution)`` for a :data:`PluginSpec`."""
    if isinstance(spec, str):
        for ep in installed_entry_points():
            if ep.name == spec:
                dist = getattr(ep, "dist", None)
                try:
                    plugin = ep.load()
                except Exception as error:
                    raise PluginProblem(f"entry point {spec!r} ({ep.value}) does not load: "
                                        f"{error}") from error
                return (spec, plugin, dist.version if dist else "unknown",
                        dist.metadata["Name"] if dist else None)
        raise PluginProblem(f"no {PROJECT_NAME!r} entry point named {spec!r} is installed; is the "
                            "distribution installed (pip install -e .) and its entry point "
                            "spelt so?")
    if isinstance(spec, tuple):
        name, plugin = spec
        return name, plugin, "test", None
    name = getattr(spec, "__name__", None) or type(spec).__name__
    return name.rpartition(".")[2], spec, "test", None


def _unmarked_hooks(plugin: object) -> list[str]:
    """Callables named ``keepdocker_*`` that carry no ``@hookimpl`` mark."""
    marker = PROJECT_NAME + "_impl"
    found = []
    for attr in dir(plugin):
        if not attr.startswith(HOOK_PREFIX):
            continue
        value = getattr(plugin, attr, None)
        if callable(value) and not hasattr(value, marker):
            found.append(attr)
    return found


# -- one run ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What ``arv keepdocker ARGS`` did.

    :ivar status: the exit status.
    :ivar outcome: ``uploaded``, ``reused``, ``listed``, ``plugins`` or ``failed``.
    :ivar stdout: what it printed (the collection UUID, a listing).
    :ivar records: ``(kind, record)`` for every collection and link the run
        created (with its last update) and did not delete again; ``kind`` is
        ``"collections"`` or ``"links"``.
    """

    status: int
    outcome: str
    stdout: str
    records: tuple[tuple[str, dict[str, Any]], ...]

    @property
    def collections(self) -> list[dict[str, Any]]:
        return [record for kind, record in self.records if kind == "collections"]

    @property
    def links(self) -> list[dict[str, Any]]:
        return [record for kind, record in self.records if kind == "links"]


def run_keepdocker(pm: PluginManager, *args: str, api: Any) -> RunResult:
    """Run ``arv keepdocker ARGS`` in-process with ``pm`` against ``api``.

    ``api`` is an Arvados API client: the local cluster's (the ``arv_api``
    fixture) for a whole upload, or a :class:`~.fakes.FakeApi` for a run that
    stops before Arvados is asked anything. No signal handlers are installed.
    Set ``XDG_CACHE_HOME`` to a temporary directory first (the
    ``keepdocker_run`` fixture does): uploads keep a resume journal there.
    """
    recording = RecordingApi(api)
    out = io.StringIO()
    status, outcome = cli.execute(list(args), stdout=out, install_sig_handlers=False,
                                  api=recording, pm=pm)
    return RunResult(status, outcome, out.getvalue(), recording.records())


class RecordingApi:
    """An API client that remembers every collection and link written through it.

    Everything else is the wrapped client's own; requests still go to it.
    """

    KINDS = ("collections", "links")

    def __init__(self, api: Any) -> None:
        self._api = api
        self._written: dict[str, tuple[str, dict[str, Any]]] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._api, name)
        if name in self.KINDS:
            return lambda *a, **kw: _RecordingResource(self, name, attribute(*a, **kw))
        return attribute

    def _note(self, kind: str, method: str, result: Any, uuid: str | None) -> None:
        if method in ("create", "update") and isinstance(result, Mapping) and "uuid" in result:
            if method == "create" or result["uuid"] in self._written:
                self._written[result["uuid"]] = (kind, dict(result))
        elif method == "delete" and uuid is not None:
            self._written.pop(uuid, None)

    def records(self) -> tuple[tuple[str, dict[str, Any]], ...]:
        return tuple(self._written.values())


class _RecordingResource:
    def __init__(self, api: RecordingApi, kind: str, resource: Any) -> None:
        self._api, self._kind, self._resource = api, kind, resource

    def __getattr__(self, method: str) -> Any:
        call = getattr(self._resource, method)
        if method not in ("create", "update", "delete"):
            return call

        def request(*args: Any, **kwargs: Any) -> _RecordingRequest:
            return _RecordingRequest(self._api, self._kind, method, kwargs.get("uuid"),
                                     call(*args, **kwargs))
        return request


class _RecordingRequest:
    def __init__(self, api: RecordingApi, kind: str, method: str, uuid: str | None,
                 request: Any) -> None:
        self._api, self._kind, self._method, self._uuid = api, kind, method, uuid
        self._request = request

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        result = self._request.execute(*args, **kwargs)
        self._api._note(self._kind, self._method, result, self._uuid)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


# -- what is installed ------------------------------------------------------------


class InstalledDistributions:
    """Plugin discovery sees arv-keepdocker-plugin and the distributions added here only.

    Replaces ``importlib.metadata.entry_points`` for the ``arv_keepdocker``
    and ``arv.commands`` groups (other groups are untouched) while
    :func:`installed_only`'s patch lasts; :meth:`add` installs a real distribution
    (``.dist-info`` and modules) in a private directory on ``sys.path``, as
    pip would. Use it through the ``keepdocker_installed`` fixture.
    """

    def __init__(self, site: str | Path) -> None:
        self.site = Path(site)
        self.site.mkdir(parents=True, exist_ok=True)
        self.added: list[Path] = []
        self._real = importlib.metadata.entry_points

    def add(self, name: str, entry_points: Mapping[str, Any],
            modules: Mapping[str, str] | None = None, version: str = "1.0") -> None:
        """Install distribution ``name``.

        ``entry_points`` is ``{entry point: "module[:attr]"}`` for the
        ``arv_keepdocker`` group, or ``{group: {entry point: target}}``;
        ``modules`` is ``{module name: source}`` (dedented).
        """
        groups = (dict(entry_points) if all(isinstance(v, Mapping)
                                            for v in entry_points.values())
                  else {PROJECT_NAME: dict(entry_points)})
        info = self.site / "{}-{}.dist-info".format(name.replace("-", "_"), version)
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        lines: list[str] = []
        for group, eps in groups.items():
            lines.append(f"[{group}]")
            lines.extend(f"{k} = {v}" for k, v in eps.items())
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        self.added.append(info)
        for module, source in (modules or {}).items():
            (self.site / (module + ".py")).write_text(textwrap.dedent(source))
            sys.modules.pop(module, None)
        importlib.invalidate_caches()

    def entry_points(self, group: str) -> list[importlib.metadata.EntryPoint]:
        """Ours, then the added distributions', in the order they were added."""
        ours = importlib.metadata.distribution(OUR_DISTRIBUTION).entry_points
        found = [ep for ep in ours if ep.group == group]
        for info in self.added:
            dist = importlib.metadata.PathDistribution(info)
            found.extend(ep for ep in dist.entry_points if ep.group == group)
        return found

    def fake_entry_points(self, **params: Any) -> Any:
        """``importlib.metadata.entry_points`` as seen with only these installed."""
        group = params.get("group")
        if group in GROUPS and set(params) == {"group"}:
            return importlib.metadata.EntryPoints(self.entry_points(group))
        return self._real(**params)


def installed_only(monkeypatch: Any, site: str | Path) -> InstalledDistributions:
    """Make ``monkeypatch`` hide every installed plugin but ours; returns the
    :class:`InstalledDistributions` to :meth:`~InstalledDistributions.add` more."""
    installed = InstalledDistributions(site)
    monkeypatch.syspath_prepend(str(installed.site))
    monkeypatch.setattr(importlib.metadata, "entry_points", installed.fake_entry_points)
    return installed
