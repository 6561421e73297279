"""StarGAN v2 training speed: starkit's step against the official implementation's, side by side.

    .venv/bin/python bench/v2_speed.py --official /path/to/stargan-v2             # 128 px, batch 8
    .venv/bin/python bench/v2_speed.py --official /path/to/stargan-v2 --size 64 --iters 3

``--official`` is a checkout of clovaai/stargan-v2 (its ``core/`` package is imported from
there, never from this repository; it needs ``munch`` importable, e.g. ``pip install --target
DIR munch`` and ``PYTHONPATH=DIR``). Its face-landmark network and metrics are not imported
(``w_hpf = 0``: AFHQ's configuration), so neither scikit-image nor its FID code is needed.

Both sides train the same networks (the paper's widths for the image size, 3 domains, AFHQ's
loss weights) from the same initial weights on the same in-memory batch — source images,
target domains, two references and two latent codes per sample — so only the step's code
differs. One iteration is the official one: a latent- and a reference-guided D step, a latent-
and a reference-guided G step, the moving averages. Modes: ``official`` (its ``compute_d_loss``
/ ``compute_g_loss`` / ``moving_average`` with its optimiser calls, fp32), ``starkit-fp32``
(``StarGANv2Step`` at ``precision = "fp32"``) and ``starkit`` (the step with ``precision =
"auto"``: what ``starkit train`` runs on this machine). After ``--warmup`` iterations each, the
modes take turns iteration by iteration for ``--iters`` × ``--repeats`` iterations (the one going
first rotating); the median seconds per iteration give images/s, and the ratios to the official
code are medians of per-repeat ratios.

Prints one JSON object (also written to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

import torch
from quality import cpu_description  # a sibling script (bench/ is on sys.path)

DOMAINS = 3


def import_official(root: Path) -> types.SimpleNamespace:
    """The official ``core.model`` and ``core.solver``, with its FAN module and metrics stubbed
    out (they need scikit-image and the FID code, and no AFHQ step calls them)."""
    sys.path.insert(0, str(root))
    stubs = (("core.wing", {"FAN": None}), ("core.utils", {}), ("metrics", {}), ("metrics.eval", {"calculate_metrics": None}))
    for name, attrs in stubs:
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
    import core.model as model  # noqa: E402  (from --official)
    import core.solver as solver

    return types.SimpleNamespace(model=model, solver=solver)


def official_args(size: int) -> Any:
    from munch import Munch

    return Munch(img_size=size, style_dim=64, latent_dim=16, num_domains=DOMAINS, w_hpf=0, lambda_reg=1.0,
                 lambda_sty=1.0, lambda_ds=1.0, lambda_cyc=1.0, lr=1e-4, f_lr=1e-6, beta1=0.0, beta2=0.99,
                 weight_decay=1e-4)


def official_step(official: types.SimpleNamespace, args: Any, weights: dict[str, dict]) -> Callable[[dict], None]:
    """One official training iteration as its Solver.train runs it, on a fixed batch."""
    nets, nets_ema = official.model.build_model(args)
    for name, state in weights.items():
        getattr(nets, name).module.load_state_dict(state)
        if name != "discriminator":
            getattr(nets_ema, name).module.load_state_dict(state)
    optims = {name: torch.optim.Adam(getattr(nets, name).parameters(), lr=args.f_lr if name == "mapping_network" else args.lr,
                                     betas=(args.beta1, args.beta2), weight_decay=args.weight_decay)
              for name in weights}
    compute_d, compute_g, average = official.solver.compute_d_loss, official.solver.compute_g_loss, official.solver.moving_average

    def reset() -> None:
        for optimizer in optims.values():
            optimizer.zero_grad()

    def step(b: dict) -> None:
        for guide in ({"z_trg": b["z1"]}, {"x_ref": b["ref1"]}):
            loss, _ = compute_d(nets, args, b["x"], b["y_org"], b["y_trg"], masks=None, **guide)
            reset()
            loss.backward()
            optims["discriminator"].step()
        loss, _ = compute_g(nets, args, b["x"], b["y_org"], b["y_trg"], z_trgs=[b["z1"], b["z2"]], masks=None)
        reset()
        loss.backward()
        for name in ("generator", "mapping_network", "style_encoder"):
            optims[name].step()
        loss, _ = compute_g(nets, args, b["x"], b["y_org"], b["y_trg"], x_refs=[b["ref1"], b["ref2"]], masks=None)
        reset()
        loss.backward()
        optims["generator"].step()
        for name in ("generator", "mapping_network", "style_encoder"):
            average(getattr(nets, name), getattr(nets_ema, name), beta=0.999)

    return step


def starkit_step(size: int, precision: str, weights: dict[str, dict]) -> Callable[[dict], None]:
    from starkit.default_plugins.stargan_v2 import STARGAN_V2_DEFAULTS
    from starkit.families.stargan_v2.step import StarGANv2Step
    from starkit.labels import LabelSpace
    from starkit.spec import AttributeGroup
    from starkit.training.config import resolve_config
    from starkit.training.device import Runtime
    from starkit.training.step import References

    names = tuple(f"domain{i}" for i in range(DOMAINS))
    space = LabelSpace.from_groups([("bench", [AttributeGroup("domain", "onehot", names)])])
    config = resolve_config(dict(STARGAN_V2_DEFAULTS), overrides={
        "model": "stargan-v2", "datasets": ["bench"], "image_size": size, "precision": precision})
    runner = StarGANv2Step(space, config, Runtime(torch.device("cpu")))
    for name, state in weights.items():
        runner.networks[name].load_state_dict(state)
        if name != "discriminator":
            runner.networks[f"{name}_ema"].load_state_dict(state)
    counter = iter(range(10**9))

    def step(b: dict) -> None:
        labels = torch.nn.functional.one_hot(b["y_org"], DOMAINS).float()
        refs = References(torch.stack([b["ref1"], b["ref2"]], dim=1), b["y_trg"])
        runner.train_step(next(counter), "bench", b["x"], labels, references=refs)

    return step


def initial_weights(size: int) -> dict[str, dict]:
    from starkit.default_plugins.stargan_v2 import STARGAN_V2_DEFAULTS
    from starkit.families.stargan_v2.networks import build_networks

    torch.manual_seed(0)
    nets = build_networks(DOMAINS, {**STARGAN_V2_DEFAULTS, "image_size": size})
    return {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in nets.items()}


def fixed_batch(size: int, batch: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    image = lambda: torch.rand((batch, 3, size, size), generator=g) * 2 - 1  # noqa: E731
    return {"x": image(), "ref1": image(), "ref2": image(),
            "y_org": torch.randint(0, DOMAINS, (batch,), generator=g), "y_trg": torch.randint(0, DOMAINS, (batch,), generator=g),
            "z1": torch.randn((batch, 16), generator=g), "z2": torch.randn((batch, 16), generator=g)}



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, required=True, help="a checkout of clovaai/stargan-v2")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=2, help="timed iterations per mode and repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    official = import_official(args.official.resolve())
    weights = initial_weights(args.size)
    batch = fixed_batch(args.size, args.batch)
    modes = {"official": official_step(official, official_args(args.size), weights),
             "starkit-fp32": starkit_step(args.size, "fp32", weights),
             "starkit": starkit_step(args.size, "auto", weights)}
    for step in modes.values():
        for _ in range(args.warmup):
            step(batch)
    names = list(modes)
    per_repeat: list[dict[str, float]] = []
    for r in range(args.repeats):
        times: dict[str, list[float]] = {n: [] for n in names}
        order = names[r % len(names):] + names[:r % len(names)]
        for _ in range(args.iters):
            for name in order:
                t = time.perf_counter()
                modes[name](batch)
                times[name].append(time.perf_counter() - t)
        per_repeat.append({n: args.batch / statistics.median(ts) for n, ts in times.items()})
    result = {
        "config": {"image_size": args.size, "batch_size": args.batch, "domains": DOMAINS, "iters": args.iters,
                   "repeats": args.repeats, "warmup": args.warmup},
        "machine": {"cpu": cpu_description(), "threads": torch.get_num_threads(), "torch": torch.__version__},
        "images_per_s": {n: round(statistics.median(r[n] for r in per_repeat), 3) for n in names},
        "ratio_to_official": {n: round(statistics.median(r[n] / r["official"] for r in per_repeat), 3)
                              for n in names if n != "official"},
        "repeats": [{n: round(v, 3) for n, v in r.items()} for r in per_repeat],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
