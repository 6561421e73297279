"""Training-speed benchmark: StarGAN iterations per second, the fast path against the naive one.

    .venv/bin/python bench/train_speed.py                      # fast path, paper config (128 px, batch 16)
    .venv/bin/python bench/train_speed.py --naive              # the straightforward implementation
    .venv/bin/python bench/train_speed.py --compare            # both, alternating, and their ratio
    .venv/bin/python bench/train_speed.py --ablation           # naive + one switch at a time
    .venv/bin/python bench/train_speed.py --quick --compare    # 64 px, half widths: a quick check
    .venv/bin/python bench/train_speed.py --loader-check       # fast, and fast on batches held on the device

The model is the paper's (CelebA, 5 attributes: 3 hair colours one-hot, Male, Young; G with 64
base channels and 6 residual blocks; D with 6 stride-2 convolutions) unless the options say
otherwise. Data are synthetic 178×218 JPEGs (CelebA's size and file size), written to a
temporary folder and also ingested into shards with CelebA's preprocessing (centre crop 178,
resize).

**naive** is the straightforward implementation, the reference StarGAN's way: images decoded
from the JPEG files per sample with the reference transforms (flip, crop, resize, ToTensor,
Normalize) in a DataLoader; fp32, eager, NCHW; torch's default Adam (the per-tensor loop on
CPU); the D step's fake computed with its autograd graph and detached; the G step computes
``G(x, c_trg)`` again. **fast** is the shard loader (uint8 batches, normalised on the device,
pinned memory and persistent workers) and the step with the switches that ``auto`` selects on
this device (see ``starkit.families.stargan.speed.fast``), changed with ``--set key=value``.

An iteration is one D step; every ``n_critic``-th one (5) adds a G step. All modes are built
once, warmed up (``--warmup`` iterations each, the first with a G step), then timed: each repeat
runs ``--iters`` iterations (the first with a G step), the modes taking turns iteration by
iteration, the one going first rotating, so that changes in the machine's load hit all modes
alike. A repeat's images/s follow the training schedule: ``n_critic·B / ((n_critic-1)·t_D +
t_DG)`` with t_D and t_DG the median times of its iterations without and with a G step (data
loading included); ratios between modes are taken per repeat, and their median reported.

Memory: the peak of one iteration with a G step (a D step and a G step) per mode. On CUDA:
``torch.cuda.max_memory_allocated`` during it, less what was allocated before it (the other
modes' networks live in the same process), plus the mode's own weights and optimiser state
(results recorded before this correction, bench/results/train_speed_*_cuda.json, count every
mode's state). On a CPU: the peak RSS (``getrusage``) of a fresh
process that builds the mode's step and runs that iteration on a synthetic batch — weights,
optimiser state, activations and torch itself (``VmHWM`` on Linux, else ``getrusage``); a
long-lived process keeps freed pages, so its high-water mark could not be attributed to one
mode.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one iteration of each
kind at batch 1 (times B), counting convolutions as direct ones; NNPACK's Winograd and FFT
convolutions do fewer multiplications, so with them the "achieved" rate may exceed the matmul
peak. The peaks are measured here: the best of a few square fp32 and bf16 matmuls (2048², or
smaller where a dtype is too slow to time at that size).

Prints one JSON object (also written to ``--out`` when given).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_speed import make_jpegs  # noqa: E402  (CelebA-sized synthetic JPEGs)

CROP = 178
HAIR = ("Black_Hair", "Blond_Hair", "Brown_Hair")
BINARY = ("Male", "Young")
DATASET = "bench-celeba"

PAPER = {"image_size": 128, "g_conv_dim": 64, "d_conv_dim": 64, "g_repeat_num": 6, "d_repeat_num": 6}
#: Batches the ``--loader-check`` mode keeps on the device and cycles through.
IN_MEMORY_BATCHES = 4
QUICK = {"image_size": 64, "g_conv_dim": 32, "d_conv_dim": 32, "g_repeat_num": 6, "d_repeat_num": 6}


# ---------------------------------------------------------------------------- data
def labels_of(i: int) -> tuple[int, ...]:
    hair = [0, 0, 0]
    hair[i % 3] = 1
    return (*hair, (i // 3) % 2, (i // 6) % 2)


def bench_spec(image_size: int):
    from starkit.spec import AttributeGroup, DatasetSpec, RawSample

    def reader(source, options):
        for i, path in enumerate(sorted(Path(source).glob("*.jpg"))):
            yield RawSample(path.stem, "train", labels_of(i), path=path)

    return DatasetSpec(
        name=DATASET,
        groups=(AttributeGroup("hair", "onehot", HAIR), AttributeGroup("face", "binary", BINARY)),
        reader=reader,
        crop=CROP,
        image_size=image_size,
        splits=("train",),
    )


class JpegDataset:
    """The reference StarGAN data path: one JPEG decoded and transformed per sample."""

    def __init__(self, paths: list[Path], image_size: int):
        import torchvision.transforms as T

        self.paths = paths
        self.labels = np.array([labels_of(i) for i in range(len(paths))], dtype=np.float32)
        self.transform = T.Compose(
            [
                T.RandomHorizontalFlip(),
                T.CenterCrop(CROP),
                T.Resize(image_size),
                T.ToTensor(),
                T.Normalize(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
            ]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import torch
        from PIL import Image

        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB")), torch.from_numpy(self.labels[i])


@dataclass
class BenchData:
    folder: Path
    jpegs: list[Path]
    shards: Path


def make_data(folder: Path, images: int, image_size: int) -> BenchData:
    from starkit.data.ingest import ingest

    jpegs_dir = folder / "jpegs"
    jpegs_dir.mkdir()
    jpegs = make_jpegs(jpegs_dir, images)
    ingest(bench_spec(image_size), jpegs_dir, folder / "shards", workers=1, force=True, progress=False)
    return BenchData(folder, jpegs, folder / "shards")


def naive_batches(data: BenchData, image_size: int, batch: int, workers: int, device) -> Iterator[tuple]:
    """Endless (images float [-1,1] on device, labels) from the JPEG files, reference style."""
    from torch.utils.data import DataLoader

    loader = DataLoader(JpegDataset(data.jpegs, image_size), batch_size=batch, shuffle=True,
                        num_workers=workers, drop_last=True)
    while True:
        for images, labels in loader:
            yield images.to(device), labels.to(device)


def fast_batches(data: BenchData, batch: int, workers: int, device) -> tuple[Iterator[tuple], Callable[[], None]]:
    """Endless batches from the shards: uint8 transfer, normalised on the device."""
    from starkit.data.loading import JointLoader, ShardImageDataset, to_model_input

    loader = JointLoader([ShardImageDataset(data.shards, "train", augment=True, seed=0)], batch_size=batch,
                         num_workers=workers, seed=0, pin_memory=device.type == "cuda", persistent_workers=True)

    def batches():
        for _, b in loader:
            yield to_model_input(b["image"], device), b["labels"].to(device, non_blocking=True)

    return batches(), loader.close


# ---------------------------------------------------------------------------- modes
@dataclass(frozen=True)
class Mode:
    """One way of training: a data path and the step's switches."""

    name: str
    fast: Any  # starkit.families.stargan.speed.fast.FastPath
    shard_loader: bool
    #: Batches cycled from a few already on the device: no loader at all (``--loader-check``).
    in_memory: bool = False

    def describe(self) -> dict[str, Any]:
        data = "device" if self.in_memory else "shards" if self.shard_loader else "jpeg"
        return {"data": data, **self.fast.describe()}


def naive_mode():
    from starkit.families.stargan.speed.fast import FastPath

    return Mode("naive", FastPath.naive(), shard_loader=False)


def fast_mode(config: dict[str, Any], device) -> Mode:
    from starkit.families.stargan.speed.fast import resolve_fast_path

    return Mode("fast", resolve_fast_path(config, device), shard_loader=True)


#: The ablation's single switches: name -> how it changes the naive mode.
SWITCHES: dict[str, Callable[[Mode], Mode]] = {
    "shard_loader": lambda m: Mode("shard_loader", m.fast, True),
    "fake_without_graph": lambda m: Mode("fake_without_graph", m.fast.replace(fake_without_graph=True), False),
    "share_fake": lambda m: Mode("share_fake", m.fast.replace(share_fake=True), False),
    "d_batch_real_fake": lambda m: Mode("d_batch_real_fake", m.fast.replace(d_batch_real_fake=True), False),
    "nnpack_convs": lambda m: Mode("nnpack_convs", m.fast.replace(nnpack_convs=True), False),
    "gemm_convs": lambda m: Mode("gemm_convs", m.fast.replace(gemm_convs=True), False),
    "adam_fused": lambda m: Mode("adam_fused", m.fast.replace(adam_impl="fused"), False),
    "adam_foreach": lambda m: Mode("adam_foreach", m.fast.replace(adam_impl="foreach"), False),
    "channels_last": lambda m: Mode("channels_last", m.fast.replace(channels_last=True), False),
    "bf16": lambda m: Mode("bf16", m.fast.replace(precision="bf16"), False),
    "compile": lambda m: Mode("compile", m.fast.replace(compile=True), False),
}


# ---------------------------------------------------------------------------- measuring
def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype_name: str, device, budget_s: float = 3.0) -> dict[str, float]:
    """Best rate of square matmuls in ``dtype``; sizes grow from 256 (to 2048 on a CPU, 8192 on
    a GPU) while one matmul stays within ``budget_s`` (bf16 on a CPU without bf16 instructions
    is ~100× slower than fp32: timing it at 2048² would take minutes)."""
    import torch

    dtype = getattr(torch, {"fp32": "float32", "bf16": "bfloat16"}[dtype_name])
    largest = 8192 if device.type == "cuda" else 2048
    n, best = 256, {"gflops": 0.0, "size": 0}
    while n <= largest:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        times = []
        for _ in range(4):
            synchronize(device)
            start = time.perf_counter()
            a @ b
            synchronize(device)
            times.append(time.perf_counter() - start)
        best = {"gflops": round(2 * n**3 / min(times[1:]) / 1e9, 1), "size": n}
        if min(times) * 8 > budget_s:  # the next size costs 8×
            break
        n *= 2
    return best


def count_flops(space, config: dict[str, Any], mode: Mode, device) -> dict[str, float]:
    """FLOPs per image of an iteration without and with a G step, counted at batch 1 (all
    switches that change no arithmetic turned off, so every convolution is counted directly)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from starkit.training.device import Runtime
    from starkit.families.stargan.speed.fast import FastPath
    from starkit.families.stargan.step import StarGANStep

    class GlobalOnly:
        """Stands in for FlopCounterMode's per-module tracker, whose backward hooks cannot run
        inside ``autograd.grad`` (the gradient penalty); only the total is wanted here."""

        parents = {"Global"}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    counting = FastPath.naive().replace(share_fake=mode.fast.share_fake, fake_without_graph=mode.fast.fake_without_graph)
    torch.manual_seed(0)
    step = StarGANStep(space, config, Runtime(device), fast=counting)
    size = config["image_size"]
    images = torch.rand(1, 3, size, size, device=device) * 2 - 1
    labels = torch.tensor([labels_of(0)], dtype=torch.float32, device=device)
    out = {}
    for kind, iteration in (("d_iteration", 0), ("g_iteration", step.n_critic - 1)):
        counter = FlopCounterMode(display=False)
        counter.mod_tracker = GlobalOnly()
        with counter:
            step.train_step(iteration, DATASET, images, labels)
        out[kind] = counter.get_total_flops()
    return out


class Runner:
    """One mode's step and batch stream, alive for the whole benchmark, so that the modes'
    iterations can be interleaved one by one.

    The loader starts first (:meth:`__init__` fetches a batch, which forks its worker) and the
    networks are built afterwards (:meth:`build`): a worker forked from a process that already
    holds networks pins a copy-on-write snapshot of that memory as the parent keeps changing it,
    and with several modes in one process that exhausted the memory."""

    def __init__(self, mode: Mode, config: dict[str, Any], data: BenchData, args, device):
        self.mode, self.device = mode, device
        self.close = lambda: None
        if mode.in_memory:
            stream, close = fast_batches(data, args.batch, args.workers, device)
            held = [next(stream) for _ in range(IN_MEMORY_BATCHES)]
            close()
            self.batches = itertools.cycle(held)
        elif mode.shard_loader:
            self.batches, self.close = fast_batches(data, args.batch, args.workers, device)
        else:
            self.batches = naive_batches(data, config["image_size"], args.batch, args.workers, device)
        self.pending = [next(self.batches)]
        self.step: Any = None
        self.times: dict[tuple[int, bool], list[float]] = {}  # (repeat, with G step) -> seconds
        self.peak_mb: float | None = None

    def build(self, space, config: dict[str, Any]) -> None:
        import torch

        from starkit.training.device import Runtime
        from starkit.families.stargan.step import StarGANStep

        torch.manual_seed(0)
        self.step = StarGANStep(space, config, Runtime(self.device), fast=self.mode.fast)

    def iteration(self, i: int) -> float:
        """Seconds for iteration ``i``: the next batch, to the device, the step, synchronised."""
        import torch

        synchronize(self.device)
        start = time.perf_counter()
        images, labels = self.pending.pop() if self.pending else next(self.batches)
        losses = self.step.train_step(i, DATASET, images, labels)
        synchronize(self.device)
        elapsed = time.perf_counter() - start
        if not all(torch.isfinite(v).all() for v in losses.values()):
            raise RuntimeError(f"{self.mode.name}: non-finite loss at iteration {i}: {losses}")
        return elapsed

    def measure_memory(self, i: int, config: dict[str, Any], args) -> None:
        """Peak memory of iteration ``i`` (one with a G step): on CUDA the allocator's peak
        during it, here; on a CPU the peak RSS of a fresh process that builds this mode's step
        and runs that iteration (the RSS of a long-lived process keeps freed memory, so its
        high-water mark cannot be attributed to one mode)."""
        import torch

        if self.device.type == "cuda":
            # Every mode's weights and optimiser state live in this one process: count the
            # iteration's peak above what was allocated before it, plus this mode's own state.
            gc.collect()
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.iteration(i)
            own = sum(t.numel() * t.element_size() for t in self.persistent_tensors())
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - before + own) / 2**20
            return
        probe = {"config": config, "fast": self.mode.fast.describe(), "batch": args.batch, "iteration": i,
                 "threads": args.threads}
        done = subprocess.run([sys.executable, __file__, "--memory-probe", json.dumps(probe)],
                              capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            log(f"  memory probe of {self.mode.name} failed: {done.stderr.strip().splitlines()[-1:]}")
            return
        self.peak_mb = float(done.stdout.strip().splitlines()[-1])

    def persistent_tensors(self) -> Iterator[Any]:
        """This mode's weights, buffers and optimiser state (what lives between iterations)."""
        import torch

        for net in self.step.networks.values():
            yield from net.parameters()
            yield from net.buffers()
        for optimizer in self.step.optimizers.values():
            for state in optimizer.state.values():
                yield from (v for v in state.values() if isinstance(v, torch.Tensor))

    def d_and_g(self, repeat: int) -> tuple[float, float]:
        return statistics.median(self.times[(repeat, False)]), statistics.median(self.times[(repeat, True)])

    def images_per_s(self, repeat: int, batch: int) -> float:
        """The rate of the training schedule: n_critic iterations, one of them with a G step."""
        n = self.step.n_critic
        d, g = self.d_and_g(repeat)
        return n * batch / ((n - 1) * d + g)


def run_interleaved(runners: list[Runner], config: dict[str, Any], args, n_critic: int) -> None:
    """Warm-up, then the timed iterations, the modes taking turns iteration by iteration (the
    one going first rotates), so that changes in the machine's load hit all modes alike."""

    def is_g(i: int) -> bool:
        return (i + 1) % n_critic == 0

    i = n_critic - 1  # warm-up starts with a G iteration, so that a warm-up of 2 meets both kinds
    for _ in range(args.warmup):
        for r in runners:
            log(f"  warm-up {r.mode.name:>18s} it {i:3d} {'DG' if is_g(i) else 'D '} {r.iteration(i) * 1e3:8.0f} ms")
        i += 1
    turn = 0
    for repeat in range(args.repeats):
        log(f"repeat {repeat + 1}/{args.repeats}")
        i += -(i + 1) % n_critic  # each repeat starts with a G iteration
        for _ in range(args.iters):
            order = runners[turn % len(runners):] + runners[: turn % len(runners)]
            turn += 1
            for r in order:
                seconds = r.iteration(i)
                r.times.setdefault((repeat, is_g(i)), []).append(seconds)
                log(f"  {r.mode.name:>18s} it {i:3d} {'DG' if is_g(i) else 'D '} {seconds * 1e3:8.0f} ms")
            i += 1
    i += -(i + 1) % n_critic
    for r in runners:
        log(f"  peak memory of {r.mode.name}")
        r.measure_memory(i, config, args)


def compact_json(data: Any) -> str:
    """Indented JSON with lists of numbers kept on one line."""
    import re

    text = json.dumps(data, indent=2)
    return re.sub(r"\[\s*([-0-9.,\s]+?)\s*\]", lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summary(values: list[float], digits: int = 2) -> dict[str, Any]:
    return {"median": round(statistics.median(values), digits), "runs": [round(v, digits) for v in values]}


def mode_report(r: Runner, flops: dict[str, float], peaks: dict[str, Any], args) -> dict[str, Any]:
    n = r.step.n_critic
    rates = [r.images_per_s(k, args.batch) for k in range(args.repeats)]
    d_ms = [r.d_and_g(k)[0] * 1e3 for k in range(args.repeats)]
    g_iter_ms = [r.d_and_g(k)[1] * 1e3 for k in range(args.repeats)]
    per_image = ((n - 1) * flops["d_iteration"] + flops["g_iteration"]) / n  # average iteration
    achieved = [rate * per_image / 1e9 for rate in rates]
    peak = peaks["bf16" if r.mode.fast.precision == "bf16" else "fp32"]["gflops"]
    return {
        "switches": r.mode.describe(),
        "images_per_s": summary(rates, 3),
        "ms_per_d_step": summary(d_ms, 1),
        "ms_per_g_step": summary([g - d for g, d in zip(g_iter_ms, d_ms)], 1),
        "ms_per_iteration_with_g_step": summary(g_iter_ms, 1),
        "peak_memory_mb": None if r.peak_mb is None else round(r.peak_mb),
        "gflop_per_image": {k: round(v / 1e9, 2) for k, v in flops.items()} | {"average_iteration": round(per_image / 1e9, 2)},
        "achieved_gflops": summary(achieved, 1),
        "fraction_of_matmul_peak": round(statistics.median(achieved) / peak, 3) if peak else None,
    }


# ---------------------------------------------------------------------------- main
def environment(device) -> dict[str, Any]:
    import torch

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "load_average_1min_start": round(os.getloadavg()[0], 2),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--naive", action="store_true", help="time the naive implementation only")
    which.add_argument("--compare", action="store_true", help="naive and fast alternately; their ratio")
    which.add_argument("--ablation", action="store_true", help="naive, and naive + each single switch")
    parser.add_argument("--quick", action="store_true", help="64 px, base widths 32 (defaults for a quick check)")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--g-conv-dim", type=int)
    parser.add_argument("--d-conv-dim", type=int)
    parser.add_argument("--g-repeat-num", type=int)
    parser.add_argument("--d-repeat-num", type=int)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=3, help="timed iterations per repeat and mode (>= 2)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first (a G one, then plain)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="data-loading worker processes")
    parser.add_argument("--images", type=int, default=256, help="synthetic JPEGs to make")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's, one per core)")
    parser.add_argument("--omp-wait-policy", choices=("default", "passive"), default="default",
                        help="passive: OpenMP threads sleep between parallel regions instead of spinning, "
                             "which leaves the cores to NNPACK's own thread pool (sets OMP_WAIT_POLICY "
                             "before torch loads)")
    parser.add_argument("--loader-check", action="store_true",
                        help="also time the fast step on batches already on the device (no loader): "
                             "fast / fast_in_memory shows what data loading costs")
    parser.add_argument("--switches", default=None,
                        help="ablation: comma-separated switches (default: all that apply to the device)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config key of the fast mode, e.g. compile=on, precision=bf16")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    return parser.parse_args(argv)


def build_config(args) -> dict[str, Any]:
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    base = QUICK if args.quick else PAPER
    config = {**STARGAN_DEFAULTS, **base, "seed": 0}
    for key in PAPER:
        value = getattr(args, key)
        if value is not None:
            config[key] = value
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        config[key.strip()] = {"true": True, "false": False}.get(value.strip().lower(), value.strip())
    return config


def default_switches(device) -> list[str]:
    from starkit.families.stargan.speed.fast import cpu_has_native_bf16

    names = list(SWITCHES)
    if device.type != "cpu":
        names.remove("nnpack_convs")  # CPU kernels
        names.remove("gemm_convs")
    elif not cpu_has_native_bf16():
        names.remove("bf16")  # minutes per iteration at 128 px without bf16 instructions; see --quick
    return names


def memory_probe(spec: str) -> int:
    """Child process of :meth:`Runner.measure_memory`: one iteration, then the peak RSS in MiB."""
    import torch

    from starkit.labels import LabelSpace
    from starkit.training.device import Runtime
    from starkit.families.stargan.speed.fast import FastPath
    from starkit.families.stargan.step import StarGANStep

    probe = json.loads(spec)
    if probe["threads"]:
        torch.set_num_threads(probe["threads"])
    config, batch = probe["config"], probe["batch"]
    space = LabelSpace.from_specs([bench_spec(config["image_size"])])
    torch.manual_seed(0)
    step = StarGANStep(space, config, Runtime(torch.device("cpu")), fast=FastPath(**probe["fast"]))
    size = config["image_size"]
    images = torch.rand(batch, 3, size, size) * 2 - 1
    labels = torch.tensor([labels_of(k) for k in range(batch)], dtype=torch.float32)
    step.train_step(probe["iteration"], DATASET, images, labels)
    # VmHWM belongs to this process's own memory map. getrusage's ru_maxrss does not do here:
    # Linux carries the parent's high-water mark over fork and exec into the child's.
    with contextlib.suppress(OSError, StopIteration, ValueError):
        status = Path("/proc/self/status").read_text().splitlines()
        print(int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024)
        return 0
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB on Linux
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--memory-probe"]:
        return memory_probe(argv[1])
    args = parse_args(argv)
    if args.iters < 2:
        raise SystemExit("--iters must be at least 2 (one iteration with and one without a G step)")
    if args.omp_wait_policy == "passive":
        if "torch" in sys.modules:
            raise SystemExit("--omp-wait-policy passive must be set before torch is imported")
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read once, when torch loads OpenMP
    import torch

    from starkit.labels import LabelSpace
    from starkit.training.device import resolve_device
    from starkit.families.stargan.options import validate_options

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    config = build_config(args)
    validate_options(config)
    space = LabelSpace.from_specs([bench_spec(config["image_size"])])
    n = int(config["n_critic"])

    naive = naive_mode()
    if args.ablation:
        chosen = args.switches.split(",") if args.switches else default_switches(device)
        unknown = [s for s in chosen if s not in SWITCHES]
        if unknown:
            raise SystemExit(f"--switches: unknown {unknown}; choose from {', '.join(SWITCHES)}")
        modes = [naive] + [SWITCHES[s](naive) for s in chosen]
    elif args.compare:
        modes = [naive, fast_mode(config, device)]
    else:
        modes = [naive if args.naive else fast_mode(config, device)]
    if args.loader_check:
        fast = next((m for m in modes if m.name == "fast"), None)
        if fast is None:
            fast = fast_mode(config, device)
            modes.append(fast)
        modes.append(Mode("fast_in_memory", fast.fast, shard_loader=True, in_memory=True))

    log(f"device {device}; measuring matmul peaks")
    peaks = {name: matmul_peak(name, device) for name in ("fp32", "bf16")}
    log(f"  {peaks}")
    with tempfile.TemporaryDirectory(prefix="starkit-train-speed-") as tmp:
        log(f"making {args.images} JPEGs and their shards")
        data = make_data(Path(tmp), args.images, config["image_size"])
        counted: dict[bool, dict[str, float]] = {}  # only share_fake changes the arithmetic
        for mode in modes:
            if mode.fast.share_fake not in counted:
                counted[mode.fast.share_fake] = count_flops(space, config, mode, device)
        runners = [Runner(mode, config, data, args, device) for mode in modes]
        try:
            for r in runners:
                r.build(space, config)
            run_interleaved(runners, config, args, n)
        finally:
            for r in runners:
                r.close()

    report: dict[str, Any] = {
        "command": "python bench/train_speed.py " + " ".join(argv),
        "environment": environment(device) | {"load_average_1min_end": round(os.getloadavg()[0], 2)},
        "config": {k: config[k] for k in (*PAPER, "n_critic")} | {"batch": args.batch, "workers": args.workers},
        "protocol": {"warmup": args.warmup, "timed_iterations": args.iters, "repeats": args.repeats,
                     "order": "modes interleaved iteration by iteration"},
        "matmul_peak": peaks,
        "modes": {r.mode.name: mode_report(r, counted[r.mode.fast.share_fake], peaks, args) for r in runners},
    }
    def ratios(a: Runner, b: Runner) -> dict[str, Any]:
        return summary([a.images_per_s(k, args.batch) / b.images_per_s(k, args.batch) for k in range(args.repeats)], 3)

    by_name = {r.mode.name: r for r in runners}
    if "naive" in by_name and len(runners) > 1:
        report["speedup_vs_naive"] = {r.mode.name: ratios(r, by_name["naive"]) for r in runners if r.mode.name != "naive"}
    if args.loader_check:
        # 1.0: the loader keeps up with the step; below 1: the step waits for data.
        report["fast_vs_in_memory"] = ratios(by_name["fast"], by_name["fast_in_memory"])
    text = compact_json(report)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
