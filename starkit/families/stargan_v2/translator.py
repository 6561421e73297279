"""StarGAN v2's :class:`starkit.inference.Translator`: a generator ``G(x, s)`` driven by a style
code ``s`` of the target domain, taken from a latent code through the mapping network
(latent-guided) or from a reference image through the style encoder (reference-guided).

Runs keep moving averages of the three translating networks (``generator_ema``,
``mapping_network_ema``, ``style_encoder_ema``); an imported official checkpoint holds only
those. They translate unless ``weights="raw"``.

Latent codes are reproducible: style ``j`` of seed ``s`` is row ``j`` of the standard normal
matrix a CPU ``torch.Generator`` seeded with ``s`` draws first (:func:`latent_code`), so it is
the same code the official scripts get from ``torch.manual_seed(s); torch.randn(n, latent_dim)``
on the CPU, and one code is shared by every row of a batch (as in the paper's figures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...domains import DomainSet, domain_set
from ...inference import SavedModel, TranslateError, Translator

#: The networks that translate, by the name the family builds them under.
TRANSLATING = ("generator", "mapping_network", "style_encoder")


def latent_code(seed: int, style: int, latent_dim: int) -> Any:
    """Latent code ``[latent_dim]`` number ``style`` of ``seed`` (CPU, float32), drawn from a
    private generator: the global random state is left alone."""
    import torch

    if style < 0:
        raise TranslateError(f"style must be 0 or more, got {style}")
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(style + 1, latent_dim, generator=generator)[style]


class StarGANv2Translator(Translator):
    """The (averaged) generator, mapping network and style encoder of a StarGAN v2 checkpoint."""

    diverse = True
    takes_reference = True
    label_predictor = None

    def __init__(self, networks: Mapping[str, Any], domains: DomainSet, image_size: int, device: Any,
                 latent_dim: int, source: str | Path | None = None, weights: str = "ema"):
        super().__init__(domains.space, image_size, device, source=source, weights=weights)
        self.domains = domains
        self.latent_dim = int(latent_dim)
        self._networks = {name: networks[name].to(device).eval() for name in TRANSLATING}

    @property
    def networks(self) -> Mapping[str, Any]:
        return dict(self._networks)

    def check_conditioning(self, conditioning: Mapping[str, str]) -> None:
        if conditioning:
            raise TranslateError(
                f"--condition {', '.join(sorted(conditioning))}: StarGAN v2 takes no --condition; its styles "
                "come from --styles N and --seed S (latent codes) or from --reference IMG|DIR (reference images)"
            )

    def domain_indices(self, targets: Any) -> Any:
        """The target domain of each joint target vector ``[B, dim]``, as a long tensor on the device."""
        import torch

        if isinstance(targets, torch.Tensor):
            targets = targets.detach().float().cpu().numpy()
        return torch.from_numpy(self.domains.of_targets(np.asarray(targets))).to(self.device)

    def translate(self, x: Any, targets: Any, **conditioning: str) -> Any:
        """Latent-guided translation with style 0 of seed 0 (what ``eval`` and plain use get)."""
        self.check_conditioning(conditioning)
        return self.translate_latent(x, targets, style=0, seed=0)

    def translate_latent(self, x: Any, targets: Any, style: int, seed: int) -> Any:
        """``x`` ``[B,3,H,W]`` in [-1, 1] translated to ``targets`` with style ``style`` of ``seed``:
        one latent code for every row, mapped by each row's target-domain head."""
        import torch

        y = self.domain_indices(targets)
        z = latent_code(seed, style, self.latent_dim).to(self.device).expand(len(y), -1)
        with torch.no_grad():
            s = self._networks["mapping_network"](z, y)
            return self._networks["generator"](x, s)

    def translate_reference(self, x: Any, targets: Any, reference: Any) -> Any:
        """``x`` translated to ``targets`` in the style the style encoder reads off ``reference``
        (float ``[B,3,H,W]``, one per row, or ``[1,3,H,W]`` shared) for each row's target domain."""
        import torch

        y = self.domain_indices(targets)
        if reference.dim() != 4 or reference.shape[0] not in (1, len(y)):
            raise TranslateError(f"reference images must be [1 or {len(y)}, 3, H, W], got {list(reference.shape)}")
        reference = reference.to(self.device).expand(len(y), -1, -1, -1)
        with torch.no_grad():
            s = self._networks["style_encoder"](reference, y)
            return self._networks["generator"](x, s)


def network_names(saved: SavedModel) -> dict[str, str]:
    """``{network: saved name}``: the moving averages (``*_ema``) unless ``saved.weights`` is
    "raw" or the checkpoint has none; asking for "ema" without them is an error naming the file."""
    from ...training.checkpoint import CheckpointError

    held = saved.saved_networks
    averaged = [f"{name}_ema" for name in TRANSLATING]
    has_averages = all(name in held for name in averaged)
    if saved.weights == "ema" and not has_averages:
        raise CheckpointError(f"{saved.path}: the checkpoint holds no moving averages of the translating networks "
                              f"({', '.join(averaged)}); translate it with --weights raw")
    use_averages = has_averages and saved.weights != "raw"
    names = {name: f"{name}_ema" if use_averages else name for name in TRANSLATING}
    missing = [saved_name for saved_name in names.values() if saved_name not in held]
    if missing:
        raise CheckpointError(f"{saved.path}: the checkpoint lacks the {', '.join(missing)} weights "
                              f"(networks: {', '.join(held)})")
    return names


def load_translator(saved: SavedModel) -> StarGANv2Translator:
    """The family's ``translator`` factory: the three translating networks (their moving
    averages when saved and not ``weights="raw"``) and the run's domains."""
    from ...training.checkpoint import CheckpointError

    config = {**saved.family.default_config, **saved.config}
    if int(config.get("w_hpf", 0) or 0) > 0:
        raise CheckpointError(f"{saved.path}: this checkpoint needs the high-pass filter and the face-landmark "
                              f"network (w_hpf {config['w_hpf']}), which starkit does not provide")
    names = network_names(saved)
    loaded = saved.load_networks(names)
    averaged = names["generator"].endswith("_ema")
    return StarGANv2Translator(
        loaded, domain_set(saved.label_space, config.get("domains") or []), config["image_size"], saved.device,
        latent_dim=config.get("latent_dim", 16), source=saved.path, weights="ema" if averaged else "raw",
    )
