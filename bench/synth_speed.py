"""Time the synthetic face renderer: milliseconds per face at several sizes.

Each face is rendered ``--repeat`` times and its fastest run is kept (the best of several
runs filters out other processes on a shared machine); the mean and the slowest face over
``--faces`` faces of both styles are printed::

    python bench/synth_speed.py --sizes 32 64 128 256
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from starkit.synth.faces import dataset_face, render_face


def time_size(size: int, faces: int, repeat: int) -> tuple[float, float]:
    best = []
    for i in range(faces):
        params = dataset_face("synth-celeba" if i % 2 else "synth-rafd", 0, i)
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            render_face(params, size)
            runs.append(time.perf_counter() - start)
        best.append(min(runs) * 1000.0)
    return float(np.mean(best)), float(np.max(best))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--faces", type=int, default=20, help="faces per size (default 20)")
    parser.add_argument("--repeat", type=int, default=15, help="runs per face (default 15)")
    args = parser.parse_args(argv)
    render_face(dataset_face("synth-celeba", 0, 0), 64)  # warm up imports and caches
    for size in args.sizes:
        mean, worst = time_size(size, args.faces, args.repeat)
        print(f"{size:4d} px: {mean:6.2f} ms per face (mean of best runs), slowest face {worst:6.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
