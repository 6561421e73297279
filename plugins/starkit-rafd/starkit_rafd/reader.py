"""The RaFD reader and its dataset spec.

Two layouts are read:

StarGAN's:: ``SOURCE/train/<expression>/*.jpg`` and ``SOURCE/test/<expression>/*.jpg`` — face
    crops prepared for the StarGAN code; the split comes from the folder.
The release's:: every ``Rafd<pose>_<subject>_..._<expression>_<gaze>.jpg`` in ``SOURCE`` itself
    — raw 681x1024 portraits; the face is framed with a box (:mod:`starkit_rafd.crop`), only the
    frontal camera (pose 090) is kept by default, and the split is by subject
    (:mod:`starkit_rafd.splits`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Mapping

from starkit.errors import StarkitError
from starkit.spec import AttributeGroup, DatasetFormatError, DatasetSpec, RawSample, Skipped

from .crop import DEFAULT_BOX, CroppedImage
from .names import EXPRESSIONS, GAZES, IMAGE_SUFFIXES, POSES, RafdNameError, parse_name
from .splits import held_out_subjects

STARGAN_SPLITS = ("train", "test")
DEFAULT_POSES = ("090",)
DEFAULT_TEST_FRACTION = 0.1

OPTIONS = {
    "poses": "camera angles to keep, comma-separated from 000,045,090,135,180, or 'all' "
    "(default for raw files: 090, the frontal camera; StarGAN-layout folders: all)",
    "gazes": "gaze directions to keep, comma-separated from frontal,left,right (default: all)",
    "test_fraction": "raw files: fraction of subjects held out as test (default 0.1)",
    "split_seed": "raw files: seed of the shuffle that picks the test subjects (default 0)",
    "box": "raw files: face box left,top,width,height in pixels of the 681x1024 images "
    f"(default {','.join(map(str, DEFAULT_BOX))})",
}


def _option_error(key: str, problem: str) -> StarkitError:
    return StarkitError(f"dataset 'rafd': option {key}: {problem}")


def _choices(options: Mapping[str, str], key: str, valid: tuple[str, ...], normalise=str.lower) -> tuple[str, ...] | None:
    raw = options.get(key, "").strip()
    if not raw:
        return None
    if raw.lower() == "all":
        return valid
    chosen = tuple(normalise(v.strip()) for v in raw.split(",") if v.strip())
    unknown = [v for v in chosen if v not in valid]
    if unknown or not chosen:
        raise _option_error(key, f"unknown value {(unknown or [raw])[0]!r}; valid: {', '.join(valid)} or all")
    return chosen


def _pose(value: str) -> str:
    return f"{int(value):03d}" if value.isdigit() else value  # "90" means "090"


def _number(options: Mapping[str, str], key: str, kind: type, default):
    raw = options.get(key, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise _option_error(key, f"expected {'an integer' if kind is int else 'a number'}, got {raw!r}") from None


def _box(options: Mapping[str, str]) -> tuple[int, int, int, int] | None:
    raw = options.get("box", "").strip()
    if not raw:
        return None
    try:
        box = tuple(int(v) for v in raw.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or box[0] < 0 or box[1] < 0 or box[2] <= 0 or box[3] <= 0:
        raise _option_error("box", f"expected left,top,width,height (non-negative, positive size), got {raw!r}")
    return box  # type: ignore[return-value]


def _is_image(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES


def _labels(expression: str) -> tuple[int, ...]:
    return tuple(int(e == expression) for e in EXPRESSIONS)


def read_rafd(source: Path | None, options: Mapping[str, str]) -> Iterator[RawSample | Skipped]:
    if source is None:
        raise StarkitError("dataset 'rafd': needs --source (the RaFD folder)")
    root = Path(source)
    if not root.is_dir():
        raise DatasetFormatError(root, "source folder not found (or not a folder)")
    poses = _choices(options, "poses", POSES, _pose)
    gazes = _choices(options, "gazes", GAZES)
    box = _box(options)
    if any((root / s).is_dir() for s in STARGAN_SPLITS):
        for key in ("test_fraction", "split_seed"):
            if options.get(key, "").strip():
                raise _option_error(key, "applies to raw files only; the StarGAN layout's split comes from its folders")
        return _read_stargan_layout(root, poses, gazes, box)
    test_fraction = _number(options, "test_fraction", float, DEFAULT_TEST_FRACTION)
    if not 0 <= test_fraction < 1:
        raise _option_error("test_fraction", f"must be at least 0 and below 1, got {test_fraction}")
    seed = _number(options, "split_seed", int, 0)
    return _read_release(root, poses or DEFAULT_POSES, gazes or GAZES, box or DEFAULT_BOX, test_fraction, seed)


def _read_stargan_layout(root: Path, poses, gazes, box) -> Iterator[RawSample | Skipped]:
    for split in STARGAN_SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        entries = sorted(os.scandir(split_dir), key=lambda e: e.name)
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith(".") and entry.name not in EXPRESSIONS:
                raise DatasetFormatError(
                    entry.path, f"unknown expression folder {entry.name!r}; expected one of {', '.join(EXPRESSIONS)}"
                )
            if entry.is_file() and _is_image(entry.name):
                yield Skipped(f"{split}/{entry.name}", "image outside an expression folder")
        for expression in EXPRESSIONS:
            folder = split_dir / expression
            if not folder.is_dir():
                continue
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                name = f"{split}/{expression}/{entry.name}"
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                if not _is_image(entry.name):
                    yield Skipped(name, "not an image")
                    continue
                try:
                    parsed = parse_name(entry.name)
                except RafdNameError as exc:
                    parsed, reason = None, str(exc)
                if poses is not None or gazes is not None:
                    # Filtering needs the camera and gaze, which only a RaFD file name tells.
                    if parsed is None:
                        yield Skipped(name, f"cannot filter by pose or gaze: {reason}")
                        continue
                    if (poses and parsed.pose not in poses) or (gazes and parsed.gaze not in gazes):
                        continue
                path = Path(entry.path)
                yield RawSample(
                    name=name,
                    split=split,
                    labels=_labels(expression),
                    path=None if box else path,
                    render=CroppedImage(path, box) if box else None,
                    meta=parsed.meta() if parsed else None,
                )


def _read_release(root: Path, poses, gazes, box, test_fraction: float, seed: int) -> Iterator[RawSample | Skipped]:
    kept, found_any = [], False
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if not _is_image(entry.name):
            yield Skipped(entry.name, "not an image")
            continue
        found_any = True
        try:
            parsed = parse_name(entry.name)
        except RafdNameError as exc:
            yield Skipped(entry.name, str(exc))
            continue
        if parsed.pose in poses and parsed.gaze in gazes:
            kept.append((entry.name, Path(entry.path), parsed))
    if not found_any:
        raise DatasetFormatError(
            root, "no images found: expected RaFD files (Rafd090_01_Caucasian_female_angry_frontal.jpg) "
            "or StarGAN's train/ and test/ folders"
        )
    held_out = held_out_subjects((p.subject for _, _, p in kept), test_fraction, seed)
    for name, path, parsed in kept:
        yield RawSample(
            name=name,
            split="test" if parsed.subject in held_out else "train",
            labels=_labels(parsed.expression),
            render=CroppedImage(path, box),
            meta=parsed.meta(),
        )


def rafd_spec() -> DatasetSpec:
    return DatasetSpec(
        name="rafd",
        groups=(AttributeGroup("expression", "onehot", EXPRESSIONS),),
        reader=read_rafd,
        splits=STARGAN_SPLITS,
        crop=None,  # the largest centred square of the (already face-framed) image
        image_size=128,
        description="RaFD: 67 subjects, eight facial expressions (one-hot), frontal camera by default",
        version="1",
        options=OPTIONS,
    )
