"""Translating images with a trained (or imported) model: the Python API of ``starkit translate``.

    from starkit.translate import Translator, translate_files
    translator = Translator.from_run("runs/joint")  # the checkpoint's family's translator
    result = translate_files(translator, ["faces/"], ["Blond_Hair", "Male=0", "rafd:happy"], "out/", grid=True)

The :class:`~starkit.inference.Translator` comes from the checkpoint's model family
(:mod:`starkit.inference`); this module only prepares inputs, targets and outputs.

Each target is a list of requests such as ``["Blond_Hair", "Male=0"]`` or ``["rafd:happy"]``
(:meth:`starkit.labels.LabelSpace.target`). Requests change the *source* labels of each input;
the inputs carry no labels, so they are estimated:

* when the model can predict them (``translator.label_predictor``, e.g. StarGAN's
  discriminator in every trained run), it predicts the source dataset's labels for each input;
* otherwise (weights imported from the reference implementation), the source labels are
  given with ``source_labels`` (``--source-labels "Black_Hair,Young"``), else all zero — and
  then a target must name a member of every one-hot group itself (``Brown_Hair,Male``).

Explicit ``source_labels`` win over the model's predictions. ``conditioning`` (``--condition
KEY=VALUE``) goes to the family's translator as it is; a family refuses what it does not take.

A target from another dataset (``rafd:happy`` for a CelebA face) starts from that dataset's
all-zero labels and uses its mask (paper §3.2). Inputs are decoded to 8-bit RGB
(:func:`starkit.data.images.to_rgb8`), centre-cropped to their largest square and resized to
the model's image size; :attr:`TranslateResult.inputs` records what was done to each, and
:func:`preprocessing_summary` says it in a few lines. An input that cannot be decoded is
skipped, listed in :attr:`TranslateResult.skipped` and in ``OUT/skipped.json``; the others are
translated all the same.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .inference import GENERATOR_WEIGHTS, TranslateError, Translator, load_translator
from .labels import LabelSpace
from .translate_inputs import InputRecord, SkippedInput, list_inputs, load_input, output_stems
from .translate_styles import OutputPlan, OutputVariant, header_row, output_plan

__all__ = ["GENERATOR_WEIGHTS", "TranslateError", "Translator", "load_translator", "translate_files"]

#: Written into the output folder when inputs were skipped: which, and why.
SKIPPED_REPORT = "skipped.json"


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


@dataclass
class TranslateResult:
    files: list[Path] = field(default_factory=list)
    grid: Path | None = None
    source_dataset: str = ""
    source_labels: str = ""  # "given", "zeros" or what predicted them (translator.label_predictor)
    inputs: list[InputRecord] = field(default_factory=list)  # the translated inputs, in order
    skipped: list[SkippedInput] = field(default_factory=list)  # unreadable inputs, with reasons
    skipped_report: Path | None = None  # OUT/skipped.json, when inputs were skipped
    styles: int | None = None  # latent styles per input and target (diverse models)
    seed: int | None = None  # the seed of those styles
    references: list[Path] = field(default_factory=list)  # reference images (reference-guided)


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
    conditioning: Mapping[str, str] | None = None,
    styles: int | None = None,
    seed: int | None = None,
    references: Sequence[str | Path] = (),
) -> TranslateResult:
    """Translate every image of ``inputs`` (files or folders) to every target and write
    ``out_dir/<stem>__<target-slug>.png``; with ``grid``, also ``out_dir/grid.png`` (rows:
    inputs; columns: the input, then each target).

    A diverse model (StarGAN v2) writes ``styles`` styles of ``seed``, or one output per image of
    ``references``, per input and target (names and grid: :mod:`starkit.translate_styles`).

    An input that cannot be decoded is skipped and listed in the result and in
    ``out_dir/skipped.json``; when no input at all could be read, :class:`TranslateError`."""
    space = translator.label_space
    source = source_dataset or space.names[0]
    space.index(source)  # LabelError naming the valid datasets
    requests = _parse_requests(targets, batch_size)
    paths = [p for item in inputs for p in list_inputs(item)]
    stems = output_stems(paths)
    slugs = [target_slug(t) for t in targets]
    given = parse_source_labels(space, source, source_labels) if source_labels else None
    mode = "given" if given is not None else (translator.label_predictor or "zeros")
    conditioning = dict(conditioning or {})
    translator.check_conditioning(conditioning)
    _check_requests(space, requests, source)
    plan = output_plan(translator, styles, seed, references, conditioning)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = TranslateResult(source_dataset=source, source_labels=mode, styles=plan.styles, seed=plan.seed,
                             references=plan.references)
    translate = functools.partial(_translate_chunk, translator, targets=list(zip(requests, slugs)), source=source,
                                  given=given, variants=plan.variants, out_dir=out_dir, result=result)
    grid_rows = _translate_batches(list(zip(paths, stems)), batch_size, translator.image_size, translate, result,
                                   keep_rows=grid, progress=progress, console=console)
    result.skipped_report = _write_skipped_report(out_dir, result.skipped)
    if not result.inputs:
        raise TranslateError(_nothing_translated(result.skipped, result.skipped_report))
    if grid:
        result.grid = _save_grid(grid_rows, requests, plan, result.inputs, out_dir)
    return result


def _translate_batches(inputs: Sequence[tuple[Path, str]], batch_size: int, image_size: int,
                       translate: Callable[[np.ndarray, Sequence[str]], list[np.ndarray]], result: TranslateResult,
                       keep_rows: bool, progress: bool, console: Any) -> list[np.ndarray]:
    """Decode the ``(path, stem)`` inputs batch by batch (unreadable ones go to ``result``) and
    hand each batch's images to ``translate(images, stems)``, which returns the batch's grid
    columns, with a progress bar over the inputs. Returns each batch's grid rows when
    ``keep_rows``."""
    from rich.progress import Progress

    rows: list[np.ndarray] = []
    with Progress(console=console, disable=not progress) as bar:
        task = bar.add_task("translating", total=len(inputs))
        for start in range(0, len(inputs), batch_size):
            chunk = list(inputs[start : start + batch_size])
            images, stems = _load_chunk(chunk, image_size, result)
            if stems:
                columns = translate(images, stems)
                if keep_rows:
                    rows.append(np.stack(columns, axis=1))
            bar.advance(task, len(chunk))
    return rows


def _parse_requests(targets: Sequence[str], batch_size: int) -> list[list[str]]:
    if batch_size < 1:
        raise TranslateError(f"--batch-size must be at least 1, got {batch_size}")
    requests = [parse_target(t) for t in targets]
    if not requests:
        raise TranslateError("give at least one --to target")
    return requests


def _check_requests(space: LabelSpace, requests: Sequence[list[str]], source: str) -> None:
    """Check every request before any work, against a source row with every one-hot group set
    (an unknown attribute or a mix of datasets fails fast; a missing one-hot member can
    only be judged per input, from its own labels)."""
    for r in requests:
        space.target(r, source, space.first_members_row(source))


def _translate_chunk(translator: Translator, images: np.ndarray, stems: Sequence[str],
                     targets: Sequence[tuple[list[str], str]], source: str, given: np.ndarray | None,
                     variants: Sequence[OutputVariant], out_dir: Path, result: TranslateResult) -> list[np.ndarray]:
    """Translate a batch of decoded inputs to every ``(request, slug)`` target, each variant
    (one, or a diverse model's styles or references), writing each output to
    ``out_dir/<stem>__<slug><variant suffix>.png`` (listed in ``result.files``). Returns the
    grid's columns: the inputs, then each target's outputs, variant by variant."""
    from .training.samples import save_png, to_uint8_images

    x = translator.to_input(images)
    labels = _source_labels(translator, x, source, given)
    columns = [images]
    for request, slug in targets:
        joint = _joint_targets(translator.label_space, labels, request, source)
        for variant in variants:
            out = to_uint8_images(variant.translate(x, joint))
            columns.append(out)
            for stem, image in zip(stems, out):
                result.files.append(save_png(_pil(image), out_dir / f"{stem}__{slug}{variant.suffix}.png"))
    return columns


def _save_grid(grid_rows: Sequence[np.ndarray], requests: Sequence[list[str]], plan: OutputPlan,
               inputs: Sequence[InputRecord], out_dir: Path) -> Path:
    """``out_dir/grid.png``: a row per input (titled by its file name), the input then each
    target (each of its styles or references); with references, a first row showing them."""
    from .training.samples import render_grid, save_png

    tiles = np.concatenate(grid_rows)
    # one request per line, then the variant's title (a style, a reference) if it has one
    titles = [["input"]] + [list(r) + ([v.title] if v.title else []) for r in requests for v in plan.variants]
    row_titles = [r.path.name for r in inputs]
    header = header_row(plan, len(requests), tiles.shape[2])
    if header is not None:
        tiles = np.concatenate([header[None], tiles])
        row_titles = ["reference"] + row_titles
    return save_png(render_grid(tiles, titles, row_titles=row_titles), out_dir / "grid.png")


def _load_chunk(chunk: Sequence[tuple[Path, str]], size: int, result: TranslateResult) -> tuple[np.ndarray, list[str]]:
    """Decode a batch of inputs; the unreadable ones go to ``result.skipped``, the others'
    records to ``result.inputs``. Returns the images and the output stems of those read."""
    from .data.images import ImageError

    images, stems = [], []
    for path, stem in chunk:
        try:
            image, record = load_input(path, size)
        except ImageError as exc:
            result.skipped.append(SkippedInput(path, str(exc)))
            continue
        images.append(image)
        stems.append(stem)
        result.inputs.append(record)
    return (np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)), stems


def _source_labels(translator: Translator, x: Any, source: str, given: np.ndarray | None) -> np.ndarray:
    """Each input's labels of the source dataset (``x``: the model's inputs): given,
    predicted by the model, or all zero."""
    if given is not None:
        return np.repeat(given[None], len(x), axis=0)
    if translator.label_predictor is not None:
        return translator.predict_labels(x, source)
    return np.zeros((len(x), translator.label_space.dataset(source).width), np.float32)


def _joint_targets(space: LabelSpace, labels: np.ndarray, request: list[str], source: str) -> np.ndarray:
    """The joint target vectors ``[B, dim]`` of ``request`` for inputs with source labels ``labels``."""
    return np.stack([space.encode(*space.target(request, source, row)) for row in labels])


# ---------------------------------------------------------------------------- reports
def _write_skipped_report(out_dir: Path, skipped: Sequence[SkippedInput]) -> Path | None:
    """``out_dir/skipped.json`` listing the skipped inputs; without any, an old list left by an
    earlier run into the same folder is removed, so that it never describes this one."""
    from .durable import atomic_write_text

    path = out_dir / SKIPPED_REPORT
    if not skipped:
        path.unlink(missing_ok=True)
        return None
    report = {"skipped_count": len(skipped), "skipped": [s.to_dict() for s in skipped]}
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    return path


def skipped_lines(skipped: Sequence[SkippedInput], limit: int = 10) -> list[str]:
    """``path: reason`` for the first ``limit`` skipped inputs, then how many more there are."""
    lines = [f"{s.path}: {s.reason}" for s in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"... and {len(skipped) - limit:,} more")
    return lines


def _nothing_translated(skipped: Sequence[SkippedInput], report: Path | None) -> str:
    listed = "; ".join(skipped_lines(skipped, limit=3))
    return f"no input could be translated: all {len(skipped):,} are unreadable ({listed}; list: {report})"


def _size(width: int, height: int) -> str:
    return f"{width}\u00d7{height}"


def _count(n: int) -> str:
    return f"{n:,} input{'s' if n != 1 else ''}"


def _preprocessing_kind(record: InputRecord) -> tuple[bool, str]:
    """(cropped?, "resized" / "enlarged" / "" for no resize)."""
    side, size = record.crop_side, record.size
    resize = "" if side == size else ("enlarged" if side < size else "resized")
    return record.original_size != (side, side), resize


def _describe(kind: tuple[bool, str], size: int, original: str | None, square: str | None) -> str:
    """``"cropped 1932x782 to 782x782 and resized to 32x32"``; without ``original`` (inputs of
    several sizes) ``"cropped to their centred square and resized to 32x32"``."""
    cropped, resize = kind
    parts = []
    if cropped:
        parts.append(f"cropped {original} to {square}" if original else "cropped to their centred square")
    if resize:
        parts.append(f"{resize} {original + ' ' if original and not cropped else ''}to {_size(size, size)}")
    return " and ".join(parts)


def preprocessing_summary(records: Sequence[InputRecord]) -> list[str]:
    """One line per kind of preprocessing the inputs went through, not one per input: crop and
    resize (``"1 input: cropped 1932x782 to 782x782 and resized to 32x32, the model's size"``),
    then each pixel mode converted to 8-bit RGB. Inputs already at the model's size get none."""
    from .data.images import ALPHA_MODES

    groups: dict[tuple[bool, str], list[InputRecord]] = {}
    for r in records:
        kind = _preprocessing_kind(r)
        if kind != (False, ""):
            groups.setdefault(kind, []).append(r)
    lines = []
    for kind, group in groups.items():
        sizes = sorted({r.original_size for r in group}, key=lambda wh: (wh[0] * wh[1], wh))
        size = group[0].size
        if len(sizes) == 1:
            side = group[0].crop_side
            head, what = _count(len(group)), _describe(kind, size, _size(*sizes[0]), _size(side, side))
        else:
            span = f"{_size(*sizes[0])} to {_size(*sizes[-1])}"
            head, what = f"{_count(len(group))} of {len(sizes):,} sizes ({span})", _describe(kind, size, None, None)
        lines.append(f"{head}: {what}, the model's size")
    modes: dict[str, int] = {}
    for r in records:
        if r.mode != "RGB":
            modes[r.mode] = modes.get(r.mode, 0) + 1
    for mode, n in sorted(modes.items()):
        alpha = ", transparency composited over white" if mode in ALPHA_MODES else ""
        lines.append(f"{_count(n)} of pixel mode {mode}: converted to 8-bit RGB{alpha}")
    return lines




def _pil(image: np.ndarray) -> Any:
    from PIL import Image

    return Image.fromarray(image, "RGB")
