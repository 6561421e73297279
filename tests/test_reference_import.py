"""Importing checkpoints saved by the authors' StarGAN code (starkit.families.stargan.reference).

The reference networks below are written in this test from the paper's architecture and the
reference's state-dict layout (an ``nn.Sequential`` named ``main`` in which every layer takes an
index), independently of starkit's modules, so the converter is checked against a second
implementation rather than against itself.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from starkit.errors import StarkitError
from starkit.families.stargan.reference import (
    REFERENCE_CELEBA_ATTRIBUTES,
    ReferenceCheckpointError,
    convert_reference_state_dict,
    load_reference_checkpoint,
    load_reference_model,
    to_reference_state_dict,
)
from starkit.families.stargan.networks import Discriminator, Generator, count_parameters


# ---------------------------------------------------------------------------------- reference layout
def ref_norm(channels: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)


class RefResidual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        conv3 = lambda: nn.Conv2d(channels, channels, 3, padding=1, bias=False)  # noqa: E731
        self.main = nn.Sequential(conv3(), ref_norm(channels), nn.ReLU(inplace=True), conv3(), ref_norm(channels))

    def forward(self, x):
        return x + self.main(x)


class RefGenerator(nn.Module):
    def __init__(self, conv_dim: int, c_dim: int, repeat_num: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3 + c_dim, conv_dim, 7, padding=3, bias=False), ref_norm(conv_dim),
                                   nn.ReLU(inplace=True)]
        width = conv_dim
        for _ in range(2):
            layers += [nn.Conv2d(width, width * 2, 4, stride=2, padding=1, bias=False), ref_norm(width * 2),
                       nn.ReLU(inplace=True)]
            width *= 2
        layers += [RefResidual(width) for _ in range(repeat_num)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1, bias=False),
                       ref_norm(width // 2), nn.ReLU(inplace=True)]
            width //= 2
        layers += [nn.Conv2d(width, 3, 7, padding=3, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x, c):
        tiled = c.view(c.shape[0], c.shape[1], 1, 1).repeat(1, 1, x.shape[2], x.shape[3])
        return self.main(torch.cat([x, tiled], dim=1))


class RefDiscriminator(nn.Module):
    def __init__(self, image_size: int, conv_dim: int, c_dim: int, repeat_num: int):
        super().__init__()
        layers: list[nn.Module] = []
        width_in, width = 3, conv_dim
        for _ in range(repeat_num):
            layers += [nn.Conv2d(width_in, width, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            width_in, width = width, width * 2
        self.main = nn.Sequential(*layers)
        self.conv1 = nn.Conv2d(width_in, 1, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(width_in, c_dim, image_size // 2**repeat_num, bias=False)

    def forward(self, x):
        h = self.main(x)
        return self.conv1(h), self.conv2(h).view(x.shape[0], -1)


def randomise(module: nn.Module, seed: int) -> nn.Module:
    """Non-trivial norm affines and running statistics, so that a wrong mapping or a wrong
    normalisation mode shows in the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.InstanceNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.2)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.num_batches_tracked.fill_(0)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    return module


@pytest.fixture
def ref_g() -> RefGenerator:
    return randomise(RefGenerator(conv_dim=4, c_dim=5, repeat_num=2), seed=1)


def save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


# ---------------------------------------------------------------------------------- equivalence
def test_imported_generator_reproduces_the_reference_translation(tmp_path, ref_g):
    path = save(tmp_path, "200000-G.ckpt", ref_g.state_dict())
    g, info = load_reference_model(path, "G")
    assert isinstance(g, Generator) and not g.training
    assert (info["which"], info["c_dim"], info["conv_dim"], info["repeat_num"]) == ("G", 5, 4, 2)
    assert info["source"] == str(path) and info["filled"] == []

    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = torch.tensor([[1.0, 0, 0, 1, 0], [0.0, 0, 1, 0, 1]])
    with torch.no_grad():
        ref_g.train()  # the reference translates in train mode: it never calls eval()
        expected = ref_g(x, c)
        ours = g(x, c)
        ref_g.eval()
        running_stats_output = ref_g(x, c)
    assert torch.allclose(ours, expected, atol=1e-5)
    # The two modes differ for these weights, so matching the train mode is a real decision.
    assert (running_stats_output - expected).abs().max() > 1e-2


def test_training_mode_matches_including_running_statistics(tmp_path, ref_g):
    g, _ = load_reference_model(save(tmp_path, "1-G.ckpt", ref_g.state_dict()), "G")
    g.train()
    ref_g.train()
    x, c = torch.rand(3, 3, 16, 16) * 2 - 1, torch.rand(3, 5)
    assert torch.allclose(g(x, c), ref_g(x, c), atol=1e-5)
    back = to_reference_state_dict(g)
    for key, value in ref_g.state_dict().items():
        assert torch.allclose(back[key].float(), value.float(), atol=1e-6), key


def test_imported_discriminator_reproduces_both_heads(tmp_path):
    ref_d = randomise(RefDiscriminator(image_size=32, conv_dim=4, c_dim=7, repeat_num=4), seed=2)
    d, info = load_reference_model(save(tmp_path, "200000-D.ckpt", ref_d.state_dict()), "D")
    assert isinstance(d, Discriminator)
    assert (info["image_size"], info["conv_dim"], info["c_dim"], info["repeat_num"]) == (32, 4, 7, 4)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        (src, cls), (ref_src, ref_cls) = d(x), ref_d(x)
    assert src.shape == (2, 1, 2, 2) and cls.shape == (2, 7)
    assert torch.allclose(src, ref_src, atol=1e-5) and torch.allclose(cls, ref_cls, atol=1e-5)


def test_export_loads_strictly_into_the_reference_layout():
    torch.manual_seed(3)
    g = Generator(c_dim=3, conv_dim=4, repeat_num=1).eval()
    ref = RefGenerator(conv_dim=4, c_dim=3, repeat_num=1)
    ref.load_state_dict(to_reference_state_dict(g), strict=True)
    x, c = torch.rand(1, 3, 8, 8), torch.rand(1, 3)
    with torch.no_grad():
        assert torch.allclose(g(x, c), ref.train()(x, c), atol=1e-5)
    d = Discriminator(image_size=16, conv_dim=4, c_dim=3, repeat_num=2)
    RefDiscriminator(16, 4, 3, 2).load_state_dict(to_reference_state_dict(d), strict=True)


@pytest.mark.parametrize(
    "options", [{"output": "attention"}, {"output": "attention", "colour_map": "global"},
                {"upsample": "resize"}, {"skip": "unet"}]
)
def test_export_refuses_generators_the_reference_cannot_compute(options):
    g = Generator(c_dim=3, conv_dim=4, repeat_num=1, **options)
    with pytest.raises(ReferenceCheckpointError, match="no counterpart for output=.*upsample=.*colour_map=.*skip="):
        to_reference_state_dict(g)


# ---------------------------------------------------------------------------------- released configs
def test_the_released_celeba_generator_layout_maps(tmp_path):
    ref = RefGenerator(conv_dim=64, c_dim=5, repeat_num=6)
    state, info = load_reference_checkpoint(save(tmp_path, "200000-G.ckpt", ref.state_dict()), "G")
    assert (info["c_dim"], info["conv_dim"], info["repeat_num"]) == (5, 64, 6)
    assert info["parameters"] == 8_430_528 == count_parameters(ref)
    g = Generator(5)
    g.load_state_dict(state, strict=True)
    assert torch.equal(g.bottleneck[5].conv2.weight, ref.main[14].main[3].weight)
    assert torch.equal(g.up[1].norm.bias, ref.main[19].bias)
    assert len(REFERENCE_CELEBA_ATTRIBUTES) == info["c_dim"]


@pytest.mark.parametrize("image_size", [128, 256])
def test_the_released_celeba_discriminator_layouts_map(image_size):
    with torch.device("meta"):  # shapes only: a 45M-parameter D need not be allocated
        ref = RefDiscriminator(image_size, conv_dim=64, c_dim=5, repeat_num=6)
    state, info = convert_reference_state_dict(ref.state_dict(), "D")
    assert (info["image_size"], info["c_dim"], info["conv_dim"], info["repeat_num"]) == (image_size, 5, 64, 6)
    with torch.device("meta"):
        d = Discriminator(image_size, 64, 5, 6)
    d.load_state_dict(state, strict=True, assign=True)
    if image_size == 128:
        assert info["parameters"] == 44_762_048


def test_checkpoints_without_num_batches_tracked_are_completed(ref_g):
    # PyTorch 0.4.0, which the reference targeted, did not save num_batches_tracked.
    old = {k: v for k, v in ref_g.state_dict().items() if not k.endswith("num_batches_tracked")}
    state, info = convert_reference_state_dict(old, "g")
    assert len(info["filled"]) == 1 + 2 + 2 * 2 + 2  # norms of stem, down, 2 residual blocks, up
    assert "main.1.num_batches_tracked" in info["filled"]
    Generator(5, 4, 2).load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------- errors
def error_for(tmp_path, obj, which="G", name="bad.ckpt") -> str:
    path = save(tmp_path, name, obj)
    with pytest.raises(ReferenceCheckpointError) as info:
        load_reference_checkpoint(path, which)
    assert isinstance(info.value, StarkitError)
    assert str(path) in str(info.value)
    return str(info.value)


def test_unknown_key_is_named(tmp_path, ref_g):
    state = dict(ref_g.state_dict(), **{"main.30.weight": torch.zeros(1)})
    assert "'main.30.weight'" in error_for(tmp_path, state)


def test_missing_key_is_named(tmp_path, ref_g):
    state = {k: v for k, v in ref_g.state_dict().items() if k != "main.10.main.4.bias"}
    message = error_for(tmp_path, state)
    assert "missing key(s) 'main.10.main.4.bias'" in message


def test_wrong_shape_is_named(tmp_path, ref_g):
    state = dict(ref_g.state_dict())
    state["main.4.weight"] = torch.ones(3)
    message = error_for(tmp_path, state)
    assert "'main.4.weight' has shape [3], expected [8]" in message


def test_swapped_generator_and_discriminator_are_explained(tmp_path, ref_g):
    ref_d = RefDiscriminator(16, 4, 5, 2)
    assert "which='D'" in error_for(tmp_path, ref_d.state_dict(), "G", "9-D.ckpt")
    assert "which='G'" in error_for(tmp_path, ref_g.state_dict(), "D", "9-G.ckpt")


def test_starkit_layout_is_recognised(tmp_path):
    assert "starkit's layout" in error_for(tmp_path, Generator(3, 4, 1).state_dict())


def test_files_that_are_not_state_dicts(tmp_path):
    assert "expected a state dict" in error_for(tmp_path, [torch.zeros(1)])
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ReferenceCheckpointError, match="garbage.ckpt is not a reference StarGAN checkpoint .*: it is not a PyTorch file"):
        load_reference_checkpoint(garbage, "G")
    with pytest.raises(ReferenceCheckpointError, match="no such checkpoint file"):
        load_reference_checkpoint(tmp_path / "missing-G.ckpt", "G")


def test_arbitrary_pickles_are_refused(tmp_path, ref_g):
    # weights_only=True: a checkpoint that would run code on load is rejected, not executed.
    message = error_for(tmp_path, {"model": ref_g})
    assert "holds pickled Python objects" in message and "weights_only" not in message


def test_which_is_validated(ref_g):
    with pytest.raises(ReferenceCheckpointError, match="'G' .* or 'D'"):
        convert_reference_state_dict(ref_g.state_dict(), "generator")
