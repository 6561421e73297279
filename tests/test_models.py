"""StarGAN networks (starkit.families.stargan.networks) and losses (starkit.families.stargan.losses)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from starkit.errors import StarkitError
from starkit.labels import LabelError, LabelSpace
from starkit.families.stargan.options import DEFAULT_MODEL_CONFIG
from starkit.families.stargan.losses import (
    critic_adversarial_loss,
    critic_fake_loss,
    critic_real_loss,
    generator_adversarial_loss,
    gradient_penalty,
    reconstruction_loss,
    uncertainty_loss,
)
from starkit.families.stargan.networks import (
    Discriminator,
    Generator,
    InstanceNorm,
    KEEP_PRIOR,
    RECOLOUR_PRIOR,
    colour_map,
    ResizeConv,
    ModelError,
    build_stargan,
    count_parameters,
)
from starkit.spec import AttributeGroup

CELEBA = ("celeba", [AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair")),
                     AttributeGroup("binary", "binary", ("Male", "Young"))])
RAFD = ("rafd", [AttributeGroup("expression", "onehot", ("angry", "contemptuous", "disgusted", "fearful",
                                                        "happy", "neutral", "sad", "surprised"))])


def small_pair(c_dim: int = 3, image_size: int = 16) -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    return Generator(c_dim, conv_dim=4, repeat_num=2), Discriminator(image_size, conv_dim=4, c_dim=c_dim, repeat_num=3)


# ---------------------------------------------------------------------------------- sizes
def test_parameter_counts_equal_the_reference_implementation():
    assert count_parameters(Generator(c_dim=5)) == 8_430_528
    assert count_parameters(Discriminator(image_size=128, c_dim=5)) == 44_762_048
    assert count_parameters(Generator(c_dim=15)) == 8_461_888
    assert count_parameters(Discriminator(image_size=128, c_dim=13)) == 44_827_584


def test_build_stargan_sizes_g_with_the_mask_and_d_without():
    single = build_stargan(LabelSpace.from_groups([CELEBA]), {})
    assert single["G"].c_dim == 5 and single["D"].c_dim == 5
    joint = build_stargan(LabelSpace.from_groups([CELEBA, RAFD]), {"lr": 1e-4})  # unrelated keys ignored
    assert joint["G"].c_dim == 15 and joint["D"].c_dim == 13
    assert count_parameters(joint["G"]) == 8_461_888 and count_parameters(joint["D"]) == 44_827_584
    assert joint["D"].image_size == DEFAULT_MODEL_CONFIG["image_size"] == 128


def test_build_stargan_config_overrides():
    nets = build_stargan(LabelSpace.from_groups([CELEBA]),
                         {"image_size": 32, "g_conv_dim": 8, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 5})
    g, d = nets["G"], nets["D"]
    assert (g.conv_dim, g.repeat_num, len(g.bottleneck)) == (8, 1, 1)
    assert (d.image_size, d.conv_dim, d.repeat_num, len(d.trunk)) == (32, 4, 5, 5)
    assert d.cls_head.kernel_size == (1, 1)


def test_layer_details_match_the_paper():
    g = Generator(c_dim=5, conv_dim=8, repeat_num=2)
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(m.bias is None for m in convs)  # every G conv is followed by IN or tanh
    assert [m.kernel_size[0] for m in convs] == [7, 4, 4, 3, 3, 3, 3, 4, 4, 7]
    assert [m.stride[0] for m in convs] == [1, 2, 2, 1, 1, 1, 1, 2, 2, 1]
    assert [m.out_channels for m in convs] == [8, 16, 32, 32, 32, 32, 32, 16, 8, 3]
    assert convs[0].in_channels == 3 + 5
    assert [type(m) for m in convs[-3:-1]] == [nn.ConvTranspose2d] * 2
    norms = [m for m in g.modules() if isinstance(m, InstanceNorm)]
    assert len(norms) == 3 + 2 * 2 + 2 and all(n.affine and n.track_running_stats for n in norms)
    assert "stem.norm.running_var" in g.state_dict()

    d = Discriminator(image_size=64, conv_dim=8, c_dim=5, repeat_num=4)
    assert [b.conv.out_channels for b in d.trunk] == [8, 16, 32, 64]
    assert all(b.conv.bias is not None and b.conv.kernel_size == (4, 4) for b in d.trunk)
    assert d.src_head.bias is None and d.src_head.kernel_size == (3, 3)
    assert d.cls_head.bias is None and d.cls_head.kernel_size == (4, 4)  # 64 / 2**4


# ---------------------------------------------------------------------------------- forward
@pytest.mark.parametrize("image_size, repeat_num", [(16, 3), (32, 5), (24, 3)])
def test_forward_shapes(image_size, repeat_num):
    g = Generator(c_dim=4, conv_dim=4, repeat_num=1)
    d = Discriminator(image_size, conv_dim=4, c_dim=4, repeat_num=repeat_num)
    x = torch.rand(2, 3, image_size, image_size) * 2 - 1
    y = g(x, torch.rand(2, 4))
    assert y.shape == x.shape and y.abs().max() < 1  # tanh
    out_src, out_cls = d(y)
    patches = image_size // 2**repeat_num
    assert out_src.shape == (2, 1, patches, patches)
    assert out_cls.shape == (2, 4)


def test_generator_is_fully_convolutional_and_allows_no_residual_blocks():
    g = Generator(c_dim=2, conv_dim=4, repeat_num=0)
    assert g(torch.zeros(1, 3, 12, 20), torch.ones(1, 2)).shape == (1, 3, 12, 20)


def test_generator_output_depends_on_the_label():
    g, _ = small_pair()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        a = g(x, torch.tensor([[1.0, 0, 0]] * 2))
        b = g(x, torch.tensor([[0.0, 1, 0]] * 2))
    assert (a - b).abs().max() > 1e-3


def test_attention_generator_starts_near_the_identity_and_blends_by_its_mask():
    torch.manual_seed(0)
    g = Generator(c_dim=3, conv_dim=4, repeat_num=1, output="attention")
    # One more output channel (the keep-mask's logit): 4·49 more weights than the paper's G.
    assert count_parameters(g) == count_parameters(Generator(c_dim=3, conv_dim=4, repeat_num=1)) + 4 * 49
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = torch.tensor([[1.0, 0, 0], [0, 0, 1]])
    with torch.no_grad():
        y = g(x, c)
        colour = torch.tanh(g.to_rgb(g.up(g.bottleneck(g.down(g.stem(torch.cat(
            [x, c[:, :, None, None].expand(2, 3, 16, 16)], 1))))))[:, :3])
    # Untrained, the mask keeps sigmoid(KEEP_PRIOR) of the input everywhere, for any label.
    keep = torch.sigmoid(torch.tensor(KEEP_PRIOR))
    assert torch.allclose(y, keep * x + (1 - keep) * colour, atol=1e-6)
    assert (y - x).abs().max() < 2 * (1 - keep)
    # The mask's weights start at zero but get a gradient, so training can open it.
    g(x, c).sub(0.5).pow(2).mean().backward()
    assert g.to_rgb.weight.grad[3:].abs().sum() > 0


def test_generator_reports_its_paint_mask_opening_on_request():
    torch.manual_seed(0)
    g = Generator(c_dim=3, conv_dim=4, repeat_num=1, output="attention")
    with torch.no_grad():
        g.to_rgb.weight[3].normal_(0, 0.5)  # a mask that opens unevenly
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = torch.tensor([[1.0, 0, 0], [0, 0, 1]])
    with torch.no_grad():
        y, masks = g(x, c, with_masks=True)
        assert torch.equal(y, g(x, c))  # the same output as without it
        assert set(masks) == {"paint"}  # no colour map, no recolour mask
        opening = masks["paint"]
        assert opening.shape == (2, 1, 16, 16) and 0 <= opening.min() and opening.max() <= 1
        assert opening.std() > 0.01
        # The output is the input where the mask is shut and the paint where it opens:
        # 1 − K is exactly the paint's share of every pixel.
        g.to_rgb.weight[:3].zero_()  # paint: mid-grey
        y, masks = g(x, c, with_masks=True)
        assert torch.allclose(y, x - masks["paint"] * x, atol=1e-5)


@pytest.mark.parametrize("output, expected", [("image", set()), ("attention", {"paint", "recolour"})])
def test_generator_reports_the_recolour_mask_it_applies(output, expected):
    torch.manual_seed(0)
    colour_map = "none" if output == "image" else "global"
    g = Generator(c_dim=3, conv_dim=4, repeat_num=1, output=output, colour_map=colour_map)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = torch.tensor([[1.0, 0, 0], [0, 0, 1]])
    with torch.no_grad():
        y, masks = g(x, c, with_masks=True)
    assert torch.equal(y, g(x, c)) and set(masks) == expected
    if "recolour" in masks:
        # Untrained, the recolour mask is sigmoid(RECOLOUR_PRIOR) everywhere (its weights start
        # at zero), for any label.
        assert torch.allclose(masks["recolour"], torch.sigmoid(torch.tensor(RECOLOUR_PRIOR)).expand(2, 1, 16, 16))


def test_colour_map_is_the_identity_at_zero_and_an_affine_map_per_image():
    x = torch.rand(2, 3, 4, 5) * 2 - 1
    assert torch.equal(colour_map(x, torch.zeros(2, 12)), x)
    change = torch.zeros(2, 12)
    # Image 0: swap red and blue; image 1: halve every channel and add 0.25 to green.
    change[0, :9] = (torch.tensor([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]]) - torch.eye(3)).flatten()
    change[1, :9] = -0.5 * torch.eye(3).flatten()
    change[1, 10] = 0.25
    y = colour_map(x, change)
    assert torch.allclose(y[0], x[0].flip(0))
    assert torch.allclose(y[1], (0.5 * x[1] + torch.tensor([0.0, 0.25, 0.0])[:, None, None]))
    # Clamped: a map that overshoots still gives an image.
    assert colour_map(x, torch.full((2, 12), 3.0)).abs().max() <= 1.0


def test_a_colour_map_starts_as_the_identity_and_applies_where_its_mask_says():
    torch.manual_seed(0)
    g = Generator(c_dim=3, conv_dim=4, repeat_num=1, output="attention", colour_map="global")
    plain = Generator(c_dim=3, conv_dim=4, repeat_num=1, output="attention")
    # One more output channel (the recolour mask, 4·49 weights) and the colour map's linear
    # layer from the pooled bottleneck (4·conv_dim channels) and the label: (16 + 3)·12 + 12.
    assert count_parameters(g) == count_parameters(plain) + 4 * 49 + (16 + 3) * 12 + 12
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = torch.tensor([[1.0, 0, 0], [0, 0, 1]])

    def head(net):
        with torch.no_grad():
            return net.to_rgb(net.up(net.bottleneck(net.down(net.stem(torch.cat(
                [x, c[:, :, None, None].expand(2, 3, 16, 16)], 1))))))

    # Untrained, the colour map is the identity: the same output as the G without one.
    shared = {k: v for k, v in g.state_dict().items() if not k.startswith(("recolour", "to_rgb"))}
    assert not plain.load_state_dict(shared, strict=False).unexpected_keys
    with torch.no_grad():
        g.to_rgb.weight[:3].normal_(0, 0.1)
        plain.to_rgb.weight.copy_(g.to_rgb.weight[:-1])
        assert torch.allclose(g(x, c), plain(x, c), atol=1e-6)
        # With a map (red and blue swapped, for every image) the output starts from the
        # input recoloured by the mask: x' = x + M·(T(x) − x).
        g.recolour.bias[:9] = (torch.tensor([[0.0, 0, 1], [0, 1, 0], [1, 0, 0]]) - torch.eye(3)).flatten()
        y = g(x, c)
    h = head(g)
    mix = torch.sigmoid(h[:, -1:] + RECOLOUR_PRIOR)
    base = x + mix * (x.flip(1) - x)
    keep = torch.sigmoid(h[:, 3:4] + KEEP_PRIOR)
    expected = keep * base + (1 - keep) * torch.tanh(h[:, :3])
    assert torch.allclose(y, expected, atol=1e-5)
    assert (y - plain(x, c)).abs().max() > 1e-2
    # The map's layer and the recolour mask both learn.
    g(x, c).sub(0.5).pow(2).mean().backward()
    assert g.recolour.weight.grad.abs().sum() > 0 and g.to_rgb.weight.grad[-1].abs().sum() > 0


@pytest.mark.parametrize("upsample, taps", [("transposed", 16), ("resize", 9)])
def test_unet_skips_feed_the_down_path_features_to_the_up_path_at_their_resolution(upsample, taps):
    torch.manual_seed(0)
    plain = Generator(c_dim=3, conv_dim=4, repeat_num=1, output="attention", upsample=upsample, colour_map="global")
    unet = Generator(c_dim=3, conv_dim=4, repeat_num=1, output="attention", upsample=upsample, colour_map="global",
                     skip="unet")
    # The second up-sampling layer reads 8 more channels (the first down-sampling layer's) into
    # its 4 outputs, the output layer 4 more (the stem's) into its 3 colours and 2 masks.
    assert count_parameters(unet) == count_parameters(plain) + 8 * 4 * taps + 4 * 5 * 49
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = torch.tensor([[1.0, 0, 0], [0, 0, 1]])
    with torch.no_grad():
        stem = unet.stem(torch.cat([x, c[:, :, None, None].expand(2, 3, 16, 16)], 1))
        half = unet.down[0](stem)
        up = unet.up[1](torch.cat([unet.up[0](unet.bottleneck(unet.down[1](half))), half], 1))
        # Only the stem's channels drive the output layer: with the paint's weights on the up
        # path at zero, the paint is drawn from the full-resolution features alone.
        # (The colour map starts as the identity, so the paint goes over x itself.)
        unet.to_rgb.weight[:3, :4].zero_()
        h = F.conv2d(stem, unet.to_rgb.weight[:, 4:], padding=3)
        keep = torch.sigmoid(h[:, 3:4] + KEEP_PRIOR)
        expected = keep * x + (1 - keep) * torch.tanh(h[:, :3])
        assert torch.allclose(unet(x, c), expected, atol=1e-5)
        # And the second up-sampling layer reads the down path's half-resolution features: the
        # output moves with its weights on them.
        unet.to_rgb.weight[:3, :4].normal_(0, 0.1)
        before = unet(x, c)
        conv = unet.up[1].conv if upsample == "transposed" else unet.up[1].conv.conv
        skip_weights = conv.weight[8:] if upsample == "transposed" else conv.weight[:, 8:]
        skip_weights.zero_()
        assert (unet(x, c) - before).abs().max() > 1e-3
        assert up.shape == (2, 4, 16, 16)


@pytest.mark.parametrize("output", ["image", "attention"])
def test_a_smaller_output_kernel_decides_each_pixel_from_its_own_neighbourhood(output):
    torch.manual_seed(0)
    paper = Generator(c_dim=3, conv_dim=4, repeat_num=1, output=output, skip="unet")
    small = Generator(c_dim=3, conv_dim=4, repeat_num=1, output=output, skip="unet", out_kernel=3)
    channels = 4 if output == "attention" else 3
    # Only the output layer shrinks: 8 input channels (4 up, 4 from the stem) per output channel.
    assert count_parameters(paper) - count_parameters(small) == 8 * channels * (49 - 9)
    assert small.to_rgb.weight.shape == (channels, 8, 3, 3)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = torch.tensor([[1.0, 0, 0], [0, 0, 1]])
    with torch.no_grad():
        if output == "attention":  # it starts where the paper's does, keeping 98 % of its input
            assert (small(x, c) - x).abs().max() < 0.05
        # A change of the output layer's input features at one position reaches the output
        # within 1 pixel of it (3 with the paper's 7×7 kernel).
        for net, reach in ((small, 1), (paper, 3)):
            net.to_rgb.weight.normal_(0, 0.3)
            h = torch.randn(1, 8, 16, 16)
            bumped = h.clone()
            bumped[0, :, 8, 8] += 5
            moved = (net.to_rgb(bumped) - net.to_rgb(h)).abs().amax(1)[0] > 0
            rows, cols = moved.nonzero(as_tuple=True)
            assert rows.min() == cols.min() == 8 - reach and rows.max() == cols.max() == 8 + reach
    for bad in (0, 2, 9):
        with pytest.raises(ModelError, match="out_kernel"):
            Generator(c_dim=3, conv_dim=4, repeat_num=1, out_kernel=bad)
    space = LabelSpace.from_groups([CELEBA, RAFD])
    assert build_stargan(space, {"g_out_kernel": 5, "g_conv_dim": 4})["G"].to_rgb.kernel_size == (5, 5)
    with pytest.raises(ModelError, match="model config g_out_kernel: must be an odd integer from 1 to 7"):
        build_stargan(space, {"g_out_kernel": "3"})


def test_resize_upsampling_paints_no_checkerboard_where_transposed_convolutions_do():
    torch.manual_seed(0)
    flat = torch.ones(1, 6, 8, 8)  # a uniform feature map: a uniform output is the right answer
    resize = ResizeConv(6, 5)
    transposed = nn.ConvTranspose2d(6, 5, kernel_size=4, stride=2, padding=1, bias=False)
    with torch.no_grad():
        a, b = resize(flat), transposed(flat)
    assert a.shape == b.shape == (1, 5, 16, 16)
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))  # away from the zero padding
    assert torch.allclose(a[inner], a[inner][..., :1, :1].expand_as(a[inner]), atol=1e-6)
    # The transposed convolution's even and odd output pixels sum different kernel taps.
    assert (b[inner] - b[inner][..., :1, :1]).abs().max() > 1e-2
    # As G's up-sampling: same shapes, fewer weights (3×3 instead of 4×4 kernels).
    g = Generator(c_dim=3, conv_dim=4, repeat_num=1, upsample="resize")
    paper = Generator(c_dim=3, conv_dim=4, repeat_num=1)
    assert count_parameters(paper) - count_parameters(g) == (16 - 9) * (16 * 8 + 8 * 4)
    assert g(torch.zeros(2, 3, 12, 20), torch.ones(2, 3)).shape == (2, 3, 12, 20)


def test_instance_norm_uses_each_images_own_statistics_in_both_modes():
    g, _ = small_pair()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    c = torch.rand(3, 3)
    with torch.no_grad():
        g.train()
        y_train = g(x, c)
        stats_after_train = g.stem.norm.running_mean.clone()
        g.eval()
        y_eval = g(x, c)
        alone = g(x[:1], c[:1])  # no batch statistics: a sample's output ignores the others
    assert torch.allclose(y_train, y_eval, atol=1e-6)
    assert torch.allclose(alone, y_eval[:1], atol=1e-5)
    assert stats_after_train.abs().sum() > 0  # train mode updates the (inert) buffers...
    assert torch.equal(g.stem.norm.running_mean, stats_after_train)  # ...eval mode leaves them


def test_channels_last_gives_the_same_outputs():
    g, d = small_pair()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = torch.rand(2, 3)
    with torch.no_grad():
        y, (src, cls) = g(x, c), d(x)
        g_cl, d_cl = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        y_cl, (src_cl, cls_cl) = g_cl(x_cl, c), d_cl(x_cl)
    assert torch.allclose(y, y_cl, atol=1e-5)
    assert torch.allclose(src, src_cl, atol=1e-5) and torch.allclose(cls, cls_cl, atol=1e-5)


def test_bf16_autocast_forward_and_backward():
    g, d = small_pair()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = torch.rand(2, 3)
    reference = g(x, c).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = g(x, c)
        out_src, out_cls = d(y)
        loss = generator_adversarial_loss(out_src) + out_cls.float().pow(2).mean()
    assert y.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    assert (y.float() - reference).abs().max() < 0.1
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())


# ---------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Discriminator(image_size=100, repeat_num=3), ["image_size 100", "2**repeat_num = 8"]),
        (lambda: Discriminator(image_size=64, repeat_num=0), ["repeat_num", "at least 1"]),
        (lambda: Generator(c_dim=0), ["c_dim"]),
        (lambda: Generator(c_dim=5, conv_dim=16.0), ["conv_dim", "integer"]),
        (lambda: Generator(c_dim=5, repeat_num=True), ["repeat_num", "integer"]),
        (lambda: Generator(c_dim=5, output="residual"), ["output", "image, attention", "'residual'"]),
        (lambda: Generator(c_dim=5, colour_map="grid"), ["colour_map", "none, global", "'grid'"]),
        (lambda: Generator(c_dim=5, colour_map="global"), ["colour_map='global'", "needs output 'attention'"]),
        (lambda: Generator(c_dim=5, upsample="bilinear"), ["upsample", "transposed, resize", "'bilinear'"]),
        (lambda: Generator(c_dim=5, skip="dense"), ["skip", "none, unet", "'dense'"]),
    ],
)
def test_invalid_hyper_parameters_are_named(make, words):
    with pytest.raises(ModelError) as info:
        make()
    assert isinstance(info.value, StarkitError)
    assert all(w in str(info.value) for w in words)


def test_build_stargan_names_the_bad_config_key():
    space = LabelSpace.from_groups([CELEBA])
    with pytest.raises(ModelError, match="model config g_conv_dim: must be an integer, got '64'"):
        build_stargan(space, {"g_conv_dim": "64"})
    with pytest.raises(ModelError, match="model config: image_size 96"):
        build_stargan(space, {"image_size": 96, "d_repeat_num": 6})
    assert build_stargan(space, {"image_size": 96})["D"] is not None  # depth 5 follows the size
    with pytest.raises(ModelError, match="model config g_output: must be one of image, attention, got 'rgb'"):
        build_stargan(space, {"g_output": "rgb"})
    assert build_stargan(space, {"g_output": "attention", "g_conv_dim": 4, "g_repeat_num": 0})["G"].output == "attention"


def test_wrong_inputs_are_reported():
    g, d = small_pair()
    with pytest.raises(ModelError, match=r"labels \[2, 3\]"):
        g(torch.zeros(2, 3, 16, 16), torch.zeros(2, 4))
    with pytest.raises(ModelError, match="divisible by 4"):
        g(torch.zeros(1, 3, 18, 16), torch.zeros(1, 3))
    with pytest.raises(ModelError, match=r"\[B, 3, H, W\]"):
        g(torch.zeros(1, 1, 16, 16), torch.zeros(1, 3))
    with pytest.raises(ModelError, match="built for 16×16 images, got 32×32"):
        d(torch.zeros(1, 3, 32, 32))


def test_the_family_packages_do_not_import_torch():
    code = ("import sys, starkit.families.stargan, starkit.families.stargan.parts, starkit.families.stargan.speed; "
            "import starkit.families.stargan.options as o; assert 'torch' not in sys.modules; "
            "print(o.DEFAULT_MODEL_CONFIG['image_size'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "128"


# ---------------------------------------------------------------------------------- losses
class LinearCritic(nn.Module):
    """D(x) = <w, x> per sample: its gradient is w everywhere, so it is ‖w‖-Lipschitz."""

    def __init__(self, shape: tuple[int, ...], norm: float):
        super().__init__()
        w = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        self.w = nn.Parameter(w * (norm / w.norm()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return (x * self.w).sum(dim=(1, 2, 3)).view(-1, 1, 1, 1), None


def test_adversarial_and_reconstruction_losses():
    real = torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1)
    fake = torch.tensor([[[[0.5, -0.5], [1.5, 2.5]]]])  # a PatchGAN map: mean over patches too
    assert critic_real_loss(real).item() == pytest.approx(-2.0)
    assert critic_fake_loss(fake).item() == pytest.approx(1.0)
    assert critic_adversarial_loss(real, fake).item() == pytest.approx(-1.0)
    assert generator_adversarial_loss(fake).item() == pytest.approx(-1.0)
    x = torch.zeros(2, 3, 4, 4)
    assert reconstruction_loss(x, x).item() == 0
    assert reconstruction_loss(x, x - 0.25).item() == pytest.approx(0.25)


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    real, fake = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    unit = LinearCritic((1, 3, 8, 8), norm=1.0)
    assert gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    # Gradient norm 3 everywhere: the penalty is (3 - 1)² whatever α is.
    steep = LinearCritic((1, 3, 8, 8), norm=3.0)
    assert gradient_penalty(steep, real, fake).item() == pytest.approx(4.0, rel=1e-5)


def test_gradient_penalty_interpolates_per_sample():
    # D(x) = ½‖x‖² has gradient x̂, so the penalty exposes where x̂ was taken.
    real, fake = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4) - 2

    def critic(x):
        return 0.5 * x.pow(2).sum(dim=(1, 2, 3))

    alpha = torch.rand((5, 1, 1, 1), generator=torch.Generator().manual_seed(7))
    x_hat = alpha * real + (1 - alpha) * fake
    expected = ((x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    drawn = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(7))
    given = gradient_penalty(critic, real, fake, alpha=alpha)
    assert drawn.item() == pytest.approx(expected.item(), rel=1e-5)
    assert given.item() == pytest.approx(expected.item(), rel=1e-5)
    other = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(8))
    assert other.item() != pytest.approx(expected.item(), rel=1e-3)


def test_gradient_penalty_trains_the_discriminator_only():
    g, d = small_pair()
    real = torch.rand(2, 3, 16, 16) * 2 - 1
    fake = g(real, torch.rand(2, 3))
    penalty = gradient_penalty(d, real, fake, generator=torch.Generator().manual_seed(0))
    assert penalty.item() > 0  # a freshly initialised D is nowhere near unit gradients
    penalty.backward()
    # ∇ₓD of a piecewise-linear net does not depend on its biases, only on its weights.
    weights = [b.conv.weight for b in d.trunk] + [d.src_head.weight]
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in weights)
    assert all(p.grad is None for p in g.parameters())  # fake is detached inside


def test_gradient_penalty_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        gradient_penalty(lambda x: x.sum(), torch.zeros(2, 3, 4, 4), torch.zeros(1, 3, 4, 4))


def _celeba_rafd() -> LabelSpace:
    """A CelebA-like dataset (a 3-way hair group, two binary attributes) and a RaFD-like one
    (8 expressions), joint."""
    celeba = [AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair")),
              AttributeGroup("attributes", "binary", ("Male", "Young"))]
    rafd = [AttributeGroup("expression", "onehot", tuple(f"e{i}" for i in range(8)))]
    return LabelSpace.from_groups([("celeba", celeba), ("rafd", rafd)])


def test_uncertainty_loss_is_least_when_the_logits_say_nothing_about_the_dataset():
    joint = _celeba_rafd()
    import math

    floor = math.log(3) + 2 * math.log(2)  # CelebA: a 3-way hair group and two binary attributes
    flat = torch.zeros(4, joint.label_dim)
    flat[:, 5:] = torch.randn(4, 8)  # RaFD's part plays no part in CelebA's uncertainty
    assert uncertainty_loss(joint, flat, "celeba").item() == pytest.approx(floor, rel=1e-6)
    shifted = flat.clone()
    shifted[:, :3] += 5.0  # equal within the one-hot group: still says nothing
    assert uncertainty_loss(joint, shifted, "celeba").item() == pytest.approx(floor, rel=1e-6)
    confident = flat.clone()
    confident[:, 0], confident[:, 3] = 4.0, -4.0  # "black hair", "not male"
    assert uncertainty_loss(joint, confident, "celeba").item() > floor + 1.0
    logits = torch.randn(4, joint.label_dim, generator=torch.Generator().manual_seed(3), requires_grad=True)
    loss = uncertainty_loss(joint, logits, "rafd")
    assert loss.item() > math.log(8)
    loss.backward()
    assert logits.grad[:, :5].abs().sum() == 0 and logits.grad[:, 5:].abs().sum() > 0
    # Per row: the mean of each row's own loss.
    rows = [uncertainty_loss(joint, logits[i : i + 1], "rafd") for i in range(4)]
    assert loss.item() == pytest.approx(torch.stack(rows).mean().item(), rel=1e-6)
    with pytest.raises(LabelError, match="logits have 5 columns"):
        uncertainty_loss(joint, torch.zeros(2, 5), "rafd")


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"g_upsample": "resize", "g_skip": "unet"},
        {"g_output": "attention", "g_colour_map": "global", "g_skip": "unet", "g_upsample": "resize",
         "g_out_kernel": 3},
    ],
    ids=["paper", "resize_unet", "attention_map_unet_kernel3"],
)
def test_every_network_option_loads_from_its_weights_as_translate_and_eval_load_it(config):
    """`starkit translate` and `starkit eval` build the networks on the meta device and fill
    them from the checkpoint's state dicts: anything a module keeps outside its state dict
    (a non-persistent buffer, say) would come back uninitialised. Loaded that way, G and D
    must compute what they computed."""
    space = LabelSpace.from_groups([CELEBA, RAFD])
    config = {"image_size": 16, "g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 3, **config}
    torch.manual_seed(0)
    built = build_stargan(space, config)
    with torch.no_grad():
        for net in built.values():
            for p in net.parameters():
                p.normal_(0, 0.2)
    with torch.device("meta"):
        skeletons = build_stargan(space, config)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = torch.from_numpy(space.encode("celeba", np.array([[1, 0, 0, 1, 0], [0, 1, 0, 0, 1]], dtype=np.float32)))
    for name, net in built.items():
        loaded = skeletons[name].to_empty(device="cpu")
        loaded.load_state_dict(net.state_dict())
        with torch.no_grad():
            if name == "G":
                assert torch.equal(loaded(x, c), net(x, c))
            else:
                for a, b in zip(loaded(x), net(x)):
                    assert torch.equal(a, b)
