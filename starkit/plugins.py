"""The plugin manager: loads entry-point plugins and starkit's own default plugins.

Built-in features register through the very same hooks as third-party plugins. Loading is
isolated per plugin: a plugin that fails to import, declares a hook that does not exist, needs
another contract version, or raises inside a hook is recorded as *broken*, reported with a
warning and in ``starkit plugins``, and skipped; the CLI keeps working.

Environment:
    STARKIT_LOAD_PLUGINS=a,b   load only these entry-point plugins (names or distributions;
                               empty: none). Default plugins always load.
    STARKIT_STRICT_PLUGINS=1   a broken plugin is an error instead of a warning.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from . import CONTRACT_VERSION, hookspecs
from .errors import StarkitError

ENTRY_POINT_GROUP = "starkit"

#: starkit's own features, registered like any plugin: plugin name -> module (imported lazily).
DEFAULT_PLUGINS: dict[str, str] = {
    "synthetic": "starkit.default_plugins.synthetic",
    "cards": "starkit.default_plugins.cards",
    "stargan": "starkit.default_plugins.stargan",
    "stargan-v2": "starkit.default_plugins.stargan_v2",
}


class PluginError(StarkitError, RuntimeError):
    """A plugin is broken and ``STARKIT_STRICT_PLUGINS=1`` is set, or plugins conflict."""


class PluginWarning(UserWarning):
    """A plugin is broken and was skipped."""


@dataclass
class PluginInfo:
    """What ``starkit plugins`` reports about one plugin."""

    name: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    builtin: bool = False
    error: str | None = None

    @property
    def broken(self) -> bool:
        return self.error is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": sorted(self.hooks),
            "builtin": self.builtin,
            "status": "broken" if self.broken else "ok",
            "error": self.error,
        }


def _strict() -> bool:
    return os.environ.get("STARKIT_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes", "on")


def _allowed() -> set[str] | None:
    raw = os.environ.get("STARKIT_LOAD_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PluginRegistry:
    """A pluggy manager plus a record of every plugin's state."""

    def __init__(self, load_entry_points: bool = True, load_defaults: bool = True):
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        if load_defaults:
            for name, module_name in DEFAULT_PLUGINS.items():
                self._load(name, lambda m=module_name: importlib.import_module(m), builtin=True)
        if load_entry_points:
            self._load_entry_points()

    # ------------------------------------------------------------------ loading
    def _load_entry_points(self) -> None:
        allowed = _allowed()
        seen: set[str] = set()
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else None
            if ep.name in seen:  # the same distribution visible twice on sys.path
                continue
            seen.add(ep.name)
            if allowed is not None and ep.name not in allowed and (dist or "") not in allowed:
                continue
            version = ep.dist.version if ep.dist is not None else None
            self._load(ep.name, ep.load, distribution=dist, version=version)

    def _load(
        self,
        name: str,
        loader: Callable[[], Any],
        builtin: bool = False,
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        if builtin:
            from . import __version__

            distribution, version = "starkit", __version__
        info = PluginInfo(name=name, distribution=distribution, version=version, builtin=builtin)
        self.info[name] = info
        try:
            plugin = loader()
        except BaseException as exc:  # noqa: BLE001 - any import failure must be contained
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self.mark_broken(name, f"failed to import: {_describe(exc)}")
            return
        wanted = getattr(plugin, "STARKIT_CONTRACT", CONTRACT_VERSION)
        if wanted != CONTRACT_VERSION:
            self.mark_broken(
                name, f"incompatible: needs plugin contract {wanted}, this starkit provides {CONTRACT_VERSION}"
            )
            return
        try:
            self.pm.register(plugin, name=name)
            # A misspelt hook implementation is an error, not silence (as pytest and tox do).
            unknown = [h for h in self.pm.hook.__dict__.values() if isinstance(h, pluggy.HookCaller)
                       and not h.has_spec() and any(i.plugin is plugin for i in h.get_hookimpls())]
            if unknown:
                self.pm.unregister(plugin)
                raise PluginError(f"implements unknown hook(s): {', '.join(h.name for h in unknown)}")
        except Exception as exc:  # noqa: BLE001
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self.mark_broken(name, _describe(exc) if not isinstance(exc, PluginError) else str(exc))
            return
        info.hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])

    def register(self, plugin: Any, name: str) -> None:
        """Register an in-process plugin object (tests, notebooks)."""
        self._load(name, lambda: plugin, distribution=None, version=None)

    def mark_broken(self, name: str, error: str) -> None:
        info = self.info.setdefault(name, PluginInfo(name=name))
        info.error = error
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        message = f"starkit plugin {name!r} is broken and was skipped: {error}"
        if _strict():
            raise PluginError(message)
        warnings.warn(message, PluginWarning, stacklevel=3)

    # ------------------------------------------------------------------ calling hooks
    def call(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a hook on every plugin separately, so that one raising does not hide the others.

        Returns ``(plugin name, result)`` pairs, in registration order; ``None`` results are
        dropped. A plugin that raises is marked broken (an error under strict mode).
        """
        caller = getattr(self.pm.hook, hook_name)
        out: list[tuple[str, Any]] = []
        # pluggy lists implementations last-registered first; report in registration order.
        for impl in reversed(caller.get_hookimpls()):
            name = self.pm.get_name(impl.plugin)
            try:
                result = impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as exc:  # noqa: BLE001 - a plugin's bug must not break the CLI
                self.mark_broken(name, f"hook {hook_name} raised {_describe(exc)}")
                continue
            if result is not None:
                out.append((name, result))
        return out

    def plugins(self) -> list[PluginInfo]:
        return list(self.info.values())


_registry: PluginRegistry | None = None


def get_registry() -> PluginRegistry:
    """The process-wide registry, created on first use."""
    global _registry
    if _registry is None:
        _registry = PluginRegistry(load_entry_points="pytest" not in sys.modules or _entry_points_in_tests())
    return _registry


def _entry_points_in_tests() -> bool:
    # Under pytest, entry points load only when asked, so the user's installed plugins never
    # leak into the test suite (the same rule as datasette and llm).
    return os.environ.get("STARKIT_TEST_ENTRY_POINTS") == "1"


def reset_registry(registry: PluginRegistry | None = None) -> PluginRegistry | None:
    """Replace the process-wide registry (``None``: rebuilt on next use). For tests."""
    global _registry
    _registry = registry
    return registry
