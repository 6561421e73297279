"""What a model-family plugin declares (returned from the ``starkit_models`` hook).

A family bundles everything model-specific: how to build its networks for a
:class:`starkit.labels.LabelSpace`, how to train them (a :class:`starkit.training.step.StepRunner`,
which also draws the sample grids), how to translate and predict labels with a saved
checkpoint (a :class:`starkit.inference.Translator`, used by ``translate`` and ``eval``) and,
optionally, how to import another implementation's weights. The trainer, translation,
evaluation and the CLI call only these. Everything heavy (torch) is imported inside the
callables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence


@dataclass(frozen=True)
class ModelFamily:
    """A model family such as ``stargan``.

    ``build(label_space, config) -> dict[str, torch.nn.Module]`` makes the networks (e.g.
    ``{"G": ..., "D": ...}``). ``trainer(label_space, config, device)`` returns the object that
    owns the training step for this family (see :mod:`starkit.training`). ``default_config``
    holds the family's hyper-parameters; user config files override them key by key.
    ``resolve_config(config) -> dict``, when given, fills in what depends on the data once the
    image size is known (e.g. StarGAN's D depth); the run records the resolved values.

    ``translator(saved: starkit.inference.SavedModel) -> starkit.inference.Translator`` makes
    the object that translates with a checkpoint: which of the saved networks it loads (e.g. a
    moving average instead of the trained weights, for ``saved.weights``) is the family's
    business. Without it the family's checkpoints cannot be translated or evaluated.
    ``import_weights(path, options) -> ImportedWeights``, when given, converts another
    implementation's weight file for ``starkit import-checkpoint --model NAME``; ``options``
    holds only the options the user gave (``image_size``, ``attributes``).
    """

    name: str
    build: Callable[..., Any]
    trainer: Callable[..., Any] | None = None
    default_config: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    resolve_config: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    #: The family's options by group (group name -> ``starkit.training.config.ConfigField``s:
    #: type, default, help, range check), keys unique across groups and equal to
    #: ``default_config``'s: validated when a config is resolved, listed by ``starkit train
    #: --options``. Empty: the options are typed by their defaults, with no help or checks.
    options: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    #: Named presets for ``starkit train --preset NAME``: each a dict of overrides over the
    #: defaults (family options and training keys).
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    translator: Callable[[Any], Any] | None = None
    import_weights: Callable[[Any, Mapping[str, Any]], "ImportedWeights"] | None = None
    #: Options the family no longer has: ``retired_option(key, value)`` says why a given
    #: ``key = value`` is refused (None: fine); ``upgrade_config(saved, source, version)`` turns
    #: a saved config (config.json, a checkpoint's) into one this version reads, or refuses it.
    retired_option: Callable[[str, Any], "str | None"] | None = None
    upgrade_config: Callable[[Mapping[str, Any], str, "str | None"], dict[str, Any]] | None = None


@dataclass(frozen=True)
class ImportedWeights:
    """What a family's ``import_weights`` makes of a foreign weight file.

    ``checkpoint``: the checkpoint's own fields (``label_space``, ``config``, ``networks``,
    optionally ``iteration`` and ``imported_from``); starkit adds the format tag, version and
    family name and writes the file atomically. ``summary``: JSON values for ``--json``.
    ``description``: one line for the terminal, e.g. ``"generator conv_dim 64, 6 residual
    blocks, 8,430,000 parameters"``.
    """

    checkpoint: Mapping[str, Any]
    summary: Mapping[str, Any]
    description: str
