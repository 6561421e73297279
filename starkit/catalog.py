"""What the plugins provide: datasets and model families by name.

The catalogue is built from the ``starkit_datasets`` and ``starkit_models`` hooks of every
loaded plugin. Names are global: two plugins declaring one name is an error naming both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .model_family import ModelFamily
from .names import UnknownNameError, did_you_mean
from .plugins import PluginError, PluginRegistry, get_registry
from .spec import DatasetSpec


@dataclass(frozen=True)
class Provided:
    """An object a plugin provides, with the plugin's name."""

    item: Any
    plugin: str


def _collect(registry: PluginRegistry, hook: str, kind: type, what: str) -> dict[str, Provided]:
    found: dict[str, Provided] = {}
    for plugin, items in registry.call(hook):
        for item in items:
            if not isinstance(item, kind):
                registry.mark_broken(plugin, f"{hook} returned {type(item).__name__}, expected {kind.__name__}")
                continue
            if item.name in found:
                raise PluginError(
                    f"{what} {item.name!r} is declared by two plugins: "
                    f"{found[item.name].plugin!r} and {plugin!r}; uninstall one of them "
                    "or limit the loaded plugins with STARKIT_LOAD_PLUGINS"
                )
            found[item.name] = Provided(item, plugin)
    return found


def datasets(registry: PluginRegistry | None = None) -> dict[str, Provided]:
    """Every registered dataset: name -> Provided(DatasetSpec, plugin)."""
    return _collect(registry or get_registry(), "starkit_datasets", DatasetSpec, "dataset")


def models(registry: PluginRegistry | None = None) -> dict[str, Provided]:
    """Every registered model family: name -> Provided(ModelFamily, plugin)."""
    return _collect(registry or get_registry(), "starkit_models", ModelFamily, "model family")


def get_dataset(name: str, registry: PluginRegistry | None = None) -> DatasetSpec:
    found = datasets(registry)
    if name not in found:
        valid = ", ".join(sorted(found)) or "none (no dataset plugin loaded)"
        raise UnknownNameError(f"unknown dataset {name!r}{did_you_mean(name, found)} (registered datasets: {valid})")
    return found[name].item


def get_model(name: str, registry: PluginRegistry | None = None) -> ModelFamily:
    found = models(registry)
    if name not in found:
        valid = ", ".join(sorted(found)) or "none"
        raise UnknownNameError(f"unknown model family {name!r}{did_you_mean(name, found)} (registered families: {valid})")
    return found[name].item
