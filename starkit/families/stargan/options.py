"""The ``stargan`` family's options: typed, grouped, each with its paper default, help and check.

Every option is a field of one frozen dataclass per group (the networks, the optimiser, the
paper's loss weights, and one group per optional part: mask push, colour critic, target
sampling, moving average, DiffAugment). The groups give structure, validation and the
generated option table (:func:`options_markdown`); the keys stay one flat namespace, unique
across groups, so ``--set key=value``, config files and a run's ``config.json`` name them as
before. :func:`validate_options` is the one place that checks a flat config: each field's type
and range, then the rules between fields. :meth:`StarGANOptions.from_config` builds the typed
groups once from a validated config (what the training step reads).

Free of torch: the CLI imports this at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...training.config import (Check, ConfigError, ConfigField, at_least, one_of, option, option_fields,
                                options_markdown, positive, typed_group)

#: What G's last convolution produces: ``"image"`` (the paper) or ``"attention"`` (a colour
#: image blended with the input by a drawn mask, GANimation-style).
GENERATOR_OUTPUTS = ("image", "attention")
#: How G's two up-sampling layers double the resolution: the paper's 4×4 transposed
#: convolutions, or nearest-neighbour up-sampling and a 3×3 convolution (no checkerboard).
GENERATOR_UPSAMPLES = ("transposed", "resize")
#: Whether G recolours its input (one affine colour map per image) before drawing its change.
GENERATOR_COLOUR_MAPS = ("none", "global")
#: Whether G's up-sampling path sees the down-sampling path's features (U-Net skips).
GENERATOR_SKIPS = ("none", "unet")
#: The image size G and D are built for when a config does not say (the paper's 128 px; a
#: training run takes its shards' size).
PAPER_IMAGE_SIZE = 128


# ---------------------------------------------------------------------------- checks
def _fraction(v: float) -> str | None:
    return None if 0 <= v <= 1 else "must be in [0, 1] (0: the paper)"


def _below_one(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _int_in(allowed: range | tuple[int, ...], what: str) -> Check:
    # bool is an int subclass: True is a mistake, not 1.
    return lambda v: None if not isinstance(v, bool) and isinstance(v, int) and v in allowed else what


def _group_names(v: str) -> str | None:
    from ...labels import LabelError, parse_group_names  # numpy: not at plugin registration

    try:
        parse_group_names(v, key="mask_sharpness_groups")
    except LabelError as exc:
        return str(exc).removeprefix("mask_sharpness_groups: ")
    return None


def _augment_policy(v: list[str]) -> str | None:
    from .parts.diff_augment import AugmentPolicyError, parse_policy  # torch: only when checking

    try:
        parse_policy(v)
    except AugmentPolicyError as exc:
        return str(exc)
    return None



# ---------------------------------------------------------------------------- the groups
@dataclass(frozen=True)
class ModelOptions:
    """G and D (paper appendix: 64 base channels, 6 residual blocks in G, D's depth from the size)."""

    g_conv_dim: int = option(64, "base channel width of G", at_least(1))
    d_conv_dim: int = option(64, "base channel width of D", at_least(1))
    g_repeat_num: int = option(6, "residual blocks in G", at_least(0))
    d_repeat_num: int = option(
        0, "stride-2 convolutions in D (`image_size` must be divisible by 2^n); 0: as many as halve the image "
           "size evenly down to 2×2 (the paper's 6 at 128 px, 4 at 32 px)",
        lambda v: None if v >= 0 else "must be >= 0 (0: follows the image size)")
    g_output: str = option(
        "image", "what G's last convolution draws: `image` (the paper: `tanh(conv(h))`) or `attention` (a colour "
                 "image blended with the input by a drawn mask, GANimation-style; an untrained G keeps 98 % of its "
                 "input)", one_of(*GENERATOR_OUTPUTS))
    g_upsample: str = option(
        "transposed", "how G doubles the resolution: `transposed` (4×4 transposed convolutions of stride 2: the "
                      "paper) or `resize` (nearest-neighbour up-sampling and a 3×3 convolution: no checkerboard; "
                      "not in the paper)", one_of(*GENERATOR_UPSAMPLES))
    g_colour_map: str = option(
        "none", "`global`: G also computes one affine colour map per image (a 3×3 matrix and an offset, from its "
                "pooled bottleneck and the label, starting as the identity) and applies it to its input where one "
                "more output channel's mask says; the `attention` output then paints over that recoloured input "
                "(not in the paper; needs `g_output` `attention`)", one_of(*GENERATOR_COLOUR_MAPS))
    g_skip: str = option(
        "none", "`unet`: U-Net skip connections — the first down-sampling layer's features join the second "
                "up-sampling layer's input and the stem's join the output layer's, so G's last layers see the "
                "input at full resolution (not in the paper)", one_of(*GENERATOR_SKIPS))
    g_out_kernel: int = option(
        7, "the size of G's output convolution's square kernel, an odd number from 1 to 7 (the paper: 7; smaller "
           "decides each output pixel, and where the attention mask opens, from fewer neighbouring positions)",
        _int_in((1, 3, 5, 7), "must be an odd integer from 1 to 7 (7: the paper)"))


@dataclass(frozen=True)
class OptimOptions:
    """Adam for both networks (paper §4); the rate is constant for the first half of training,
    then falls linearly to zero (starkit.training.schedule)."""

    g_lr: float = option(1e-4, "Adam learning rate of G", positive)
    d_lr: float = option(1e-4, "Adam learning rate of D (and of the colour critic)", positive)
    beta1: float = option(0.5, "Adam's first beta", _below_one)
    beta2: float = option(0.999, "Adam's second beta", _below_one)
    n_critic: int = option(5, "D iterations per G step", at_least(1))


@dataclass(frozen=True)
class LossOptions:
    """The paper's loss weights, and two optional terms (0: not in the paper)."""

    lambda_cls: float = option(1.0, "weight of the domain-classification losses", at_least(0))
    lambda_rec: float = option(10.0, "weight of G's L1 reconstruction `|x − G(G(x, c_trg), c_org)|`", at_least(0))
    lambda_gp: float = option(10.0, "weight of the critics' gradient penalty (WGAN-GP)", at_least(0))
    lambda_id: float = option(0.0, "weight of an identity loss `|x − G(x, c_org)|` in the G step (not in the paper)",
                              at_least(0))
    lambda_cls_gp: float = option(
        0.0, "weight of an input-gradient penalty on D's classification of real images, "
             "`mean ‖∇ₓ L_cls(D_cls(x), c)‖²` (not in the paper)", at_least(0))
    lambda_cls_fake: float = option(
        0.0, "weight of D's classifier's uncertainty on translations: cross-entropy of `D_cls(G(x, c_trg))` "
             "against uniform (not in the paper)", at_least(0))


@dataclass(frozen=True)
class MaskPushOptions:
    """Penalties on the masks an attention generator draws (GANimation; not in StarGAN)."""

    lambda_mask: float = option(
        0.0, "weight of the attention generator's paint-mask opening, `mean(1 − K)` over the pixels of each "
             "translation, in the G step (GANimation's mask sparsity; not in StarGAN; needs `g_output` `attention`)",
        at_least(0))
    lambda_mask_sharpness: float = option(
        0.0, "weight of every mask G draws (the paint mask, and the recolour mask with `g_colour_map` `global`) "
             "pushed toward shut or fully open: `mean(4·m·(1 − m))` per mask, summed, in the G step from iteration "
             "`mask_sharpness_from` (not in the paper; needs `g_output` `attention`)", at_least(0))
    mask_sharpness_from: int = option(
        0, "the iteration from which `lambda_mask_sharpness` weighs in G's loss (logged from the start): the masks "
           "start nearly shut, and a push from the start shuts them for good, so G stops translating; the demo "
           "starts it at the last quarter of the run (0: from the start)",
        lambda v: None if v >= 0 else "must be >= 0 (0: from the start)")
    mask_sharpness_groups: str = option(
        "", "which translations `lambda_mask_sharpness` weighs on: empty for all of them, or only those whose "
            "target changes one of these comma-separated attribute groups (e.g. `hair`; each must be a group of "
            "the label space): a translation to another dataset's labels changes none of them. Each counted "
            "image's pixels weigh what they would without the choice (the mean stays over the batch)",
        _group_names)


@dataclass(frozen=True)
class ColourCriticOptions:
    """A second critic, "H", that sees only colour histograms and labels (not in the paper)."""

    lambda_hist: float = option(
        0.0, "weight of G's adversarial loss against the colour critic `H`, a second WGAN-GP critic that sees only "
             "each image's soft colour histogram and its labels, trained beside D with D's learning rate and "
             "`lambda_gp` (not in the paper). Saved in checkpoints as network `\"H\"` with its optimiser",
        lambda v: None if v >= 0 else "must be >= 0 (0: no colour critic, the paper)")
    hist_bins: int = option(
        8, "the colour critic's bins per colour channel (`hist_bins³` in all, trilinear weights)",
        _int_in(range(2, 33), "must be an integer in [2, 32] (bins per colour channel)"))


@dataclass(frozen=True)
class TargetOptions:
    """Which targets G is trained on, beyond the paper's permuted batch labels
    (starkit.families.stargan.parts.targets)."""

    cross_targets: float = option(
        0.0, "fraction of every batch translated to another dataset's random valid labels and mask, judged by "
             "that dataset's part of D's classifier (not in the paper)", _fraction)
    mask_noise: float = option(
        0.0, "fraction of G's label inputs given random valid labels in the parts their mask marks unknown "
             "(zeros in the paper)", _fraction)


@dataclass(frozen=True)
class EmaOptions:
    """A moving average of G's weights (StarGAN v2; not in the first paper)."""

    g_ema: float = option(
        0.0, "decay of a moving average of G's weights, kept beside G and used for sample grids, "
             "`starkit translate` and `starkit eval` (StarGAN v2 uses 0.999; 0: none, as in the first paper)",
        lambda v: None if 0 <= v < 1 else "must be in [0, 1) (0: no moving average)")


@dataclass(frozen=True)
class AugmentOptions:
    """Differentiable augmentation of every image D sees (DiffAugment; not in the paper)."""

    d_augment: list[str] = option(
        [], "differentiable augmentations of every image D sees, real or fake (DiffAugment): any of "
            "`translation`, `cutout`, `color`, as a list or `\"translation,cutout\"` (not in the paper)",
        _augment_policy)


#: Group name -> its options class, in the order the tables list them.
OPTION_GROUPS: dict[str, type] = {
    "model": ModelOptions,
    "optim": OptimOptions,
    "loss": LossOptions,
    "mask_push": MaskPushOptions,
    "colour_critic": ColourCriticOptions,
    "targets": TargetOptions,
    "ema": EmaOptions,
    "augment": AugmentOptions,
}



#: Group name -> its options as config fields (typed by their defaults, as config files are read).
OPTION_FIELDS: dict[str, tuple[ConfigField, ...]] = option_fields(OPTION_GROUPS)
#: Every option by key (keys are unique across groups).
FIELDS_BY_KEY: dict[str, ConfigField] = {f.name: f for group in OPTION_FIELDS.values() for f in group}
#: The paper's values, flat: the family's default config.
PAPER_DEFAULTS: dict[str, Any] = {key: f.default for key, f in FIELDS_BY_KEY.items()}
#: Model hyper-parameters and their paper values (StarGAN, appendix: 128 px, 64 base channels,
#: 6 residual blocks in G, D's depth following the image size, G drawing the output image
#: itself): the ``model`` option group, with the image size. What the networks are built from.
DEFAULT_MODEL_CONFIG: dict[str, Any] = {
    "image_size": PAPER_IMAGE_SIZE,
    **{f.name: f.default for f in OPTION_FIELDS["model"]},
}


# ---------------------------------------------------------------------------- validation
_KIND_WORDS = {int: "an integer", float: "a number", str: "a string", list: "a list of names"}


def _kind_problem(kind: type, value: Any) -> str | None:
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is list:  # or one comma-separated string, as config files and --set may give it
        ok = isinstance(value, str) or isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    else:
        ok = isinstance(value, kind)
    return None if ok else f"must be {_KIND_WORDS.get(kind, kind.__name__)}"


def _field_problem(f: ConfigField, value: Any) -> str | None:
    wrong_kind = _kind_problem(f.kind, value)
    if f.check is None:
        return wrong_kind
    if wrong_kind:
        try:  # a check that says more about the value (e.g. "an integer in [2, 32]") says it
            return f.check(value) or wrong_kind
        except TypeError:
            return wrong_kind
    return f.check(value)


def drawn_masks(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The masks a generator with this config draws (``Generator.forward``'s ``with_masks``),
    all of which ``lambda_mask_sharpness`` pushes: ``"paint"`` for the attention output,
    ``"recolour"`` with a colour map."""
    return tuple(name for name, drawn in (("paint", config["g_output"] == "attention"),
                                          ("recolour", config["g_colour_map"] != "none")) if drawn)


def _max_depth(size: int) -> int:
    depth = 0
    while size % 2 ** (depth + 1) == 0:
        depth += 1
    return depth


def _cross_field_rules(config: Mapping[str, Any]) -> list[tuple[str, bool, str]]:
    """``(key, holds, what)`` for each rule between options."""
    drawn = drawn_masks(config)
    rules = [
        ("g_colour_map", config["g_colour_map"] == "none" or config["g_output"] == "attention",
         "needs g_output 'attention' (g_output 'image' never starts from its input)"),
        ("lambda_mask", config["lambda_mask"] == 0 or "paint" in drawn,
         "needs g_output 'attention' (only it draws a paint mask)"),
        ("lambda_mask_sharpness", config["lambda_mask_sharpness"] == 0 or bool(drawn),
         "needs a generator that draws a mask (g_output 'attention')"),
    ]
    size = config.get("image_size")
    if size is not None:
        rules.append(("image_size", size % 4 == 0, "must be divisible by 4 (G down-samples twice)"))
    return rules


def _check_depth(config: Mapping[str, Any]) -> None:
    size, depth = config.get("image_size"), config["d_repeat_num"]
    if size is not None and depth and size % 2**depth:
        raise ConfigError(
            f"d_repeat_num: {depth} halvings need an image size divisible by {2**depth}, "
            f"but image_size is {size}; lower d_repeat_num (e.g. {_max_depth(size)})"
        )


def validate_options(config: Mapping[str, Any], label_space: Any = None, groups: tuple[str, ...] | None = None) -> None:
    """Check a flat config's ``stargan`` options (missing keys take the paper's values): each
    field's type and range, then the rules between them (a colour map needs the attention
    output, mask penalties need a mask-drawing G, D's depth against ``image_size`` when the
    config has one) and, with ``label_space``, the attribute-group names against it. Only
    ``groups``' fields when given (and then no rules between fields). Raises
    :class:`~starkit.training.config.ConfigError` naming the key: ``key: what, got value``."""
    _merged_and_checked(config, label_space, groups)


def _merged_and_checked(
    config: Mapping[str, Any], label_space: Any = None, groups: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """:func:`validate_options`'s work; returns ``config`` over the paper's values, as checked."""
    config = {**PAPER_DEFAULTS, **config}
    for name in groups or OPTION_FIELDS:
        for f in OPTION_FIELDS[name]:
            problem = _field_problem(f, config[f.name])
            if problem:
                raise ConfigError(f"{f.name}: {problem}, got {config[f.name]!r}")
    if groups is not None:
        return config
    for key, holds, what in _cross_field_rules(config):
        if not holds:
            raise ConfigError(f"{key}: {what}, got {config.get(key)!r}")
    _check_depth(config)
    if label_space is not None:
        from ...labels import LabelError, parse_group_names

        try:
            parse_group_names(config["mask_sharpness_groups"], label_space, "mask_sharpness_groups")
        except LabelError as exc:
            raise ConfigError(str(exc)) from None
    return config


# ---------------------------------------------------------------------------- typed groups

@dataclass(frozen=True)
class StarGANOptions:
    """Every ``stargan`` option, by group, typed; built once from a validated flat config."""

    model: ModelOptions
    optim: OptimOptions
    loss: LossOptions
    mask_push: MaskPushOptions
    colour_critic: ColourCriticOptions
    targets: TargetOptions
    ema: EmaOptions
    augment: AugmentOptions

    @classmethod
    def from_config(cls, config: Mapping[str, Any], label_space: Any = None) -> "StarGANOptions":
        """Validate ``config`` (:func:`validate_options`) and split it into the typed groups."""
        merged = _merged_and_checked(config, label_space)
        return cls(**{name: typed_group(group, merged) for name, group in OPTION_GROUPS.items()})


# ---------------------------------------------------------------------------- documentation
def group_descriptions() -> dict[str, str]:
    """Each group's one-line description: its class docstring."""
    return {name: " ".join((cls.__doc__ or "").split()) for name, cls in OPTION_GROUPS.items()}


def stargan_options_markdown() -> str:
    return options_markdown(OPTION_FIELDS, group_descriptions())

