"""Default plugin: the ``stargan`` model family (Choi et al., CVPR 2018).

Registered through the same ``starkit_models`` hook a third-party family (StarGAN v2, …)
would implement. Importing this module costs nothing: torch loads inside ``build``,
``trainer``, ``translator`` and ``import_weights``.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..hookspecs import hookimpl
from ..model_family import ModelFamily
from ..models import DEFAULT_MODEL_CONFIG

#: The family's hyper-parameters with the paper's values. Network widths and depths come from
#: the models package; ``image_size`` is a training field (it must match the shards).
STARGAN_DEFAULTS: dict[str, Any] = {
    **{k: v for k, v in DEFAULT_MODEL_CONFIG.items() if k != "image_size"},
    # Adam for both networks (paper §4); the learning rate stays constant for the first half
    # of training, then decays linearly to zero (starkit.training.schedule).
    "g_lr": 1e-4,
    "d_lr": 1e-4,
    "beta1": 0.5,
    "beta2": 0.999,
    # Five critic (D) iterations per generator step; loss weights λ_cls, λ_rec, λ_gp.
    "n_critic": 5,
    "lambda_cls": 1.0,
    "lambda_rec": 10.0,
    "lambda_gp": 10.0,
    # Identity loss |x - G(x, c_org)| (not in the paper, hence 0): see docs/training.md.
    "lambda_id": 0.0,
    # Input-gradient penalty on D's classification of real images (not in the paper, hence 0).
    "lambda_cls_gp": 0.0,
    # D's classifier trained to be unsure of what translations show (not in the paper, hence 0).
    "lambda_cls_fake": 0.0,
    # The attention generator's paint-mask opening, mean(1 − K), as a G loss on each
    # translation (GANimation's mask sparsity; not in StarGAN, hence 0): see
    # starkit.models.losses.mask_opening.
    "lambda_mask": 0.0,
    # Every mask G draws (the paint mask, and the colour map's recolour mask) pushed toward
    # shut or fully open, mean(4·m·(1 − m)), as a G loss on each translation (not in StarGAN,
    # hence 0): see starkit.models.losses.mask_indecision.
    "lambda_mask_sharpness": 0.0,
    # The iteration from which lambda_mask_sharpness weighs (0: from the start). The masks
    # start nearly shut, and a push from the start shut both (weight 1, session 22); from
    # mid-run the paint mask stayed open on the hair (the recolour mask still shut).
    "mask_sharpness_from": 0,
    # Which translations lambda_mask_sharpness weighs on: "" all of them, or those whose target
    # changes one of these comma-separated attribute groups (e.g. "hair"), so that the others
    # (an expression, an age) keep soft masks.
    "mask_sharpness_groups": "",
    # A second critic that sees only colour histograms and labels (not in the paper, hence 0):
    # G's adversarial loss against it is weighted by lambda_hist; hist_bins colour bins per
    # channel. See starkit.models.colour_critic.
    "lambda_hist": 0.0,
    "hist_bins": 8,
    # Fraction of every batch translated to another dataset's labels and mask (random valid
    # labels of a random other dataset), so G is trained on cross-dataset translations too;
    # not in the paper, hence 0. See starkit.training.targets.
    "cross_targets": 0.0,
    # Fraction of G's label inputs given random labels in the parts their mask marks unknown
    # (zeros in the paper), so that G learns to ignore them. See starkit.training.targets.
    "mask_noise": 0.0,
    # Differentiable augmentation of every image D sees (DiffAugment; not in the paper, hence
    # none): any of "translation", "cutout", "color". See starkit.training.diff_augment.
    "d_augment": [],
    # Decay of an exponential moving average of G's weights, used for sampling, translation and
    # evaluation (StarGAN v2 uses 0.999; the first paper has none, hence 0 = off).
    "g_ema": 0.0,
}


def build(label_space: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """``{"G": Generator, "D": Discriminator}`` for ``label_space`` (config checked first)."""
    from ..training.stargan_step import build_networks

    return build_networks(label_space, {**STARGAN_DEFAULTS, **config})


def trainer(label_space: Any, config: Mapping[str, Any], runtime: Any) -> Any:
    """The :class:`starkit.training.stargan_step.StarGANStep` that trains the family."""
    from ..training.stargan_step import StarGANStep

    return StarGANStep(label_space, {**STARGAN_DEFAULTS, **config}, runtime)


def translator(saved: Any) -> Any:
    """The :class:`starkit.families.stargan.translator.StarGANTranslator` of a checkpoint."""
    from ..families.stargan.translator import load_translator

    return load_translator(saved)


def import_weights(reference: Any, options: Mapping[str, Any]) -> Any:
    """The reference implementation's ``<iter>-G.ckpt`` (:mod:`starkit.families.stargan.import_weights`)."""
    from ..families.stargan.import_weights import import_weights as convert

    return convert(reference, options)


def resolve_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with D's depth set from the image size where ``d_repeat_num`` is 0."""
    from ..models.stargan import discriminator_depth

    return {**config, "d_repeat_num": discriminator_depth(int(config["image_size"]), int(config["d_repeat_num"]))}


@hookimpl
def starkit_models() -> list[ModelFamily]:
    return [
        ModelFamily(
            name="stargan",
            build=build,
            trainer=trainer,
            default_config=dict(STARGAN_DEFAULTS),
            description="StarGAN: one generator for many domains, joint training with mask vectors",
            resolve_config=resolve_config,
            translator=translator,
            import_weights=import_weights,
        )
    ]
