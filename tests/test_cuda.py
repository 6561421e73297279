"""What only a CUDA device can check. Skipped where there is none — CI never has one — and run
on a machine with a GPU by ``scripts/gpu_check.sh`` (docs/performance.md, "On a GPU").

* The default CUDA fast path (bf16 autocast, channels_last, fused Adam, no duplicated work)
  computes the naive CPU path's losses and gradients within the bf16 tolerances that
  tests/test_fast_path.py states for the CPU (losses 2e-2 relative; gradients by relative L2
  error, D 0.1, G 0.6), and plain fp32 on CUDA computes them within TF32's rounding: cuDNN
  runs fp32 convolutions on the tensor cores in TF32 (10-bit mantissa) unless told not to.
  Measured on an H100 (torch 2.11, cuDNN 9.19): bf16 fast path, losses ≤ 1.1e-2, gradients
  D 0.060, G 0.37; fp32, losses ≤ 2.5e-4, gradients D 0.012, G 0.12 (G's gradient at
  initialisation amplifies rounding ~10⁵×, see tests/test_fast_path.py).
* A training run on CUDA — pinned memory, a loader worker, uint8 transfer — resolves ``auto``
  to that fast path, writes checkpoints that load on a machine without a GPU and translate
  there as they do on the GPU, resumes, and evaluates.
* ``compile = "on"`` compiles G on CUDA without falling back to eager.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from starkit.labels import LabelSpace
from starkit.spec import AttributeGroup
from starkit.training.device import Runtime
from starkit.families.stargan.speed.fast import FastPath, resolve_fast_path

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CPU = torch.device("cpu")
TINY = {"image_size": 16, "g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 2, "d_repeat_num": 2, "seed": 0}


def _cuda() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


def _space() -> LabelSpace:
    return LabelSpace.from_groups(
        [
            ("faces", [AttributeGroup("hair", "onehot", ("black", "blond", "brown")),
                       AttributeGroup("a", "binary", ("male", "young"))]),
            ("expr", [AttributeGroup("expression", "onehot", ("angry", "happy", "neutral"))]),
        ]
    )


def _one_g_iteration(device: torch.device, fast: FastPath):
    """Losses (on the host) and per-network gradients (on the host, fp64) of one G iteration
    from the same initial weights and batch on any device (the step draws its random numbers
    from one CPU generator, so every device draws the same ones)."""
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.step import StarGANStep

    torch.manual_seed(0)  # networks are built on the CPU, then moved: the same weights everywhere
    step = StarGANStep(_space(), {**STARGAN_DEFAULTS, **TINY, "g_lr": 1e-12, "d_lr": 1e-12}, Runtime(device),
                       fast=fast)
    images = torch.rand((4, 3, 16, 16), generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = torch.from_numpy(_space().random_labels("faces", 4, np.random.default_rng(0)))
    losses = step.train_step(step.n_critic - 1, "faces", images.to(device), labels.to(device))
    grads = {name: torch.cat([p.grad.flatten() for p in net.parameters()]).double().cpu()
             for name, net in step.networks.items()}
    return {k: v.item() for k, v in losses.items()}, grads


@pytest.fixture(scope="module")
def cpu_naive():
    return _one_g_iteration(CPU, FastPath.naive())


def _errors(result, reference) -> dict[str, float]:
    losses, grads = result
    ref_losses, ref_grads = reference
    assert set(losses) == set(ref_losses)
    errors = {k: abs(losses[k] - ref_losses[k]) / max(abs(ref_losses[k]), 1e-6) for k in losses}
    for name in ("G", "D"):
        assert torch.isfinite(grads[name]).all(), name
        errors[f"grad {name}"] = ((grads[name] - ref_grads[name]).norm() / ref_grads[name].norm()).item()
    print({k: f"{v:.2e}" for k, v in errors.items()})  # the measured errors, for docs/performance.md
    return errors


def test_auto_on_cuda_is_the_bf16_channels_last_fast_path():
    fast = resolve_fast_path({}, _cuda())
    assert fast.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")
    assert fast.channels_last and fast.adam_impl == "fused"
    assert not (fast.nnpack_convs or fast.gemm_convs)  # CPU kernels


def test_default_cuda_fast_path_matches_the_naive_cpu_path_within_bf16_tolerance(cpu_naive):
    errors = _errors(_one_g_iteration(_cuda(), resolve_fast_path({}, _cuda())), cpu_naive)
    assert max(v for k, v in errors.items() if not k.startswith("grad")) <= 2e-2, errors
    assert errors["grad D"] <= 0.1 and errors["grad G"] <= 0.6, errors


@pytest.mark.parametrize("output, colour_map", [("image", "none"), ("attention", "none"), ("attention", "global")])
def test_every_generator_output_trains_finite_under_the_cuda_fast_path(output, colour_map):
    # Saturated pixels under bf16 autocast: the colour map keeps its input in fp32, where bf16
    # would lose ~3 digits of it.
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.step import StarGANStep

    torch.manual_seed(0)
    config = {**STARGAN_DEFAULTS, **TINY, "g_output": output, "g_colour_map": colour_map, "n_critic": 1}
    step = StarGANStep(_space(), config, Runtime(_cuda()))
    images = (torch.rand((4, 3, 16, 16), generator=torch.Generator().manual_seed(1)) * 2 - 1).to(_cuda())
    images[:, :, :4] = 1.0  # saturated pixels, like a bright background
    labels = torch.from_numpy(_space().random_labels("faces", 4, np.random.default_rng(0))).to(_cuda())
    for i in range(3):
        losses = step.train_step(i, "faces", images, labels)
        assert all(torch.isfinite(v).all() for v in losses.values()), (i, losses)
        for name, net in step.networks.items():
            assert all(torch.isfinite(p).all() for p in net.parameters()), (i, name)


def test_fp32_on_cuda_matches_the_cpu_within_tf32_rounding(cpu_naive):
    errors = _errors(_one_g_iteration(_cuda(), FastPath.naive()), cpu_naive)
    assert max(v for k, v in errors.items() if not k.startswith("grad")) <= 5e-3, errors
    assert errors["grad D"] <= 2e-2 and errors["grad G"] <= 0.6, errors


def test_uint8_batches_normalise_on_the_device_exactly_as_on_the_cpu():
    from starkit.data.loading import to_model_input

    batch = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8).pin_memory()
    on_gpu = to_model_input(batch, _cuda())
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.float32
    # CUDA divides by a scalar as a multiplication by its reciprocal: at most one rounding step apart.
    assert (on_gpu.cpu() - to_model_input(batch, CPU)).abs().max().item() <= 2**-23


def _config(data_root, **extra):
    return {"datasets": ["toyfaces", "toyexpr"], "data_root": str(data_root), "iters": 6, "batch_size": 4,
            "workers": 1, "sample_every": 3, "sample_rows": 2, "log_every": 3, "latest_every": 3, "save_every": 0,
            "g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 1, "d_repeat_num": 2, "n_critic": 2,
            "g_ema": 0.9, "device": "cuda", **extra}


def test_a_run_on_cuda_checkpoints_for_cpu_resumes_and_evaluates(toy_data_root, tmp_path, registry):
    from click.testing import CliRunner

    from starkit.cli.main import cli
    from starkit.training import train
    from starkit.training.checkpoint import load_checkpoint
    from starkit.translate import Translator

    seen = {}

    def look(trainer):
        seen["fast"] = trainer.step.fast
        seen["devices"] = {p.device.type for p in trainer.step.G.parameters()}

    run = tmp_path / "run"
    result = train(run, _config(toy_data_root), registry=registry, progress=False, handle_sigint=False,
                   callbacks=[look])
    assert result.iteration == 6 and seen["devices"] == {"cuda"}
    assert seen["fast"] == resolve_fast_path({}, _cuda())
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["iter-0000003.png", "iter-0000006.png"]

    # The checkpoint loads with weights_only on the CPU alone, and translates there as on the GPU.
    checkpoint = load_checkpoint(run / "checkpoints" / "latest.pt")
    assert all(t.device.type == "cpu" for net in checkpoint["networks"].values() for t in net.values())
    on_cpu, on_gpu = Translator.from_run(run, "cpu"), Translator.from_run(run, "cuda")
    assert on_cpu.weights == on_gpu.weights == "ema"
    space = on_cpu.label_space
    images = torch.rand((3, 3, 16, 16), generator=torch.Generator().manual_seed(2)) * 2 - 1
    labels = torch.tensor([[1, 0, 0, 1, 0]] * 3, dtype=torch.float32)
    target = space.encode("toyfaces", labels)
    with torch.no_grad():
        expected = on_cpu.G(images, target)
        got = on_gpu.G(images.to(on_gpu.device), target.to(on_gpu.device)).cpu()
    assert (got - expected).abs().max().item() <= 1e-2  # TF32 convolutions on the GPU

    # Resume on the GPU: continues from the checkpoint's iteration.
    resumed = train(run, {"iters": 8}, resume=True, registry=registry, progress=False, handle_sigint=False)
    assert resumed.iteration == 8
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["iteration"] == 8

    cli_result = CliRunner().invoke(cli, ["eval", "--run", str(run), "--data", str(toy_data_root), "--limit", "2",
                                          "--device", "cuda", "--json"])
    assert cli_result.exit_code == 0, cli_result.output
    report = json.loads(cli_result.stdout)
    assert report["generator_weights"] == "ema"
    assert report["summary"]["translations"] > 0 and np.isfinite(report["summary"]["reconstruction_l1"])


@pytest.mark.slow
def test_compile_on_cuda_compiles_the_generator_without_falling_back(toy_data_root, tmp_path, registry):
    from starkit.training import train

    seen = {}

    def look(trainer):
        seen["failed"] = trainer.step.G_call.failed

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the eager fallback warns
        result = train(tmp_path / "compiled", _config(toy_data_root, compile="on", iters=4, sample_every=0),
                       registry=registry, progress=False, handle_sigint=False, callbacks=[look])
    assert result.iteration == 4 and seen["failed"] is None


def test_the_attribute_classifier_trains_on_cuda_and_loads_on_the_cpu(toy_data_root, tmp_path):
    from starkit.evaluation.classifier import ClassifierConfig, load_classifier, train_classifier

    out = tmp_path / "judge.pt"
    judge = train_classifier(["toyfaces", "toyexpr"], toy_data_root, ClassifierConfig(iters=4, batch_size=8),
                             device="cuda", progress=False, out=out)
    assert judge.device.type == "cuda" and judge.info["test_accuracy"]["toyfaces"]
    on_cpu = load_classifier(out, device="cpu")
    images = torch.rand((2, 3, 16, 16), generator=torch.Generator().manual_seed(3)) * 2 - 1
    expected, got = on_cpu.logits(images), judge.logits(images).cpu()
    assert (got - expected).abs().max().item() <= 1e-2 * max(1.0, expected.abs().max().item())  # TF32

