"""The stargan-v2 step's fast path (starkit.families.stargan_v2.speed) computes what fp32 computes.

For the same weights and batch, one iteration (two D steps, two G steps, the moving averages) at
16 px with tiny networks:

* ``precision = "bf16"``: every logged loss within 3e-2 (relative, or 3e-3 absolute for losses
  near 0) of fp32's, and each network's gradient within a relative L2 error of 0.1 (D), 0.15
  (the style encoder) and 0.3 (G, the mapping network): about twice what was measured on an
  AVX512-BF16 CPU (losses ≤ 0.9 %; gradients D 0.035, E 0.054, F 0.144, G 0.147). At
  initialisation tiny networks' gradients are badly conditioned (as the ``stargan`` step's,
  tests/test_fast_path.py), so bf16's 8-bit mantissa moves them by several per cent. Weights,
  moving averages, Adam's state and the losses stay fp32.
* ``channels_last``, ``adam_impl`` in fp32: losses within 1e-5, gradients within 1e-3 (relative
  L2; measured ≤ 3e-4, the mapping network's under channels_last: its gradient reaches it
  through G's AdaIN layers, whose convolutions round differently in NHWC).
* :meth:`V2FastPath.naive` is the step as it was before the fast path existed, bit for bit:
  compared with that commit's code (``git archive``), run in a child process on the same weights
  and batch (skipped outside a git checkout).

Learning rates are 1e-12 in the gradient comparisons so that the earlier updates of an iteration
leave the networks unchanged to float precision (Adam's first step is ±lr wherever a gradient
is non-zero, which would otherwise turn rounding differences into different networks).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from starkit.default_plugins.stargan_v2 import STARGAN_V2_DEFAULTS
from starkit.families.stargan_v2.options import check_speed_switches
from starkit.families.stargan_v2.speed import V2FastPath, resolve_v2_fast_path
from starkit.families.stargan_v2.step import StarGANv2Step
from starkit.labels import LabelSpace
from starkit.spec import AttributeGroup
from starkit.training import precision
from starkit.training.config import ConfigError
from starkit.training.device import Runtime
from starkit.training.step import References

SIZE = 16
TINY = {"conv_dim": 8, "max_conv_dim": 16, "mapping_dim": 16, "style_dim": 8, "latent_dim": 4, "image_size": SIZE,
        "seed": 0}
NAIVE = V2FastPath.naive()
REPO = Path(__file__).resolve().parents[1]
#: The last commit before the v2 step had a fast path: what ``naive`` must reproduce.
BEFORE_FAST_PATH = "e69833c"


def _space() -> LabelSpace:
    faces = (AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair")),)
    expr = (AttributeGroup("expression", "onehot", ("angry", "happy", "neutral")),)
    return LabelSpace.from_groups([("faces", faces), ("expr", expr)])


def _step(fast: V2FastPath, **extra) -> StarGANv2Step:
    torch.manual_seed(0)  # the same initial weights for every variant
    return StarGANv2Step(_space(), {**STARGAN_V2_DEFAULTS, **TINY, **extra}, Runtime(torch.device("cpu")), fast=fast)


def _batch(n: int = 4):
    g = torch.Generator().manual_seed(1)
    images = torch.rand((n, 3, SIZE, SIZE), generator=g) * 2 - 1
    labels = torch.eye(3)[torch.randint(3, (n,), generator=g)]
    references = References(torch.rand((n, 2, 3, SIZE, SIZE), generator=g) * 2 - 1, torch.randint(6, (n,), generator=g))
    return images, labels, references


def _one_iteration(fast: V2FastPath, lr: float = 1e-12):
    """Losses and each trained network's gradients after one iteration (each network's last
    backward: D's from the reference-guided D step, G's from the reference-guided G step, the
    mapping network's and the style encoder's from the latent-guided G step)."""
    step = _step(fast, lr=lr, f_lr=lr)
    images, labels, references = _batch()
    losses = step.train_step(0, "faces", images, labels, references=references)
    grads = {name: torch.cat([p.grad.flatten() for p in net.parameters()]) for name, net in step.nets.items()}
    return losses, grads, step


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp(min=1e-30))


# ---------------------------------------------------------------------------- bf16 against fp32
def test_bf16_gives_fp32s_losses_and_gradients_within_tolerance():
    fp32_losses, fp32_grads, _ = _one_iteration(NAIVE)
    losses, grads, step = _one_iteration(NAIVE.replace(precision="bf16"))
    assert losses.keys() == fp32_losses.keys()
    for name, value in losses.items():
        assert value.dtype == torch.float32, name  # losses reduced in fp32
        assert torch.allclose(value, fp32_losses[name], rtol=3e-2, atol=3e-3), (name, value, fp32_losses[name])
    limits = {"discriminator": 0.1, "style_encoder": 0.15, "mapping_network": 0.3, "generator": 0.3}
    for name, limit in limits.items():
        assert _relative(grads[name], fp32_grads[name]) < limit, name
    # Only the forward passes ran in bf16: weights, averages and Adam's moments are fp32.
    tensors = [*(t for net in step.networks.values() for t in net.state_dict().values()),
               *(t for opt in step.optimizers.values() for s in opt.state.values() for t in s.values()
                 if t.is_floating_point())]
    assert {t.dtype for t in tensors} == {torch.float32}


def test_r1_under_bf16_is_the_fp32_input_gradient_of_the_bf16_discriminator():
    # R1 differentiates D's logit with respect to the fp32 images: the same penalty, by hand,
    # with D under autocast and the gradient taken outside it, in fp32.
    step = _step(NAIVE.replace(precision="bf16"))
    images, labels, references = _batch()
    x = images.clone().requires_grad_(True)
    y = torch.as_tensor(step.domains.of_labels("faces", labels.numpy()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = step.nets["discriminator"](x, y)
    (grad,) = torch.autograd.grad(logits.float().sum(), x)
    assert grad.dtype == torch.float32
    expected = 0.5 * grad.pow(2).flatten(1).sum(1).mean()
    losses = step.train_step(0, "faces", images, labels, references=references)
    assert torch.allclose(losses["D/latent_r1"], expected, rtol=1e-6)


# ---------------------------------------------------------------------------- fp32 switches
@pytest.mark.parametrize("change", [{"channels_last": True}, {"adam_impl": "fused"}, {"adam_impl": "foreach"}])
def test_fp32_switches_give_the_same_losses_and_gradients(change):
    base_losses, base_grads, _ = _one_iteration(NAIVE)
    losses, grads, step = _one_iteration(NAIVE.replace(**change))
    for name, value in losses.items():
        assert torch.allclose(value, base_losses[name], rtol=1e-5, atol=1e-7), name
    for name in grads:
        assert _relative(grads[name], base_grads[name]) < 1e-3, name
    if change.get("channels_last"):
        assert step.nets["generator"].from_rgb.weight.is_contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------------------- resolution
def test_auto_resolves_per_device(monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
        cpu = resolve_v2_fast_path({}, torch.device("cpu"))
        # NHWC did not pay in the step on an AVX512-BF16 CPU (docs/performance.md).
        assert cpu == V2FastPath(precision="bf16" if native else "fp32", channels_last=False, adam_impl="fused")
    monkeypatch.setattr(precision, "cuda_has_bf16", lambda device: True)
    cuda = resolve_v2_fast_path({}, torch.device("cuda", 0))
    assert cuda == V2FastPath(precision="bf16", channels_last=True, adam_impl="fused")
    monkeypatch.setattr(precision, "cuda_has_bf16", lambda device: False)
    assert resolve_v2_fast_path({}, torch.device("cuda", 0)).precision == "fp32"
    explicit = resolve_v2_fast_path({"precision": "fp32", "channels_last": "on", "adam_impl": "loop"},
                                    torch.device("cpu"))
    assert explicit == V2FastPath(precision="fp32", channels_last=True, adam_impl="loop")
    with pytest.raises(ConfigError, match="precision: must be one of auto, fp32, bf16, got 'fp16'"):
        resolve_v2_fast_path({"precision": "fp16"}, torch.device("cpu"))


def test_the_step_takes_its_switches_from_the_config_and_summarises_them():
    step = _step(None, precision="bf16", channels_last="on", adam_impl="foreach")
    assert step.fast == V2FastPath(precision="bf16", channels_last=True, adam_impl="foreach")
    assert step.fast.summary() == "bf16, foreach Adam, channels_last"
    assert NAIVE.summary() == "fp32, loop Adam"
    assert step.optimizers["generator"].defaults["foreach"] is True
    assert step.optimizers["generator"].defaults["weight_decay"] == 1e-4


def test_only_the_switches_the_family_does_not_implement_are_refused():
    for key in ("compile", "nnpack_convs", "gemm_convs"):
        with pytest.raises(ConfigError, match=f"{key}: 'on' is not implemented for stargan-v2"):
            check_speed_switches({key: "on"})
        check_speed_switches({key: "off"})
    check_speed_switches({"precision": "bf16", "channels_last": "on", "adam_impl": "fused"})


# ---------------------------------------------------------------------------- naive = before
_BEFORE_SCRIPT = textwrap.dedent("""
    import sys, torch
    import starkit
    assert starkit.__file__.startswith(sys.argv[1]), starkit.__file__
    from starkit.default_plugins.stargan_v2 import STARGAN_V2_DEFAULTS
    from starkit.families.stargan_v2.step import StarGANv2Step
    from starkit.labels import LabelSpace
    from starkit.spec import AttributeGroup
    from starkit.training.device import Runtime
    from starkit.training.step import References
    given = torch.load(sys.argv[2], weights_only=True)
    space = LabelSpace.from_groups([(dataset, (AttributeGroup(group, "onehot", tuple(members)),))
                                    for dataset, group, members in given["space"]])
    step = StarGANv2Step(space, {**STARGAN_V2_DEFAULTS, **given["config"]}, Runtime(torch.device("cpu")))
    for name, state in given["weights"].items():
        step.networks[name].load_state_dict(state)
    for i, (images, labels, refs, domains) in enumerate(given["batches"]):
        step.train_step(i, "faces", images, labels, references=References(refs, domains))
    torch.save({name: net.state_dict() for name, net in step.networks.items()}, sys.argv[3])
""")


def _before_fast_path_tree(tmp_path: Path) -> Path:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the repository's git history")
    known = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{BEFORE_FAST_PATH}^{{commit}}"])
    if known.returncode:
        pytest.skip(f"commit {BEFORE_FAST_PATH} not in this checkout")
    tree = tmp_path / "before"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_FAST_PATH, "starkit"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def test_naive_is_the_step_before_the_fast_path_bit_for_bit(tmp_path):
    tree = _before_fast_path_tree(tmp_path)
    step = _step(NAIVE, precision="fp32")
    images, labels, references = _batch()
    batches = [(images, labels, references.images, references.domains),
               (images.flip(0), labels.flip(0), references.images.flip(0), references.domains)]
    space = [("faces", "hair", ["Black_Hair", "Blond_Hair", "Brown_Hair"]),
             ("expr", "expression", ["angry", "happy", "neutral"])]  # _space(), as plain data
    given = {"space": space, "config": TINY, "batches": batches,
             "weights": {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in step.networks.items()}}
    torch.save(given, tmp_path / "given.pt")
    script = tmp_path / "before_step.py"
    script.write_text(_BEFORE_SCRIPT)
    subprocess.run([sys.executable, str(script), str(tree), str(tmp_path / "given.pt"), str(tmp_path / "after.pt")],
                   check=True, cwd=tmp_path,
                   env={**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(torch.get_num_threads())})
    before = torch.load(tmp_path / "after.pt", weights_only=True)
    for i, (x, y, refs, domains) in enumerate(batches):
        step.train_step(i, "faces", x, y, references=References(refs, domains))
    for name, net in step.networks.items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, before[name][key]), f"{name}.{key}"
