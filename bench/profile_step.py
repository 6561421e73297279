"""Where a training iteration's time goes: torch.profiler over a family's step, by operator class.

    .venv/bin/python bench/profile_step.py                          # StarGAN, paper config (128 px, batch 16)
    .venv/bin/python bench/profile_step.py --model stargan-v2 --size 128 --batch 8
    .venv/bin/python bench/profile_step.py --set precision=fp32     # the same step in fp32

The step is built through its family's ``trainer`` (what ``starkit train`` runs, with the
runtime switches ``auto`` resolves on this machine unless ``--set`` says otherwise) on one fixed
in-memory batch, so data loading is not in the figures (bench/data_speed.py measures it). After
``--warmup`` iterations, ``--iters`` iterations are profiled. StarGAN's iterations alternate as
in training: ``n_critic - 1`` with a D step only, then one with a D and a G step; the D step's
share is read from the former, the G step's from the difference.

Each aten operator's *self* CPU time goes to one class: convolutions (forward and backward),
normalisation (instance norm and its backward), matrix products, pooling and up-sampling, the optimiser (Adam, the
moving averages' lerp), layout and dtype conversions (copies, ``to``, reorders), element-wise
operations, reductions, and the rest. Separately, the time inside autograd's evaluation of
double-backward nodes (``…BackwardBackward…``) is the gradient penalty's (StarGAN's WGAN-GP,
v2's R1): only it differentiates a gradient. Prints one JSON object (also ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from quality import cpu_description  # a sibling script (bench/ is on sys.path)

#: Operator classes, first match wins (matched against the lower-cased aten name).
CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # unfold/im2col: the GEMM convolutions' input matrices (gemm_convs)
    ("convolution", ("conv", "unfold", "im2col", "col2im")),
    ("normalisation", ("instance_norm", "batch_norm", "group_norm", "layer_norm")),
    ("matrix product", ("addmm", "::mm", "bmm", "linear", "matmul")),
    ("pooling and resampling", ("pool", "upsample", "interpolate")),
    ("optimiser", ("adam", "lerp", "_foreach", "_fused")),
    ("layout and dtype", ("copy_", "::to", "_to_copy", "contiguous", "clone", "reorder", "empty_strided", "as_strided",
                          "::cat", "pad", "repeat")),
    ("reduction", ("sum", "mean", "norm", "::max", "::min", "amax", "argmax", "var")),
    ("element-wise", ("add", "mul", "sub", "div", "relu", "leaky", "threshold", "tanh", "sigmoid", "pow", "sqrt",
                      "where", "fill_", "zero_", "abs", "neg", "exp", "log", "clamp", "sign", "rsub", "softplus",
                      "binary_cross", "nll_loss", "sgn", "maximum", "minimum", "lt", "gt", "eq", "ge", "le")),
)


def op_class(name: str) -> str:
    lowered = name.lower()
    for label, keys in CLASSES:
        if any(k in lowered for k in keys):
            return label
    return "other"


def build_step(model: str, size: int, batch: int, overrides: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
    """The family's training step on a one-dataset label space (StarGAN: CelebA's 5 attributes;
    v2: 3 domains), and the keyword arguments of one ``train_step`` call on a fixed batch."""
    from starkit.catalog import get_model
    from starkit.labels import LabelSpace
    from starkit.spec import AttributeGroup
    from starkit.training.config import resolve_config
    from starkit.training.device import Runtime
    from starkit.training.step import References

    family = get_model(model)
    if model == "stargan-v2":
        groups = [AttributeGroup("domain", "onehot", ("cat", "dog", "wild"))]
    else:
        groups = [AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair")),
                  AttributeGroup("attributes", "binary", ("Male", "Young"))]
    space = LabelSpace.from_groups([("bench", groups)])
    config = resolve_config(dict(family.default_config), overrides={
        "model": model, "datasets": ["bench"], "image_size": size, "batch_size": batch, **overrides},
        options=family.options)
    if family.resolve_config is not None:
        config = family.resolve_config(config)
    torch.manual_seed(0)
    step = family.trainer(space, config, Runtime(torch.device("cpu")))
    g = torch.Generator().manual_seed(1)
    images = torch.rand((batch, 3, size, size), generator=g) * 2 - 1
    labels = torch.nn.functional.one_hot(torch.arange(batch) % len(groups[0].attributes), len(groups[0].attributes)).float()
    if model != "stargan-v2":
        labels = torch.cat([labels, (torch.rand((batch, 2), generator=g) > 0.5).float()], dim=1)
    call: dict[str, Any] = {"dataset": "bench", "images": images, "labels": labels}
    if getattr(step, "batch_request", None) is not None:
        refs = torch.rand((batch, step.batch_request.per_sample, 3, size, size), generator=g) * 2 - 1
        call["references"] = References(refs, torch.randint(0, len(groups[0].attributes), (batch,), generator=g))
    return step, config, call


def profile(step: Any, call: dict[str, Any], iterations: list[int]) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, record_function
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in iterations:
            with record_function(f"iteration {i}"):
                step.train_step(i, **call)
    by_class: dict[str, float] = defaultdict(float)
    others: dict[str, float] = {}
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            label = op_class(event.key)
            by_class[label] += event.self_cpu_time_total / 1e3
            if label == "other":
                others[event.key] = event.self_cpu_time_total / 1e3
    double = sum(e.cpu_time_total for e in prof.events()
                 if e.name.startswith("autograd::engine::evaluate_function") and "BackwardBackward" in e.name) / 1e3
    per_iteration = {e.name: e.cpu_time_total / 1e3 for e in prof.events() if e.name.startswith("iteration ")}
    top_other = dict(sorted(others.items(), key=lambda kv: -kv[1])[:8])
    return {"ms_by_class": dict(by_class), "gradient_penalty_double_backward_ms": double, "iteration_ms": per_iteration,
            "top_other_ms": top_other}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="stargan", choices=("stargan", "stargan-v2"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=None, help="default: 16 (stargan), 8 (stargan-v2)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=None,
                        help="profiled iterations (default: n_critic for stargan, i.e. one with a G step; 2 for v2)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.overrides:
        key, _, value = item.partition("=")
        overrides[key.strip()] = json.loads(value) if value[:1] in "0123456789-[{tf" and value not in ("fp32",) else value
    batch = args.batch or (8 if args.model == "stargan-v2" else 16)
    step, config, call = build_step(args.model, args.size, batch, overrides)
    n_critic = int(config.get("n_critic", 1))
    for i in range(args.warmup):
        step.train_step(i, **call)
    start = n_critic * max(1, -(-args.warmup // n_critic))  # the first iteration of a fresh cycle
    iterations = list(range(start, start + (args.iters or (n_critic if args.model == "stargan" else 2))))
    result = profile(step, call, iterations)
    total = sum(result["ms_by_class"].values())
    summary = getattr(getattr(step, "fast", None), "summary", None)
    report = {
        "model": args.model, "image_size": args.size, "batch_size": batch, "iterations": iterations,
        "n_critic": n_critic, "switches": summary() if callable(summary) else None,
        "machine": {"cpu": cpu_description(), "threads": torch.get_num_threads(), "torch": torch.__version__},
        "share_by_class": {k: round(v / total, 4) for k, v in sorted(result["ms_by_class"].items(), key=lambda kv: -kv[1])},
        "ms_by_class": {k: round(v, 1) for k, v in result["ms_by_class"].items()},
        "largest_other_ms": {k: round(v, 1) for k, v in result["top_other_ms"].items()},
        "gradient_penalty_double_backward_share": round(result["gradient_penalty_double_backward_ms"] / total, 4),
        "iteration_ms": {k: round(v, 1) for k, v in result["iteration_ms"].items()},
        "images_per_s": round(batch * len(iterations) / (sum(result["iteration_ms"].values()) / 1e3), 3),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0



if __name__ == "__main__":
    sys.exit(main())
