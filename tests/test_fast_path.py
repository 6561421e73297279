"""The fast path computes what the naive path computes.

For the same weights and batch, each switch of :mod:`starkit.families.stargan.speed.fast` is compared with
:meth:`FastPath.naive` on a D iteration and a G iteration (tiny networks, 16 px). Tolerances:

* ``fake_without_graph``, ``share_fake``: bit-identical losses and gradients (the same kernels
  run on the same inputs; only what autograd records differs);
* ``adam_impl``: identical D gradients; D's parameters after its update within 1e-6, G's (whose
  gradient follows D's slightly different update) within 1e-4 (relative);
* ``channels_last``, ``nnpack_convs``, ``gemm_convs``, ``d_batch_real_fake`` (a batch of 2B
  may be blocked differently in a matrix product) and all fp32 switches together: losses
  within 1e-5 and each network's gradient within 1e-4 (relative L2 error; measured ≤ 3e-5 —
  NNPACK's Winograd and FFT transforms, and a GEMM's summation order, round differently from
  oneDNN's direct convolution);
* ``precision = "bf16"``: losses within 2e-2 (relative). Gradients are compared by relative L2
  error: ≤ 0.1 for D, ≤ 0.6 for G. The generator's gradient at initialisation is badly
  conditioned — even fp32 is 0.2–0.6 % away from fp64 there, i.e. rounding errors are amplified
  ~10⁵× — so bf16's 8-bit mantissa moves it by 20–40 %; whether that matters for training is
  what ``bench/fast_path_quality.py`` measures.

Learning rates are 1e-12 in the gradient comparisons so that the D update before the G step
leaves D unchanged to float precision: Adam's first step is ±lr wherever a gradient is non-zero,
which would otherwise turn rounding differences into different discriminators.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from starkit.labels import LabelSpace
from starkit.spec import AttributeGroup
from starkit.training.config import ConfigError, resolve_config
from starkit.training.device import Runtime
from starkit.families.stargan.speed.fast import CompiledOrEager, FastPath, cpu_has_native_bf16, resolve_fast_path
from starkit.families.stargan.speed.gemm_convs import MAX_POSITIONS, GemmConv2d, gemm_conv2d, use_gemm_convs
from starkit.families.stargan.speed.nnpack_convs import NNPACKConv2d, nnpack_available, use_nnpack_convs

NAIVE = FastPath.naive()
TINY = {"image_size": 16, "g_conv_dim": 8, "d_conv_dim": 8, "g_repeat_num": 2, "d_repeat_num": 2, "seed": 0}
needs_nnpack = pytest.mark.skipif(not nnpack_available(), reason="this torch has no NNPACK on this CPU")


def _space() -> LabelSpace:
    return LabelSpace.from_groups(
        [
            ("faces", [AttributeGroup("hair", "onehot", ("black", "blond", "brown")),
                       AttributeGroup("a", "binary", ("male", "young"))]),
            ("expr", [AttributeGroup("expression", "onehot", ("angry", "happy", "neutral"))]),
        ]
    )


def _step(fast: FastPath, **extra):
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.step import StarGANStep

    torch.manual_seed(0)  # the same initial weights for every variant
    return StarGANStep(_space(), {**STARGAN_DEFAULTS, **TINY, **extra}, Runtime(torch.device("cpu")), fast=fast)


def _batch(n: int = 4):
    images = torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(1)) * 2 - 1
    labels = torch.from_numpy(_space().random_labels("faces", n, np.random.default_rng(0)))
    return images, labels


def _one_g_iteration(fast: FastPath, lr: float = 1e-12):
    """Losses and per-network gradients of one G iteration (a D step, then a G step)."""
    step = _step(fast, g_lr=lr, d_lr=lr)
    images, labels = _batch()
    losses = step.train_step(step.n_critic - 1, "faces", images, labels)
    grads = {name: torch.cat([p.grad.flatten() for p in net.parameters()]) for name, net in step.networks.items()}
    return losses, grads, step


def _with_and_without(extra: dict, images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor):
    """One G iteration of the same G — perturbed so that it changes its input — on ``images``
    with fixed ``targets``, without and with the config keys ``extra``: ``{"plain": ..., "extra":
    ...}``, each ``(step, losses, G's flattened gradient)``. For tests that an optional loss
    adds exactly its own term."""
    plain = _step(NAIVE, g_lr=1e-12, d_lr=1e-12)
    with torch.no_grad():
        for p in plain.G.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    weights = {k: v.clone() for k, v in plain.G.state_dict().items()}
    results = {}
    for name, keys in (("plain", {}), ("extra", extra)):
        step = _step(NAIVE, g_lr=1e-12, d_lr=1e-12, **keys)
        step.G.load_state_dict(weights)
        step.target_labels = lambda dataset, batch_labels: targets
        losses = step.train_step(step.n_critic - 1, "faces", images, labels)
        results[name] = step, losses, torch.cat([p.grad.flatten() for p in step.G.parameters()])
    return results


@pytest.fixture(scope="module")
def naive_result():
    return _one_g_iteration(NAIVE)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def _loss_errors(losses, reference) -> dict[str, float]:
    assert set(losses) == set(reference) and "G/loss_rec" in losses
    return {k: abs(losses[k].item() - reference[k].item()) / max(abs(reference[k].item()), 1e-6) for k in losses}


@pytest.mark.parametrize("switch", ["fake_without_graph", "share_fake"])
def test_not_computing_the_fake_twice_changes_nothing(naive_result, switch):
    losses, grads, _ = _one_g_iteration(NAIVE.replace(**{switch: True}))
    ref_losses, ref_grads, _ = naive_result
    assert all(torch.equal(losses[k], ref_losses[k]) for k in losses)
    assert all(torch.equal(grads[n], ref_grads[n]) for n in grads)


@pytest.mark.parametrize(
    "fast",
    [
        pytest.param(NAIVE.replace(channels_last=True), id="channels_last"),
        pytest.param(NAIVE.replace(nnpack_convs=True), id="nnpack_convs", marks=needs_nnpack),
        pytest.param(NAIVE.replace(gemm_convs=True), id="gemm_convs"),
        pytest.param(NAIVE.replace(d_batch_real_fake=True), id="d_batch_real_fake"),
        pytest.param(
            NAIVE.replace(channels_last=True, nnpack_convs=True, gemm_convs=True, fake_without_graph=True,
                          share_fake=True, d_batch_real_fake=True, adam_impl="fused"),
            id="all_fp32_switches", marks=needs_nnpack,
        ),
    ],
)
def test_fp32_switches_match_the_naive_losses_and_gradients(naive_result, fast):
    losses, grads, _ = _one_g_iteration(fast)
    ref_losses, ref_grads, _ = naive_result
    assert max(_loss_errors(losses, ref_losses).values()) <= 1e-5
    for name in ("G", "D"):
        assert _rel(grads[name], ref_grads[name]) <= 1e-4, name


def test_bf16_autocast_stays_within_the_stated_tolerance(naive_result):
    losses, grads, _ = _one_g_iteration(NAIVE.replace(precision="bf16"))
    ref_losses, ref_grads, _ = naive_result
    errors = _loss_errors(losses, ref_losses)
    assert max(errors.values()) <= 2e-2, errors
    assert _rel(grads["D"], ref_grads["D"]) <= 0.1
    assert _rel(grads["G"], ref_grads["G"]) <= 0.6
    assert all(torch.isfinite(g).all() for g in grads.values())


@pytest.mark.parametrize("impl", ["fused", "foreach"])
def test_adam_implementations_update_alike(impl):
    _, grads_loop, loop = _one_g_iteration(NAIVE, lr=1e-4)
    _, grads_other, other = _one_g_iteration(NAIVE.replace(adam_impl=impl), lr=1e-4)
    # D's gradient comes before any update; G's follows D's update, which rounds differently.
    assert torch.equal(grads_loop["D"], grads_other["D"])
    # Updates from identical gradients agree to rounding (D); G's gradients already differ in
    # the last bits, which Adam's first, sign-like step (±lr) turns into ~1e-5 (measured 2e-5).
    for name, tolerance in (("D", 1e-6), ("G", 1e-4)):
        after_loop = torch.cat([p.detach().flatten() for p in loop.networks[name].parameters()])
        after_other = torch.cat([p.detach().flatten() for p in other.networks[name].parameters()])
        assert _rel(after_other, after_loop) <= tolerance, name


def test_the_default_cpu_fast_path_is_deterministic():
    """Bit-exact resume rests on this: the same start gives the same weights, G steps included
    (whatever ``auto`` picks on this CPU: fp32 with NNPACK, or bf16 where the CPU has it)."""
    fast = resolve_fast_path({}, torch.device("cpu"))
    assert fast.gemm_convs and fast.share_fake and fast.fake_without_graph and fast.d_batch_real_fake
    assert fast.nnpack_convs == (fast.precision == "fp32" and nnpack_available())
    runs = []
    for _ in range(2):
        step = _step(fast)
        images, labels = _batch()
        for i in range(6):
            step.train_step(i, "faces", images, labels)
        runs.append([p.detach().clone() for net in step.networks.values() for p in net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_shared_fake_keeps_the_generator_graph_only_on_g_iterations():
    step = _step(NAIVE.replace(fake_without_graph=True, share_fake=True))
    images, labels = _batch()
    c_trg = step.label_space.encode("faces", labels.flip(0))
    fake, g_fake, masks = step._fake_for_d_step(images, c_trg, keep_graph_for_g=False)
    assert g_fake is None and masks is None and not fake.requires_grad
    fake, g_fake, masks = step._fake_for_d_step(images, c_trg, keep_graph_for_g=True)
    assert masks is None  # no mask penalty: nothing asks for G's masks
    assert g_fake.requires_grad and not fake.requires_grad and torch.equal(fake, g_fake.detach())


# ---------------------------------------------------------------------------- NNPACK layers
@needs_nnpack
@pytest.mark.parametrize("kernel, padding, bias", [(3, 1, False), (7, 3, False), (3, 0, True), (5, 1, True)])
def test_nnpack_conv_matches_conv2d_forward_and_gradients(kernel, padding, bias):
    torch.manual_seed(0)
    reference = nn.Conv2d(6, 5, kernel, padding=padding, bias=bias)
    model = nn.Sequential(nn.Conv2d(6, 5, kernel, padding=padding, bias=bias))
    model.load_state_dict({f"0.{k}": v for k, v in reference.state_dict().items()})
    assert use_nnpack_convs(model) == 1 and isinstance(model[0], NNPACKConv2d)
    assert list(model.state_dict()) == [f"0.{k}" for k in reference.state_dict()]
    x = torch.randn(3, 6, 12, 12, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y, y_ref = model(x), reference(x_ref)
    grad_out = torch.randn_like(y)
    y.backward(grad_out)
    y_ref.backward(grad_out)
    assert _rel(y, y_ref) <= 1e-5
    assert _rel(x.grad, x_ref.grad) <= 1e-5
    assert _rel(model[0].weight.grad, reference.weight.grad) <= 1e-5
    if bias:
        assert _rel(model[0].bias.grad, reference.bias.grad) <= 1e-5


def test_nnpack_swap_shares_parameters_and_skips_unsupported_layers():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),            # stride 1: replaced
        nn.Conv2d(4, 4, 4, stride=2, padding=1),  # strided: kept
        nn.Conv2d(4, 4, 3, padding=1, groups=2),  # grouped: kept
        nn.ConvTranspose2d(4, 4, 4, 2, 1),        # transposed: kept
    )
    weight = model[0].weight
    assert use_nnpack_convs(model) == 1
    assert model[0].weight is weight and type(model[1]) is nn.Conv2d and type(model[3]) is nn.ConvTranspose2d


def test_nnpack_conv_falls_back_where_nnpack_cannot_run():
    conv = NNPACKConv2d.from_conv(nn.Conv2d(3, 4, 3, padding=1))
    x = torch.randn(2, 3, 8, 8)
    assert not conv.runs_nnpack(x.double())
    torch.testing.assert_close(conv.double()(x.double()), nn.functional.conv2d(x.double(), conv.weight, conv.bias, padding=1))
    conv.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not conv.runs_nnpack(x)
        assert conv(x).dtype == torch.bfloat16  # autocast's precision is respected


@needs_nnpack
def test_nnpack_conv_refuses_double_backward():
    conv = NNPACKConv2d.from_conv(nn.Conv2d(3, 4, 3, padding=1))
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(conv(x).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        grad.sum().backward()


# ---------------------------------------------------------------------------- GEMM layers
@pytest.mark.parametrize(
    "kernel, stride, padding, size, bias",
    [(4, 2, 1, 4, True), (4, 2, 1, 8, False), (3, 1, 1, 2, False), (2, 1, 0, 2, False), (3, 2, 0, 5, True)],
)
def test_gemm_conv_is_conv2d_and_twice_differentiable(kernel, stride, padding, size, bias):
    torch.manual_seed(0)
    x = torch.randn(3, 6, size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 6, kernel, kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True) if bias else None
    expected = nn.functional.conv2d(x, w, b, stride, padding)
    torch.testing.assert_close(gemm_conv2d(x, w, b, (stride, stride), (padding, padding)), expected)
    # The gradient penalty differentiates D twice: second derivatives must be right too.
    assert torch.autograd.gradgradcheck(lambda x, w: gemm_conv2d(x, w, None, (stride, stride), (padding, padding)), (x, w))


def test_gemm_layers_take_the_gemm_path_only_for_small_outputs(monkeypatch):
    model = nn.Sequential(nn.Conv2d(4, 4, 4, 2, 1), nn.Conv2d(4, 4, 4, 2, 1, dilation=2))
    weight = model[0].weight
    assert use_gemm_convs(model) == 1 and isinstance(model[0], GemmConv2d) and model[0].weight is weight
    calls = []
    monkeypatch.setattr("starkit.families.stargan.speed.gemm_convs.gemm_conv2d", lambda *a: calls.append(a) or nn.functional.conv2d(
        a[0], a[1], a[2], a[3], a[4]))
    side = 2 * int(MAX_POSITIONS**0.5)  # output side sqrt(MAX_POSITIONS): the largest on the GEMM path
    model[0](torch.randn(1, 4, side, side))
    assert len(calls) == 1
    model[0](torch.randn(1, 4, side + 2, side + 2))
    assert len(calls) == 1  # larger outputs go to F.conv2d


# ---------------------------------------------------------------------------- switches
def test_auto_resolves_per_device(monkeypatch):
    cpu = resolve_fast_path({}, torch.device("cpu"))
    assert not cpu.channels_last and not cpu.compile and cpu.adam_impl == "fused"
    assert cpu.precision == ("bf16" if cpu_has_native_bf16() else "fp32")
    assert cpu.nnpack_convs == (cpu.precision == "fp32" and nnpack_available())  # NNPACK is fp32-only
    monkeypatch.setattr("starkit.families.stargan.speed.fast.cuda_has_bf16", lambda device: True)
    cuda = resolve_fast_path({}, torch.device("cuda", 0))
    assert (cuda.precision, cuda.channels_last, cuda.adam_impl, cuda.nnpack_convs, cuda.gemm_convs) == \
        ("bf16", True, "fused", False, False)
    assert cpu.gemm_convs
    explicit = resolve_fast_path({"precision": "fp32", "channels_last": "off", "adam_impl": "foreach",
                                  "share_fake": False}, torch.device("cuda", 0))
    assert (explicit.precision, explicit.channels_last, explicit.adam_impl, explicit.share_fake) == \
        ("fp32", False, "foreach", False)


def test_summary_names_the_precision_the_optimiser_and_each_switch_that_is_on():
    assert NAIVE.summary() == "fp32, loop Adam"
    fast = NAIVE.replace(precision="bf16", adam_impl="fused", channels_last=True, share_fake=True)
    assert fast.summary() == "bf16, fused Adam, channels_last, share_fake"


def test_switches_are_config_keys_with_checked_values():
    config = resolve_config({}, overrides={"datasets": ["a"], "precision": "bf16", "compile": "on"})
    assert config["precision"] == "bf16" and config["compile"] == "on" and config["share_fake"] is True
    with pytest.raises(ConfigError, match="precision"):
        resolve_config({}, overrides={"datasets": ["a"], "precision": "fp8"})
    with pytest.raises(ConfigError, match="nnpack_convs"):
        resolve_fast_path({"nnpack_convs": "maybe"}, torch.device("cpu"))


def test_compile_failure_falls_back_to_eager_with_a_warning():
    module = nn.Linear(3, 2)

    def broken_compile(m, **options):
        def compiled(*args):
            raise NotImplementedError("no C++ compiler")
        return compiled

    wrapped = CompiledOrEager(module, compile_fn=broken_compile)
    x = torch.randn(4, 3)
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        out = wrapped(x)
    torch.testing.assert_close(out, module(x))
    assert wrapped.failed and "no C++ compiler" in wrapped.failed
    torch.testing.assert_close(wrapped(x), module(x))  # eager from now on, no second warning


def test_errors_of_the_model_itself_are_not_swallowed_by_the_compile_fallback():
    wrapped = CompiledOrEager(nn.Linear(3, 2), compile_fn=lambda m, **o: m)
    with pytest.raises(RuntimeError):
        wrapped(torch.randn(4, 5))  # a shape error, not a compiler one
    assert wrapped.failed is None


# ---------------------------------------------------------------------------- identity loss
def test_identity_loss_is_off_by_default_and_adds_exactly_its_term_when_on():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.losses import reconstruction_loss

    assert STARGAN_DEFAULTS["lambda_id"] == 0.0  # the paper's objective
    plain = _step(NAIVE, g_lr=1e-12, d_lr=1e-12)
    with_id = _step(NAIVE, g_lr=1e-12, d_lr=1e-12, lambda_id=3.0)
    images, labels = _batch()
    # The G weights before the step, to compute the identity term independently.
    reference = _step(NAIVE, g_lr=1e-12, d_lr=1e-12)
    c_org = _space().encode("faces", labels)
    reference.G.zero_grad()
    identity = reconstruction_loss(images, reference.G(images, c_org))
    (3.0 * identity).backward()
    expected_extra = torch.cat([p.grad.flatten() for p in reference.G.parameters()])

    l_plain = plain.train_step(plain.n_critic - 1, "faces", images, labels)
    l_id = with_id.train_step(with_id.n_critic - 1, "faces", images, labels)
    assert "G/loss_id" not in l_plain
    assert l_id["G/loss_id"].item() == pytest.approx(identity.item(), rel=1e-5)
    g_plain = torch.cat([p.grad.flatten() for p in plain.G.parameters()])
    g_id = torch.cat([p.grad.flatten() for p in with_id.G.parameters()])
    assert _rel(g_id - g_plain, expected_extra) < 1e-3
    # Nothing else changed: the D step is the same.
    assert all(torch.equal(l_id[k], l_plain[k]) for k in l_plain if k.startswith("D/"))


def test_classifier_gradient_penalty_is_off_by_default_and_adds_exactly_its_term_when_on():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    assert STARGAN_DEFAULTS["lambda_cls_gp"] == 0.0  # the paper's objective
    images, labels = _batch()
    # The penalty computed independently, on D's weights before the step.
    reference = _step(NAIVE, g_lr=1e-12, d_lr=1e-12)
    x = images.clone().requires_grad_(True)
    _, logits = reference.D(x)
    per_image = _space().classification_loss(logits, labels, "faces") * x.shape[0]
    (grad,) = torch.autograd.grad(per_image, x, create_graph=True)
    penalty = grad.flatten(1).pow(2).sum(1).mean()
    reference.D.zero_grad()
    (2.0 * penalty).backward()
    # D's real/fake head plays no part in classification: no gradient from the penalty.
    expected_extra = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                                for p in reference.D.parameters()])

    # A D-only iteration (iteration 0 of n_critic 5): D's gradients are compared.
    plain = _step(NAIVE, g_lr=1e-12, d_lr=1e-12)
    with_gp = _step(NAIVE, g_lr=1e-12, d_lr=1e-12, lambda_cls_gp=2.0)
    l_plain = plain.train_step(0, "faces", images, labels)
    l_gp = with_gp.train_step(0, "faces", images, labels)
    assert "D/loss_cls_gp" not in l_plain
    assert l_gp["D/loss_cls_gp"].item() == pytest.approx(penalty.item(), rel=1e-5)
    assert penalty.item() > 0
    d_plain = torch.cat([p.grad.flatten() for p in plain.D.parameters()])
    d_gp = torch.cat([p.grad.flatten() for p in with_gp.D.parameters()])
    assert _rel(d_gp - d_plain, expected_extra) < 1e-4
    assert all(torch.equal(l_gp[k], l_plain[k]) for k in l_plain)


def test_negative_classifier_penalty_weight_is_refused():
    from starkit.families.stargan.options import validate_options
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    with pytest.raises(ConfigError, match="lambda_cls_gp: must be >= 0"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "lambda_cls_gp": -0.5})


def test_negative_identity_weight_is_refused():
    from starkit.families.stargan.options import validate_options
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    with pytest.raises(ConfigError, match="lambda_id"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "lambda_id": -1.0})


def test_a_colour_map_is_checked_by_name_and_needs_a_generator_that_starts_from_its_input():
    from starkit.families.stargan.options import validate_options
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    assert STARGAN_DEFAULTS["g_colour_map"] == "none"  # the paper's generator
    validate_options({**STARGAN_DEFAULTS, **TINY, "g_output": "attention", "g_colour_map": "global"})
    with pytest.raises(ConfigError, match="g_colour_map: must be one of none, global, got 'grid'"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "g_output": "attention", "g_colour_map": "grid"})
    with pytest.raises(ConfigError, match="g_colour_map: needs g_output 'attention'"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "g_colour_map": "global"})
    # The output convolution's kernel: 7 (the paper), or a smaller odd size.
    assert STARGAN_DEFAULTS["g_out_kernel"] == 7
    validate_options({**STARGAN_DEFAULTS, **TINY, "g_out_kernel": 3})
    for bad in (0, 2, 9, 3.0, True):
        with pytest.raises(ConfigError, match="g_out_kernel: must be an odd integer from 1 to 7"):
            validate_options({**STARGAN_DEFAULTS, **TINY, "g_out_kernel": bad})


def test_skip_connections_are_checked_by_name():
    from starkit.families.stargan.options import validate_options
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    assert STARGAN_DEFAULTS["g_skip"] == "none"  # the paper's generator
    validate_options({**STARGAN_DEFAULTS, **TINY, "g_skip": "unet"})
    with pytest.raises(ConfigError, match="g_skip: must be one of none, unet, got 'dense'"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "g_skip": "dense"})


def test_generator_output_mode_is_checked_by_name():
    from starkit.families.stargan.options import validate_options
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    assert STARGAN_DEFAULTS["g_output"] == "image"  # the paper's generator
    validate_options({**STARGAN_DEFAULTS, **TINY, "g_output": "attention"})
    with pytest.raises(ConfigError, match="g_output: must be one of image, attention, got 'delta'"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "g_output": "delta"})


# ---------------------------------------------------------------------------------- cross-dataset targets
def _recording_targets(monkeypatch):
    import starkit.families.stargan.step as stargan_step

    seen = []
    original = stargan_step.with_cross_targets

    def recording(*args):
        out = original(*args)
        seen.append(out)
        return out

    monkeypatch.setattr(stargan_step, "with_cross_targets", recording)
    return seen


def test_cross_targets_translate_part_of_the_batch_to_the_other_dataset_and_judge_it_there(monkeypatch):
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.losses import reconstruction_loss

    assert STARGAN_DEFAULTS["cross_targets"] == 0.0  # the paper
    space = _space()
    images, labels = _batch(8)
    seen = _recording_targets(monkeypatch)
    step = _step(NAIVE, g_lr=1e-12, d_lr=1e-12, cross_targets=0.5)
    plain = _step(NAIVE, g_lr=1e-12, d_lr=1e-12)
    reference = _step(NAIVE, g_lr=1e-12, d_lr=1e-12)
    losses = step.train_step(step.n_critic - 1, "faces", images, labels)
    l_plain = plain.train_step(plain.n_critic - 1, "faces", images, labels)

    targets = seen[0]
    masks = targets.joint[:, space.mask_slice]
    assert int(masks[:, 1].sum()) == 4 and int(masks[:, 0].sum()) == 4  # half the rows: expr's mask
    # G's classification: each translation judged by its target dataset's slice (networks
    # before the step: lr 1e-12), and the way back to the image's own labels.
    with torch.no_grad():
        fake = reference.G(images, targets.joint)
        logits = reference.D(fake)[1]
        rec = reference.G(fake, space.encode("faces", labels))
    per_row = []
    for i in range(8):
        name, row = space.decode(targets.joint[i])
        per_row.append(space.classification_loss(logits[i : i + 1], torch.from_numpy(row[None]), name))
    assert losses["G/loss_cls"].item() == pytest.approx(torch.stack(per_row).mean().item(), rel=1e-4)
    assert losses["G/loss_rec"].item() == pytest.approx(reconstruction_loss(images, rec).item(), rel=1e-4)
    # D's classifier still learns from the real images and their own labels alone.
    assert torch.equal(losses["D/loss_cls"], l_plain["D/loss_cls"])
    assert torch.equal(losses["D/loss_real"], l_plain["D/loss_real"])
    assert losses["G/loss_cls"].item() != pytest.approx(l_plain["G/loss_cls"].item(), rel=1e-3)


def test_cross_targets_are_checked():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.options import validate_options

    validate_options({**STARGAN_DEFAULTS, **TINY, "cross_targets": 1.0})
    with pytest.raises(ConfigError, match=r"cross_targets: must be in \[0, 1\] \(0: the paper\), got 1.5"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "cross_targets": 1.5})


# ---------------------------------------------------------------------------- mask penalties
MASKED_G = {"g_output": "attention", "g_colour_map": "global"}  # draws a paint and a recolour mask


def _uneven_masks(fast: FastPath, images, targets):
    """A masked G whose masks open unevenly (so that penalties on them have a gradient): its
    step, its weights, and its masks for ``images`` translated to ``targets`` (with graph)."""
    reference = _step(fast, g_lr=1e-12, d_lr=1e-12, **MASKED_G)
    with torch.no_grad():
        reference.G.to_rgb.weight[3:].normal_(0, 1.0)
    reference.G.zero_grad()
    _, masks = reference.G(images, _space().encode("faces", targets), with_masks=True)
    return reference, reference.G.state_dict(), masks


def _g_step_from(fast: FastPath, state, dataset, images, labels, targets, **extra):
    """Losses and G's gradients of one G iteration of a masked G loaded with ``state``."""
    step = _step(fast, g_lr=1e-12, d_lr=1e-12, **MASKED_G, **extra)
    step.G.load_state_dict(state)
    step.target_labels = lambda dataset, batch_labels: targets
    losses = step.train_step(step.n_critic - 1, dataset, images, labels)
    return losses, torch.cat([p.grad.flatten() for p in step.G.parameters()])


def _grads(module) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in module.parameters()])


@pytest.mark.parametrize("share_fake", [False, True])
@pytest.mark.parametrize("key, logged", [("lambda_mask", "G/loss_mask_paint"),
                                         ("lambda_mask_sharpness", "G/loss_mask_sharpness")])
def test_mask_penalties_are_off_by_default_and_add_exactly_their_term_to_g(key, logged, share_fake):
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.losses import mask_indecision, mask_opening

    assert STARGAN_DEFAULTS[key] == 0.0  # the paper's objective
    images, labels = _batch()
    targets = labels.flip(0)
    fast = NAIVE.replace(share_fake=share_fake)
    reference, state, masks = _uneven_masks(fast, images, targets)
    term = {"lambda_mask": lambda: mask_opening(masks["paint"]),  # every mask G draws is sharpened
            "lambda_mask_sharpness": lambda: sum(mask_indecision(masks[name]) for name in ("paint", "recolour"))}[key]()
    assert term.item() > 0.01
    (0.7 * term).backward()
    # (A mask's term reaches only the layers that draw it: the colour map's own does not.)
    expected_extra = _grads(reference.G)
    assert expected_extra.abs().sum() > 0

    l_plain, g_plain = _g_step_from(fast, state, "faces", images, labels, targets)
    l_pen, g_pen = _g_step_from(fast, state, "faces", images, labels, targets, **{key: 0.7})
    assert not any(k.startswith("G/loss_mask") for k in l_plain)
    assert set(l_pen) - set(l_plain) == {logged}
    assert l_pen[logged].item() == pytest.approx(term.item(), rel=1e-5)
    assert _rel(g_pen - g_plain, expected_extra) < 1e-3
    assert all(torch.equal(l_pen[k], l_plain[k]) for k in l_plain)  # the other terms are unchanged


def test_mask_sharpness_weighs_only_from_its_start_iteration_but_is_logged_before():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    net = {"g_output": "attention", "g_colour_map": "global"}
    images, labels = _batch()
    targets = labels.flip(0)

    def g_step(iteration: int, **extra):
        step = _step(NAIVE, g_lr=1e-12, d_lr=1e-12, **net, **extra)
        with torch.no_grad():  # masks that open unevenly, so their push has a gradient
            step.G.to_rgb.weight[3:].normal_(0, 1.0, generator=torch.Generator().manual_seed(2))
        step.target_labels = lambda dataset, batch_labels: targets
        losses = step.train_step(iteration, "faces", images, labels)
        return losses, torch.cat([p.grad.flatten() for p in step.G.parameters()])

    assert STARGAN_DEFAULTS["mask_sharpness_from"] == 0  # from the start
    n_critic = STARGAN_DEFAULTS["n_critic"]
    early, late = n_critic - 1, 6 * n_critic - 1  # G steps before and after iteration 5
    for iteration, weighed in ((early, False), (late, True)):
        plain_losses, plain = g_step(iteration)
        losses, grads = g_step(iteration, lambda_mask_sharpness=0.7, mask_sharpness_from=5)
        assert losses["G/loss_mask_sharpness"].item() > 0.01  # logged either way
        assert torch.equal(losses["G/loss_rec"], plain_losses["G/loss_rec"])
        if weighed:
            assert _rel(grads - plain, plain) > 1e-4
        else:
            assert torch.equal(grads, plain)


def test_targets_know_which_rows_change_a_group_and_cross_targets_change_none():
    from starkit.families.stargan.parts.targets import with_cross_targets

    space = _space()
    # faces' own layout: black, blond, brown, male, young
    labels = torch.tensor([[1, 0, 0, 0, 1], [0, 1, 0, 1, 0], [0, 0, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.float32)
    wanted = torch.tensor([[0, 1, 0, 0, 1], [0, 1, 0, 0, 0], [0, 0, 1, 1, 1], [1, 0, 0, 1, 1]], dtype=torch.float32)
    own = with_cross_targets(space, "faces", wanted, 0.0, torch.Generator().manual_seed(0))
    assert own.changing(space, "faces", labels, ("hair",)).tolist() == [True, False, False, False]
    assert own.changing(space, "faces", labels, ("a",)).tolist() == [False, True, False, True]
    assert own.changing(space, "faces", labels, ("hair", "a")).tolist() == [True, True, False, True]
    assert not own.changing(space, "faces", labels, ("expression",)).any()  # not a faces group
    # Half the rows re-targeted to expressions: those change no faces group, the rest as before.
    crossed = with_cross_targets(space, "faces", wanted, 0.5, torch.Generator().manual_seed(3))
    (cross_part,) = [p for p in crossed.parts if p.dataset == "expr"]
    changing = crossed.changing(space, "faces", labels, ("hair", "a"))
    assert cross_part.rows.numel() == 2
    assert not changing[cross_part.rows].any()
    kept = [r for r in range(4) if r not in cross_part.rows.tolist()]
    assert changing[kept].tolist() == [[True, True, False, True][r] for r in kept]


def test_mask_indecision_over_chosen_rows_weighs_each_counted_pixel_as_over_all():
    from starkit.families.stargan.losses import mask_indecision

    mask = torch.rand((4, 1, 5, 5), generator=torch.Generator().manual_seed(0))
    every = torch.ones(4, dtype=torch.bool)
    assert mask_indecision(mask, every).item() == pytest.approx(mask_indecision(mask).item(), rel=1e-6)
    rows = torch.tensor([True, False, False, True])
    counted = torch.cat([mask[:1], mask[3:]])
    assert mask_indecision(mask, rows).item() == pytest.approx(mask_indecision(counted).item() * 2 / 4, rel=1e-6)
    assert mask_indecision(mask, torch.zeros(4, dtype=torch.bool)).item() == 0.0
    m = mask.clone().requires_grad_(True)
    mask_indecision(m, rows).backward()
    assert m.grad[1].abs().sum() == 0 and m.grad[0].abs().sum() > 0  # uncounted rows get no push


def test_mask_sharpness_groups_push_only_the_translations_that_change_those_groups():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.losses import mask_indecision

    assert STARGAN_DEFAULTS["mask_sharpness_groups"] == ""  # every translation
    space = _space()
    images, labels = _batch(6)
    hair, binary = (g.local for g in space.group_slices("faces"))
    targets = labels.clone()
    targets[:3, hair] = labels[:3, hair].roll(1, dims=1)  # rows 0-2 change hair colour,
    targets[3:, binary] = 1 - labels[3:, binary]  # rows 3-5 only their binary attributes
    rows = torch.tensor([True] * 3 + [False] * 3)
    reference, state, masks = _uneven_masks(NAIVE, images, targets)
    term = mask_indecision(masks["paint"], rows) + mask_indecision(masks["recolour"], rows)
    everywhere = (mask_indecision(masks["paint"]) + mask_indecision(masks["recolour"])).item()
    assert 0.01 < term.item() < everywhere
    (0.7 * term).backward()
    expected_extra = _grads(reference.G)

    push = {"lambda_mask_sharpness": 0.7, "mask_sharpness_groups": "hair"}
    _, g_plain = _g_step_from(NAIVE, state, "faces", images, labels, targets)
    l_hair, g_hair = _g_step_from(NAIVE, state, "faces", images, labels, targets, **push)
    assert l_hair["G/loss_mask_sharpness"].item() == pytest.approx(term.item(), rel=1e-5)
    assert _rel(g_hair - g_plain, expected_extra) < 1e-3
    # A batch of the other dataset changes no hair: the push weighs nothing there.
    expr_labels = torch.eye(3)[torch.tensor([0, 1, 2, 0, 1, 2])]
    l_expr, _ = _g_step_from(NAIVE, state, "expr", images, expr_labels, expr_labels.flip(0), **push)
    assert l_expr["G/loss_mask_sharpness"].item() == 0.0


def test_mask_sharpness_groups_must_name_groups_of_the_label_space():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.options import validate_options

    net = {"g_output": "attention", "lambda_mask_sharpness": 1.0}
    validate_options({**STARGAN_DEFAULTS, **TINY, **net, "mask_sharpness_groups": "hair, expression"})
    with pytest.raises(ConfigError, match="mask_sharpness_groups: group 'hair' is given twice"):
        validate_options({**STARGAN_DEFAULTS, **TINY, **net, "mask_sharpness_groups": "hair,hair"})
    with pytest.raises(ConfigError, match="mask_sharpness_groups: expected a string"):
        validate_options({**STARGAN_DEFAULTS, **TINY, **net, "mask_sharpness_groups": ["hair"]})
    with pytest.raises(ConfigError, match=r"mask_sharpness_groups: no attribute group 'hiar' in the label space "
                                          r"\(groups: a, expression, hair\)"):
        _step(NAIVE, **net, mask_sharpness_groups="hiar")


def test_mask_indecision_is_zero_at_shut_or_open_and_one_at_half():
    from starkit.families.stargan.losses import mask_indecision

    assert mask_indecision(torch.tensor([0.0, 1.0])).item() == 0.0
    assert mask_indecision(torch.tensor([0.5, 0.5])).item() == pytest.approx(1.0)
    assert mask_indecision(torch.tensor([0.1, 0.9])).item() == pytest.approx(0.36)
    m = torch.tensor([0.2, 0.8], requires_grad=True)
    mask_indecision(m).backward()
    assert m.grad[0] > 0 > m.grad[1]  # descent shuts the nearly shut pixel, opens the nearly open


def test_mask_penalties_need_the_mask_they_penalise():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.options import validate_options

    validate_options({**STARGAN_DEFAULTS, **TINY, "g_output": "attention", "lambda_mask": 1.0})
    with pytest.raises(ConfigError, match="lambda_mask: needs g_output 'attention'.*got 1.0"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "lambda_mask": 1.0})
    validate_options({**STARGAN_DEFAULTS, **TINY, "g_output": "attention", "g_colour_map": "global",
                  "lambda_mask_sharpness": 1.0})
    validate_options({**STARGAN_DEFAULTS, **TINY, "g_output": "attention", "lambda_mask_sharpness": 1.0})
    with pytest.raises(ConfigError, match="lambda_mask_sharpness: needs a generator that draws a mask"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "lambda_mask_sharpness": 1.0})
    for key in ("lambda_mask", "lambda_mask_sharpness"):
        with pytest.raises(ConfigError, match=f"{key}: must be >= 0"):
            validate_options({**STARGAN_DEFAULTS, **TINY, "g_output": "attention", "g_colour_map": "global", key: -0.1})


# ---------------------------------------------------------------------------------- unsure classifier on fakes
def test_classifier_uncertainty_on_translations_adds_exactly_its_term_to_d():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.losses import uncertainty_loss

    assert STARGAN_DEFAULTS["lambda_cls_fake"] == 0.0  # the paper
    space = _space()
    images, labels = _batch()
    targets = labels.flip(0)
    reference = _step(NAIVE, g_lr=1e-12, d_lr=1e-12)
    with torch.no_grad():
        fake = reference.G(images, space.encode("faces", targets))
    reference.D.zero_grad()
    term = uncertainty_loss(space, reference.D(fake)[1], "faces")
    (2.0 * term).backward()
    # Only D's classifier is trained by it: the real/fake head gets no gradient.
    expected_extra = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                                for p in reference.D.parameters()])

    results = {}
    for name, extra in (("plain", {}), ("unsure", {"lambda_cls_fake": 2.0})):
        step = _step(NAIVE, g_lr=1e-12, d_lr=1e-12, **extra)
        step.target_labels = lambda dataset, batch_labels: targets
        losses = step.train_step(0, "faces", images, labels)  # a D-only iteration
        results[name] = losses, torch.cat([p.grad.flatten() for p in step.D.parameters()])
    (l_plain, d_plain), (l_unsure, d_unsure) = results["plain"], results["unsure"]
    assert "D/loss_cls_fake" not in l_plain
    assert l_unsure["D/loss_cls_fake"].item() == pytest.approx(term.item(), rel=1e-5)
    assert _rel(d_unsure - d_plain, expected_extra) < 1e-4
    assert all(torch.equal(l_unsure[k], l_plain[k]) for k in l_plain)


def test_classifier_uncertainty_is_the_same_with_real_and_fake_in_one_d_call():
    images, labels = _batch()

    def run(path):
        step = _step(path, g_lr=1e-12, d_lr=1e-12, lambda_cls_fake=0.5, cross_targets=0.5)
        losses = step.train_step(step.n_critic - 1, "faces", images, labels)
        return losses, torch.cat([p.grad.flatten() for p in step.D.parameters()])

    (losses, grads), (ref_losses, ref_grads) = run(NAIVE.replace(d_batch_real_fake=True)), run(NAIVE)
    assert "D/loss_cls_fake" in losses
    assert max(_loss_errors(losses, ref_losses).values()) <= 1e-5
    assert _rel(grads, ref_grads) <= 1e-4


def test_negative_classifier_uncertainty_weight_is_refused():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.options import validate_options

    with pytest.raises(ConfigError, match="lambda_cls_fake: must be >= 0"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "lambda_cls_fake": -0.1})


# ---------------------------------------------------------------------------------- mask noise
def test_mask_noise_changes_what_g_is_given_not_what_it_is_judged_by(monkeypatch):
    import starkit.families.stargan.step as stargan_step
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.losses import reconstruction_loss

    assert STARGAN_DEFAULTS["mask_noise"] == 0.0  # the paper: unknown parts are zero
    space = _space()
    images, labels = _batch()
    targets = labels.flip(0)
    given = []
    original = stargan_step.with_off_mask_noise

    def recording(space_, joint, fraction, generator):
        out = original(space_, joint, fraction, generator)
        given.append((joint, out))
        return out

    monkeypatch.setattr(stargan_step, "with_off_mask_noise", recording)
    step = _step(NAIVE, g_lr=1e-12, d_lr=1e-12, mask_noise=1.0)
    step.target_labels = lambda dataset, batch_labels: targets
    reference = _step(NAIVE, g_lr=1e-12, d_lr=1e-12)
    losses = step.train_step(step.n_critic - 1, "faces", images, labels)

    (trg, trg_noisy), (org, org_noisy) = given
    assert torch.equal(trg, space.encode("faces", targets)) and torch.equal(org, space.encode("faces", labels))
    for clean, noisy in given:  # every row: the other dataset's part filled, the rest kept
        assert (noisy[:, space.slice("expr")].sum(1) == 1).all()
        assert torch.equal(noisy[:, : space.slice("expr").start], clean[:, : space.slice("expr").start])
        assert torch.equal(noisy[:, space.mask_slice], clean[:, space.mask_slice])
    with torch.no_grad():
        fake = reference.G(images, trg_noisy)
        logits = reference.D(fake)[1]
        rec = reference.G(fake, org_noisy)
        assert (fake - reference.G(images, trg)).abs().max() > 1e-4  # G does see the noise
    # Judged by the true targets: the classification loss of the translation against them.
    assert losses["G/loss_cls"].item() == pytest.approx(space.classification_loss(logits, targets, "faces").item(), rel=1e-4)
    assert losses["G/loss_rec"].item() == pytest.approx(reconstruction_loss(images, rec).item(), rel=1e-4)


def test_mask_noise_is_checked():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.families.stargan.options import validate_options

    with pytest.raises(ConfigError, match=r"mask_noise: must be in \[0, 1\]"):
        validate_options({**STARGAN_DEFAULTS, **TINY, "mask_noise": -0.5})
