"""StarGAN's :class:`starkit.inference.Translator`: the generator ``G(x, c)`` and, when the
checkpoint has one, the discriminator, whose classifier predicts the inputs' own labels.

Runs trained with ``g_ema`` also save ``G_ema``, the moving average of G's weights: it
translates unless ``weights="raw"``. Imported reference weights hold G only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ...inference import SavedModel, TranslateError, Translator
from ...labels import LabelSpace


class StarGANTranslator(Translator):
    """A generator (and, when the checkpoint has one, the discriminator) ready to translate."""

    def __init__(self, G: Any, label_space: LabelSpace, image_size: int, device: Any, D: Any = None,
                 source: str | Path | None = None, weights: str = "raw"):
        super().__init__(label_space, image_size, device, source=source, weights=weights)
        self.G = G.to(device).eval()
        self.D = D.to(device).eval() if D is not None else None

    @property
    def label_predictor(self) -> str | None:  # type: ignore[override]
        return "discriminator" if self.D is not None else None

    @property
    def networks(self) -> Mapping[str, Any]:
        return {"G": self.G} if self.D is None else {"G": self.G, "D": self.D}

    def predict_labels(self, x: Any, dataset: str) -> np.ndarray:
        """The discriminator's hard labels of ``dataset`` for images ``x`` (``[B, k]``)."""
        import torch

        if self.D is None:
            raise TranslateError("this checkpoint has no discriminator to predict source labels with")
        with torch.no_grad():
            _, logits = self.D(x)
        return self.label_space.predict(logits.float(), dataset).cpu().numpy()

    def translate(self, x: Any, targets: Any, **conditioning: str) -> Any:
        """G(x, c) for joint targets ``[B, dim]``; float images in [-1, 1]."""
        import torch

        self.check_conditioning(conditioning)
        with torch.no_grad():
            return self.G(x, torch.as_tensor(targets, dtype=torch.float32, device=self.device))


def generator_name(saved: SavedModel) -> str:
    """``G_ema`` or ``G``, as ``saved.weights`` asks; a checkpoint without the one asked for is
    an error naming it."""
    from ...training.checkpoint import CheckpointError

    networks = saved.saved_networks
    if saved.weights == "ema" and "G_ema" not in networks:
        raise CheckpointError(f"{saved.path}: the checkpoint holds no moving average of G (G_ema); "
                              "its run was trained without g_ema")
    name = "G_ema" if saved.weights == "ema" or (saved.weights == "auto" and "G_ema" in networks) else "G"
    if name not in networks:
        raise CheckpointError(f"{saved.path}: the checkpoint holds no generator (networks: {', '.join(networks)})")
    return name


def load_translator(saved: SavedModel) -> StarGANTranslator:
    """The family's ``translator`` factory: G (or its moving average) and D when saved."""
    g_name = generator_name(saved)
    wanted = {"G": g_name, **({"D": "D"} if "D" in saved.saved_networks else {})}
    loaded = saved.load_networks(wanted)
    return StarGANTranslator(
        loaded["G"], saved.label_space, saved.config["image_size"], saved.device, D=loaded.get("D"),
        source=saved.path, weights="ema" if g_name == "G_ema" else "raw",
    )
