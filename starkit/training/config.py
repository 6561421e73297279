"""The resolved training configuration: defaults, a config file, command-line flags.

Precedence, lowest first: the trainer's defaults (:data:`TRAINING_FIELDS`), the model family's
``default_config``, the family's preset named by ``preset`` (``--preset NAME``; without one,
its ``paper`` preset where it has one), a ``--config``
file (JSON or TOML, flat ``key = value``), then command-line flags. The result is a flat dict of plain JSON values; it is saved as ``config.json`` in the
run directory and inside every checkpoint. Every check names the field and where its value came
from, e.g. ``--config train.toml: iters: must be an integer >= 1, got 'many'``.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..errors import StarkitError
from ..names import close_matches
from ..spec import DATASET_NAME


class ConfigError(StarkitError, ValueError):
    """A configuration value or file is invalid; the message names the field (and file)."""


# A check returns None when the value is fine, else what is wrong with it.
Check = Callable[[Any], "str | None"]


def at_least(n: int | float) -> Check:
    return lambda v: None if v >= n else f"must be >= {n}"


def positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


#: Choices of the performance switches (resolved per device by starkit.families.stargan.speed.fast).
PRECISIONS = ("auto", "fp32", "bf16")
SWITCH = ("auto", "on", "off")
ADAM_IMPLS = ("auto", "fused", "foreach", "loop")


@dataclass(frozen=True)
class ConfigField:
    """One key of the training configuration.

    ``kind`` is ``int``, ``float``, ``bool``, ``str`` or ``list`` (of str). ``optional`` allows
    ``None`` (meaning: decided later, e.g. from the data). ``resumable`` keys may change when
    a run is resumed; the others would make the resumed run a different experiment.
    """

    name: str
    default: Any
    kind: type
    help: str
    check: Check | None = None
    optional: bool = False
    resumable: bool = False


def _check_datasets(names: list[str]) -> str | None:
    if not names:
        return "needs at least one dataset name"
    for n in names:
        if not DATASET_NAME.match(n):
            return f"{n!r} is not a dataset name"
    if len(set(names)) != len(names):
        return "lists a dataset twice"
    return None


#: Keys of every training run, whatever the model family.
TRAINING_FIELDS: tuple[ConfigField, ...] = (
    ConfigField("datasets", [], list, "datasets to train on jointly, in label-space order", _check_datasets),
    ConfigField("data_root", None, str, "folder holding one sub-folder per dataset", optional=True, resumable=True),
    ConfigField("model", "stargan", str, "model family (a plugin may add others)"),
    ConfigField("preset", None, str, "the model family's named preset the run starts from (`--preset NAME`; "
                "none: its defaults)", optional=True),
    ConfigField("image_size", None, int, "image side in pixels; default: the shards'", at_least(8), optional=True),
    ConfigField("batch_size", 16, int, "images per step, summed over processes", at_least(1)),
    ConfigField("iters", 200_000, int, "training iterations (one discriminator step each)", at_least(1),
                resumable=True),
    ConfigField("seed", 0, int, "seed for initialisation, shuffling and augmentation", at_least(0)),
    ConfigField("augment", True, bool, "random horizontal flips of training images"),
    ConfigField("workers", 4, int, "data-loading worker processes per training process", at_least(0),
                resumable=True),
    ConfigField("device", "auto", str, "auto, cpu, cuda or cuda:N", resumable=True),
    ConfigField("log_every", 10, int, "iterations between metric records", at_least(1), resumable=True),
    ConfigField("sample_every", 1000, int, "iterations between sample grids (0: never)", at_least(0),
                resumable=True),
    ConfigField("sample_rows", 4, int, "fixed sample inputs per dataset", at_least(1), resumable=True),
    ConfigField("latest_every", 1000, int, "iterations between refreshes of checkpoints/latest.pt",
                at_least(1), resumable=True),
    ConfigField("save_every", 10_000, int, "iterations between kept checkpoints (0: only latest.pt)",
                at_least(0), resumable=True),
    ConfigField("tensorboard", True, bool, "also write the metrics and sample grids to tensorboard/",
                resumable=True),
    # How the step is computed (starkit.families.stargan.speed.fast); none changes what is
    # trained beyond rounding, so all may change on resume. "auto" resolves per device.
    ConfigField("precision", "auto", str, "autocast dtype: auto, fp32 or bf16", one_of(*PRECISIONS),
                resumable=True),
    ConfigField("channels_last", "auto", str, "NHWC memory layout: auto, on or off", one_of(*SWITCH),
                resumable=True),
    ConfigField("compile", "auto", str, "torch.compile the generator: auto, on or off", one_of(*SWITCH),
                resumable=True),
    ConfigField("adam_impl", "auto", str, "Adam implementation: auto, fused, foreach or loop",
                one_of(*ADAM_IMPLS), resumable=True),
    ConfigField("nnpack_convs", "auto", str, "generator's stride-1 convolutions through NNPACK (CPU): auto, on or off",
                one_of(*SWITCH), resumable=True),
    ConfigField("gemm_convs", "auto", str, "discriminator's small-output convolutions as one GEMM (CPU): auto, on or off",
                one_of(*SWITCH), resumable=True),
    ConfigField("fake_without_graph", True, bool, "compute the D step's fake without an autograd graph",
                resumable=True),
    ConfigField("share_fake", True, bool, "reuse the D step's fake in the G step of the same iteration",
                resumable=True),
    ConfigField("d_batch_real_fake", True, bool, "score real and fake images in one discriminator call",
                resumable=True),
)

FIELDS_BY_NAME = {f.name: f for f in TRAINING_FIELDS}

#: A family's check of a given option against the ones it no longer has
#: (``ModelFamily.retired_option``): why ``key = value`` is refused, or None.
Retired = Callable[[str, Any], "str | None"]
#: A family's upgrade of a saved config (``ModelFamily.upgrade_config``): ``(saved, source,
#: starkit_version) -> config``, dropping or refusing what it no longer has.
Upgrade = Callable[[Mapping[str, Any], str, "str | None"], dict]

#: A family's options by group (``ModelFamily.options``).
OptionGroups = Mapping[str, Iterable[ConfigField]]


def family_fields(default_config: Mapping[str, Any], options: OptionGroups | None = None) -> dict[str, ConfigField]:
    """Fields for a model family's hyper-parameters: its declared ``options`` (typed, with
    their range checks), else typed by their default values. The checks between options are
    the family's job when it builds."""
    declared = {f.name: f for group in (options or {}).values() for f in group}
    out = {}
    for name, default in default_config.items():
        if name in FIELDS_BY_NAME:
            raise ConfigError(f"model family default {name!r} clashes with a training field")
        kind = type(default) if isinstance(default, (bool, int, float, str, list)) else object
        out[name] = declared.get(name) or ConfigField(name, default, kind, "model hyper-parameter")
    return out


# ---------------------------------------------------------------------------- coercion
def _coerce(field: ConfigField, value: Any, where: str) -> Any:
    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{where}{field.name}: {reason}, got {value!r}")

    if value is None:
        if field.optional:
            return None
        raise bad(f"must be set ({field.help})")
    kind = field.kind
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise bad("must be true or false")
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad("must be an integer")
        try:
            number = int(value) if not isinstance(value, float) else value
        except ValueError:
            raise bad("must be an integer") from None
        if isinstance(number, float):
            if not number.is_integer():
                raise bad("must be an integer")
            number = int(number)
        return number
    if kind is float:
        if isinstance(value, bool):
            raise bad("must be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad("must be a number") from None
    if kind is str:
        if not isinstance(value, str):
            raise bad("must be a string")
        return value
    if kind is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise bad("must be a list of names (or a comma-separated string)")
        return list(value)
    return value


def _apply(
    config: dict[str, Any],
    fields: Mapping[str, ConfigField],
    values: Mapping[str, Any],
    where: str,
    origins: dict[str, str] | None = None,
    retired: Retired | None = None,
) -> None:
    for key, value in values.items():
        reason = retired(key, value) if retired is not None else None
        if reason:
            raise ConfigError(f"{where}{key}: {reason}")
        field = fields.get(key)
        if field is None:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(sorted(fields))}"
            raise ConfigError(f"{where}unknown config key {key!r}{hint}")
        config[key] = _coerce(field, value, where)
        if origins is not None:
            origins[key] = where


def validate(
    config: Mapping[str, Any], fields: Mapping[str, ConfigField], origins: Mapping[str, str] | None = None
) -> None:
    """Range checks; ``origins`` says where each value came from (``"--config FILE: "``)."""
    for name, field in fields.items():
        value = config.get(name)
        where = (origins or {}).get(name, "")
        if value is None:
            if field.optional:
                continue
            raise ConfigError(f"{where}{name}: must be set ({field.help})")
        if field.check is not None:
            problem = field.check(value)
            if problem:
                raise ConfigError(f"{where}{name}: {problem}, got {value!r}")


# ---------------------------------------------------------------------------- files
def load_config_file(path: str | Path) -> dict[str, Any]:
    """A flat table of config values from ``.json`` or ``.toml``; errors name the file (and
    line, for syntax errors)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"--config {path}: invalid TOML: {exc}") from None
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config {path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    else:
        raise ConfigError(f"--config {path}: use a .json or .toml file")
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a table of key = value pairs at the top level")
    nested = [k for k, v in data.items() if isinstance(v, dict)]
    if nested:
        raise ConfigError(f"--config {path}: key {nested[0]!r} is a table; the config is flat (key = value)")
    return data


# ---------------------------------------------------------------------------- resolution
def all_fields(default_config: Mapping[str, Any], options: OptionGroups | None = None) -> dict[str, ConfigField]:
    return {**FIELDS_BY_NAME, **family_fields(default_config, options)}


def preset_values(name: str, presets: Mapping[str, Mapping[str, Any]], model: str) -> Mapping[str, Any]:
    """The overrides of preset ``name`` of the family ``model``; a ConfigError listing the
    family's presets when it has no such preset."""
    if name in presets:
        return presets[name]
    if not presets:
        raise ConfigError(f"preset: model family {model!r} has no presets (got {name!r})")
    close = close_matches(name, presets, limit=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"preset: model family {model!r} has no preset {name!r}; {hint}its presets: {', '.join(presets)}")


#: The preset that holds a family's published configuration; without ``--preset`` it is the base
#: under a config file and flags, so a family's defaults for training keys (StarGAN v2's batch of
#: 8 and 100,000 iterations) hold as its option defaults do.
PAPER_PRESET = "paper"


def resolve_config(
    default_config: Mapping[str, Any],
    file_values: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    file_label: str = "--config",
    options: OptionGroups | None = None,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    retired: Retired | None = None,
) -> dict[str, Any]:
    """Merge defaults, the family's defaults, its preset (the ``preset`` key, from the flags
    or the file; else its ``paper`` preset, if it has one), a config file's values and flags into one validated flat dict, in that
    order of precedence. ``overrides`` entries that are ``None`` are flags not given."""
    fields = all_fields(default_config, options)
    config: dict[str, Any] = {name: _copy(f.default) for name, f in fields.items()}
    origins: dict[str, str] = {}
    model = (overrides or {}).get("model") or (file_values or {}).get("model") or FIELDS_BY_NAME["model"].default
    preset = (overrides or {}).get("preset") or (file_values or {}).get("preset")
    if preset:
        _apply(config, fields, preset_values(str(preset), presets or {}, model), f"--preset {preset}: ", origins, retired)
    elif presets and PAPER_PRESET in presets:  # the family's own values of training keys (StarGAN v2: batch 8, …)
        _apply(config, fields, presets[PAPER_PRESET], f"{model}'s {PAPER_PRESET} preset: ", origins, retired)
    if file_values:
        _apply(config, fields, file_values, f"{file_label}: ", origins, retired)
    if overrides:
        _apply(config, fields, {k: v for k, v in overrides.items() if v is not None}, "", origins, retired)
    validate(config, fields, origins)
    return config


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def resume_config(
    saved: Mapping[str, Any],
    default_config: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    source: str = "config.json",
    options: OptionGroups | None = None,
    retired: Retired | None = None,
    upgrade: Upgrade | None = None,
) -> dict[str, Any]:
    """The config of a resumed run: the saved one, with flags applied only to keys that may
    change (``iters``, logging and checkpoint intervals, workers, device, data root). Any other
    flag that disagrees with the saved run is an error naming the field: it would make the
    resumed run a different experiment."""
    fields = all_fields(default_config, options)
    config = upgrade(saved, source, saved.get("starkit_version")) if upgrade is not None else dict(saved)
    config.pop("starkit_version", None)
    for name, field in fields.items():  # keys added by a newer starkit take their defaults
        config.setdefault(name, _copy(field.default))
    unknown = sorted(set(config) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown config key {unknown[0]!r} (written by another starkit version?)")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    changed: dict[str, Any] = {}
    _apply(changed, fields, given, "", retired=retired)
    for key, value in changed.items():
        if fields[key].resumable or value == config.get(key):
            config[key] = value
        else:
            raise ConfigError(
                f"--resume: {key} is {config.get(key)!r} in the run being resumed but {value!r} was given; "
                f"it cannot change when resuming (start a new run with another --out)"
            )
    validate(config, fields)
    return config


def describe_fields(default_config: Mapping[str, Any], options: OptionGroups | None = None) -> Iterable[ConfigField]:
    return all_fields(default_config, options).values()


# ---------------------------------------------------------------------------- documentation
def format_default(value: Any) -> str:
    """A default as the option table shows it: numbers plainly, names in backticks."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return f"{value:g}"
    if isinstance(value, list):
        return "`[]`" if not value else f"`{','.join(value)}`"
    if value == "":
        return '`""`'
    return f"`{value}`"


def option_rows(option_fields: OptionGroups) -> list[dict[str, Any]]:
    """One row per option: group, key, type, default, help (what ``--options --json`` prints)."""
    return [{"group": group, "key": f.name, "type": f.kind.__name__, "default": f.default, "help": f.help}
            for group, group_fields in option_fields.items() for f in group_fields]


def _cell(text: str) -> str:
    # A "|" in a table cell, even inside backticks, would end the cell.
    return text.replace("|", "\\|")


def options_markdown(option_fields: OptionGroups,
                     descriptions: Mapping[str, str] | None = None) -> str:
    """Every option as Markdown: per group a line naming it, then a table of key, default,
    type and meaning (docs/training.md holds this text for the ``stargan`` family, between
    ``<!-- options:stargan begin -->`` and ``end`` markers)."""
    out: list[str] = []
    for group, group_fields in option_fields.items():
        about = (descriptions or {}).get(group, "")
        out += [f"**{group}**" + (f" — {about}" if about else ""), "",
                "| key | default | type | meaning |", "| --- | --- | --- | --- |"]
        out += [f"| `{f.name}` | {format_default(f.default)} | {f.kind.__name__} | {_cell(f.help)} |"
                for f in group_fields]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------- declaring options
def option(default: Any, help: str, check: Check | None = None) -> Any:
    """A dataclass field that is also a config option (a family declares its option groups as
    frozen dataclasses of these): its default, one-line help and range check (``None`` when
    the value is fine, else what is wrong)."""
    from dataclasses import field

    meta = {"help": help, "check": check}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def option_fields(groups: Mapping[str, type]) -> dict[str, tuple[ConfigField, ...]]:
    """Group name -> its dataclass's :func:`option` fields as :class:`ConfigField`s (typed by
    their defaults, as config files are read); a key in two groups is an error."""
    from dataclasses import MISSING, fields

    out: dict[str, tuple[ConfigField, ...]] = {}
    for name, cls in groups.items():
        made = []
        for f in fields(cls):
            default = f.default if f.default is not MISSING else f.default_factory()
            made.append(ConfigField(f.name, default, type(default), f.metadata["help"], f.metadata["check"]))
        out[name] = tuple(made)
    keys = [f.name for group in out.values() for f in group]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"option keys declared in two groups: {sorted({k for k in keys if keys.count(k) > 1})}")
    return out


def typed_group(cls: type, config: Mapping[str, Any]) -> Any:
    """Option group ``cls`` (a dataclass of :func:`option` fields) from a checked flat
    ``config``, numbers as each field's declared kind (a config written by hand may hold 3 for
    3.0) and lists copied."""
    from dataclasses import MISSING, fields

    values = {}
    for f in fields(cls):
        value, kind = config[f.name], type(f.default if f.default_factory is MISSING else f.default_factory())
        values[f.name] = kind(value) if kind in (int, float) else (list(value) if kind is list else value)
    return cls(**values)

