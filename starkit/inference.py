"""The translation seam: what ``starkit translate`` and ``starkit eval`` need from a model family.

A family's ``translator(saved)`` factory (:class:`starkit.model_family.ModelFamily`) turns a
loaded checkpoint (:class:`SavedModel`) into a :class:`Translator`. The core never looks at
the networks' names or call signatures: it asks the translator to

* ``translate(x, targets, **conditioning)``: images ``x`` float ``[B,3,H,W]`` in [-1, 1] on
  its device, translated to the joint target labels ``targets`` ``[B, label_space.dim]``;
  ``conditioning`` holds what the user gave beyond the labels (``--condition seed=3``, a
  number of styles, reference images for a family that takes them), as strings;
* ``predict_labels(x, dataset)``: the inputs' own labels of ``dataset`` ``[B, k]`` (only when
  ``label_predictor`` is set: what predicts them, e.g. ``"discriminator"``);
* ``networks``: the networks it translates with, by name, for parameter counts;
* ``weights``: ``"raw"`` (trained weights) or ``"ema"`` (their moving average).

A family whose translations are many per target (StarGAN v2's styles) sets ``diverse`` and
implements ``translate_latent(x, targets, style, seed)``: style ``style`` of seed ``seed``, the
same for every row and reproducible; with ``takes_reference`` also
``translate_reference(x, targets, reference)``: the style of reference images ``[B,3,H,W]`` (one
per row) or ``[1,3,H,W]`` (shared). ``translate`` then gives its first latent style.

Nothing here imports torch at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import StarkitError
from .labels import LabelError, LabelSpace

#: Which weights a checkpoint is translated with: "ema" the moving average of the translating
#: network's weights (when the run kept one), "raw" the trained weights, "auto" the average
#: when the checkpoint has one.
GENERATOR_WEIGHTS = ("auto", "ema", "raw")


class TranslateError(StarkitError):
    """Inputs or options of a translation are unusable; the message names the file or option."""


@dataclass(frozen=True)
class SavedModel:
    """A checkpoint as a family's ``translator`` factory receives it: read and checked
    (``weights_only=True``), with its label space parsed, the device resolved and the user's
    choice of ``weights`` ("auto", "ema" or "raw")."""

    path: Path
    checkpoint: Mapping[str, Any]
    family: Any  # starkit.model_family.ModelFamily
    label_space: LabelSpace
    device: Any  # torch.device
    weights: str

    @property
    def config(self) -> Mapping[str, Any]:
        return self.checkpoint["config"]

    @property
    def saved_networks(self) -> Mapping[str, Any]:
        """The checkpoint's state dicts by network name."""
        return self.checkpoint["networks"]

    def load_networks(self, names: Mapping[str, str]) -> dict[str, Any]:
        """The family's networks ``{built name: saved name}``, built from the checkpoint's config
        on the meta device (no memory or initialisation for the networks left out, nor for
        weights about to be replaced), then loaded on the CPU from the saved state dicts. A
        state dict that does not fit is an error naming the file and the network."""
        import torch

        from .training.checkpoint import CheckpointError

        with torch.device("meta"):
            built = self.family.build(self.label_space, self.config)
        loaded = {}
        for name, saved_name in names.items():
            module = built[name].to_empty(device="cpu")
            try:
                module.load_state_dict(self.saved_networks[saved_name])
            except RuntimeError as exc:
                raise CheckpointError(
                    f"{self.path}: the {saved_name} weights do not fit the {self.family.name} network its "
                    f"config describes: {str(exc).splitlines()[0]}"
                ) from None
            loaded[name] = module
        return loaded


class Translator:
    """Base class of a model family's translator (see the module docstring for the protocol).

    ``Translator.from_checkpoint`` / ``Translator.from_run`` load any family's checkpoint and
    return that family's translator."""

    #: What predicts the inputs' own labels ("discriminator"); ``None``: nothing can, so
    #: translation takes them from ``--source-labels`` or leaves them all zero.
    label_predictor: str | None = None
    #: Whether one target has many translations (styles): ``translate_latent`` is implemented.
    diverse: bool = False
    #: Whether a translation can take its style from reference images: ``translate_reference``.
    takes_reference: bool = False
    #: The model family that made it (set by :func:`load_translator`), for messages and reports.
    family_name: str | None = None
    #: The training iteration its checkpoint was saved at (set by :func:`load_translator`;
    #: None when the checkpoint does not say), for reports.
    iteration: int | None = None

    def __init__(self, label_space: LabelSpace, image_size: int, device: Any, source: str | Path | None = None,
                 weights: str = "raw"):
        self.label_space = label_space
        self.image_size = int(image_size)
        self.device = device
        self.source = source
        #: Which weights the translating networks hold: "raw" (trained) or "ema" (their average).
        self.weights = weights

    # ------------------------------------------------------------------ the protocol
    @property
    def networks(self) -> Mapping[str, Any]:
        """The networks this translator uses, by name (for parameter counts)."""
        raise NotImplementedError

    def translate(self, x: Any, targets: Any, **conditioning: str) -> Any:
        """Images ``x`` translated to the joint ``targets`` ``[B, dim]`` (array or tensor);
        float images in [-1, 1], without gradients."""
        raise NotImplementedError

    def translate_latent(self, x: Any, targets: Any, style: int, seed: int) -> Any:
        """Style ``style`` of seed ``seed`` of each image's translation to ``targets`` (diverse
        families only)."""
        raise TranslateError("this model gives one translation per target; it takes no styles")

    def translate_reference(self, x: Any, targets: Any, reference: Any) -> Any:
        """Translations to ``targets`` in the style of ``reference`` images (families that take
        references only)."""
        raise TranslateError("this model takes no reference images")

    def predict_labels(self, x: Any, dataset: str) -> np.ndarray:
        """Hard labels of ``dataset`` ``[B, k]`` for images ``x``."""
        raise TranslateError("this model cannot predict the inputs' labels; give them with --source-labels")

    def check_conditioning(self, conditioning: Mapping[str, str]) -> None:
        """Refuse, before any work, conditioning options this family does not take (default:
        every one)."""
        if conditioning:
            raise TranslateError(f"--condition {', '.join(sorted(conditioning))}: this model takes no "
                                 "conditioning beyond the target labels")

    # ------------------------------------------------------------------ shared helpers
    def to_input(self, images: np.ndarray) -> Any:
        """uint8 ``[B,H,W,3]`` -> float ``[B,3,H,W]`` in [-1, 1] on the device."""
        import torch

        from .data.loading import to_model_input

        return to_model_input(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2), self.device)

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", registry: Any = None,
                        weights: str = "auto") -> "Translator":
        """The translator of the family that wrote the starkit checkpoint ``path``."""
        return load_translator(path, device, registry, weights)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "auto", registry: Any = None,
                 weights: str = "auto") -> "Translator":
        """The translator of a run's ``checkpoints/latest.pt``."""
        path = Path(run_dir) / "checkpoints" / "latest.pt"
        if not path.is_file():
            raise TranslateError(f"--run {run_dir}: no checkpoint at {path} (has the run saved one yet?)")
        return load_translator(path, device, registry, weights)


def load_translator(path: str | Path, device: str = "auto", registry: Any = None,
                    weights: str = "auto") -> Translator:
    """Read a starkit checkpoint (``weights_only=True``) and hand it to its family's
    ``translator``; a file that is not one, or a family that cannot translate, is an error
    naming it."""
    from .catalog import get_model
    from .training.checkpoint import CheckpointError, load_checkpoint
    from .training.device import resolve_device

    if weights not in GENERATOR_WEIGHTS:
        raise TranslateError(f"weights: must be one of {', '.join(GENERATOR_WEIGHTS)}, got {weights!r}")
    checkpoint = load_checkpoint(path)
    try:
        space = LabelSpace.from_dict(checkpoint["label_space"])
    except LabelError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    family = get_model(checkpoint["model"], registry)
    if family.upgrade_config is not None:  # options this starkit no longer has: dropped or refused
        checkpoint["config"] = family.upgrade_config(checkpoint["config"], str(path), checkpoint.get("starkit_version"))
    if family.translator is None:
        raise CheckpointError(f"{path}: the model family {family.name!r} provides no translator; "
                              "its checkpoints cannot be translated or evaluated")
    saved = SavedModel(Path(path), checkpoint, family, space, resolve_device(device), weights)
    translator = family.translator(saved)
    if not isinstance(translator, Translator):
        raise CheckpointError(f"{path}: the {family.name!r} family's translator is a {type(translator).__name__}, "
                              "not a starkit.inference.Translator")
    translator.family_name = family.name
    translator.iteration = checkpoint.get("iteration")
    return translator
