"""StarGAN v2 networks (starkit.families.stargan_v2.networks): the official implementation's
parameter counts and state-dict layout, forward shapes, per-domain heads, the paper's
initialisation, a build on the meta device, and the options it refuses."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from starkit.errors import StarkitError
from starkit.families.stargan_v2.networks import build_networks

NAMES = ("generator", "mapping_network", "style_encoder", "discriminator")


def meta_networks(num_domains: int, config: dict) -> dict[str, torch.nn.Module]:
    with torch.device("meta"):
        return build_networks(num_domains, config)


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    "num_domains, config, expected",
    [
        # The numbers (the paper's AFHQ model: 256 px, 3 domains, no high-pass filter).
        (3, {"image_size": 256}, (33_892_995, 3_259_072, 20_949_760, 20_852_803)),
        # The official code's counts (core/model.py instantiated with these arguments).
        (2, {"image_size": 128}, (33_632_003, 2_438_272, 20_799_744, 20_735_106)),
        (4, {"image_size": 32}, (28_740_099, 4_079_872, 18_499_328, 18_370_052)),
        # The official code's counts with its first width (2**14 // img_size) set to 16 and
        # max_conv_dim 64: starkit's conv_dim / max_conv_dim options.
        (5, {"image_size": 32, "conv_dim": 16, "max_conv_dim": 64}, (112_643, 4_900_672, 197_968, 177_493)),
    ],
)
def test_parameter_counts_equal_the_official_implementation(num_domains, config, expected):
    nets = meta_networks(num_domains, config)
    assert tuple(count(nets[name]) for name in NAMES) == expected


def shapes_digest(net: torch.nn.Module) -> tuple[str, int]:
    lines = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in sorted(net.state_dict().items()))
    return hashlib.sha256(lines.encode()).hexdigest()[:16], len(net.state_dict())


def test_state_dict_names_and_shapes_are_the_official_ones():
    # Digests of the sorted "name:shape" lines of the official networks at 64 px, 3 domains
    # (computed from core/model.py): an official state dict loads into these unchanged.
    nets = meta_networks(3, {"image_size": 64})
    assert {name: shapes_digest(nets[name]) for name in NAMES} == {
        "generator": ("f11d9c45af54aa0e", 72),
        "mapping_network": ("ed4f6544ba5e099b", 32),
        "style_encoder": ("1f601475c644ffe2", 27),
        "discriminator": ("96ae28bd039dbec8", 23),
    }
    g = nets["generator"].state_dict()
    assert g["encode.0.conv1x1.weight"].shape == (512, 256, 1, 1)  # learned shortcut, no bias
    assert "encode.0.conv1x1.bias" not in g
    assert g["decode.3.norm1.fc.weight"].shape == (2 * 512, 64)  # AdaIN: γ and β from the style
    assert g["to_rgb.2.weight"].shape == (3, 256, 1, 1)
    assert nets["mapping_network"].state_dict()["unshared.2.6.weight"].shape == (64, 512)
    assert nets["discriminator"].state_dict()["main.8.weight"].shape == (3, 512, 1, 1)


SMALL = {"image_size": 32, "conv_dim": 8, "max_conv_dim": 32, "style_dim": 16, "latent_dim": 4, "mapping_dim": 32}


def test_forward_shapes():
    torch.manual_seed(0)
    nets = build_networks(3, SMALL)
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    y = torch.tensor([0, 1, 2, 1, 0])
    s = nets["mapping_network"](torch.randn(5, 4), y)
    assert s.shape == (5, 16)
    assert nets["style_encoder"](x, y).shape == (5, 16)
    assert nets["generator"](x, s).shape == (5, 3, 32, 32)
    assert nets["discriminator"](x, y).shape == (5,)


def test_each_row_gets_its_own_domains_head():
    torch.manual_seed(0)
    nets = build_networks(3, SMALL)
    x, z = torch.rand(4, 3, 32, 32), torch.randn(4, 4)
    y = torch.tensor([2, 0, 1, 2])
    with torch.no_grad():
        mapping, encoder, d = nets["mapping_network"], nets["style_encoder"], nets["discriminator"]
        expected_s = torch.stack([mapping.unshared[int(k)](mapping.shared(z[i])) for i, k in enumerate(y)])
        assert torch.allclose(mapping(z, y), expected_s, atol=1e-5)
        trunk = encoder.shared(x).flatten(1)
        expected_e = torch.stack([encoder.unshared[int(k)](trunk[i]) for i, k in enumerate(y)])
        assert torch.allclose(encoder(x, y), expected_e, atol=1e-5)
        logits = d.main(x).flatten(1)
        assert logits.shape == (4, 3)
        assert torch.equal(d(x, y), logits[torch.arange(4), y])
        assert not torch.allclose(mapping(z, y), mapping(z, (y + 1) % 3), atol=1e-3)


@pytest.mark.parametrize("size", [8, 16])
def test_small_images_build_and_run(size):
    # The official code stops at 32 px (its generator needs one down-sampling); starkit's
    # toy data is 16 px: the generator then keeps only its bottleneck.
    nets = build_networks(2, {**SMALL, "image_size": size})
    x, y = torch.rand(2, 3, size, size), torch.tensor([0, 1])
    assert nets["generator"](x, nets["style_encoder"](x, y)).shape == (2, 3, size, size)
    assert nets["discriminator"](x, y).shape == (2,)


def test_builds_on_the_meta_device():
    nets = meta_networks(3, {"image_size": 256})
    assert all(p.is_meta for net in nets.values() for p in net.parameters())
    x = torch.empty(2, 3, 256, 256, device="meta")
    y = torch.zeros(2, dtype=torch.long, device="meta")
    s = nets["mapping_network"](torch.empty(2, 16, device="meta"), y)
    assert nets["generator"](x, s).shape == (2, 3, 256, 256)


def test_conv_dim_zero_is_the_official_width_rule():
    for size, width in [(256, 64), (128, 128), (64, 256), (32, 512), (16, 512)]:
        assert meta_networks(2, {"image_size": size})["generator"].from_rgb.out_channels == width
    assert meta_networks(2, {"image_size": 256, "conv_dim": 32})["discriminator"].main[0].out_channels == 32


def test_he_initialisation():
    torch.manual_seed(0)
    nets = build_networks(2, {"image_size": 32, "conv_dim": 16, "max_conv_dim": 128})
    hidden = nets["mapping_network"].shared[2]  # Linear(512, 512)
    conv = nets["discriminator"].main[5]  # the 4×4 conv, 128 → 128: fan-in 2048
    for layer, fan_in in [(hidden, 512), (conv, 128 * 16)]:
        assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
        assert layer.weight.mean().item() == pytest.approx(0, abs=0.002)
        assert torch.count_nonzero(layer.bias) == 0
    # torch's own default (kaiming uniform, a=√5) has std 1/√(3·fan_in): far from He's √(2/fan_in).
    norm = nets["generator"].encode[0].norm1
    assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and torch.count_nonzero(norm.bias) == 0


def test_refuses_the_high_pass_filter():
    with pytest.raises(StarkitError, match=r"w_hpf = 1: .*face-landmark network \(FAN\).*set w_hpf = 0"):
        build_networks(2, {"image_size": 256, "w_hpf": 1})


@pytest.mark.parametrize("size", [4, 48, 100])
def test_refuses_image_sizes_that_are_not_powers_of_two(size):
    with pytest.raises(StarkitError, match=f"image_size = {size}: .*power of two"):
        build_networks(2, {"image_size": size})


def test_refuses_zero_domains():
    with pytest.raises(StarkitError, match="at least one domain"):
        build_networks(0, {"image_size": 32})
