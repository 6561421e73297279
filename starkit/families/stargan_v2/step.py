"""StarGAN v2's training iteration (paper §3.2; the official solver's order).

Each iteration takes a batch of source images ``x`` (domains ``y`` from their labels), a target
domain ``ỹ`` per sample and two reference images of it (served by the loader, which the step
asks for them through ``batch_request``), and two latent codes ``z₁, z₂`` per sample::

    D step, latent-guided:     s̃ = F_ỹ(z₁)          L_D = L_adv(D_y(x), real) + L_adv(D_ỹ(G(x, s̃)), fake) + γ·R1
    D step, reference-guided:  s̃ = E_ỹ(x_ref₁)      the same, with that fake
    G step, latent-guided:     s̃ᵢ = F_ỹ(zᵢ)         L_G = L_adv(D_ỹ(G(x, s̃₁)), real) + λ_sty·L_sty
                                                          − λ_ds(t)·L_ds(G(x, s̃₁), G(x, s̃₂)) + λ_cyc·L_cyc
                               updates G, F and E
    G step, reference-guided:  s̃ᵢ = E_ỹ(x_refᵢ)     the same loss; updates G only
    moving averages:           ema ← β·ema + (1 − β)·w   for G, F and E

(:mod:`.losses` has each term.) The fakes of the D steps are drawn without gradients; in the G
steps D (and, in the reference-guided one, E) is frozen and called unwrapped — the official
code computes their gradients there and throws them away before they are used, so the updates
are the same. The second translation of the diversity pair is detached in the loss, so it is
drawn without a graph.

Source domains come from the labels through a small per-dataset torch rule (no host sync per
step); an image whose one-hot group has no member set has none, and the terms that read its
domain skip it (:mod:`.losses`).

How it is computed follows the switches of :mod:`.speed` (``precision``, ``channels_last``,
``adam_impl``): under bf16 the networks' forward passes run in autocast regions and everything
else — the losses, R1 (taken with respect to the fp32 images), the weights, their moving
averages and Adam's state — in fp32. tests/test_v2_fast_path.py states how close bf16 comes
to fp32, and that :meth:`V2FastPath.naive() <.speed.V2FastPath.naive>` is the step as first
written, bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable, Iterator, Mapping

import torch
from torch import Tensor, nn

from ...domains import DomainSet, domain_set
from ...errors import StarkitError
from ...labels import LabelSpace
from ...training.device import Runtime, rank_seed
from ...training.precision import make_adam
from .losses import (adversarial_loss, cycle_loss, diversity_loss, diversity_weight, r1_penalty,
                     style_reconstruction_loss)
from .networks import build_networks
from .options import PAPER_IMAGE_SIZE, StarGANv2Options, check_speed_switches
from .speed import V2FastPath, resolve_v2_fast_path

#: The networks with a moving average, saved as ``<name>_ema`` (what translation uses).
AVERAGED = ("generator", "mapping_network", "style_encoder")
#: ``translate`` uses style 0 of this seed (as a translator's plain ``translate`` does).
SAMPLE_LATENT_SEED = 0


def build_family_networks(label_space: LabelSpace, config: Mapping[str, Any],
                          checked: bool = False) -> tuple[DomainSet, dict[str, nn.Module]]:
    """The run's domains and its four trained networks, after checking the options unless the
    caller has (``checked``; a bad ``domains`` choice raises :class:`starkit.domains.DomainError`
    naming it either way)."""
    if not checked:
        StarGANv2Options.from_config(config)
        check_speed_switches(config)
    domains = domain_set(label_space, config.get("domains") or [])
    sized = {**config, "image_size": config.get("image_size") or PAPER_IMAGE_SIZE}
    return domains, build_networks(len(domains), sized)


class SourceDomains:
    """The domain of each row of a dataset's own labels, in torch: ``(y [B] long, rows)`` where
    ``rows`` is ``None`` when every row has a domain, else float ``[B]`` (0 where none)."""

    def __init__(self, domains: DomainSet):
        self.rules: dict[str, tuple[str, Any, int]] = {}
        for dataset in domains.space.names:
            attributes = domains.space.dataset(dataset).attributes
            members = [(i, d) for i, d in enumerate(domains.domains) if d.dataset == dataset]
            first, domain = members[0]
            if domain.onehot:  # the group's members, in order: the row's set member is its domain
                self.rules[dataset] = ("onehot", [attributes.index(d.attribute) for _, d in members], first)
            else:  # attribute=0 then attribute=1
                self.rules[dataset] = ("binary", attributes.index(domain.attribute), first)

    def __call__(self, dataset: str, labels: Tensor) -> tuple[Tensor, Tensor | None]:
        kind, where, first = self.rules[dataset]
        if kind == "binary":
            return first + (labels[:, where] > 0.5).long(), None
        part = labels[:, where].float()
        best, index = part.max(dim=1)
        return first + index, (best > 0.5).float()


@contextlib.contextmanager
def _frozen(*nets: nn.Module) -> Iterator[None]:
    """Within it, ``nets``' parameters take no gradients (their inputs still do)."""
    for net in nets:
        net.requires_grad_(False)
    try:
        yield
    finally:
        for net in nets:
            net.requires_grad_(True)


class StarGANv2Step:
    """The :class:`~starkit.training.step.StepRunner` of the ``stargan-v2`` family.

    ``fast`` overrides the switches the config selects (benchmarks and tests pass
    :meth:`V2FastPath.naive` or single switches)."""

    def __init__(self, label_space: LabelSpace, config: Mapping[str, Any], runtime: Runtime,
                 fast: V2FastPath | None = None):
        from ...data.references import ReferenceRequest

        self.runtime = runtime
        self.options = opts = StarGANv2Options.from_config(config)
        check_speed_switches(config)
        self.domains, nets = build_family_networks(label_space, config, checked=True)
        device = runtime.device
        self.fast = fast if fast is not None else resolve_v2_fast_path(config, device)
        layout = self.fast.memory_format()
        self.nets = {name: net.to(device, memory_format=layout) for name, net in nets.items()}
        # The moving averages start as copies and are never trained nor wrapped for DDP: every
        # process averages identical replicas, so the averages stay identical too.
        self.averages = {name: copy.deepcopy(self.nets[name]).requires_grad_(False) for name in AVERAGED}
        self.networks = {**self.nets, **{f"{name}_ema": net for name, net in self.averages.items()}}
        # The modules to call where gradients must be averaged across processes.
        self.wrapped = {name: runtime.wrap(net) for name, net in self.nets.items()}
        self.base_lrs = {name: opts.optim.f_lr if name == "mapping_network" else opts.optim.lr for name in self.nets}
        betas = (opts.optim.beta1, opts.optim.beta2)
        self.optimizers = {
            name: make_adam(net.parameters(), self.base_lrs[name], betas, self.fast.adam_impl,
                            weight_decay=opts.optim.weight_decay)
            for name, net in self.nets.items()
        }
        # One CPU generator for the latent codes: CPU and GPU runs draw the same numbers, and
        # its state is part of the checkpoint.
        self.rng = torch.Generator(device="cpu")
        self.rng.manual_seed(rank_seed(int(config["seed"]), runtime.rank, "stargan-v2-step"))
        self.generators = {"stargan-v2": self.rng}
        self.batch_request = ReferenceRequest(domains=self.domains, per_sample=opts.data.references_per_sample)
        self.source_domains = SourceDomains(self.domains)

    # ------------------------------------------------------------------ schedule
    def learning_rates(self, iteration: int, total: int) -> dict[str, float]:
        """Constant rates (the official code never decays them)."""
        return dict(self.base_lrs)

    # ------------------------------------------------------------------ one iteration
    def train_step(self, iteration: int, dataset: str, images: Tensor, labels: Tensor,
                   references: Any = None) -> dict[str, Tensor]:
        if references is None:
            raise StarkitError("stargan-v2's training step needs reference images: the loader must serve "
                               "the step's batch_request")
        y_org, rows = self.source_domains(dataset, labels)
        y_trg = references.domains.long()
        images = self.fast.prepare_input(images)
        x_ref1, x_ref2 = (self.fast.prepare_input(references.images[:, i]) for i in (0, 1))
        z1, z2 = self._latents(images.shape[0], images.device)
        mapping, encoder = self.nets["mapping_network"], self.nets["style_encoder"]
        with torch.no_grad(), self._forward():
            s_latent, s_reference = mapping(z1, y_trg), encoder(x_ref1, y_trg)
        losses = self._discriminator_step("latent", images, y_org, rows, y_trg, s_latent)
        losses |= self._discriminator_step("reference", images, y_org, rows, y_trg, s_reference)
        ds = diversity_weight(self.options.loss.lambda_ds, iteration, self.options.loss.ds_iter)
        wrapped_mapping = self.wrapped["mapping_network"]
        losses |= self._generator_step(
            "latent", images, y_org, rows, y_trg, ds, ("generator", "mapping_network", "style_encoder"),
            style=lambda: wrapped_mapping(z1, y_trg), second_style=lambda: mapping(z2, y_trg))
        with _frozen(encoder):
            losses |= self._generator_step(
                "reference", images, y_org, rows, y_trg, ds, ("generator",),
                style=lambda: encoder(x_ref1, y_trg), second_style=lambda: encoder(x_ref2, y_trg))
        self._update_averages()
        # Logged as the official code logs it: the diversity weight this iteration trained with.
        losses["G/lambda_ds"] = torch.tensor(ds, device=images.device)
        return losses

    def _latents(self, batch: int, device: torch.device) -> tuple[Tensor, Tensor]:
        z = torch.randn((2, batch, self.options.model.latent_dim), generator=self.rng)
        z = z.to(device, non_blocking=True)
        return z[0], z[1]

    def _forward(self) -> contextlib.AbstractContextManager:
        """The region the networks' forward passes run in (bf16 autocast, or nothing); losses,
        R1's gradient and backward passes stay outside it, in fp32."""
        return self.fast.autocast(self.runtime.device)

    def _discriminator_step(self, kind: str, x_real: Tensor, y_org: Tensor, rows: Tensor | None,
                            y_trg: Tensor, s_trg: Tensor) -> dict[str, Tensor]:
        """One update of D: real images as real (with R1 on them), ``G(x, s_trg)`` as fake."""
        D = self.wrapped["discriminator"]
        with torch.no_grad(), self._forward():
            x_fake = self.nets["generator"](x_real, s_trg)
        # R1's gradient is taken with respect to these fp32 pixels (autocast casts a copy).
        x_real = x_real.detach().requires_grad_(True)
        with self._forward():
            real_logits = D(x_real, y_org)
        loss_real = adversarial_loss(real_logits, True, rows)
        loss_r1 = r1_penalty(real_logits, x_real, rows)
        with self._forward():
            fake_logits = D(x_fake, y_trg)
        loss_fake = adversarial_loss(fake_logits, False)
        loss = loss_real + loss_fake + self.options.loss.lambda_reg * loss_r1
        self._update(("discriminator",), loss)
        return {f"D/{kind}_real": loss_real.detach(), f"D/{kind}_fake": loss_fake.detach(),
                f"D/{kind}_r1": loss_r1.detach()}

    def _generator_step(self, kind: str, x_real: Tensor, y_org: Tensor, rows: Tensor | None, y_trg: Tensor,
                        ds_weight: float, trained: tuple[str, ...], style: Callable[[], Tensor],
                        second_style: Callable[[], Tensor]) -> dict[str, Tensor]:
        """One update of ``trained`` on L_G with styles ``style()`` (with a graph) and
        ``second_style()`` (the diversity pair's second, drawn without one); D frozen."""
        G, E = self.wrapped["generator"], self.wrapped["style_encoder"]
        if "style_encoder" not in trained:
            E = self.nets["style_encoder"]  # frozen by the caller: no gradients to average
        D = self.nets["discriminator"]
        with _frozen(D):
            with self._forward():
                s_trg = style()
                x_fake = G(x_real, s_trg)
                fake_logits, s_recovered = D(x_fake, y_trg), E(x_fake, y_trg)
                with torch.no_grad():
                    x_fake2 = self.nets["generator"](x_real, second_style())
                x_cycled = G(x_fake, E(x_real, y_org))
            loss_terms = {"adv": adversarial_loss(fake_logits, True),
                          "sty": style_reconstruction_loss(s_trg, s_recovered),
                          "ds": diversity_loss(x_fake, x_fake2),
                          "cyc": cycle_loss(x_real, x_cycled, rows)}
            lam = self.options.loss
            loss = (loss_terms["adv"] + lam.lambda_sty * loss_terms["sty"] - ds_weight * loss_terms["ds"]
                    + lam.lambda_cyc * loss_terms["cyc"])
            self._update(trained, loss)
        return {f"G/{kind}_{name}": term.detach() for name, term in loss_terms.items()}

    def _update(self, names: tuple[str, ...], loss: Tensor) -> None:
        for name in names:
            self.optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        for name in names:
            self.optimizers[name].step()

    @torch.no_grad()
    def _update_averages(self) -> None:
        """``ema = β·ema + (1 − β)·w`` for each averaged network's parameters; buffers copied."""
        beta = self.options.optim.ema_beta
        for name, average in self.averages.items():
            mine, theirs = list(average.parameters()), list(self.nets[name].parameters())
            torch._foreach_lerp_(mine, theirs, 1.0 - beta)
            for a, b in zip(average.buffers(), self.nets[name].buffers()):
                a.copy_(b)

    # ------------------------------------------------------------------ sampling
    def sample_styles(self, targets: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
        """The target domains ``[B]`` of joint target vectors, and the moving-average mapping
        network's styles for them from one fixed latent code shared by every row."""
        from .translator import latent_code

        y = torch.as_tensor(self.domains.of_targets(targets.detach().cpu().numpy()), device=device)
        z = latent_code(SAMPLE_LATENT_SEED, 0, self.options.model.latent_dim).to(device)
        return y, self.averages["mapping_network"](z.expand(len(y), -1), y)

    @torch.no_grad()
    def translate(self, images: Tensor, targets: Tensor) -> Tensor:
        """Latent-guided translations by the moving averages, with a fixed latent code (the
        step's random streams and training state untouched)."""
        _, style = self.sample_styles(targets, images.device)
        return self.averages["generator"](images, style)

    def write_samples(self, space: LabelSpace, inputs: Any, device: torch.device, path: Any) -> Any:
        """The family's grid: latent- and reference-guided translations (:mod:`.samples`)."""
        from .samples import write_samples

        return write_samples(self, space, inputs, device, path)
