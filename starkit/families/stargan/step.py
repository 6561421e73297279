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

Terms in brackets are optional and off by default (not in the paper); ``U`` is
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
from .losses import (
    critic_fake_loss,
    critic_real_loss,
    generator_adversarial_loss,
    gradient_penalty,
    interpolation_weights,
    mask_indecision,
    mask_opening,
    reconstruction_loss,
)
from .networks import build_stargan
from .options import StarGANOptions, drawn_masks
from .parts.colour_critic import ColourCritic, centered_labels, colour_features
from .parts.diff_augment import DiffAugment
from .parts.ema import WeightAverage
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
    networks = build_stargan(label_space, config)
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
        self.networks = {"G": self.G, "D": self.D}
        # The moving average of G's weights (a network of its own, saved in checkpoints as
        # "G_ema"; never trained, never wrapped for DistributedDataParallel: every process
        # averages the same replicas, so the averages stay identical too).
        self.g_ema = WeightAverage(self.G, opts.ema.g_ema) if opts.ema.g_ema > 0 else None
        if self.g_ema is not None:
            self.networks["G_ema"] = self.g_ema.module
        # The colour critic (lambda_hist > 0; not in the paper): a second critic, "H", trained
        # beside D with D's learning rate, that sees only colour histograms and labels.
        self.lambda_hist = opts.colour_critic.lambda_hist
        self.H: ColourCritic | None = nets["H"].to(device) if "H" in nets else None
        if self.H is not None:
            self.networks["H"] = self.H
        betas = (opts.optim.beta1, opts.optim.beta2)
        self.base_lrs = {"G": opts.optim.g_lr, "D": opts.optim.d_lr}
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
        self.n_critic = opts.optim.n_critic
        loss = opts.loss
        self.lambda_cls, self.lambda_rec, self.lambda_gp = loss.lambda_cls, loss.lambda_rec, loss.lambda_gp
        self.lambda_id, self.lambda_cls_gp, self.lambda_cls_fake = loss.lambda_id, loss.lambda_cls_gp, loss.lambda_cls_fake
        # Penalties on G's masks: the paint mask's opening, and every mask pushed shut or open.
        push = opts.mask_push
        self.lambda_mask, self.lambda_mask_sharpness = push.lambda_mask, push.lambda_mask_sharpness
        self.sharpness_masks = drawn_masks(asdict(opts.model))
        self.mask_sharpness_from = push.mask_sharpness_from
        # () : every translation; else only those whose target changes one of the groups
        # (checked against the label space with the other options).
        self.mask_sharpness_groups = parse_group_names(push.mask_sharpness_groups, label_space, "mask_sharpness_groups")
        self.cross_targets, self.mask_noise = opts.targets.cross_targets, opts.targets.mask_noise
        # What D sees of every image, real or fake (identity unless d_augment is set).
        self.augment = DiffAugment(opts.augment.d_augment, self.rng)

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
        joint = targets.joint
        if self.mask_noise > 0:
            joint = with_off_mask_noise(self.label_space, joint, self.mask_noise, self.rng)
        return targets, joint

    # ------------------------------------------------------------------ one iteration
    def train_step(self, iteration: int, dataset: str, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
        space = self.label_space
        x_real = self.fast.prepare_input(images)
        targets, c_trg = self.draw_targets(dataset, labels)
        c_org = space.encode(dataset, labels)
        if self.mask_noise > 0:
            c_org = with_off_mask_noise(space, c_org, self.mask_noise, self.rng)
        # What the images are said to be, as the colour critic H is told: real images their
        # own labels, translations their targets.
        said = ((centered_labels(space, labels, dataset), targets.centered(space))
                if self.H is not None else (None, None))
        g_step = (iteration + 1) % self.n_critic == 0
        losses, g_fake, g_masks = self._discriminator_step(x_real, c_trg, targets, said, dataset, labels, g_step)
        if g_step:
            losses.update(self._generator_step(iteration, x_real, c_trg, c_org, targets, said, dataset, labels,
                                               g_fake, g_masks))
        return losses

    def _discriminator_step(self, x_real: Tensor, c_trg: Tensor, targets: Targets, said: tuple, dataset: str,
                            labels: Tensor, g_step: bool) -> tuple[dict[str, Tensor], Tensor | None, Any]:
        """One update of D (and of the colour critic H): its losses, and the translations with
        their graph and masks when the G step of this iteration may reuse them."""
        space, fast = self.label_space, self.fast
        with fast.autocast(x_real.device):
            x_fake, g_fake, g_masks = self._fake_for_d_step(x_real, c_trg, keep_graph_for_g=g_step)
            # What D sees: the images themselves, or their differentiable augmentations.
            d_real, d_fake = (self.augment(x_real), self.augment(x_fake)) if self.augment else (x_real, x_fake)
            if fast.d_batch_real_fake:
                # D scores every image on its own (no batch statistics), so one call on both
                # halves computes the same as two calls, with larger matrix products.
                out_src, out_cls = self.D_train(torch.cat([d_real, d_fake]))
                src_real, src_fake = out_src.split(d_real.shape[0])
                out_cls, cls_fake = out_cls.split(d_real.shape[0])
            else:
                src_real, out_cls = self.D_train(d_real)
                src_fake, cls_fake = self.D_train(d_fake)
            d_loss_real = critic_real_loss(src_real)
            d_loss_fake = critic_fake_loss(src_fake)
            d_loss_gp = gradient_penalty(self.D_train, d_real, d_fake, generator=self.rng)
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
            with fast.autocast(x_real.device):
                h_loss_real, h_loss_fake, h_loss_gp = self._colour_critic_step(x_real, x_fake, *said)
            losses.update({"H/loss_real": h_loss_real, "H/loss_fake": h_loss_fake, "H/loss_gp": h_loss_gp})
        return losses, g_fake, g_masks

    def _generator_step(self, iteration: int, x_real: Tensor, c_trg: Tensor, c_org: Tensor, targets: Targets,
                        said: tuple, dataset: str, labels: Tensor, g_fake: Tensor | None,
                        g_masks: Any) -> dict[str, Tensor]:
        """One update of G (D and H frozen): its losses. ``g_fake``, ``g_masks``: the D step's
        translations with their graph, when it kept them (else computed here)."""
        space = self.label_space
        # D is frozen and called unwrapped: its gradients would be discarded anyway, and
        # skipping them also keeps DistributedDataParallel from waiting for them.
        self.D.requires_grad_(False)
        if self.H is not None:
            self.H.requires_grad_(False)
        try:
            with self.fast.autocast(x_real.device):
                if g_fake is not None:
                    x_fake, masks = g_fake, g_masks
                else:
                    x_fake, masks = self._translate_with_masks(x_real, c_trg)
                out_src, out_cls = self.D(self.augment(x_fake) if self.augment else x_fake)
                g_loss_fake = generator_adversarial_loss(out_src)
                g_loss_cls = targets.classification_loss(space, out_cls.float())
                g_loss_rec = reconstruction_loss(x_real, self.G_call(x_fake, c_org))
                g_loss = g_loss_fake + self.lambda_rec * g_loss_rec + self.lambda_cls * g_loss_cls
                losses = {"G/loss_fake": g_loss_fake, "G/loss_rec": g_loss_rec, "G/loss_cls": g_loss_cls}
                if self.lambda_id > 0:
                    # Not in the paper: translating an image to its own labels should
                    # return it (CycleGAN's identity loss). Anchors G to its input in short
                    # runs, before the adversarial and classification terms can.
                    losses["G/loss_id"] = reconstruction_loss(x_real, self.G_call(x_real, c_org))
                    g_loss = g_loss + self.lambda_id * losses["G/loss_id"]
                if self.lambda_mask > 0:
                    # Not in the paper: G's paint mask stays shut where the target asks for no
                    # change (GANimation's mask sparsity).
                    losses["G/loss_mask_paint"] = mask_opening(masks["paint"])
                    g_loss = g_loss + self.lambda_mask * losses["G/loss_mask_paint"]
                if self.lambda_mask_sharpness > 0:
                    # Not in the paper: G's masks shut or fully open, not half open.
                    # (Logged from the start, weighed from mask_sharpness_from on.)
                    # (With mask_sharpness_groups, only on the rows whose target changes them.)
                    sharp_rows = (targets.changing(space, dataset, labels, self.mask_sharpness_groups)
                                  if self.mask_sharpness_groups else None)
                    losses["G/loss_mask_sharpness"] = sum(mask_indecision(masks[name], sharp_rows)
                                                          for name in self.sharpness_masks)
                    if iteration >= self.mask_sharpness_from:
                        g_loss = g_loss + self.lambda_mask_sharpness * losses["G/loss_mask_sharpness"]
                if self.H is not None:
                    losses["G/loss_hist"] = generator_adversarial_loss(self.H.score(x_fake, said[1]))
                    g_loss = g_loss + self.lambda_hist * losses["G/loss_hist"]
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
        return {name: term.detach() for name, term in losses.items()}

    def _colour_critic_step(self, x_real: Tensor, x_fake: Tensor, y_org: Tensor,
                            y_trg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One update of the colour critic H: WGAN-GP on the colour-histogram features of the
        real images (with their own labels) and of their translations (with their targets).
        The penalty's in-between features are scored with the label of the end they are nearer
        to: a conditional critic is 1-Lipschitz in its input for each label. Returns the three
        terms."""
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

    def _classifier_gradient_penalty(self, images: Tensor, labels: Tensor, dataset: str) -> Tensor:
        """``mean_i ‖∇_x L_cls(D_cls(x_i), c_i)‖²`` over real images: how fast D's domain
        classification changes under a small change of the image (input-gradient
        regularisation; Ross & Doshi-Velez, AAAI 2018). Not in the paper."""
        x = images.detach().requires_grad_(True)
        _, logits = self.D_train(x)
        loss = self.label_space.classification_loss(logits.float(), labels, dataset)
        # Summed over the batch, so that each image's gradient is its own loss's gradient.
        (grad,) = torch.autograd.grad(loss * x.shape[0], x, create_graph=True)
        return grad.float().flatten(1).pow(2).sum(1).mean()

    def _translate_with_masks(self, x_real: Tensor, c_trg: Tensor) -> tuple[Tensor, dict[str, Tensor] | None]:
        """``G(x_real, c_trg)`` with its graph, and the masks G drew when a mask penalty needs
        them (``lambda_mask``, ``lambda_mask_sharpness``; else ``None``)."""
        if self.lambda_mask > 0 or self.lambda_mask_sharpness > 0:
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
