"""Data-path benchmark: ingestion speed, and shard reading versus per-sample JPEG decoding.

    .venv/bin/python bench/data_speed.py [--images 400] [--repeats 5] [--compression lzf]

(a) ingestion images/s for 178x218 JPEGs (CelebA's size) written to 128x128 shards, with one
    worker (the per-core rate) and with all cores;
(b) training-read images/s through ``ShardImageDataset`` (HDF5 read + seeded albumentations
    flip + tensor) versus the reference StarGAN per-sample pipeline on the same JPEG files
    (PIL open -> RandomHorizontalFlip -> CenterCrop(178) -> Resize(128) -> ToTensor ->
    Normalize), both in one process with one torch thread, measured in alternation so that
    noise from other load hits both sides alike;
(c) what checking each image's checksum on read costs: the same shard reads with the check
    turned off (``check_images=False``), in the same alternation.

Prints one JSON object with every run, the medians and the median of the per-repeat ratios.
The synthetic JPEGs are smooth, face-sized blobs with mild noise, so they compress to sizes
like CelebA's (~10 KB), which is what decode speed depends on.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CELEBA_W, CELEBA_H, CROP, SIZE = 178, 218, 178, 128


def make_jpegs(folder: Path, n: int, seed: int = 0) -> list[Path]:
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    paths = []
    yy, xx = np.mgrid[0:CELEBA_H, 0:CELEBA_W]
    for i in range(n):
        base = rng.integers(40, 200, 3)
        tilt = rng.normal(0, 0.4, 3)
        pixels = np.clip(base + tilt * (yy[..., None] - CELEBA_H / 2) * 0.5, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            cx, cy = rng.integers(20, CELEBA_W - 20), rng.integers(30, CELEBA_H - 30)
            rx, ry = rng.integers(10, 60), rng.integers(10, 70)
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        image = image.filter(ImageFilter.GaussianBlur(2))
        noisy = np.asarray(image, np.int16) + rng.normal(0, 6, (CELEBA_H, CELEBA_W, 3)).astype(np.int16)
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def jpeg_reader(source, options):
    from starkit.spec import RawSample

    for i, path in enumerate(sorted(Path(source).glob("*.jpg"))):
        yield RawSample(path.name, "train", (i % 2, (i // 2) % 2), path=path)


def bench_spec():
    from starkit.spec import AttributeGroup, DatasetSpec

    return DatasetSpec(
        name="bench-jpegs",
        groups=(AttributeGroup("face", "binary", ("Male", "Young")),),
        reader=jpeg_reader,
        crop=CROP,
        image_size=SIZE,
        splits=("train",),
    )


def time_ingest(source: Path, out: Path, workers: int, compression: str | None) -> float:
    from starkit.data.ingest import ingest

    result = ingest(bench_spec(), source, out, workers=workers, force=True, progress=False, compression=compression)
    return result.written / result.seconds


def reference_transform():
    import torchvision.transforms as T

    return T.Compose(
        [
            T.RandomHorizontalFlip(),
            T.CenterCrop(CROP),
            T.Resize(SIZE),
            T.ToTensor(),
            T.Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
        ]
    )


def time_reference(paths: list[Path], order: np.ndarray, transform) -> float:
    from PIL import Image

    start = time.perf_counter()
    for i in order:
        with Image.open(paths[i]) as im:
            transform(im.convert("RGB"))
    return len(order) / (time.perf_counter() - start)


def time_shards(dataset, order: np.ndarray) -> float:
    start = time.perf_counter()
    for i in order:
        dataset[int(i)]
    return len(order) / (time.perf_counter() - start)


def time_shards_batched(dataset, order: np.ndarray, batch: int = 16) -> float:
    """Also collate and normalise to [-1, 1] on the CPU: the whole way to model input."""
    from torch.utils.data import default_collate

    from starkit.data.loading import to_model_input

    start = time.perf_counter()
    for s in range(0, len(order), batch):
        items = default_collate([dataset[int(i)] for i in order[s : s + batch]])
        to_model_input(items["image"], "cpu")
    return len(order) / (time.perf_counter() - start)


def versions() -> dict[str, str]:
    import h5py
    import PIL
    import torch
    from PIL import features

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "pillow": PIL.__version__,
        "libjpeg_turbo": str(features.check_feature("libjpeg_turbo")),
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "cpus": str(os.cpu_count()),
        "load_average_1min": f"{os.getloadavg()[0]:.2f}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="for the all-cores ingestion run")
    parser.add_argument("--compression", choices=("none", "lzf", "gzip"), default="none")
    args = parser.parse_args(argv)
    compression = None if args.compression == "none" else args.compression

    import torch

    from starkit.data.loading import ShardImageDataset
    from starkit.data.shards import DatasetStore

    torch.set_num_threads(1)  # per-core numbers on both sides
    with tempfile.TemporaryDirectory(prefix="starkit-bench-") as tmp:
        tmp = Path(tmp)
        source = tmp / "jpegs"
        source.mkdir()
        paths = make_jpegs(source, args.images)
        jpeg_kb = statistics.mean(p.stat().st_size for p in paths) / 1024

        ingest_one = [time_ingest(source, tmp / "shards", 1, compression) for _ in range(args.repeats)]
        ingest_all = [time_ingest(source, tmp / "shards", args.workers, compression) for _ in range(args.repeats)]
        shard_mb = sum(p.stat().st_size for p in (tmp / "shards").glob("*.h5")) / 2**20

        dataset = ShardImageDataset(tmp / "shards", augment=True, seed=0)
        unchecked = ShardImageDataset(DatasetStore.open(tmp / "shards", check_images=False), augment=True, seed=0)
        transform = reference_transform()
        rng = np.random.default_rng(0)
        ours, ours_unchecked, ours_batched, reference, ratios, check_costs = [], [], [], [], [], []
        time_shards(dataset, rng.permutation(len(dataset))[:50])  # warm-up: imports, handles
        time_shards(unchecked, rng.permutation(len(dataset))[:50])
        time_reference(paths, rng.permutation(len(paths))[:20], transform)
        for _ in range(args.repeats):
            order = rng.permutation(len(paths))
            ours.append(time_shards(dataset, order))
            reference.append(time_reference(paths, order, transform))
            ours_unchecked.append(time_shards(unchecked, order))
            ours_batched.append(time_shards_batched(dataset, order))
            ratios.append(ours[-1] / reference[-1])
            check_costs.append(ours_unchecked[-1] / ours[-1])

    def summary(values: list[float]) -> dict[str, float | list[float]]:
        return {"median": round(statistics.median(values), 1), "runs": [round(v, 1) for v in values]}

    report = {
        "command": "python bench/data_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": versions(),
        "images": args.images,
        "mean_jpeg_kb": round(jpeg_kb, 1),
        "shard_mb": round(shard_mb, 1),
        "compression": args.compression,
        "ingest_images_per_s": {"workers_1": summary(ingest_one), f"workers_{args.workers}": summary(ingest_all)},
        "read_images_per_s": {
            "shards_augmented": summary(ours),
            "shards_augmented_unchecked": summary(ours_unchecked),
            "shards_to_model_input_cpu": summary(ours_batched),
            "reference_jpeg_transforms": summary(reference),
        },
        "read_speedup_ratio": summary(ratios),
        # How much faster reading is without the per-image checksum check (1.0: it costs nothing).
        "unchecked_over_checked": {"median": round(statistics.median(check_costs), 3),
                                   "runs": [round(v, 3) for v in check_costs]},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
