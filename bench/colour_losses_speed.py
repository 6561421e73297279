"""How much the colour critic (``lambda_hist``) adds to a training step, at the quality
benchmark's sizes.

    .venv/bin/python bench/colour_losses_speed.py [--batch 16] [--size 32] [--bins 8] [--repeats 15]

Single thread, median of ``--repeats`` timed calls after one warm-up, each a forward and a
backward pass with respect to the images: the critic scoring a batch through
``soft_histogram`` (scattering each pixel's 8 corner weights), the same through the dense
product of per-channel tent weights (the definition, as the first version computed it); and
the benchmark's generator (attention, colour map, 16 base channels, 3 residual blocks) for
scale. Prints JSON (milliseconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def main(argv: list[str] | None = None) -> int:
    import torch

    from starkit.families.stargan.parts.colour_critic import SQRT_EPS, ColourCritic
    from starkit.families.stargan.networks import Generator

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--bins", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    label_dim = 13  # synth-celeba's 5 attributes and synth-rafd's 8 expressions
    x = torch.rand(args.batch, 3, args.size, args.size) * 2 - 1
    y = torch.zeros(args.batch, label_dim)
    critic = ColourCritic(label_dim, args.bins)
    G = Generator(label_dim + 2, 16, 3, output="attention", colour_map="global")
    c = torch.zeros(args.batch, label_dim + 2)
    centres = torch.linspace(-1, 1, args.bins)

    def scatter():
        images = x.clone().requires_grad_(True)
        critic.score(images, y).sum().backward()

    def dense():
        images = x.clone().requires_grad_(True)
        w = (1 - (images.flatten(2)[..., None] - centres).abs() / (2 / (args.bins - 1))).clamp_min(0)
        r, g, b = w.unbind(1)
        hist = torch.einsum("bpi,bpj,bpk->bijk", r, g, b).reshape(args.batch, -1) / r.shape[1]
        critic((hist + SQRT_EPS).sqrt() - SQRT_EPS**0.5, y).sum().backward()

    def generator():
        G(x.clone(), c).sum().backward()

    report = {"batch": args.batch, "size": args.size, "bins": args.bins, "threads": 1,
              "torch": torch.__version__, "critic_scatter_ms": _median_ms(scatter, args.repeats),
              "critic_dense_ms": _median_ms(dense, args.repeats),
              "generator_ms": _median_ms(generator, args.repeats)}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
