"""What ``starkit translate`` writes per input and target: one image, or — for a diverse model
such as StarGAN v2 — several styles or one image per reference.

:func:`output_plan` turns ``--styles``, ``--seed`` and ``--reference`` into the list of
:class:`OutputVariant` s that :func:`starkit.translate.translate_files` writes for every input
and target, each with its file-name suffix and grid title:

* a model with one translation per target (StarGAN): one variant, no suffix
  (``<stem>__<slug>.png``, as always); ``--styles`` above 1, ``--seed`` and ``--reference``
  are refused, naming the model family;
* a diverse model, latent-guided: ``--styles N`` variants, style ``j`` of seed ``S`` written
  to ``<stem>__<slug>__style<j>.png`` (``j`` from 0; the same seed gives the same styles);
* a model that takes references, reference-guided: one variant per reference image, its style
  read off the reference for the requested target domain, written to
  ``<stem>__<slug>__ref-<refstem>.png``; the grid then starts with a row of the references.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .inference import TranslateError, Translator


@dataclass(frozen=True)
class OutputVariant:
    """One output per input and target: ``suffix`` goes after ``<stem>__<slug>`` in its file
    name, ``title`` (if any) under the target in the grid's column title, and ``translate(x,
    joint_targets)`` makes the float images."""

    suffix: str
    title: str | None
    translate: Callable[[Any, np.ndarray], Any]


@dataclass
class OutputPlan:
    """The variants written per input and target, and what the user chose: ``styles`` and
    ``seed`` (latent-guided), ``references`` (their files) and ``reference_images`` (uint8
    ``[R,H,W,3]``, the grid's first row), all ``None``/empty where not used."""

    variants: list[OutputVariant]
    styles: int | None = None
    seed: int | None = None
    references: list[Path] = field(default_factory=list)
    reference_images: np.ndarray | None = None


def family_of(translator: Translator) -> str:
    """The translator's model family's name, for messages."""
    return getattr(translator, "family_name", None) or type(translator).__name__


def output_plan(translator: Translator, styles: int | None, seed: int | None, references: Sequence[str | Path],
                conditioning: Mapping[str, str]) -> OutputPlan:
    """The variants ``translate_files`` writes, checked before any work."""
    if styles is not None and styles < 1:
        raise TranslateError(f"--styles must be at least 1, got {styles}")
    if seed is not None and seed < 0:
        raise TranslateError(f"--seed must be 0 or more, got {seed}")
    if references:
        return _reference_plan(translator, styles, seed, references)
    if translator.diverse:
        return _latent_plan(translator, styles or 1, seed or 0)
    if (styles or 1) > 1 or seed is not None:
        option = "--seed" if seed is not None else f"--styles {styles}"
        raise TranslateError(f"{option}: the {family_of(translator)} model family gives one translation per "
                             "target; it draws no styles")
    plain = OutputVariant("", None, lambda x, joint: translator.translate(x, joint, **conditioning))
    return OutputPlan([plain])


def _latent_plan(translator: Translator, styles: int, seed: int) -> OutputPlan:
    """Style ``j`` of ``seed`` for ``j`` in ``0..styles-1``."""

    def variant(j: int) -> OutputVariant:
        return OutputVariant(f"__style{j}", f"style {j}",
                             lambda x, joint: translator.translate_latent(x, joint, style=j, seed=seed))

    return OutputPlan([variant(j) for j in range(styles)], styles=styles, seed=seed)


def _reference_plan(translator: Translator, styles: int | None, seed: int | None,
                    references: Sequence[str | Path]) -> OutputPlan:
    """One variant per reference image (files or folders of them, in order)."""
    if not translator.takes_reference:
        raise TranslateError(f"--reference: the {family_of(translator)} model family takes no reference images")
    if (styles or 1) > 1 or seed is not None:
        raise TranslateError("--reference takes each output's style from a reference image; "
                             "give --styles/--seed (latent styles) or --reference, not both")
    paths, images = load_references(references, translator.image_size)
    stems = reference_stems(paths)

    def variant(r: int) -> OutputVariant:
        reference = translator.to_input(images[r : r + 1])
        return OutputVariant(f"__ref-{stems[r]}", f"ref {stems[r]}",
                             lambda x, joint: translator.translate_reference(x, joint, reference))

    return OutputPlan([variant(r) for r in range(len(paths))], references=paths, reference_images=images)


def load_references(items: Sequence[str | Path], size: int) -> tuple[list[Path], np.ndarray]:
    """The reference files (each item an image or a folder of them) and their pixels, uint8
    ``[R, size, size, 3]``, prepared like the inputs. An unreadable reference is an error naming it."""
    from .data.images import ImageError
    from .translate_inputs import list_inputs, load_input

    paths = [p for item in items for p in _reference_files(item, list_inputs)]
    images = []
    for path in paths:
        try:
            images.append(load_input(path, size)[0])
        except ImageError as exc:
            raise TranslateError(f"--reference {path}: {exc}") from None
    return paths, np.stack(images)


def _reference_files(item: str | Path, list_inputs: Callable[[Any], list[Path]]) -> list[Path]:
    try:
        return list_inputs(item)
    except TranslateError as exc:
        raise TranslateError(str(exc).replace("--input", "--reference", 1)) from None


def reference_stems(paths: Sequence[Path]) -> list[str]:
    """File-name-safe, unique stems of the references (``cat.png``, ``cat.jpg`` -> ``cat-png``,
    ``cat-jpg``; the same file twice -> ``cat``, ``cat-2``)."""
    import re

    from .translate_inputs import output_stems

    stems = [re.sub(r"[^A-Za-z0-9_.-]", "_", s) for s in output_stems(paths)]
    seen: dict[str, int] = {}
    out = []
    for s in stems:
        seen[s] = seen.get(s, 0) + 1
        out.append(s if seen[s] == 1 else f"{s}-{seen[s]}")
    return out


def header_row(plan: OutputPlan, targets: int, size: int) -> np.ndarray | None:
    """The reference grid's first row ``[1 + targets * R, H, W, 3]``: a blank tile above the
    inputs, then the references above their columns; ``None`` without references."""
    if plan.reference_images is None:
        return None
    blank = np.full((1, size, size, 3), 255, np.uint8)
    return np.concatenate([blank] + [plan.reference_images] * targets)
