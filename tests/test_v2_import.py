"""Importing the official StarGAN v2 implementation's weights
(starkit.families.stargan_v2.import_weights): files in the official format (written here from
starkit's own networks, which carry the official names), the architecture read off the shapes,
the label space from the user's domain names, and the files it refuses."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from starkit.errors import StarkitError
from starkit.families.stargan_v2.import_weights import import_weights
from starkit.families.stargan_v2.networks import build_networks
from starkit.labels import LabelSpace

#: A small model unlike the paper's in every width the importer must read off the shapes.
TINY = {"image_size": 32, "conv_dim": 16, "max_conv_dim": 64, "style_dim": 8, "latent_dim": 4, "mapping_dim": 32}
EMA = ("generator", "mapping_network", "style_encoder")


def official_file(path, nets, names=EMA, **extra):
    """What the official CheckpointIO writes: ``{name: module.state_dict()}`` (it saves the
    module inside DataParallel, so the keys carry no ``module.`` prefix)."""
    torch.save({**{name: OrderedDict(nets[name].state_dict()) for name in names}, **extra}, path)
    return path


@pytest.fixture
def tiny_nets():
    torch.manual_seed(0)
    return build_networks(3, TINY)


def test_imports_an_official_ema_file(tmp_path, tiny_nets):
    path = official_file(tmp_path / "100000_nets_ema.ckpt", tiny_nets)
    imported = import_weights(path, {})
    ckpt = imported.checkpoint
    assert set(ckpt["networks"]) == {"generator_ema", "mapping_network_ema", "style_encoder_ema"}
    config = ckpt["config"]
    assert config["model"] == "stargan-v2" and config["datasets"] == ["afhq"] and config["domains"] == ["afhq:domain"]
    assert {k: config[k] for k in TINY} == TINY
    space = LabelSpace.from_dict(ckpt["label_space"])
    assert space.names == ("afhq",) and space.attribute_names() == ["afhq:cat", "afhq:dog", "afhq:wild"]
    assert ckpt["imported_from"]["step"] == 100000 and ckpt["imported_from"]["moving_average"] is True
    assert imported.summary["domains"] == ["afhq:cat", "afhq:dog", "afhq:wild"]
    assert "32 px, 3 domains (cat, dog, wild)" in imported.description


def test_imported_networks_translate_as_the_originals(tmp_path, tiny_nets):
    path = official_file(tmp_path / "5_nets_ema.ckpt", tiny_nets)
    ckpt = import_weights(path, {"image_size": 32}).checkpoint
    rebuilt = build_networks(3, ckpt["config"])
    for name in EMA:
        rebuilt[name].load_state_dict(ckpt["networks"][f"{name}_ema"])
    x, z, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 4), torch.tensor([2, 0])
    with torch.no_grad():
        for nets in (tiny_nets, rebuilt):
            nets["out"] = nets["generator"](x, nets["mapping_network"](z, y))
            nets["ref"] = nets["generator"](x, nets["style_encoder"](x.flip(0), y))
    assert torch.equal(rebuilt["out"], tiny_nets["out"]) and torch.equal(rebuilt["ref"], tiny_nets["ref"])


def test_paper_widths_are_recorded_as_the_official_rule(tmp_path):
    with torch.device("meta"):
        nets = build_networks(2, {"image_size": 64})
    states = {name: {k: torch.zeros(v.shape) for k, v in nets[name].state_dict().items()} for name in EMA}
    torch.save(states, tmp_path / "x_nets_ema.ckpt")
    config = import_weights(tmp_path / "x_nets_ema.ckpt", {"attributes": ["summer", "winter"]}).checkpoint["config"]
    assert (config["image_size"], config["conv_dim"], config["max_conv_dim"], config["style_dim"]) == (64, 0, 512, 64)
    assert config["datasets"] == ["imported"] and config["domains"] == ["imported:domain"]


def test_a_nets_file_brings_its_discriminator(tmp_path, tiny_nets):
    path = official_file(tmp_path / "000010_nets.ckpt", tiny_nets, (*EMA, "discriminator"))
    ckpt = import_weights(path, {}).checkpoint
    # The trained weights, not moving averages: stored under their own names (translate falls back to them).
    assert set(ckpt["networks"]) == {"generator", "mapping_network", "style_encoder", "discriminator"}
    assert ckpt["imported_from"]["moving_average"] is False
    assert torch.equal(ckpt["networks"]["discriminator"]["main.0.weight"], tiny_nets["discriminator"].main[0].weight)


def test_refuses_the_high_pass_filter(tmp_path, tiny_nets):
    path = official_file(tmp_path / "celeba_nets_ema.ckpt", tiny_nets)
    data = torch.load(path, weights_only=True)
    data["generator"]["hpf.filter"] = torch.ones(3, 3)
    torch.save(data, path)
    with pytest.raises(StarkitError, match=r"high-pass filter .*needs the face-landmark network \(FAN\), which "
                                           r"starkit does not ship"):
        import_weights(path, {})
    torch.save({**torch.load(path, weights_only=True), "fan": OrderedDict()}, path)
    with pytest.raises(StarkitError, match="face-landmark network"):
        import_weights(path, {})


def test_refuses_a_wrong_domain_count(tmp_path, tiny_nets):
    path = official_file(tmp_path / "1_nets_ema.ckpt", tiny_nets)
    with pytest.raises(StarkitError, match=r"3 domains \(per-domain heads\) but --attrs names 2 \(cat, dog\)"):
        import_weights(path, {"attributes": ["cat", "dog"]})
    torch.manual_seed(0)
    path = official_file(tmp_path / "2_nets_ema.ckpt", build_networks(4, TINY))
    with pytest.raises(StarkitError, match=r"4 domains .* the default domains are AFHQ's 3 \(cat, dog, wild\)"):
        import_weights(path, {})


def test_refuses_a_wrong_image_size(tmp_path, tiny_nets):
    path = official_file(tmp_path / "1_nets_ema.ckpt", tiny_nets)
    with pytest.raises(StarkitError, match=r"--image-size 256: .* a model for 32 px images.*use --image-size 32"):
        import_weights(path, {"image_size": 256})


def test_refuses_networks_that_disagree(tmp_path, tiny_nets):
    torch.manual_seed(0)
    other = build_networks(2, TINY)
    path = tmp_path / "1_nets_ema.ckpt"
    torch.save({"generator": tiny_nets["generator"].state_dict(), "mapping_network": tiny_nets["mapping_network"]
                .state_dict(), "style_encoder": other["style_encoder"].state_dict()}, path)
    with pytest.raises(StarkitError, match=r"disagree on the number of domains \(heads: mapping_network 3, "
                                           r"style_encoder 2\)"):
        import_weights(path, {})
    other_style = build_networks(3, {**TINY, "style_dim": 16})  # G's AdaIN layers read 16-d styles, F makes 8
    official_file(path, {**tiny_nets, "generator": other_style["generator"]})
    with pytest.raises(StarkitError, match=r"'generator' is not the official generator .* it .*expected"):
        import_weights(path, {})


def test_refuses_files_that_are_not_official_networks(tmp_path, tiny_nets):
    text = tmp_path / "notes_nets_ema.ckpt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(StarkitError, match=r"notes_nets_ema.ckpt is not an official StarGAN v2 checkpoint"):
        import_weights(text, {})
    partial = official_file(tmp_path / "partial.ckpt", tiny_nets, ("generator",))
    with pytest.raises(StarkitError, match="lacks mapping_network, style_encoder"):
        import_weights(partial, {})
    optim = torch.optim.Adam(tiny_nets["generator"].parameters())
    torch.save({"generator": optim.state_dict()}, tmp_path / "1_optims.ckpt")
    with pytest.raises(StarkitError, match="optimiser states"):
        import_weights(tmp_path / "1_optims.ckpt", {})
    with pytest.raises(StarkitError, match="no option scale"):
        import_weights(text, {"scale": 2})


@pytest.mark.parametrize("name, weights", [("7_nets_ema.ckpt", EMA), ("7_nets.ckpt", (*EMA, "discriminator"))])
def test_an_imported_file_translates_as_its_networks(tmp_path, tiny_nets, registry, name, weights):
    # Through the core (import-checkpoint --model stargan-v2) and the family's translator.
    from starkit.families.stargan_v2.translator import latent_code
    from starkit.inference import load_translator
    from starkit.training.import_reference import import_checkpoint

    path = official_file(tmp_path / name, tiny_nets, weights)
    import_checkpoint(path, tmp_path / "imported.pt", "stargan-v2", registry)
    translator = load_translator(tmp_path / "imported.pt", device="cpu", registry=registry)
    torch.manual_seed(1)
    x, reference = torch.rand(3, 3, 32, 32) * 2 - 1, torch.rand(3, 3, 32, 32) * 2 - 1
    targets, y = torch.eye(3)[[1, 2, 0]], torch.tensor([1, 2, 0])
    with torch.no_grad():
        z = latent_code(5, 2, TINY["latent_dim"]).expand(3, -1)
        latent = tiny_nets["generator"](x, tiny_nets["mapping_network"](z, y))
        guided = tiny_nets["generator"](x, tiny_nets["style_encoder"](reference, y))
    assert torch.equal(translator.translate_latent(x, targets, style=2, seed=5), latent)
    assert torch.equal(translator.translate_reference(x, targets, reference), guided)
