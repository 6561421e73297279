"""Translating images with a trained (or imported) model: the Python API of ``starkit translate``.

    from starkit.translate import Translator, translate_files
    translator = Translator.from_run("runs/joint")
    result = translate_files(translator, ["faces/"], ["Blond_Hair", "Male=0", "rafd:happy"], "out/", grid=True)

Each target is a list of requests such as ``["Blond_Hair", "Male=0"]`` or ``["rafd:happy"]``
(:meth:`starkit.labels.LabelSpace.target`). Requests change the *source* labels of each input;
the inputs carry no labels, so they are estimated:

* with a discriminator in the checkpoint (every trained run), its classifier predicts the
  source dataset's labels for each input (:meth:`LabelSpace.predict`);
* without one (weights imported from the reference implementation), the source labels are
  given with ``source_labels`` (``--source-labels "Black_Hair,Young"``), else all zero — and
  then a target must name a member of every one-hot group itself (``Brown_Hair,Male``).

Explicit ``source_labels`` win over the discriminator's predictions.

A target from another dataset (``rafd:happy`` for a CelebA face) starts from that dataset's
all-zero labels and uses its mask (paper §3.2). Inputs are centre-cropped to a square and
resized to the model's image size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import StarkitError
from .labels import LabelError, LabelSpace

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: Which generator weights a checkpoint is translated with (see Translator.from_checkpoint).
GENERATOR_WEIGHTS = ("auto", "ema", "raw")


class TranslateError(StarkitError):
    """Inputs or options of a translation are unusable; the message names the file or option."""


# ---------------------------------------------------------------------------- requests
def parse_target(text: str) -> list[str]:
    """``"Blond_Hair,Male=0"`` -> ``["Blond_Hair", "Male=0"]``."""
    requests = [part.strip() for part in text.split(",") if part.strip()]
    if not requests:
        raise TranslateError(f"--to {text!r}: empty target")
    return requests


def target_slug(text: str) -> str:
    """A file-name-safe name for a target: ``"Blond_Hair,Male=0"`` -> ``"Blond_Hair+Male-0"``,
    ``"rafd:happy"`` -> ``"rafd-happy"``."""
    parts = [re.sub(r"[^A-Za-z0-9_.-]", "_", r.replace(":", "-").replace("=", "-")) for r in parse_target(text)]
    return "+".join(parts)


def parse_source_labels(space: LabelSpace, dataset: str, text: str | None) -> np.ndarray:
    """Source labels of ``dataset`` from requests like ``"Black_Hair,Male,Young=0"``: named
    attributes are set (a one-hot member turns the rest of its group off), others are 0."""
    d = space.dataset(dataset)
    row = np.zeros(d.width, dtype=np.float32)
    if not text:
        return row
    for request in parse_target(text):
        ds, attr, value = space.parse_request(request if ":" in request else f"{dataset}:{request}")
        if ds != dataset:
            raise TranslateError(f"--source-labels {request!r}: not an attribute of the source dataset {dataset!r}")
        gs = next(g for g in space.group_slices(dataset) if attr in g.group.attributes)
        if gs.group.kind == "onehot" and value == 1:
            row[gs.local] = 0
        row[d.attributes.index(attr)] = value
    space.validate(dataset, row)
    return row


# ---------------------------------------------------------------------------- inputs
def list_inputs(path: str | Path) -> list[Path]:
    """The image files to translate: ``path`` itself, or the PNG/JPEG files in the folder."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise TranslateError(f"--input {path}: no .png or .jpg images in this folder")
        return files
    if path.is_file():
        return [path]
    raise TranslateError(f"--input {path}: no such file or folder")


def load_image(path: Path, size: int) -> np.ndarray:
    """An input as uint8 ``[size, size, 3]``: largest centred square, bilinear resize."""
    from .data.images import ImageError, decode_file, prepare

    try:
        return prepare(decode_file(path), size, None)
    except ImageError as exc:
        raise TranslateError(f"{path}: {exc}") from None


def _output_stems(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique when two inputs differ only by extension."""
    stems = [p.stem for p in paths]
    seen: dict[str, int] = {}
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
    return [f"{p.stem}-{p.suffix.lstrip('.').lower()}" if seen[p.stem] > 1 else p.stem for p in paths]


# ---------------------------------------------------------------------------- the model
class Translator:
    """A generator (and, when the checkpoint has one, the discriminator) ready to translate."""

    def __init__(self, G: Any, label_space: LabelSpace, image_size: int, device: Any, D: Any = None,
                 source: str | Path | None = None, weights: str = "raw"):
        self.G = G.to(device).eval()
        self.D = D.to(device).eval() if D is not None else None
        self.label_space = label_space
        self.image_size = int(image_size)
        self.device = device
        self.source = source
        #: Which generator weights ``G`` holds: "raw" (trained) or "ema" (their moving average).
        self.weights = weights

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto", registry: Any = None,
                        weights: str = "auto") -> "Translator":
        """Load a starkit checkpoint (``weights_only=True``); a file that is not one is an
        error naming it.

        ``weights`` picks the generator: ``"ema"`` the moving average of its weights (saved as
        ``G_ema`` by runs trained with ``g_ema``), ``"raw"`` the trained weights themselves,
        ``"auto"`` the average when the checkpoint has one."""
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
        import torch

        saved = checkpoint["networks"]
        if weights == "ema" and "G_ema" not in saved:
            raise CheckpointError(f"{path}: the checkpoint holds no moving average of G (G_ema); "
                                  "its run was trained without g_ema")
        g_name = "G_ema" if weights == "ema" or (weights == "auto" and "G_ema" in saved) else "G"
        if g_name not in saved:
            raise CheckpointError(f"{path}: the checkpoint holds no generator (networks: {', '.join(saved)})")
        # Built on the meta device: no memory or initialisation for weights about to be replaced,
        # nor for a discriminator the checkpoint does not have.
        with torch.device("meta"):
            networks = family.build(space, checkpoint["config"])
        loaded = {}
        for name, saved_name in (("G", g_name), ("D", "D")):
            if saved_name not in saved:
                continue
            loaded[name] = networks[name].to_empty(device="cpu")
            try:
                loaded[name].load_state_dict(saved[saved_name])
            except RuntimeError as exc:
                raise CheckpointError(
                    f"{path}: the {saved_name} weights do not fit the {checkpoint['model']} network its "
                    f"config describes: {str(exc).splitlines()[0]}"
                ) from None
        return cls(
            loaded["G"],
            space,
            checkpoint["config"]["image_size"],
            resolve_device(device),
            D=loaded.get("D"),
            source=path,
            weights="ema" if g_name == "G_ema" else "raw",
        )

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "auto", registry: Any = None,
                 weights: str = "auto") -> "Translator":
        """The run's ``checkpoints/latest.pt``."""
        path = Path(run_dir) / "checkpoints" / "latest.pt"
        if not path.is_file():
            raise TranslateError(f"--run {run_dir}: no checkpoint at {path} (has the run saved one yet?)")
        return cls.from_checkpoint(path, device, registry, weights)

    # ------------------------------------------------------------------ operations
    def to_input(self, images: np.ndarray) -> Any:
        """uint8 ``[B,H,W,3]`` -> float ``[B,3,H,W]`` in [-1, 1] on the device."""
        import torch

        from .data.loading import to_model_input

        return to_model_input(torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2), self.device)

    def predict_labels(self, x: Any, dataset: str) -> np.ndarray:
        """The discriminator's hard labels of ``dataset`` for images ``x`` (``[B, k]``)."""
        import torch

        if self.D is None:
            raise TranslateError("this checkpoint has no discriminator to predict source labels with")
        with torch.no_grad():
            _, logits = self.D(x)
        return self.label_space.predict(logits.float(), dataset).cpu().numpy()

    def translate(self, x: Any, targets: np.ndarray) -> Any:
        """G(x, c) for joint targets ``[B, dim]``; float images in [-1, 1]."""
        import torch

        with torch.no_grad():
            return self.G(x, torch.as_tensor(targets, dtype=torch.float32, device=self.device))


@dataclass
class TranslateResult:
    files: list[Path] = field(default_factory=list)
    grid: Path | None = None
    source_dataset: str = ""
    source_labels: str = ""  # "discriminator", "given" or "zeros"


def translate_files(
    translator: Translator,
    inputs: Sequence[str | Path],
    targets: Sequence[str],
    out_dir: str | Path,
    grid: bool = False,
    source_dataset: str | None = None,
    source_labels: str | None = None,
    batch_size: int = 8,
    progress: bool = False,
    console: Any = None,
) -> TranslateResult:
    """Translate every image of ``inputs`` (files or folders) to every target and write
    ``out_dir/<stem>__<target-slug>.png``; with ``grid``, also ``out_dir/grid.png`` (rows:
    inputs; columns: the input, then each target)."""
    from .training.samples import render_grid, save_png, to_uint8_images

    space = translator.label_space
    source = source_dataset or space.names[0]
    space.index(source)  # LabelError naming the valid datasets
    if batch_size < 1:
        raise TranslateError(f"--batch-size must be at least 1, got {batch_size}")
    requests = [parse_target(t) for t in targets]
    if not requests:
        raise TranslateError("give at least one --to target")
    paths = [p for item in inputs for p in list_inputs(item)]
    stems = _output_stems(paths)
    slugs = [target_slug(t) for t in targets]
    given = parse_source_labels(space, source, source_labels) if source_labels else None
    mode = "given" if given is not None else ("discriminator" if translator.D is not None else "zeros")
    # Check every request before any work, against a source row with every one-hot group set
    # (an unknown attribute or a mix of datasets fails fast; a missing one-hot member can
    # only be judged per input, from its own labels).
    for r in requests:
        space.target(r, source, _complete_row(space, source))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = TranslateResult(source_dataset=source, source_labels=mode)
    grid_rows: list[np.ndarray] = []

    from rich.progress import Progress

    with Progress(console=console, disable=not progress) as bar:
        task = bar.add_task("translating", total=len(paths))
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            images = np.stack([load_image(p, translator.image_size) for p in chunk])
            x = translator.to_input(images)
            if given is not None:
                labels = np.repeat(given[None], len(chunk), axis=0)
            elif translator.D is not None:
                labels = translator.predict_labels(x, source)
            else:
                labels = np.zeros((len(chunk), space.dataset(source).width), np.float32)
            columns = [images]
            for request, slug in zip(requests, slugs):
                joint = np.stack([space.encode(*space.target(request, source, row)) for row in labels])
                out = to_uint8_images(translator.translate(x, joint))
                columns.append(out)
                for k, image in enumerate(out):
                    path = out_dir / f"{stems[start + k]}__{slug}.png"
                    save_png(_pil(image), path)
                    result.files.append(path)
            if grid:
                grid_rows.append(np.stack(columns, axis=1))
            bar.advance(task, len(chunk))
    if grid:
        tiles = np.concatenate(grid_rows)
        titles = [["input"]] + requests  # one request per line
        result.grid = save_png(render_grid(tiles, titles, row_titles=[p.name for p in paths]), out_dir / "grid.png")
    return result


def _complete_row(space: LabelSpace, dataset: str) -> np.ndarray:
    row = np.zeros(space.dataset(dataset).width, dtype=np.float32)
    for gs in space.group_slices(dataset):
        if gs.group.kind == "onehot":
            row[gs.local_start] = 1
    return row


def _pil(image: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(image, "RGB")
