"""The ``stargan-v2`` family's options: typed, grouped, each with its paper default, help and check.

One frozen dataclass per group — the networks (``model``), the objective's weights (``loss``),
Adam and the moving averages (``optim``), which domains and references the data serves
(``data``) — whose fields are also config options (:func:`starkit.training.config.option`). The keys stay one flat
namespace, as for ``stargan``, so ``--set key=value``, config files and a run's
``config.json`` name them directly. The defaults are the official implementation's AFHQ recipe
(clovaai/stargan-v2, ``main.py``; paper §4 and appendix A). :meth:`StarGANv2Options.from_config`
checks a flat config and gives the typed groups the training step reads.

Free of torch: the CLI imports this at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...training.config import (ConfigError, ConfigField, at_least, option, option_fields, options_markdown, positive,
                                typed_group)

#: The image size the networks are built for when a config does not say (the official AFHQ
#: and CelebA-HQ models: 256 px; a training run takes its shards' size).
PAPER_IMAGE_SIZE = 256


# ---------------------------------------------------------------------------- checks
def _below_one(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _no_high_pass(v: int) -> str | None:
    # The official w_hpf > 0 path (CelebA-HQ) masks G's skip features with heat maps of a
    # face-landmark network (FAN) that starkit does not ship or train.
    return None if v == 0 else ("must be 0: the high-pass filter path needs the official face-landmark network "
                                "(FAN), which starkit does not ship; AFHQ-style training never uses it")


def _domain_items(v: list[str]) -> str | None:
    bad = [item for item in v if ":" not in item]
    return None if not bad else f"{bad[0]!r} is not DATASET:GROUP (e.g. synth-rafd:expression, celeba:Male)"



# ---------------------------------------------------------------------------- the groups
@dataclass(frozen=True)
class ModelOptions:
    """The generator, mapping network, style encoder and discriminator (paper appendix B)."""

    latent_dim: int = option(16, "size of the latent code z the mapping network turns into a style", at_least(1))
    style_dim: int = option(64, "size of a style code s (the mapping network's and the style encoder's output)",
                            at_least(1))
    mapping_dim: int = option(512, "hidden width of the mapping network's layers", at_least(1))
    conv_dim: int = option(0, "channels of G's, E's and D's first convolution; 0: the official rule "
                              "2^14 / image_size (64 at 256 px), at most `max_conv_dim`", at_least(0))
    max_conv_dim: int = option(512, "cap on any convolution's channels", at_least(1))
    w_hpf: int = option(0, "weight of the official high-pass filter path (CelebA-HQ faces); only 0 is supported",
                        _no_high_pass)


@dataclass(frozen=True)
class LossOptions:
    """The paper's objective (Eq. 5): weights of each term, and the diversity weight's decay."""

    lambda_reg: float = option(1.0, "γ of the R1 penalty on real images, `γ/2·E‖∇ₓD(x)‖²`", at_least(0))
    lambda_sty: float = option(1.0, "weight of the style reconstruction `|s − E(G(x, s), y)|₁`", at_least(0))
    lambda_ds: float = option(1.0, "initial weight of the diversity-sensitive loss `|G(x, s₁) − G(x, s₂)|₁` "
                                   "(maximised), decayed linearly to 0 at `ds_iter`", at_least(0))
    ds_iter: int = option(100_000, "iteration at which the diversity weight reaches 0", at_least(1))
    lambda_cyc: float = option(1.0, "weight of the cycle loss `|x − G(G(x, s̃), ŝ)|₁`, ŝ = E(x, y_org)",
                               at_least(0))


@dataclass(frozen=True)
class OptimOptions:
    """Adam for each network (constant rates, no decay) and the moving averages translation uses."""

    lr: float = option(1e-4, "Adam learning rate of G, the style encoder and D", positive)
    f_lr: float = option(1e-6, "Adam learning rate of the mapping network", positive)
    beta1: float = option(0.0, "Adam's first beta", _below_one)
    beta2: float = option(0.99, "Adam's second beta", _below_one)
    weight_decay: float = option(1e-4, "Adam's (L2) weight decay of every network", at_least(0))
    ema_beta: float = option(0.999, "decay of the moving averages of G, the mapping network and the style "
                                    "encoder (`ema = β·ema + (1 − β)·w` every iteration), used for samples, "
                                    "`translate` and `eval`", _below_one)


@dataclass(frozen=True)
class DataOptions:
    """Which domains the model translates between, and the references each sample draws."""

    domains: list[str] = option(
        [], "the group each dataset contributes its domains from, as `DATASET:GROUP` (a one-hot group, e.g. "
            "`synth-rafd:expression`, or a binary attribute split in two, e.g. `celeba:Male`); datasets not "
            "named take their first one-hot group (else their first binary attribute)", _domain_items)
    references_per_sample: int = option(
        2, "reference images of its target domain each sample draws (two: the diversity loss's pair)", at_least(2))


#: Group name -> its options class, in the order the tables list them.
OPTION_GROUPS: dict[str, type] = {"model": ModelOptions, "loss": LossOptions, "optim": OptimOptions,
                                  "data": DataOptions}



#: Group name -> its options as config fields (typed by their defaults, as config files are read).
OPTION_FIELDS: dict[str, tuple[ConfigField, ...]] = option_fields(OPTION_GROUPS)
#: Every option by key (keys are unique across groups).
FIELDS_BY_KEY: dict[str, ConfigField] = {f.name: f for group in OPTION_FIELDS.values() for f in group}
#: The official AFHQ values, flat: the family's default config.
PAPER_DEFAULTS: dict[str, Any] = {key: f.default for key, f in FIELDS_BY_KEY.items()}


# ---------------------------------------------------------------------------- validation
def validate_options(config: Mapping[str, Any]) -> None:
    """Check a flat config's ``stargan-v2`` options (missing keys take the paper's values):
    each field's range. The core checks configs it resolves the same way; this covers configs
    that reach the family another way (a checkpoint's, a test's). Raises
    :class:`~starkit.training.config.ConfigError` naming the key: ``key: what, got value``."""
    config = {**PAPER_DEFAULTS, **config}
    for key, f in FIELDS_BY_KEY.items():
        value = config[key]
        try:
            problem = f.check(value) if f.check is not None else None
        except TypeError:
            problem = f"must be {f.kind.__name__}"
        if problem:
            raise ConfigError(f"{key}: {problem}, got {value!r}")


#: The generic performance switches (training fields) this family does not implement, and the
#: values it refuses: ``precision``, ``channels_last`` and ``adam_impl`` it honours (:mod:`.speed`);
#: these three are ``stargan``'s kernels and compilation, which the v2 step never uses.
_UNSUPPORTED_SWITCHES = {"compile": ("on",), "nnpack_convs": ("on",), "gemm_convs": ("on",)}


def check_speed_switches(config: Mapping[str, Any]) -> None:
    """Refuse a performance switch the family would otherwise ignore (``"auto"`` and ``"off"``
    are eager, with oneDNN's convolutions), naming it."""
    for key, refused in _UNSUPPORTED_SWITCHES.items():
        if config.get(key) in refused:
            raise ConfigError(f"{key}: {config[key]!r} is not implemented for stargan-v2 "
                              f"(it trains eagerly, with the default convolution kernels); use {key} = \"auto\"")



@dataclass(frozen=True)
class StarGANv2Options:
    """Every ``stargan-v2`` option, by group, typed; built once from a checked flat config."""

    model: ModelOptions
    loss: LossOptions
    optim: OptimOptions
    data: DataOptions

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "StarGANv2Options":
        validate_options(config)
        merged = {**PAPER_DEFAULTS, **config}
        return cls(**{name: typed_group(group, merged) for name, group in OPTION_GROUPS.items()})


# ---------------------------------------------------------------------------- documentation
def group_descriptions() -> dict[str, str]:
    """Each group's one-line description: its class docstring."""
    return {name: " ".join((cls.__doc__ or "").split()) for name, cls in OPTION_GROUPS.items()}


def stargan_v2_options_markdown() -> str:
    return options_markdown(OPTION_FIELDS, group_descriptions())
