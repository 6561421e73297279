"""StarGAN's training iteration (paper §3 and §4; the reference implementation's schedule).

An iteration is one discriminator step; every ``n_critic``-th iteration (``(i + 1) % n_critic
== 0``) a generator step follows, as in the reference code::

    D step:  L_D = -mean D_src(x) + mean D_src(G(x, c_trg)) + λ_cls·L_cls(D_cls(x), c_org)
                   + λ_gp·GP(x, G(x, c_trg))  [+ λ_cls_gp·mean ‖∇_x L_cls(D_cls(x), c_org)‖²]
                   [+ λ_cls_fake·U(D_cls(G(x, c_trg)))]
    G step:  L_G = -mean D_src(G(x, c_trg)) + λ_cls·L_cls(D_cls(G(x, c_trg)), c_trg)
                   + λ_rec·|x - G(G(x, c_trg), c_org)|₁  [+ λ_id·|x - G(x, c_org)|₁]
                   [+ λ_change·|G(x, c_trg) - x|₁ + λ_change_tv·TV(G(x, c_trg) - x)]
                   [- λ_hist·mean H(G(x, c_trg), c_trg)]
                   [+ λ_colour_match·L_M(G(x, c_trg), c_trg)]
    H step (after the D step, with λ_hist > 0):
             L_H = -mean H(x, c_org) + mean H(G(x, c_trg), c_trg) + λ_gp·GP(features)
    Colour moments (every iteration, with λ_colour_match > 0): the running class-conditional
             mean embeddings of the pixel colours of x (by c_org) and of G(x, c_trg) (by c_trg)
             take in the batch; L_M moves the translations' colours toward the real ones
             (:mod:`starkit.models.colour_moments`).

G's ``L_cls`` may weight its attribute groups (``g_cls_group_weights``, e.g. ``"hair=0.5"``: a
weaker push toward a hair colour than toward an expression; not in the paper, every weight 1).
Terms in brackets are optional and off by default (not in the paper); ``U`` is
:meth:`~starkit.labels.LabelSpace.uncertainty_loss`, the cross-entropy of D's classification of a
translation against "no idea" (uniform over each one-hot group, 0.5 for each binary attribute):
D learns to doubt what translations show, so G must make them convincing rather than find what
D's classifier happens to accept.

With ``d_augment`` D sees every image, real or fake, through differentiable augmentations
(:mod:`.diff_augment`). With ``g_ema`` (StarGAN v2's choice, not the first paper's) the step
also keeps an exponential moving average of G's weights, updated after every G step, which
sample grids, ``starkit translate`` and ``starkit eval`` use (:mod:`.ema`).
With ``d_condition = "projection"`` D_src is told each image's labels (real images their own,
translations their targets): ``D_src(x, c_org)`` and ``D_src(G(x, c_trg), c_trg)``. With
``d_cls_augment = "framing"`` D's classification loss (and its input-gradient penalty) is
computed on randomly re-framed copies of the real images (:mod:`.framing`).

Labels are joint vectors of the label space: the batch's own labels fill the current dataset's
slice and the mask marks it (paper §3.2); classification losses only look at that slice,
group by group (:meth:`starkit.labels.LabelSpace.classification_loss`). Target labels come from
permuting the batch's labels (``target_sampling = "permute"``, the reference's choice: targets
follow the data's label distribution) or from uniformly random valid labels (``"random"``).
With ``cross_targets`` (not in the paper) a fraction of every batch is translated to another
dataset's labels and mask instead, and G's classification loss judges those rows by that
dataset's slice (:mod:`.targets`); with ``mask_noise`` some rows of G's label inputs carry random
labels in the parts their mask marks unknown, which G learns to ignore.

How the iteration is computed follows the performance switches of :mod:`.fast` (precision,
memory layout, compilation, Adam implementation, NNPACK convolutions, and the two ways of not
computing the fake twice); :meth:`FastPath.naive() <starkit.training.fast.FastPath.naive>`
computes it the straightforward way. Every switch gives the same losses and gradients within
the tolerances stated in tests/test_fast_path.py.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..labels import LabelError, LabelSpace, parse_group_names, parse_group_weights
from ..models import (
    DISCRIMINATOR_CONDITIONS,
    GENERATOR_COLOUR_MAPS,
    GENERATOR_CONDITIONS,
    GENERATOR_OUTPUTS,
    GENERATOR_SKIPS,
    GENERATOR_UP_NORMS,
    GENERATOR_UPSAMPLES,
)
from ..models.losses import (
    change_l1,
    change_total_variation,
    critic_fake_loss,
    critic_real_loss,
    generator_adversarial_loss,
    gradient_penalty,
    interpolation_weights,
    mask_indecision,
    mask_opening,
    path_consistency,
    reconstruction_loss,
    scale_gradient,
)
from ..models.colour_critic import ColourCritic, colour_features
from ..models.colour_moments import ColourMoments
from ..models.stargan import build_stargan
from .config import ConfigError
from .device import Runtime, rank_seed
from .diff_augment import AugmentPolicyError, DiffAugment, parse_policy
from .ema import WeightAverage
from .fast import CompiledOrEager, FastPath, make_adam, resolve_fast_path
from .framing import D_CLS_AUGMENTATIONS, random_framing
from .gemm_convs import use_gemm_convs
from .nnpack_convs import use_nnpack_convs
from .targets import Targets, with_cross_targets, with_off_mask_noise

TARGET_SAMPLING = ("permute", "random")


def _own_part(targets: Targets, dataset: str) -> tuple[Tensor | None, Tensor] | None:
    """The rows of a batch of ``dataset`` translated to its own labels (``None``: all of them)
    and those targets, or ``None`` when every row was re-targeted to another dataset."""
    for part in targets.parts:
        if part.dataset == dataset:
            return part.rows, part.labels
    return None


def _known(space: LabelSpace, dataset: str, labels: Tensor) -> Tensor:
    """``[n, k]``: which of ``dataset``'s labels say something (all binary attributes; a
    one-hot group's members only where one of them is set)."""
    known = torch.ones_like(labels, dtype=torch.bool)
    for gs in space.group_slices(dataset):
        if gs.group.kind != "binary":
            known[:, gs.local] = (labels[:, gs.local].sum(-1, keepdim=True) > 0)
    return known


# The paper's hyper-parameter values are the family's defaults:
# starkit.default_plugins.stargan.STARGAN_DEFAULTS.


#: The masks a generator can draw, by the names ``Generator.forward(..., with_masks=True)`` gives them.
MASK_NAMES = ("paint", "recolour")


def drawn_masks(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The names of the masks a generator with this config draws (``Generator.forward``'s
    ``with_masks``): ``"paint"`` for the attention and gated outputs, ``"recolour"`` with a
    colour map."""
    return tuple(name for name, drawn in (("paint", config["g_output"] in ("attention", "gated")),
                                          ("recolour", config["g_colour_map"] != "none")) if drawn)


def sharpness_masks(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The masks ``lambda_mask_sharpness`` pushes toward shut or open: ``mask_sharpness_on``'s
    names, or every mask G draws when it is empty. ValueError names what is wrong."""
    drawn = drawn_masks(config)
    spec = config["mask_sharpness_on"]
    if not isinstance(spec, str):
        raise ValueError("must be a string")
    names = tuple(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    for name in names:
        if name not in MASK_NAMES:
            raise ValueError(f"unknown mask {name!r} (choose from {', '.join(MASK_NAMES)})")
        if name not in drawn:
            raise ValueError(f"this generator draws no {name} mask (it draws: {', '.join(drawn) or 'none'})")
    return names or drawn


def check_config(config: Mapping[str, Any]) -> None:
    """Range checks of StarGAN's hyper-parameters, each error naming its key."""

    def need(key: str, ok: bool, what: str) -> None:
        if not ok:
            raise ConfigError(f"{key}: {what}, got {config.get(key)!r}")

    for key in ("g_conv_dim", "d_conv_dim", "d_repeat_num", "n_critic"):
        need(key, config[key] >= 1, "must be >= 1")
    need("g_repeat_num", config["g_repeat_num"] >= 0, "must be >= 0")
    for key in ("g_lr", "d_lr"):
        need(key, config[key] > 0, "must be > 0")
    for key in ("beta1", "beta2"):
        need(key, 0 <= config[key] < 1, "must be in [0, 1)")
    for key in ("lambda_cls", "lambda_rec", "lambda_gp", "lambda_id", "lambda_cls_gp", "lambda_cls_fake",
                "lambda_change", "lambda_change_tv", "lambda_mask", "lambda_recolour_mask", "lambda_mask_sharpness"):
        need(key, config[key] >= 0, "must be >= 0")
    drawn = drawn_masks(config)
    need("lambda_mask", config["lambda_mask"] == 0 or "paint" in drawn,
         "needs g_output 'attention' or 'gated' (only they draw a paint mask)")
    need("lambda_recolour_mask", config["lambda_recolour_mask"] == 0 or "recolour" in drawn,
         "needs g_colour_map 'global' (there is no colour map, so no recolour mask)")
    need("lambda_mask_sharpness", config["lambda_mask_sharpness"] == 0 or bool(drawn),
         "needs a generator that draws a mask (g_output 'attention' or 'gated', or g_colour_map 'global')")
    try:
        sharpness_masks(config)
    except ValueError as exc:
        raise ConfigError(f"mask_sharpness_on: {exc}, got {config['mask_sharpness_on']!r}") from None
    need("mask_sharpness_from", config["mask_sharpness_from"] >= 0, "must be >= 0 (0: from the start)")
    try:
        parse_group_names(config["mask_sharpness_groups"], key="mask_sharpness_groups")
    except LabelError as exc:
        raise ConfigError(str(exc)) from None
    need("g_cls_confidence", 0 <= config["g_cls_confidence"] < 1, "must be in [0, 1) (0: the paper)")
    try:
        parse_group_weights(config["g_cls_group_weights"], key="g_cls_group_weights")
    except LabelError as exc:
        raise ConfigError(str(exc)) from None
    need("rec_fake_grad", 0 <= config["rec_fake_grad"] <= 1, "must be in [0, 1] (1: the paper)")
    need("change_cap", config["change_cap"] >= 0, "must be >= 0 (0: no cap)")
    need("lambda_path", config["lambda_path"] >= 0, "must be >= 0 (0: the paper)")
    need("path_fraction", 0 < config["path_fraction"] <= 1, "must be in (0, 1]")
    need("lambda_hist", config["lambda_hist"] >= 0, "must be >= 0 (0: no colour critic, the paper)")
    need("hist_bins", not isinstance(config["hist_bins"], bool) and isinstance(config["hist_bins"], int)
         and 2 <= config["hist_bins"] <= 32, "must be an integer in [2, 32] (bins per colour channel)")
    need("lambda_colour_match", config["lambda_colour_match"] >= 0,
         "must be >= 0 (0: no colour matching, the paper)")
    need("colour_match_decay", 0 <= config["colour_match_decay"] < 1, "must be in [0, 1)")
    need("colour_match_gate", 0 <= config["colour_match_gate"] < 2, "must be in [0, 2) (0: every pixel is pushed)")
    need("change_warmup", config["change_warmup"] >= 0, "must be >= 0 (0: the full weight from the start)")
    need("cross_targets", 0 <= config["cross_targets"] <= 1, "must be in [0, 1] (0: the paper)")
    need("mask_noise", 0 <= config["mask_noise"] <= 1, "must be in [0, 1] (0: the paper)")
    need("g_ema", 0 <= config["g_ema"] < 1, "must be in [0, 1) (0: no moving average)")
    need("target_sampling", config["target_sampling"] in TARGET_SAMPLING, f"must be one of {', '.join(TARGET_SAMPLING)}")
    need("g_output", config["g_output"] in GENERATOR_OUTPUTS, f"must be one of {', '.join(GENERATOR_OUTPUTS)}")
    need("g_condition", config["g_condition"] in GENERATOR_CONDITIONS,
         f"must be one of {', '.join(GENERATOR_CONDITIONS)}")
    need("g_upsample", config["g_upsample"] in GENERATOR_UPSAMPLES, f"must be one of {', '.join(GENERATOR_UPSAMPLES)}")
    need("g_colour_map", config["g_colour_map"] in GENERATOR_COLOUR_MAPS,
         f"must be one of {', '.join(GENERATOR_COLOUR_MAPS)}")
    need("g_colour_map", config["g_colour_map"] == "none" or config["g_output"] != "image",
         "needs g_output 'residual', 'attention' or 'gated' (g_output 'image' never starts from its input)")
    need("g_map_hidden", not isinstance(config["g_map_hidden"], bool) and isinstance(config["g_map_hidden"], int)
         and config["g_map_hidden"] >= 0, "must be an integer >= 0 (0: one linear layer)")
    need("g_map_hidden", config["g_map_hidden"] == 0 or config["g_colour_map"] != "none",
         "needs g_colour_map 'global' (there is no map to compute)")
    need("g_map_only", isinstance(config["g_map_only"], str),
         "must be a string: comma-separated attribute-group names (\"\": none)")
    need("g_map_only", not str(config["g_map_only"]).strip(" ,") or config["g_colour_map"] != "none",
         "needs g_colour_map 'global' (only the colour map would see those labels)")
    need("g_up_norm", config["g_up_norm"] in GENERATOR_UP_NORMS, f"must be one of {', '.join(GENERATOR_UP_NORMS)}")
    need("g_out_kernel", not isinstance(config["g_out_kernel"], bool) and isinstance(config["g_out_kernel"], int)
         and config["g_out_kernel"] in (1, 3, 5, 7), "must be an odd integer from 1 to 7 (7: the paper)")
    need("g_skip", config["g_skip"] in GENERATOR_SKIPS, f"must be one of {', '.join(GENERATOR_SKIPS)}")
    need("d_condition", config["d_condition"] in DISCRIMINATOR_CONDITIONS,
         f"must be one of {', '.join(DISCRIMINATOR_CONDITIONS)}")
    need("d_cls_augment", config["d_cls_augment"] in D_CLS_AUGMENTATIONS,
         f"must be one of {', '.join(D_CLS_AUGMENTATIONS)}")
    try:
        parse_policy(config["d_augment"])
    except AugmentPolicyError as exc:
        raise ConfigError(f"d_augment: {exc}") from None
    size = config.get("image_size")
    if size is not None:
        need("image_size", size % 4 == 0, "must be divisible by 4 (G down-samples twice)")
        depth = config["d_repeat_num"]
        if size % 2**depth:
            raise ConfigError(
                f"d_repeat_num: {depth} halvings need an image size divisible by {2**depth}, "
                f"but image_size is {size}; lower d_repeat_num (e.g. {_max_depth(size)})"
            )


def check_group_options(label_space: LabelSpace, config: Mapping[str, Any]) -> None:
    """The options that name attribute groups name groups of ``label_space`` (the step reads
    them again; checked here too, so that building the networks rejects every bad option)."""
    try:
        parse_group_weights(config["g_cls_group_weights"], label_space, "g_cls_group_weights")
        parse_group_names(config["mask_sharpness_groups"], label_space, "mask_sharpness_groups")
    except LabelError as exc:
        raise ConfigError(str(exc)) from None


def _max_depth(size: int) -> int:
    depth = 0
    while size % 2 ** (depth + 1) == 0:
        depth += 1
    return depth


def build_networks(label_space: LabelSpace, config: Mapping[str, Any]) -> dict[str, nn.Module]:
    """G (conditioned on ``label_space.dim``, mask included) and D (classifying
    ``label_space.label_dim``), after checking the config; with ``lambda_hist`` > 0 also the
    colour critic H (:mod:`starkit.models.colour_critic`); with ``lambda_colour_match`` > 0 the
    running colour moments M (:mod:`starkit.models.colour_moments`; buffers, no parameters)."""
    check_config(config)
    check_group_options(label_space, config)
    networks = build_stargan(label_space, config)
    if config["lambda_hist"] > 0:
        networks["H"] = ColourCritic(label_space.label_dim, int(config["hist_bins"]))
    if config["lambda_colour_match"] > 0:
        networks["M"] = ColourMoments(label_space.label_dim, int(config["hist_bins"]),
                                      float(config["colour_match_decay"]))
    return networks


class StarGANStep:
    """The :class:`~starkit.training.step.StepRunner` of the ``stargan`` family.

    ``fast`` overrides the switches the config selects (benchmarks and tests pass
    :meth:`FastPath.naive` or single switches)."""

    def __init__(
        self, label_space: LabelSpace, config: Mapping[str, Any], runtime: Runtime, fast: FastPath | None = None
    ):
        self.label_space = label_space
        self.config = dict(config)
        self.runtime = runtime
        device = runtime.device
        self.fast = fast if fast is not None else resolve_fast_path(config, device)
        nets = build_networks(label_space, config)
        # Same parameters and state-dict keys, other kernels.
        if self.fast.nnpack_convs:
            use_nnpack_convs(nets["G"])
        if self.fast.gemm_convs:
            use_gemm_convs(nets["D"])
        memory_format = self.fast.memory_format()
        self.G = nets["G"].to(device, memory_format=memory_format)
        self.D = nets["D"].to(device, memory_format=memory_format)
        self.networks = {"G": self.G, "D": self.D}
        # The moving average of G's weights (a network of its own, saved in checkpoints as
        # "G_ema"; never trained, never wrapped for DistributedDataParallel: every process
        # averages the same replicas, so the averages stay identical too).
        self.g_ema = WeightAverage(self.G, float(config["g_ema"])) if config["g_ema"] > 0 else None
        if self.g_ema is not None:
            self.networks["G_ema"] = self.g_ema.module
        # The colour critic (lambda_hist > 0; not in the paper): a second critic, "H", trained
        # beside D with D's learning rate, that sees only colour histograms and labels.
        self.lambda_hist = float(config["lambda_hist"])
        self.H: ColourCritic | None = nets["H"].to(device) if "H" in nets else None
        if self.H is not None:
            self.networks["H"] = self.H
        # Class-conditional colour matching (lambda_colour_match > 0; not in the paper): running
        # means, saved in checkpoints as "M", never trained by an optimiser.
        self.lambda_colour_match = float(config["lambda_colour_match"])
        self.colour_match_gate = float(config["colour_match_gate"])
        self.M: ColourMoments | None = nets["M"].to(device) if "M" in nets else None
        if self.M is not None:
            self.networks["M"] = self.M
        betas = (float(config["beta1"]), float(config["beta2"]))
        self.base_lrs = {"G": float(config["g_lr"]), "D": float(config["d_lr"])}
        self.optimizers = {
            "G": make_adam(self.G.parameters(), self.base_lrs["G"], betas, self.fast.adam_impl),
            "D": make_adam(self.D.parameters(), self.base_lrs["D"], betas, self.fast.adam_impl),
        }
        if self.H is not None:
            self.base_lrs["H"] = self.base_lrs["D"]
            self.optimizers["H"] = make_adam(self.H.parameters(), self.base_lrs["H"], betas, self.fast.adam_impl)
        # One CPU generator for every draw of the step: CPU and GPU runs draw the same numbers,
        # and its state is part of the checkpoint.
        self.rng = torch.Generator(device="cpu")
        self.rng.manual_seed(rank_seed(int(config["seed"]), runtime.rank, "stargan-step"))
        self.generators = {"stargan": self.rng}
        # The modules to call when gradients must be averaged across processes.
        self.G_train = runtime.wrap(self.G)
        self.D_train = runtime.wrap(self.D)
        self.H_train = runtime.wrap(self.H) if self.H is not None else None
        # The generator as the step calls it: compiled when asked (D is differentiated twice by
        # the gradient penalty, which compiled graphs do not support, so it stays eager).
        self.G_call = CompiledOrEager(self.G_train) if self.fast.compile else self.G_train
        # Forward passes without gradients skip the DistributedDataParallel wrapper, which would
        # otherwise synchronise buffers across processes on every call.
        if self.G_train is self.G:
            self.G_infer = self.G_call
        else:
            self.G_infer = CompiledOrEager(self.G) if self.fast.compile else self.G
        self.n_critic = int(config["n_critic"])
        self.lambda_cls = float(config["lambda_cls"])
        self.lambda_rec = float(config["lambda_rec"])
        self.rec_fake_grad = float(config["rec_fake_grad"])
        self.lambda_gp = float(config["lambda_gp"])
        self.lambda_id = float(config["lambda_id"])
        self.lambda_cls_gp = float(config["lambda_cls_gp"])
        self.lambda_cls_fake = float(config["lambda_cls_fake"])
        # G's classification loss per image and group counted as at least -log(confidence).
        confidence = float(config["g_cls_confidence"])
        self.g_cls_floor = -math.log(confidence) if confidence > 0 else 0.0
        # G's classification loss weighted per attribute group (D's classifier is not).
        try:
            self.g_cls_weights = parse_group_weights(config["g_cls_group_weights"], label_space,
                                                     "g_cls_group_weights") or None
        except LabelError as exc:
            raise ConfigError(str(exc)) from None
        self.lambda_change = float(config["lambda_change"])
        self.change_cap = float(config["change_cap"])
        self.change_warmup = int(config["change_warmup"])
        self.lambda_change_tv = float(config["lambda_change_tv"])
        # Weights of the penalties on G's masks, by the name G gives each mask.
        self.mask_weights = {name: float(config[key]) for name, key in
                             (("paint", "lambda_mask"), ("recolour", "lambda_recolour_mask")) if config[key] > 0}
        self.lambda_mask_sharpness = float(config["lambda_mask_sharpness"])
        self.sharpness_masks = sharpness_masks(config)
        self.mask_sharpness_from = int(config["mask_sharpness_from"])
        try:
            # () : every translation; else only those whose target changes one of the groups.
            self.mask_sharpness_groups = parse_group_names(config["mask_sharpness_groups"], label_space,
                                                           "mask_sharpness_groups")
        except LabelError as exc:
            raise ConfigError(str(exc)) from None
        self.lambda_path = float(config["lambda_path"])
        self.path_fraction = float(config["path_fraction"])
        self.target_sampling = config["target_sampling"]
        self.cross_targets = float(config["cross_targets"])
        self.mask_noise = float(config["mask_noise"])
        self.conditional_d = config["d_condition"] != "none"
        self.cls_framing = config["d_cls_augment"] == "framing"
        # What D sees of every image, real or fake (identity unless d_augment is set).
        self.augment = DiffAugment(config["d_augment"], self.rng)

    # ------------------------------------------------------------------ targets
    def target_labels(self, dataset: str, labels: Tensor) -> Tensor:
        """Target labels in ``dataset``'s own layout for a batch whose labels are ``labels``."""
        if self.target_sampling == "permute":
            order = torch.randperm(labels.shape[0], generator=self.rng).to(labels.device)
            return labels[order]
        return self.label_space.random_labels_torch(dataset, labels.shape[0], generator=self.rng, device=labels.device)

    def change_weight(self, iteration: int) -> float:
        """``lambda_change`` at ``iteration``: ramped up linearly over the first
        ``change_warmup`` iterations, so that the changes a target asks for can grow from G's
        start at the identity before the penalty weighs on them."""
        if self.change_warmup <= 0 or iteration >= self.change_warmup:
            return self.lambda_change
        return self.lambda_change * iteration / self.change_warmup

    def draw_targets(self, dataset: str, labels: Tensor) -> tuple[Targets, Tensor]:
        """Targets for a batch of ``dataset`` with ``labels``: their own labels drawn as
        ``target_sampling`` says, a ``cross_targets`` share of the rows re-targeted to other
        datasets; and the joint vectors G is given for them — with ``mask_noise``, some rows'
        unknown parts filled with random labels, which G must learn to ignore (the losses
        still see the true targets)."""
        targets = with_cross_targets(
            self.label_space, dataset, self.target_labels(dataset, labels), self.cross_targets, self.rng
        )
        joint = targets.joint
        if self.mask_noise > 0:
            joint = with_off_mask_noise(self.label_space, joint, self.mask_noise, self.rng)
        return targets, joint

    # ------------------------------------------------------------------ one iteration
    def train_step(self, iteration: int, dataset: str, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
        space = self.label_space
        fast = self.fast
        autocast = fast.autocast(images.device)
        x_real = fast.prepare_input(images)
        targets, c_trg = self.draw_targets(dataset, labels)
        c_org = space.encode(dataset, labels)
        if self.mask_noise > 0:
            c_org = with_off_mask_noise(space, c_org, self.mask_noise, self.rng)
        # What the images are said to be, as a conditional critic (D_src with projection, and
        # the colour critic H) is told: real images their own labels, translations their targets.
        said = ((space.centered_labels(labels, dataset), targets.centered(space))
                if self.conditional_d or self.H is not None else (None, None))
        # None: D_src judges images alone.
        y_org, y_trg = said if self.conditional_d else (None, None)
        g_step = (iteration + 1) % self.n_critic == 0

        # ---- discriminator
        with autocast:
            x_fake, g_fake, g_masks = self._fake_for_d_step(x_real, c_trg, keep_graph_for_g=g_step)
            # What D sees: the images themselves, or their differentiable augmentations.
            d_real, d_fake = (self.augment(x_real), self.augment(x_fake)) if self.augment else (x_real, x_fake)
            if fast.d_batch_real_fake:
                # D scores every image on its own (no batch statistics), so one call on both
                # halves computes the same as two calls, with larger matrix products.
                y_both = torch.cat([y_org, y_trg]) if self.conditional_d else None
                out_src, out_cls = self.D_train(torch.cat([d_real, d_fake]), y_both)
                src_real, src_fake = out_src.split(d_real.shape[0])
                out_cls, cls_fake = out_cls.split(d_real.shape[0])
            else:
                src_real, out_cls = self.D_train(d_real, y_org)
                src_fake, cls_fake = self.D_train(d_fake, y_trg)
            d_loss_real = critic_real_loss(src_real)
            d_loss_fake = critic_fake_loss(src_fake)
            d_loss_gp = self._gradient_penalty(d_real, d_fake, y_org, y_trg)
            if self.cls_framing:
                # D's classifier learns from re-framed copies of the real images (one more D
                # forward, shared with the input-gradient penalty when that is on).
                d_loss_cls, d_loss_cls_gp = self._classification(random_framing(d_real, self.rng), labels, dataset)
            else:
                d_loss_cls = space.classification_loss(out_cls.float(), labels, dataset)
                if self.lambda_cls_gp > 0:
                    d_loss_cls_gp = self._classifier_gradient_penalty(d_real, labels, dataset)
            d_loss = d_loss_real + d_loss_fake + self.lambda_cls * d_loss_cls + self.lambda_gp * d_loss_gp
            if self.lambda_cls_fake > 0:
                # D's classifier is also trained to be unsure of what a translation shows, so
                # that only a translation that truly looks like its target convinces it.
                d_loss_cls_fake = targets.uncertainty_loss(space, cls_fake.float())
                d_loss = d_loss + self.lambda_cls_fake * d_loss_cls_fake
            if self.lambda_cls_gp > 0:
                d_loss = d_loss + self.lambda_cls_gp * d_loss_cls_gp
        opt_d = self.optimizers["D"]
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        losses = {
            "D/loss_real": d_loss_real.detach(),
            "D/loss_fake": d_loss_fake.detach(),
            "D/loss_cls": d_loss_cls.detach(),
            "D/loss_gp": d_loss_gp.detach(),
        }
        if self.lambda_cls_gp > 0:
            losses["D/loss_cls_gp"] = d_loss_cls_gp.detach()
        if self.lambda_cls_fake > 0:
            losses["D/loss_cls_fake"] = d_loss_cls_fake.detach()
        if self.H is not None:
            with autocast:
                h_loss_real, h_loss_fake, h_loss_gp = self._colour_critic_step(x_real, x_fake, *said)
            losses.update({"H/loss_real": h_loss_real, "H/loss_fake": h_loss_fake, "H/loss_gp": h_loss_gp})
        own = _own_part(targets, dataset) if self.M is not None else None
        if self.M is not None:
            # The real images' colours, every iteration (the translations' in the G step).
            with torch.no_grad():
                real_colours = self.M.embed(x_real)
            self._observe_colours("real", real_colours, labels, dataset)

        # ---- generator, every n_critic-th iteration
        if g_step:
            # D is frozen and called unwrapped: its gradients would be discarded anyway, and
            # skipping them also keeps DistributedDataParallel from waiting for them.
            self.D.requires_grad_(False)
            if self.H is not None:
                self.H.requires_grad_(False)
            try:
                with autocast:
                    if g_fake is not None:
                        x_fake, masks = g_fake, g_masks
                    else:
                        x_fake, masks = self._translate_with_masks(x_real, c_trg)
                    out_src, out_cls = self.D(self.augment(x_fake) if self.augment else x_fake, y_trg)
                    g_loss_fake = generator_adversarial_loss(out_src)
                    g_loss_cls = targets.classification_loss(space, out_cls.float(), self.g_cls_floor,
                                                             self.g_cls_weights)
                    # The way back: with rec_fake_grad < 1 (not in the paper) less of its
                    # loss reaches the forward translation, which it otherwise pulls back
                    # toward the input (an easier way back), against the classification term.
                    x_rec = self.G_call(scale_gradient(x_fake, self.rec_fake_grad), c_org)
                    g_loss_rec = reconstruction_loss(x_real, x_rec)
                    g_loss = g_loss_fake + self.lambda_rec * g_loss_rec + self.lambda_cls * g_loss_cls
                    if self.lambda_id > 0:
                        # Not in the paper: translating an image to its own labels should
                        # return it (CycleGAN's identity loss). Anchors G to its input in short
                        # runs, before the adversarial and classification terms can.
                        g_loss_id = reconstruction_loss(x_real, self.G_call(x_real, c_org))
                        g_loss = g_loss + self.lambda_id * g_loss_id
                    # Not in the paper: the translation should change only what its target
                    # concerns (lambda_change), and change it evenly (lambda_change_tv).
                    if self.lambda_change > 0:
                        g_loss_change = change_l1(x_real, x_fake, self.change_cap)
                        g_loss = g_loss + self.change_weight(iteration) * g_loss_change
                    if self.lambda_change_tv > 0:
                        g_loss_change_tv = change_total_variation(x_real, x_fake)
                        g_loss = g_loss + self.lambda_change_tv * g_loss_change_tv
                    # Not in the paper: G's masks stay shut where the target asks for no
                    # change (GANimation's mask sparsity).
                    g_loss_masks = {name: mask_opening(masks[name]) for name in self.mask_weights}
                    for name, weight in self.mask_weights.items():
                        g_loss = g_loss + weight * g_loss_masks[name]
                    if self.lambda_mask_sharpness > 0:
                        # Not in the paper: the chosen masks shut or fully open, not half open.
                        # (Logged from the start, weighed from mask_sharpness_from on.)
                        # (With mask_sharpness_groups, only on the rows whose target changes them.)
                        sharp_rows = (targets.changing(space, dataset, labels, self.mask_sharpness_groups)
                                      if self.mask_sharpness_groups else None)
                        g_loss_sharpness = sum(mask_indecision(masks[name], sharp_rows)
                                               for name in self.sharpness_masks)
                        if iteration >= self.mask_sharpness_from:
                            g_loss = g_loss + self.lambda_mask_sharpness * g_loss_sharpness
                    if self.lambda_path > 0:
                        g_loss_path = self._path_consistency(x_real, x_fake, c_trg, dataset, labels)
                        g_loss = g_loss + self.lambda_path * g_loss_path
                    if self.H is not None:
                        g_loss_hist = generator_adversarial_loss(self.H.score(x_fake, said[1]))
                        g_loss = g_loss + self.lambda_hist * g_loss_hist
                    if self.M is not None and own is not None:
                        # Translations to another dataset's labels are left out: they keep this
                        # dataset's look, which that dataset's real images do not have.
                        rows, own_labels = own
                        fakes = x_fake if rows is None else x_fake[rows]
                        sources = real_colours if rows is None else real_colours[rows]
                        fake_colours = self.M.embed(ColourMoments.gate(
                            fakes, x_real if rows is None else x_real[rows], self.colour_match_gate))
                        g_loss_match = self.M.loss(fake_colours, sources, own_labels, space.slice(dataset),
                                                   _known(space, dataset, own_labels))
                        g_loss = g_loss + self.lambda_colour_match * g_loss_match
                opt_g = self.optimizers["G"]
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                if self.g_ema is not None:
                    # Counted from the iteration, so a resumed run averages exactly the same.
                    self.g_ema.update(self.G, updates=(iteration + 1) // self.n_critic)
            finally:
                self.D.requires_grad_(True)
                if self.H is not None:
                    self.H.requires_grad_(True)
            losses.update(
                {
                    "G/loss_fake": g_loss_fake.detach(),
                    "G/loss_rec": g_loss_rec.detach(),
                    "G/loss_cls": g_loss_cls.detach(),
                }
            )
            if self.lambda_id > 0:
                losses["G/loss_id"] = g_loss_id.detach()
            if self.lambda_change > 0:
                losses["G/loss_change"] = g_loss_change.detach()
            if self.lambda_change_tv > 0:
                losses["G/loss_change_tv"] = g_loss_change_tv.detach()
            for name, term in g_loss_masks.items():
                losses[f"G/loss_mask_{name}"] = term.detach()
            if self.lambda_mask_sharpness > 0:
                losses["G/loss_mask_sharpness"] = g_loss_sharpness.detach()
            if self.lambda_path > 0:
                losses["G/loss_path"] = g_loss_path.detach()
            if self.H is not None:
                losses["G/loss_hist"] = g_loss_hist.detach()
            if self.M is not None:
                if own is not None:
                    losses["G/loss_colour_match"] = g_loss_match.detach()
                    self._observe_colours("fake", fake_colours.detach(), own[1], dataset)
                else:
                    self._observe_colours("fake", None, None, dataset)
                # How far apart the running means of translations and real images are (MMD²).
                losses["M/distance"] = self.M.distance()
        return losses

    def _observe_colours(self, kind: str, embedded: Tensor | None, labels: Tensor | None, dataset: str) -> None:
        """Add embedded images of ``dataset`` with ``labels`` (its own layout) to the running
        colour moments of ``kind``; ``None``: this process has no such rows (under torchrun it
        still takes part in the all-reduce)."""
        space, M = self.label_space, self.M
        columns = space.slice(dataset)
        reduce = self.runtime.all_reduce_mean if self.runtime.distributed else None
        if embedded is None:
            if reduce is None:
                return
            width = columns.stop - columns.start
            device = M.real_sum.device
            embedded, labels = torch.zeros((0, M.dim), device=device), torch.zeros((0, width), device=device)
        M.observe(kind, embedded, labels, columns, _known(space, dataset, labels), reduce)

    def _path_consistency(self, x_real: Tensor, x_fake: Tensor, c_trg: Tensor, dataset: str, labels: Tensor) -> Tensor:
        """The path-consistency loss on the first ``path_fraction`` of the batch's rows (the
        loader shuffles them): their translations ``x_fake`` against ``G(G(x, c_mid), c_trg)``,
        with intermediate targets ``c_mid`` drawn as the step draws its targets (own or, with
        ``cross_targets``, another dataset's labels; with ``mask_noise``, noise off the mask)."""
        rows = max(1, round(self.path_fraction * x_real.shape[0]))
        _, c_mid = self.draw_targets(dataset, labels)
        by_way_of = self.G_call(self.G_call(x_real[:rows], c_mid[:rows]), c_trg[:rows])
        return path_consistency(x_fake[:rows], by_way_of)

    def _colour_critic_step(self, x_real: Tensor, x_fake: Tensor, y_org: Tensor,
                            y_trg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One update of the colour critic H: WGAN-GP on the colour-histogram features of the
        real images (with their own labels) and of their translations (with their targets).
        The penalty's in-between features are scored with the label of the end they are nearer
        to, as a conditional D's are (:meth:`_gradient_penalty`). Returns the three terms."""
        with torch.no_grad():
            f_real, f_fake = colour_features(x_real, self.H.bins), colour_features(x_fake, self.H.bins)
        loss_real = critic_real_loss(self.H_train(f_real, y_org))
        loss_fake = critic_fake_loss(self.H_train(f_fake, y_trg))
        alpha = interpolation_weights(f_real.shape[0], f_real, self.rng).flatten(1)
        y_mid = torch.where(alpha >= 0.5, y_org, y_trg)
        loss_gp = gradient_penalty(lambda f: self.H_train(f, y_mid), f_real, f_fake, alpha=alpha)
        loss = loss_real + loss_fake + self.lambda_gp * loss_gp
        opt = self.optimizers["H"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss_real.detach(), loss_fake.detach(), loss_gp.detach()

    def _gradient_penalty(self, real: Tensor, fake: Tensor, y_org: Tensor | None, y_trg: Tensor | None) -> Tensor:
        """WGAN-GP on images between real and fake. A conditional critic is 1-Lipschitz in the
        image for each label, so each in-between image is scored with the label of the end it
        is nearer to (the real image's own, or the translation's target)."""
        if not self.conditional_d:
            return gradient_penalty(self.D_train, real, fake, generator=self.rng)
        alpha = interpolation_weights(real.shape[0], real, self.rng)
        y = torch.where(alpha.flatten(1) >= 0.5, y_org, y_trg)
        return gradient_penalty(lambda x: self.D_train(x, y), real, fake, alpha=alpha)

    def _classifier_gradient_penalty(self, images: Tensor, labels: Tensor, dataset: str) -> Tensor:
        """``mean_i ‖∇_x L_cls(D_cls(x_i), c_i)‖²`` over real images: how fast D's domain
        classification changes under a small change of the image (input-gradient
        regularisation; Ross & Doshi-Velez, AAAI 2018). Not in the paper."""
        return self._classification(images, labels, dataset)[1]

    def _classification(self, images: Tensor, labels: Tensor, dataset: str) -> tuple[Tensor, Tensor | None]:
        """D's classification loss on ``images`` and, when ``lambda_cls_gp`` is on, the
        input-gradient penalty of the same forward pass."""
        if self.lambda_cls_gp <= 0:
            _, logits = self.D_train(images)
            return self.label_space.classification_loss(logits.float(), labels, dataset), None
        x = images.detach().requires_grad_(True)
        _, logits = self.D_train(x)
        loss = self.label_space.classification_loss(logits.float(), labels, dataset)
        # Summed over the batch, so that each image's gradient is its own loss's gradient.
        (grad,) = torch.autograd.grad(loss * x.shape[0], x, create_graph=True)
        return loss, grad.float().flatten(1).pow(2).sum(1).mean()

    def _translate_with_masks(self, x_real: Tensor, c_trg: Tensor) -> tuple[Tensor, dict[str, Tensor] | None]:
        """``G(x_real, c_trg)`` with its graph, and the masks G drew when a mask penalty needs
        them (``lambda_mask``, ``lambda_recolour_mask``, ``lambda_mask_sharpness``; else ``None``)."""
        if self.mask_weights or self.lambda_mask_sharpness > 0:
            return self.G_call(x_real, c_trg, with_masks=True)
        return self.G_call(x_real, c_trg), None

    def _fake_for_d_step(self, x_real: Tensor, c_trg: Tensor,
                         keep_graph_for_g: bool) -> tuple[Tensor, Tensor | None, dict[str, Tensor] | None]:
        """``G(x_real, c_trg)`` for the D step, and the same images with their graph when the
        G step of this iteration may reuse them (else ``None``), with the masks G drew then
        when a mask penalty needs them (:meth:`_translate_with_masks`; else ``None``).

        Reuse is exact: G changes only in the G step, after this, and the G step would compute
        the very same ``G(x_real, c_trg)`` (same weights, inputs and targets). Fakes of other
        iterations cannot be reused: each iteration has its own batch and targets.
        """
        fast = self.fast
        if keep_graph_for_g and fast.share_fake:
            g_fake, masks = self._translate_with_masks(x_real, c_trg)
            return g_fake.detach(), g_fake, masks
        if fast.fake_without_graph:
            # eval(): StarGAN's instance norms use per-image statistics in both modes, so the
            # output is the same, and the (inert) running statistics stay put — identical on
            # every process.
            with torch.no_grad():
                self.G.eval()
                try:
                    return self.G_infer(x_real, c_trg), None, None
                finally:
                    self.G.train()
        # The reference: a full forward with its autograd graph, detached for D (the graph is
        # built and kept alive until the D step ends, but never used).
        return self.G_call(x_real, c_trg).detach(), None, None

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def translate(self, images: Tensor, targets: Tensor) -> Tensor:
        """With ``g_ema``, the averaged generator (what ``starkit translate`` will use)."""
        G = self.g_ema.module if self.g_ema is not None else self.G
        was_training = G.training
        G.eval()
        try:
            return G(images, targets.to(images.device))
        finally:
            G.train(was_training)
