"""StarGAN's training iteration (paper §3 and §4; the reference implementation's schedule).

An iteration is one discriminator step; every ``n_critic``-th iteration (``(i + 1) % n_critic
== 0``) a generator step follows, as in the reference code::

    D step:  L_D = -mean D_src(x) + mean D_src(G(x, c_trg)) + λ_cls·L_cls(D_cls(x), c_org)
                   + λ_gp·GP(x, G(x, c_trg))  [+ λ_cls_gp·mean ‖∇_x L_cls(D_cls(x), c_org)‖²]
                   [+ λ_cls_fake·U(D_cls(G(x, c_trg)))]
    G step:  L_G = -mean D_src(G(x, c_trg)) + λ_cls·L_cls(D_cls(G(x, c_trg)), c_trg)
                   + λ_rec·|x - G(G(x, c_trg), c_org)|₁  [+ λ_id·|x - G(x, c_org)|₁]
                   [+ λ_mask·mean(1 − K) + λ_mask_sharpness·mean(4·m·(1 − m))]
                   [- λ_hist·mean H(G(x, c_trg), c_trg)]
    H step (after the D step, with λ_hist > 0):
             L_H = -mean H(x, c_org) + mean H(G(x, c_trg), c_trg) + λ_gp·GP(features)

Terms in brackets are optional and off by default (not in the paper). The step itself computes
only the paper's terms; each optional one is a part (:mod:`.parts.extra_terms`,
:mod:`.parts.colour_critic`, :mod:`.parts.ema`; the protocol in :mod:`.parts.protocol`)
composed at construction when its option is on, whose terms are added after the paper's, in
the order shown. ``U`` is
:func:`.losses.uncertainty_loss`, the cross-entropy of D's classification of a
translation against "no idea" (uniform over each one-hot group, 0.5 for each binary attribute):
D learns to doubt what translations show, so G must make them convincing rather than find what
D's classifier happens to accept.

With ``d_augment`` D sees every image, real or fake, through differentiable augmentations
(:mod:`.parts.diff_augment`). With ``g_ema`` (StarGAN v2's choice, not the first paper's) the step
also keeps an exponential moving average of G's weights, updated after every G step, which
sample grids, ``starkit translate`` and ``starkit eval`` use (:mod:`.parts.ema`).

Labels are joint vectors of the label space: the batch's own labels fill the current dataset's
slice and the mask marks it (paper §3.2); classification losses only look at that slice,
group by group (:meth:`starkit.labels.LabelSpace.classification_loss`). Target labels come from
permuting the batch's labels (the reference's choice: targets follow the data's label
distribution). With ``cross_targets`` (not in the paper) a fraction of every batch is translated to another
dataset's labels and mask instead, and G's classification loss judges those rows by that
dataset's slice (:mod:`.parts.targets`); with ``mask_noise`` some rows of G's label inputs carry random
labels in the parts their mask marks unknown, which G learns to ignore.

How the iteration is computed follows the performance switches of :mod:`.speed.fast` (precision,
memory layout, compilation, Adam implementation, NNPACK convolutions, and the two ways of not
computing the fake twice); :meth:`FastPath.naive() <starkit.families.stargan.speed.fast.FastPath.naive>`
computes it the straightforward way. Every switch gives the same losses and gradients within
the tolerances stated in tests/test_fast_path.py.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ...labels import LabelSpace, parse_group_names
from ...training.device import Runtime, rank_seed
from .losses import (critic_fake_loss, critic_real_loss, generator_adversarial_loss, gradient_penalty,
                     reconstruction_loss)
from .networks import build_checked_stargan
from .options import PAPER_IMAGE_SIZE, StarGANOptions, drawn_masks
from .parts.colour_critic import ColourCritic, ColourCriticTraining
from .parts.diff_augment import DiffAugment
from .parts.ema import GeneratorAverage, WeightAverage
from .parts.extra_terms import (ClassifierDoubt, ClassifierGradientPenalty, IdentityLoss, MaskPush,
                                PaintMaskSparsity)
from .parts.protocol import StepBatch, StepPart, add_terms
from .parts.targets import Targets, with_cross_targets, with_off_mask_noise
from .speed.fast import CompiledOrEager, FastPath, make_adam, resolve_fast_path
from .speed.gemm_convs import use_gemm_convs
from .speed.nnpack_convs import use_nnpack_convs


# The family's options (paper values, types, checks, groups): starkit.families.stargan.options.


def build_networks(label_space: LabelSpace, config: Mapping[str, Any],
                   options: StarGANOptions | None = None) -> dict[str, nn.Module]:
    """G (conditioned on ``label_space.dim``, mask included) and D (classifying
    ``label_space.label_dim``), after checking the config (unless its checked ``options`` are
    given); with ``lambda_hist`` > 0 also the colour critic H (:mod:`.parts.colour_critic`)."""
    options = options or StarGANOptions.from_config(config, label_space)
    # The model options were checked with the rest: built from them, not checked again.
    model_values = {"image_size": config.get("image_size", PAPER_IMAGE_SIZE), **asdict(options.model)}
    networks = build_checked_stargan(label_space, model_values)
    if options.colour_critic.lambda_hist > 0:
        networks["H"] = ColourCritic(label_space.label_dim, options.colour_critic.hist_bins)
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
        # Every option checked once, read from here on as typed groups.
        self.options = opts = StarGANOptions.from_config(config, label_space)
        nets = build_networks(label_space, config, opts)
        # Same parameters and state-dict keys, other kernels.
        if self.fast.nnpack_convs:
            use_nnpack_convs(nets["G"])
        if self.fast.gemm_convs:
            use_gemm_convs(nets["D"])
        memory_format = self.fast.memory_format()
        self.G = nets["G"].to(device, memory_format=memory_format)
        self.D = nets["D"].to(device, memory_format=memory_format)
        betas = (opts.optim.beta1, opts.optim.beta2)
        self.base_lrs = {"G": opts.optim.g_lr, "D": opts.optim.d_lr}
        self.optimizers = {
            "G": make_adam(self.G.parameters(), self.base_lrs["G"], betas, self.fast.adam_impl),
            "D": make_adam(self.D.parameters(), self.base_lrs["D"], betas, self.fast.adam_impl),
        }
        # One CPU generator for every draw of the step: CPU and GPU runs draw the same numbers,
        # and its state is part of the checkpoint.
        self.rng = torch.Generator(device="cpu")
        self.rng.manual_seed(rank_seed(int(config["seed"]), runtime.rank, "stargan-step"))
        self.generators = {"stargan": self.rng}
        # The modules to call when gradients must be averaged across processes.
        self.G_train = runtime.wrap(self.G)
        self.D_train = runtime.wrap(self.D)
        self._set_up_generator_calls()
        self.n_critic = opts.optim.n_critic
        loss = opts.loss
        self.lambda_cls, self.lambda_rec, self.lambda_gp = loss.lambda_cls, loss.lambda_rec, loss.lambda_gp
        self.cross_targets, self.mask_noise = opts.targets.cross_targets, opts.targets.mask_noise
        # What D sees of every image, real or fake (identity unless d_augment is set).
        self.augment = DiffAugment(opts.augment.d_augment, self.rng)
        self.parts = self._compose_parts(nets.get("H"), betas)
        self.needs_masks = any(part.needs_masks for part in self.parts)
        self.networks = {"G": self.G, "D": self.D}
        for part in self.parts:
            self.networks.update(part.networks())
            self.optimizers.update(part.optimizers())
            self.base_lrs.update(part.base_lrs())

    def _set_up_generator_calls(self) -> None:
        # The generator as the step calls it: compiled when asked (D is differentiated twice by
        # the gradient penalty, which compiled graphs do not support, so it stays eager).
        self.G_call = CompiledOrEager(self.G_train) if self.fast.compile else self.G_train
        # Forward passes without gradients skip the DistributedDataParallel wrapper, which would
        # otherwise synchronise buffers across processes on every call.
        if self.G_train is self.G:
            self.G_infer = self.G_call
        else:
            self.G_infer = CompiledOrEager(self.G) if self.fast.compile else self.G

    def _compose_parts(self, H: ColourCritic | None, betas: tuple[float, float]) -> list[StepPart]:
        """The parts whose options are on, in the order their terms are added to the losses."""
        opts, loss, push = self.options, self.options.loss, self.options.mask_push
        parts: list[StepPart] = []
        if loss.lambda_cls_fake > 0:
            parts.append(ClassifierDoubt(loss.lambda_cls_fake))
        if loss.lambda_cls_gp > 0:
            parts.append(ClassifierGradientPenalty(loss.lambda_cls_gp, self.D_train))
        if loss.lambda_id > 0:
            parts.append(IdentityLoss(loss.lambda_id, self.G_call))
        if push.lambda_mask > 0:
            parts.append(PaintMaskSparsity(push.lambda_mask))
        if push.lambda_mask_sharpness > 0:
            # () : every translation; else only those whose target changes one of the groups.
            groups = parse_group_names(push.mask_sharpness_groups, self.label_space, "mask_sharpness_groups")
            parts.append(MaskPush(push.lambda_mask_sharpness, drawn_masks(asdict(opts.model)),
                                  push.mask_sharpness_from, groups))
        if opts.ema.g_ema > 0:
            parts.append(GeneratorAverage(self.G, opts.ema.g_ema, self.n_critic))
        if H is not None:
            # A second critic trained beside D with D's learning rate.
            H = H.to(self.runtime.device)
            optimizer = make_adam(H.parameters(), opts.optim.d_lr, betas, self.fast.adam_impl)
            parts.append(ColourCriticTraining(H, self.runtime.wrap(H), optimizer, opts.optim.d_lr,
                                              opts.colour_critic.lambda_hist, self.lambda_gp, self.rng))
        return parts

    @property
    def g_ema(self) -> WeightAverage | None:
        """The moving average of G's weights (``g_ema`` > 0), else ``None``."""
        return next((part.average for part in self.parts if isinstance(part, GeneratorAverage)), None)

    @property
    def H(self) -> ColourCritic | None:
        """The colour critic (``lambda_hist`` > 0), else ``None``."""
        return self.networks.get("H")

    # ------------------------------------------------------------------ targets
    def target_labels(self, dataset: str, labels: Tensor) -> Tensor:
        """Target labels in ``dataset``'s own layout for a batch whose labels are ``labels``:
        the batch's own labels in a random order (the reference's choice)."""
        order = torch.randperm(labels.shape[0], generator=self.rng).to(labels.device)
        return labels[order]

    def draw_targets(self, dataset: str, labels: Tensor) -> tuple[Targets, Tensor]:
        """Targets for a batch of ``dataset`` with ``labels``: their own labels permuted, a
        ``cross_targets`` share of the rows re-targeted to other
        datasets; and the joint vectors G is given for them — with ``mask_noise``, some rows'
        unknown parts filled with random labels, which G must learn to ignore (the losses
        still see the true targets)."""
        targets = with_cross_targets(
            self.label_space, dataset, self.target_labels(dataset, labels), self.cross_targets, self.rng
        )
        return targets, with_off_mask_noise(self.label_space, targets.joint, self.mask_noise, self.rng)

    # ------------------------------------------------------------------ one iteration
    def train_step(self, iteration: int, dataset: str, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
        space = self.label_space
        x_real = self.fast.prepare_input(images)
        targets, c_trg = self.draw_targets(dataset, labels)
        c_org = with_off_mask_noise(space, space.encode(dataset, labels), self.mask_noise, self.rng)
        batch = StepBatch(space, iteration, dataset, labels, x_real, c_org, targets)
        g_step = (iteration + 1) % self.n_critic == 0
        losses, g_fake, g_masks = self._discriminator_step(batch, c_trg, g_step)
        if g_step:
            losses.update(self._generator_step(batch, c_trg, g_fake, g_masks))
        return losses

    def _discriminator_loss(self, batch: StepBatch, x_fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The paper's ``L_D = L_adv + λ_cls·L_cls^r + λ_gp·GP`` (Eq. 5 with WGAN-GP's penalty),
        its terms; fills in ``batch.d_real`` and ``batch.cls_fake`` for the parts."""
        d_real, d_fake = self.augment(batch.x_real), self.augment(x_fake)
        src_real, cls_real, src_fake, cls_fake = self._score_real_and_fake(d_real, d_fake)
        loss_real = critic_real_loss(src_real)
        loss_fake = critic_fake_loss(src_fake)
        loss_gp = gradient_penalty(self.D_train, d_real, d_fake, generator=self.rng)
        loss_cls = self.label_space.classification_loss(cls_real.float(), batch.labels, batch.dataset)
        d_loss = loss_real + loss_fake + self.lambda_cls * loss_cls + self.lambda_gp * loss_gp
        batch.d_real, batch.cls_fake = d_real, cls_fake
        return d_loss, {"D/loss_real": loss_real, "D/loss_fake": loss_fake, "D/loss_cls": loss_cls,
                        "D/loss_gp": loss_gp}

    def _score_real_and_fake(self, d_real: Tensor, d_fake: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """D's source scores and classification logits of the real and the fake images."""
        if self.fast.d_batch_real_fake:
            # D scores every image on its own (no batch statistics), so one call on both
            # halves computes the same as two calls, with larger matrix products.
            out_src, out_cls = self.D_train(torch.cat([d_real, d_fake]))
            src_real, src_fake = out_src.split(d_real.shape[0])
            cls_real, cls_fake = out_cls.split(d_real.shape[0])
            return src_real, cls_real, src_fake, cls_fake
        src_real, cls_real = self.D_train(d_real)
        src_fake, cls_fake = self.D_train(d_fake)
        return src_real, cls_real, src_fake, cls_fake

    def _discriminator_step(self, batch: StepBatch, c_trg: Tensor,
                            g_step: bool) -> tuple[dict[str, Tensor], Tensor | None, Any]:
        """One update of D (and the parts' own updates after it): its losses, and the
        translations with their graph and masks when the G step of this iteration may reuse them."""
        fast = self.fast
        with fast.autocast(batch.x_real.device):
            x_fake, g_fake, g_masks = self._fake_for_d_step(batch.x_real, c_trg, keep_graph_for_g=g_step)
            d_loss, losses = self._discriminator_loss(batch, x_fake)
            for part in self.parts:
                d_loss = add_terms(d_loss, losses, part.d_terms(batch))
        opt_d = self.optimizers["D"]
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        losses = {name: term.detach() for name, term in losses.items()}
        for part in self.parts:
            with fast.autocast(batch.x_real.device):
                losses.update(part.after_d_step(batch, x_fake))
        return losses, g_fake, g_masks

    def _generator_loss(self, batch: StepBatch, x_fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """The paper's ``L_G = L_adv + λ_cls·L_cls^f + λ_rec·L_rec`` (Eq. 6), its terms."""
        out_src, out_cls = self.D(self.augment(x_fake))
        loss_fake = generator_adversarial_loss(out_src)
        loss_cls = batch.targets.classification_loss(self.label_space, out_cls.float())
        loss_rec = reconstruction_loss(batch.x_real, self.G_call(x_fake, batch.c_org))
        g_loss = loss_fake + self.lambda_rec * loss_rec + self.lambda_cls * loss_cls
        return g_loss, {"G/loss_fake": loss_fake, "G/loss_rec": loss_rec, "G/loss_cls": loss_cls}

    def _generator_step(self, batch: StepBatch, c_trg: Tensor, g_fake: Tensor | None,
                        g_masks: Any) -> dict[str, Tensor]:
        """One update of G (D and the parts' critics frozen), then the parts' own updates: its
        losses. ``g_fake``, ``g_masks``: the D step's translations with their graph, when it
        kept them (else computed here)."""
        # D is frozen and called unwrapped: its gradients would be discarded anyway, and
        # skipping them also keeps DistributedDataParallel from waiting for them.
        frozen = [self.D] + [net for part in self.parts for net in part.frozen_in_g_step()]
        for net in frozen:
            net.requires_grad_(False)
        try:
            with self.fast.autocast(batch.x_real.device):
                if g_fake is not None:
                    x_fake, masks = g_fake, g_masks
                else:
                    x_fake, masks = self._translate_with_masks(batch.x_real, c_trg)
                g_loss, losses = self._generator_loss(batch, x_fake)
                for part in self.parts:
                    g_loss = add_terms(g_loss, losses, part.g_terms(batch, x_fake, masks))
            opt_g = self.optimizers["G"]
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            for part in self.parts:
                part.after_g_step(batch.iteration)
        finally:
            for net in frozen:
                net.requires_grad_(True)
        return {name: term.detach() for name, term in losses.items()}

    def _translate_with_masks(self, x_real: Tensor, c_trg: Tensor) -> tuple[Tensor, dict[str, Tensor] | None]:
        """``G(x_real, c_trg)`` with its graph, and the masks G drew when a mask penalty needs
        them (``lambda_mask``, ``lambda_mask_sharpness``; else ``None``)."""
        if self.needs_masks:
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
