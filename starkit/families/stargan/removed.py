"""StarGAN options this starkit no longer has: none of the shipped presets set them and no
published method motivates them (git keeps them). A run or checkpoint that held one at its
harmless value (its old default) loads without it; any other value is refused with a message
naming the key and the starkit version that trained the run. The family registers these as
``ModelFamily.retired_option`` and ``ModelFamily.upgrade_config``."""

from __future__ import annotations

from typing import Any, Mapping

from ...training.config import ConfigError
from .options import GENERATOR_OUTPUTS, PAPER_DEFAULTS, drawn_masks

#: Options of the ``stargan`` family that this starkit no longer has (no preset set them and no
#: published method motivates them), each with the value that behaves as what remains (its old
#: default). A saved run or checkpoint holding that value loses the key silently; any other
#: value is refused, naming the key: that run needs the starkit version that trained it.
REMOVED_STARGAN_KEYS: dict[str, Any] = {
    "rec_fake_grad": 1.0,
    "g_cls_confidence": 0.0,
    "g_cls_group_weights": "",
    "lambda_change": 0.0,
    "lambda_change_tv": 0.0,
    "change_cap": 0.0,
    "change_warmup": 0,
    "lambda_path": 0.0,
    "path_fraction": 0.25,
    "lambda_colour_match": 0.0,
    "colour_match_decay": 0.99,
    "colour_match_gate": 0.05,
    "g_map_hidden": 0,
    "g_map_only": "",
    "g_up_norm": "instance",
    "g_condition": "input",
    "d_condition": "none",
    "lambda_recolour_mask": 0.0,
    "mask_sharpness_on": "",
    "d_cls_augment": "none",
    "target_sampling": "permute",
}
#: Removed keys that only tuned another option: any value is harmless while that option is off (0).
REMOVED_ONLY_WITH = {
    "change_cap": "lambda_change",
    "change_warmup": "lambda_change",
    "path_fraction": "lambda_path",
    "colour_match_decay": "lambda_colour_match",
    "colour_match_gate": "lambda_colour_match",
    "mask_sharpness_on": "lambda_mask_sharpness",
}
#: Values of kept ``stargan`` keys that this starkit no longer has.
REMOVED_STARGAN_VALUES: dict[str, tuple[Any, ...]] = {"g_output": ("residual", "gated")}


def retired_option(key: str, value: Any) -> str | None:
    """Why ``key = value``, given on the command line or in a config file, is refused: a key or
    a value this starkit no longer has (``ModelFamily.retired_option``); None when it is fine."""
    if key in REMOVED_STARGAN_KEYS:
        return (f"this version of starkit no longer has this option (it now always behaves "
                f"as {key} = {REMOVED_STARGAN_KEYS[key]!r}); remove it, or use an older starkit that has it")
    if value in REMOVED_STARGAN_VALUES.get(key, ()):
        return (f"this version of starkit no longer has {key} = {value!r} (choose from "
                f"{', '.join(map(repr, GENERATOR_OUTPUTS))}), or use an older starkit that has it")
    return None


def drop_removed_keys(saved: Mapping[str, Any], source: str, version: str | None = None) -> dict[str, Any]:
    """A saved config (a run's ``config.json``, a checkpoint's) without the keys this starkit
    no longer has, where each held its harmless value (:data:`REMOVED_STARGAN_KEYS`); the
    family's ``upgrade_config``. Any other value of a removed key or value is a ConfigError
    naming ``source``, the key and the value: the run can only be continued by the starkit that
    trained it (``version``)."""
    config = dict(saved)
    for key, harmless in REMOVED_STARGAN_KEYS.items():
        if key not in config:
            continue
        value = config.pop(key)
        parent = REMOVED_ONLY_WITH.get(key)
        if value != harmless and not (parent is not None and not saved.get(parent)) and not (
                key == "mask_sharpness_on" and _names_every_mask(value, saved)):
            _refuse_saved(source, key, value, version)
    for key, values in REMOVED_STARGAN_VALUES.items():
        if config.get(key) in values:
            _refuse_saved(source, key, config[key], version)
    return config


def _names_every_mask(names: Any, saved: Mapping[str, Any]) -> bool:
    """Whether ``mask_sharpness_on`` = ``names`` chose every mask the saved generator draws:
    what the option's absence does now."""
    drawn = set(drawn_masks({**PAPER_DEFAULTS, **saved}))
    return isinstance(names, str) and {n.strip() for n in names.split(",") if n.strip()} == drawn


def _refuse_saved(source: str, key: str, value: Any, version: str | None) -> None:
    trained = f"starkit {version}" if version else "the starkit version that trained it"
    raise ConfigError(
        f"{source}: {key} = {value!r}, which this version of starkit no longer has; use {trained} "
        f"for this run (a run folder's config.json records it as starkit_version)"
    )
