"""Default plugin: the ``stargan`` model family (Choi et al., CVPR 2018).

Registered through the same ``starkit_models`` hook a third-party family (StarGAN v2, …)
would implement. Importing this module costs nothing: torch loads inside ``build`` and
``trainer``.
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
    # How much of the reconstruction loss's gradient flows back through the translation
    # G(x, c) into G's forward translation (1: all of it, the paper; 0: the way back learns to
    # invert and the translation is not pulled back toward its input). See docs/training.md.
    "rec_fake_grad": 1.0,
    # Identity loss |x - G(x, c_org)| (not in the paper, hence 0): see docs/training.md.
    "lambda_id": 0.0,
    # Input-gradient penalty on D's classification of real images (not in the paper, hence 0).
    "lambda_cls_gp": 0.0,
    # D's classifier trained to be unsure of what translations show (not in the paper, hence 0).
    "lambda_cls_fake": 0.0,
    # G's classification loss stops pushing a translation once D's classifier gives its target
    # this probability (each image's loss per group counted as at least -log of it; not in the
    # paper, hence 0 = always push). See starkit.labels.LabelSpace.classification_loss.
    "g_cls_confidence": 0.0,
    # G's classification loss weighted per attribute group, "group=weight,…" (e.g. "hair=0.5";
    # groups not named: 1; not in the paper, hence ""). D's classifier learns every group at
    # full weight. See starkit.labels.LabelSpace.classification_loss.
    "g_cls_group_weights": "",
    # A translation's change to its input, |G(x, c) - x|, and that change's total variation, as
    # G losses (not in the paper, hence 0): see starkit.models.losses.change_l1 and
    # change_total_variation.
    "lambda_change": 0.0,
    "lambda_change_tv": 0.0,
    # The change penalty counts each pixel's change as at most change_cap (0: no cap), and its
    # weight ramps up from 0 over the first change_warmup iterations (0: from the start).
    "change_cap": 0.0,
    "change_warmup": 0,
    # The attention (or gated) generator's paint-mask opening, mean(1 − K), and the colour map's
    # mask, mean(M), as G losses on each translation (GANimation's mask sparsity; not in
    # StarGAN, hence 0): see starkit.models.losses.mask_opening.
    "lambda_mask": 0.0,
    "lambda_recolour_mask": 0.0,
    # G's masks (paint, recolour; mask_sharpness_on) pushed toward shut or fully open,
    # mean(4·m·(1 − m)), as a G loss on each translation (not in StarGAN, hence 0): see
    # starkit.models.losses.mask_indecision.
    "lambda_mask_sharpness": 0.0,
    # Which masks lambda_mask_sharpness pushes: "" every mask G draws, or a comma-separated
    # choice of "paint" and "recolour".
    "mask_sharpness_on": "",
    # The iteration from which lambda_mask_sharpness weighs (0: from the start). The masks
    # start nearly shut, and a push from the start shut both (weight 1, session 22); from
    # mid-run the paint mask stayed open on the hair (the recolour mask still shut).
    "mask_sharpness_from": 0,
    # Which translations lambda_mask_sharpness weighs on: "" all of them, or those whose target
    # changes one of these comma-separated attribute groups (e.g. "hair"), so that the others
    # (an expression, an age) keep soft masks.
    "mask_sharpness_groups": "",
    # Path consistency (not in the paper, hence 0): a translation straight to a target should
    # equal one by way of another target, G(x, c) = G(G(x, c_mid), c), on path_fraction of
    # every batch. See starkit.models.losses.path_consistency.
    "lambda_path": 0.0,
    "path_fraction": 0.25,
    # A second critic that sees only colour histograms and labels (not in the paper, hence 0):
    # G's adversarial loss against it is weighted by lambda_hist; hist_bins colour bins per
    # channel. See starkit.models.colour_critic.
    "lambda_hist": 0.0,
    "hist_bins": 8,
    # Class-conditional colour matching (not in the paper, hence 0): the colours of G's
    # translations to each attribute value are pushed toward those of real images with that
    # value (an MMD between the two colour distributions, kept as running means over batches
    # with decay colour_match_decay). See starkit.models.colour_moments.
    "lambda_colour_match": 0.0,
    "colour_match_decay": 0.99,
    # Its push reaches only the pixels a translation changed by more than colour_match_gate
    # (model units, largest channel; full at 3x; 0: every pixel).
    "colour_match_gate": 0.05,
    # "permute": targets are the batch's own labels shuffled (the reference implementation);
    # "random": uniformly random valid labels (one member of each one-hot group).
    "target_sampling": "permute",
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
    # Random framing (zoom, shift, roll) of the real images D's domain classifier learns from,
    # so it cannot read labels from fixed positions: "none" (the paper) or "framing". See
    # starkit.training.framing.
    "d_cls_augment": "none",
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


@hookimpl
def starkit_models() -> list[ModelFamily]:
    return [
        ModelFamily(
            name="stargan",
            build=build,
            trainer=trainer,
            default_config=dict(STARGAN_DEFAULTS),
            description="StarGAN: one generator for many domains, joint training with mask vectors",
        )
    ]
