"""Does the fast path train as well as the naive one? A short run of each, two seeds each.

    .venv/bin/python bench/fast_path_quality.py                 # ~3-5 minutes on 2 CPU cores
    .venv/bin/python bench/fast_path_quality.py --modes naive,fast,fast-bf16 --device cuda

Trains StarGAN on the synthetic CelebA-like faces (``synth-celeba``: hair colour one-hot, Male,
Young; 32 px) through :func:`starkit.training.train`, once per (mode, seed):

* ``naive``: every performance switch off (fp32, eager, NCHW, per-tensor Adam, the fake
  computed with its graph and recomputed in the G step, oneDNN's direct convolutions);
* ``fast``: every switch at its default (``auto``) for the device;
* ``fast-bf16``: the defaults with ``precision = "bf16"`` (slow on CPUs without bf16
  instructions; meant for GPUs).

Then, on the held-out test faces, with each run's final weights:

* reconstruction L1: ``mean |x - G(G(x, c_trg), c_org)|`` (targets: the test labels permuted
  with a fixed seed), in [-1, 1] pixel units;
* D's classification accuracy on the real faces (per attribute: binary by sign, one-hot by
  arg-max), against their true labels.

The two modes match when their difference is within the seed-to-seed spread of either. The
training settings are fixed here (a G step every iteration, Adam 4e-4, λ_cls 4: the quality
benchmark's first CPU profile), under which a run of a few hundred iterations learns
measurably; with a G step every iteration, ``share_fake`` acts on every iteration.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DATASET = "synth-celeba"
NAIVE_SWITCHES = {
    "precision": "fp32", "channels_last": "off", "compile": "off", "adam_impl": "loop",
    "nnpack_convs": "off", "gemm_convs": "off", "fake_without_graph": False, "share_fake": False,
    "d_batch_real_fake": False,
}
MODES = {"naive": NAIVE_SWITCHES, "fast": {}, "fast-bf16": {"precision": "bf16"}}


def ingest(data: Path, count: int, image_size: int) -> dict[str, int]:
    from starkit.catalog import get_dataset
    from starkit.data.ingest import ingest as run_ingest

    result = run_ingest(get_dataset(DATASET), None, data / DATASET, image_size=image_size, count=count, seed=0,
                        options={"test_fraction": "0.15"}, force=True, progress=False)
    return dict(result.counts)


def train_run(run_dir: Path, data: Path, mode: str, seed: int, args) -> float:
    from starkit.training import train

    config = {
        "datasets": [DATASET], "data_root": str(data), "device": args.device,
        "iters": args.iters, "batch_size": 16, "seed": seed, "workers": 0,
        "sample_every": 0, "log_every": 50, "latest_every": args.iters, "save_every": 0,
        "g_conv_dim": 16, "d_conv_dim": 16, "g_repeat_num": 3, "d_repeat_num": 4,
        "n_critic": 1, "g_lr": 4e-4, "d_lr": 4e-4, "lambda_cls": 4.0,
        **MODES[mode],
    }
    start = time.perf_counter()
    train(run_dir, config, progress=False, handle_sigint=False)
    return time.perf_counter() - start


def evaluate(run_dir: Path, data: Path, device: str) -> dict[str, float]:
    import numpy as np
    import torch

    from starkit.data.loading import ShardImageDataset, to_model_input
    from starkit.data.shards import DatasetStore
    from starkit.default_plugins.stargan import build
    from starkit.labels import LabelSpace
    from starkit.training.checkpoint import load_checkpoint
    from starkit.training.device import resolve_device

    device = resolve_device(device)
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    space = LabelSpace.from_dict(checkpoint["label_space"])
    nets = build(space, checkpoint["config"])
    for name, net in nets.items():
        net.load_state_dict(checkpoint["networks"][name])
        net.to(device).eval()
    test = ShardImageDataset(DatasetStore.open(data / DATASET), "test", augment=False)
    images = torch.stack([test[i]["image"] for i in range(len(test))])
    labels = torch.stack([test[i]["labels"] for i in range(len(test))]).to(device)
    x = to_model_input(images, device)
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(test))).to(device)
    with torch.no_grad():
        c_org, c_trg = space.encode(DATASET, labels), space.encode(DATASET, labels[order])
        rec = nets["G"](nets["G"](x, c_trg), c_org)
        _, logits = nets["D"](x)
        predicted = space.predict(logits, DATASET)
    return {
        "reconstruction_l1": round((x - rec).abs().mean().item(), 4),
        "d_accuracy_real": round((predicted == labels).float().mean().item(), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="naive,fast", help=f"comma-separated, from {', '.join(MODES)}")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--iters", type=int, default=400)
    parser.add_argument("--count", type=int, default=1200, help="synthetic faces (15 % held out)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: reproducible, and fast for small nets)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise SystemExit(f"--modes: unknown {unknown}; choose from {', '.join(MODES)}")
    seeds = [int(s) for s in args.seeds.split(",")]

    import torch

    from starkit.plugins import get_registry

    torch.set_num_threads(args.threads)
    get_registry()  # the synthetic datasets' plugin
    results: dict[str, dict[str, Any]] = {m: {} for m in modes}
    with tempfile.TemporaryDirectory(prefix="starkit-fast-quality-") as tmp:
        tmp = Path(tmp)
        counts = ingest(tmp / "data", args.count, args.image_size)
        for seed in seeds:  # modes alternate, so machine load hits them alike
            for mode in modes:
                run_dir = tmp / "runs" / f"{mode}-{seed}"
                seconds = train_run(run_dir, tmp / "data", mode, seed, args)
                metrics = evaluate(run_dir, tmp / "data", args.device)
                results[mode][f"seed_{seed}"] = {**metrics, "train_seconds": round(seconds, 1)}
                print(f"{mode:>9s} seed {seed}: {metrics} ({seconds:.0f} s)", file=sys.stderr, flush=True)

    def spread(mode: str, key: str) -> dict[str, float]:
        values = [r[key] for r in results[mode].values()]
        return {"mean": round(statistics.mean(values), 4), "seed_range": round(max(values) - min(values), 4)}

    summary = {m: {k: spread(m, k) for k in ("reconstruction_l1", "d_accuracy_real")} for m in modes}
    verdict = {}
    for mode in modes[1:]:
        verdict[mode] = {}
        for key in ("reconstruction_l1", "d_accuracy_real"):
            gap = abs(summary[mode][key]["mean"] - summary[modes[0]][key]["mean"])
            noise = max(summary[mode][key]["seed_range"], summary[modes[0]][key]["seed_range"])
            verdict[mode][key] = {"difference_of_means": round(gap, 4), "seed_to_seed_range": noise,
                                  "within_noise": gap <= noise}
    report = {
        "command": "python bench/fast_path_quality.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "settings": {"iters": args.iters, "image_size": args.image_size, "count": args.count, "test_images": counts.get("test"),
                     "device": args.device, "threads": args.threads, "seeds": seeds},
        "runs": results,
        "summary": summary,
        f"vs_{modes[0]}": verdict,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
