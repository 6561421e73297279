"""What the quality recipe's departures cost per training iteration, measured side by side.

    .venv/bin/python bench/recipe_cost.py --out bench/results/recipe_cost.json

Two StarGAN steps with the quality benchmark's networks (``bench/quality.py``'s cpu20
profile, 32 px, batch 16, synth-celeba + synth-rafd label space) are built in one process:
**before** has the departures below off (``lambda_cls_fake``, ``cross_targets`` and
``mask_noise`` at 0, ``g_colour_map`` "none"), **now** at the profile's values; ``--keys``
picks some of them to switch on alone (each its own mode, on top of before); ``--set
KEY=VALUE`` times the recipe with any StarGAN key changed (a mode of its own, on top of now). Both train on the same synthetic batches (random images, random valid labels, the
datasets alternating as the joint loader does), single-threaded as the benchmark's jobs are.
After ``--warmup`` iterations each, every repeat times ``--iters`` iterations per mode, the
modes taking turns iteration by iteration, so that the machine's load changes hit all alike.
Reported: each mode's median seconds per iteration per repeat, and the median over repeats of
the per-repeat ratio to **before**. Data loading is not included (it is the same for all).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import quality as q  # noqa: E402

#: The recipe's later departures and the value that turns each off.
RECIPE_KEYS = {"lambda_cls_fake": 0.0, "cross_targets": 0.0, "mask_noise": 0.0, "g_colour_map": "none"}


def training_override(pair: str) -> tuple[str, Any]:
    """``KEY=VALUE`` for a StarGAN training key, the value read as the type of its default."""
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    key, sep, text = pair.partition("=")
    key = key.strip()
    kind = type(STARGAN_DEFAULTS.get(key))
    if not sep or kind not in (str, int, float):
        raise SystemExit(f"--set {pair!r}: expected KEY=VALUE with KEY a StarGAN key taking a name or a number")
    try:
        return key, kind(text.strip())
    except ValueError:
        raise SystemExit(f"--set {pair!r}: {key} must be of type {kind.__name__}") from None


def build_steps(modes: dict[str, dict], seed: int = 0):
    import torch

    from starkit.catalog import get_dataset
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.labels import LabelSpace
    from starkit.training.device import Runtime
    from starkit.families.stargan.step import StarGANStep

    space = LabelSpace.from_specs([get_dataset(q.CELEBA), get_dataset(q.RAFD)])
    profile = q.PROFILES["cpu20"]
    training = q.training_keys(profile)
    steps = {}
    for name, changes in modes.items():
        torch.manual_seed(seed)  # the same initial weights for every mode
        config = {**STARGAN_DEFAULTS, **training, "image_size": profile.image_size, "seed": seed, **changes}
        steps[name] = StarGANStep(space, config, Runtime(torch.device("cpu")))
    return space, profile, steps


def batches(space, profile, count: int, seed: int = 0):
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        name = space.names[i % len(space.names)]
        images = torch.from_numpy(rng.uniform(-1, 1, (profile.batch_size, 3, profile.image_size,
                                                      profile.image_size)).astype("float32"))
        out.append((name, images, torch.from_numpy(space.random_labels(name, profile.batch_size, rng))))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=40, help="timed iterations per mode and repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--keys", default="", help="comma-separated recipe keys to time one at a time too")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="also time the recipe with this training key changed (a mode of its own; repeatable)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    profile = q.PROFILES["cpu20"]
    before = dict(RECIPE_KEYS)
    modes = {"before": before, "now": {k: getattr(profile, k) for k in RECIPE_KEYS}}
    for key in filter(None, args.keys.split(",")):
        if key not in RECIPE_KEYS:
            raise SystemExit(f"--keys: {key!r} is not one of {', '.join(RECIPE_KEYS)}")
        modes[f"only {key}"] = {**before, key: getattr(profile, key)}
    for item in args.set:
        key, value = training_override(item)
        modes[f"now, {key}={value}"] = {**modes["now"], key: value}
    space, profile, steps = build_steps(modes)
    data = batches(space, profile, 64)
    iteration = {name: 0 for name in steps}

    def run(name: str) -> float:
        step = steps[name]
        dataset, images, labels = data[iteration[name] % len(data)]
        started = time.perf_counter()
        step.train_step(iteration[name], dataset, images, labels)
        iteration[name] += 1
        return time.perf_counter() - started

    for name in steps:
        for _ in range(args.warmup):
            run(name)
    medians: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for repeat in range(args.repeats):
        times: dict[str, list[float]] = {name: [] for name in steps}
        order = names[repeat % len(names):] + names[: repeat % len(names)]
        for _ in range(args.iters):
            for name in order:
                times[name].append(run(name))
        for name in steps:
            medians[name].append(statistics.median(times[name]))
    result = {
        "format": "starkit.bench.recipe_cost",
        "version": 1,
        "git_commit": q.git_commit(),
        "torch": torch.__version__,
        "threads": 1,
        "batch_size": profile.batch_size,
        "image_size": profile.image_size,
        "modes": {name: {"changes": modes[name], "seconds_per_iteration_median": statistics.median(medians[name]),
                         "per_repeat": [round(v, 5) for v in medians[name]]} for name in steps},
        "ratio_to_before_median": {name: round(statistics.median(m / b for m, b in zip(medians[name], medians["before"])), 3)
                                   for name in steps if name != "before"},
        "settings": {"iters": args.iters, "repeats": args.repeats, "warmup": args.warmup},
    }
    if args.out:
        q._write_json(args.out, result)
    for name in steps:
        ratio = result["ratio_to_before_median"].get(name, 1.0)
        print(f"{name:24s} {result['modes'][name]['seconds_per_iteration_median'] * 1000:7.1f} ms/iteration  ×{ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
