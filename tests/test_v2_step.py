"""The stargan-v2 training step: its losses, schedule, optimisers and moving averages, and the
family's options (starkit.families.stargan_v2.{losses,step,options})."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from starkit.default_plugins.stargan_v2 import STARGAN_V2_DEFAULTS, build
from starkit.domains import DomainError, domain_set
from starkit.families.stargan_v2.losses import diversity_weight, r1_penalty
from starkit.families.stargan_v2.step import AVERAGED, SourceDomains, StarGANv2Step
from starkit.labels import LabelSpace
from starkit.spec import AttributeGroup
from starkit.training.config import ConfigError
from starkit.training.device import Runtime
from starkit.training.step import References

SIZE = 16
TINY = {"conv_dim": 8, "max_conv_dim": 16, "mapping_dim": 16, "style_dim": 8, "latent_dim": 4}


def _space() -> LabelSpace:
    faces = (AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair")),
             AttributeGroup("attributes", "binary", ("Male", "Young")))
    expr = (AttributeGroup("expression", "onehot", ("angry", "happy", "neutral")),)
    return LabelSpace.from_groups([("faces", faces), ("expr", expr)])


def _step(**extra) -> StarGANv2Step:
    # fp32 whatever the CPU: these tests compare with fp32 computations by hand (bf16 against
    # fp32: tests/test_v2_fast_path.py).
    config = {**STARGAN_V2_DEFAULTS, **TINY, "image_size": SIZE, "seed": 0, "precision": "fp32", **extra}
    torch.manual_seed(0)
    return StarGANv2Step(_space(), config, Runtime(torch.device("cpu")))


def _batch(seed: int = 0, n: int = 4):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand((n, 3, SIZE, SIZE), generator=g) * 2 - 1
    hair = torch.eye(3)[torch.randint(3, (n,), generator=g)]
    labels = torch.cat([hair, torch.randint(2, (n, 2), generator=g).float()], dim=1)
    references = References(torch.rand((n, 2, 3, SIZE, SIZE), generator=g) * 2 - 1,
                            torch.randint(6, (n,), generator=g))
    return images, labels, references


# ---------------------------------------------------------------------------- losses
def test_r1_penalty_is_half_the_mean_summed_squared_input_gradient():
    # D(x) = sum(a·x²) per image: its input gradient is 2·a·x, known in closed form.
    a = torch.rand(3, 4, 4)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    logits = (a * x**2).flatten(1).sum(1)
    expected = 0.5 * ((2 * a * x.detach()) ** 2).flatten(1).sum(1).mean()
    assert torch.allclose(r1_penalty(logits, x), expected)
    # Rows that name no source domain do not count: the mean is over the others.
    rows = torch.tensor([1.0, 0, 1, 1, 0])
    kept = 0.5 * ((2 * a * x.detach()[[0, 2, 3]]) ** 2).flatten(1).sum(1).mean()
    assert torch.allclose(r1_penalty((a * x**2).flatten(1).sum(1), x, rows), kept)


def test_diversity_weight_decays_linearly_to_zero_at_ds_iter_and_stays_there():
    weights = [diversity_weight(2.0, i, 4) for i in range(7)]
    assert weights == [2.0, 1.5, 1.0, 0.5, 0.0, 0.0, 0.0]


def test_the_step_trains_with_the_decayed_diversity_weight():
    step = _step(lambda_ds=1.0, ds_iter=4)
    images, labels, refs = _batch()
    logged = [float(step.train_step(i, "faces", images, labels, references=refs)["G/lambda_ds"]) for i in (0, 2, 4, 9)]
    assert logged == [1.0, 0.5, 0.0, 0.0]


def test_r1_is_computed_on_the_real_images_only():
    images, labels, refs = _batch()
    # The penalty by hand: D before its first update, on the real images and their domains.
    step = _step()
    D = copy.deepcopy(step.nets["discriminator"])
    x = images.clone().requires_grad_(True)
    y_org = torch.as_tensor(step.domains.of_labels("faces", labels.numpy()))
    (grad,) = torch.autograd.grad(D(x, y_org).sum(), x)
    expected = 0.5 * grad.pow(2).flatten(1).sum(1).mean()
    first = step.train_step(0, "faces", images, labels, references=refs)
    assert torch.allclose(first["D/latent_r1"], expected, rtol=1e-5)
    # Other fakes (other references and latent codes) change D's fake term, not its penalty.
    other = _step()
    other.rng.manual_seed(12345)
    _, _, other_refs = _batch(seed=7)
    second = other.train_step(0, "faces", images, labels, references=References(other_refs.images, refs.domains))
    assert not torch.allclose(second["D/latent_fake"], first["D/latent_fake"])
    assert torch.equal(second["D/latent_r1"], first["D/latent_r1"])


# ---------------------------------------------------------------------------- optimisers and schedule
def test_adam_settings_and_constant_rates():
    step = _step()
    assert set(step.optimizers) == {"generator", "mapping_network", "style_encoder", "discriminator"}
    for name, optimizer in step.optimizers.items():
        (group,) = optimizer.param_groups
        assert group["betas"] == (0.0, 0.99) and group["weight_decay"] == 1e-4
        assert group["lr"] == (1e-6 if name == "mapping_network" else 1e-4)
        assert {id(p) for p in group["params"]} == {id(p) for p in step.nets[name].parameters()}
    assert step.learning_rates(0, 100) == step.learning_rates(99, 100) == step.base_lrs


# ---------------------------------------------------------------------------- moving averages
def test_moving_averages_follow_the_formula_and_translate_uses_them():
    step = _step(ema_beta=0.9)
    assert set(step.networks) == {*step.nets, *(f"{n}_ema" for n in AVERAGED)}
    before = {name: [p.detach().clone() for p in step.averages[name].parameters()] for name in AVERAGED}
    assert all(torch.equal(a, b) for name in AVERAGED for a, b in zip(before[name], step.nets[name].parameters()))
    images, labels, refs = _batch()
    step.train_step(0, "faces", images, labels, references=refs)
    for name in AVERAGED:
        for old, avg, new in zip(before[name], step.averages[name].parameters(), step.nets[name].parameters()):
            assert torch.allclose(avg, 0.9 * old + 0.1 * new.detach(), atol=1e-7)
            assert not avg.requires_grad
    targets = torch.as_tensor(np.stack([step.domains.target_vector(i) for i in (0, 4, 5, 1)]))
    rng_state = step.rng.get_state()
    out = step.translate(images, targets)
    assert torch.equal(step.translate(images, targets), out)  # a fixed latent code
    assert torch.equal(step.rng.get_state(), rng_state)  # the training stream untouched
    with torch.no_grad():  # the trained generator is not what translate uses...
        for p in step.nets["generator"].parameters():
            p.add_(1.0)
    assert torch.equal(step.translate(images, targets), out)
    with torch.no_grad():  # ...its moving average is
        for p in step.averages["generator"].parameters():
            p.mul_(1.5)
    assert not torch.equal(step.translate(images, targets), out)


# ---------------------------------------------------------------------------- domains
def test_source_domains_in_torch_agree_with_the_domain_set():
    space = _space()
    for choices in ([], ["faces:Male"]):
        domains = domain_set(space, choices)
        rule = SourceDomains(domains)
        labels = np.array([[1, 0, 0, 1, 0], [0, 0, 1, 0, 1], [0, 1, 0, 1, 1], [0, 0, 0, 0, 1]], np.float32)
        y, rows = rule("faces", torch.from_numpy(labels))
        expected = domains.of_labels("faces", labels)
        known = expected >= 0
        assert np.array_equal(y.numpy()[known], expected[known])
        assert (rows is None and known.all()) or np.array_equal(rows.numpy(), known.astype(np.float32))
    y, rows = SourceDomains(domain_set(space, []))("expr", torch.eye(3))
    assert y.tolist() == [3, 4, 5] and rows.tolist() == [1, 1, 1]


def test_bad_domain_choice_and_unsupported_options_are_refused_at_build():
    space = _space()
    with torch.device("meta"):
        nets = build(space, {**TINY, "image_size": SIZE, "domains": ["faces:Male"]})
        assert nets["discriminator"].main[-1].out_channels == 2 + 3  # Male=0/1 and three expressions
        with pytest.raises(DomainError, match="'faces' has no one-hot group or binary attribute 'Bald'"):
            build(space, {**TINY, "image_size": SIZE, "domains": ["faces:Bald"]})
        with pytest.raises(ConfigError, match="w_hpf: must be 0: the high-pass filter path needs"):
            build(space, {**TINY, "image_size": SIZE, "w_hpf": 1})
        with pytest.raises(ConfigError, match="compile: 'on' is not implemented for stargan-v2"):
            build(space, {**TINY, "image_size": SIZE, "compile": "on"})
        with pytest.raises(ConfigError, match="references_per_sample: must be >= 2"):
            build(space, {**TINY, "image_size": SIZE, "references_per_sample": 1})
