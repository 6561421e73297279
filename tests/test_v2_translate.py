"""StarGAN v2 translation: latent- and reference-guided translators, ``starkit translate`` with
--styles/--seed/--reference and its grids, refusals, and the training sample grid."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from starkit.domains import domain_set
from starkit.labels import LabelSpace
from starkit.training.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CheckpointError, save_checkpoint
from starkit.translate import TranslateError, Translator, load_input

SIZE = 16
#: A tiny StarGAN v2 (16 px): the architecture keys of the family's config.
TINY = {"image_size": SIZE, "domains": [], "latent_dim": 4, "style_dim": 8, "mapping_dim": 16, "conv_dim": 8,
        "max_conv_dim": 16, "w_hpf": 0}


def _space() -> LabelSpace:
    from starkit.spec import AttributeGroup

    faces = [AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair")),
             AttributeGroup("attributes", "binary", ("Male", "Young"))]
    expr = [AttributeGroup("expression", "onehot", ("angry", "happy", "neutral"))]
    return LabelSpace.from_groups([("toyfaces", faces), ("toyexpr", expr)])


def _networks(space: LabelSpace) -> dict[str, torch.nn.Module]:
    """The four networks and moving averages that differ from them (so a test can tell which
    weights translate)."""
    from starkit.families.stargan_v2.networks import build_networks

    torch.manual_seed(0)
    nets = build_networks(len(domain_set(space, [])), TINY)
    for name in ("generator", "mapping_network", "style_encoder"):
        average = copy.deepcopy(nets[name])
        with torch.no_grad():
            for p in average.parameters():
                p.add_(0.05 * torch.randn_like(p))
        nets[f"{name}_ema"] = average
    return nets


def _save(nets: dict[str, torch.nn.Module], path: Path, keep=None) -> Path:
    payload = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model": "stargan-v2", "iteration": 0,
        "label_space": _space().to_dict(), "config": dict(TINY),
        "networks": {name: net.state_dict() for name, net in nets.items() if keep is None or name in keep},
    }
    return save_checkpoint(payload, path)


@pytest.fixture
def v2_checkpoint(registry, tmp_path):
    nets = _networks(_space())
    return _save(nets, tmp_path / "v2.pt"), nets


@pytest.fixture
def v2(v2_checkpoint, registry):
    return Translator.from_checkpoint(v2_checkpoint[0], device="cpu", registry=registry)


def _targets(translator, names: list[str]) -> np.ndarray:
    return np.stack([translator.domains.target_vector(translator.domains.index(n)) for n in names])


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------------------- the translator
def test_latent_translation_is_reproducible_for_a_seed_and_leaves_the_global_rng_alone(v2):
    assert v2.diverse and v2.takes_reference and v2.label_predictor is None and v2.family_name == "stargan-v2"
    x, t = _images(3), _targets(v2, ["toyexpr:happy", "toyfaces:Blond_Hair", "toyexpr:happy"])
    state = torch.get_rng_state()
    a = v2.translate_latent(x, t, style=1, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == (3, 3, SIZE, SIZE) and not a.requires_grad
    assert torch.equal(a, v2.translate_latent(x, t, style=1, seed=3))
    assert not torch.allclose(a, v2.translate_latent(x, t, style=0, seed=3))
    assert not torch.allclose(a, v2.translate_latent(x, t, style=1, seed=4))
    assert torch.equal(v2.translate(x, t), v2.translate_latent(x, t, style=0, seed=0))
    # One code for every row: the same input to the same domain is the same image in any row.
    same = v2.translate_latent(x[[0, 0]], t[[0, 2]], style=1, seed=3)
    assert torch.allclose(same[0], same[1], atol=1e-6)


def test_latent_codes_are_rows_of_the_seeds_normal_draws():
    from starkit.families.stargan_v2.translator import latent_code

    torch.manual_seed(7)  # what the official scripts do before torch.randn(n, latent_dim)
    drawn = torch.randn(3, 16)
    assert all(torch.equal(latent_code(7, j, 16), drawn[j]) for j in range(3))


def test_the_target_domains_head_maps_the_code(v2):
    x = _images(1).expand(2, -1, -1, -1)
    out = v2.translate_latent(x, _targets(v2, ["toyexpr:happy", "toyexpr:angry"]), style=0, seed=0)
    assert not torch.allclose(out[0], out[1])


def test_reference_guided_translation_uses_the_reference(v2):
    x, t = _images(2), _targets(v2, ["toyexpr:happy", "toyexpr:happy"])
    r1, r2 = _images(1, seed=1), _images(1, seed=2)
    a = v2.translate_reference(x, t, r1)
    assert torch.equal(a, v2.translate_reference(x, t, r1))
    assert not torch.allclose(a, v2.translate_reference(x, t, r2))
    # A shared reference is the same as that reference given for every row.
    assert torch.allclose(a, v2.translate_reference(x, t, r1.expand(2, -1, -1, -1)), atol=1e-6)
    with pytest.raises(TranslateError, match="reference images must be"):
        v2.translate_reference(x, t, _images(3))


def test_moving_averages_translate_unless_raw_and_ema_needs_them(v2_checkpoint, registry, tmp_path):
    path, nets = v2_checkpoint
    x, z = _images(1), torch.zeros(1, 4)
    auto = Translator.from_checkpoint(path, device="cpu", registry=registry)
    raw = Translator.from_checkpoint(path, device="cpu", registry=registry, weights="raw")
    assert (auto.weights, raw.weights) == ("ema", "raw")
    y = torch.tensor([0])
    s = nets["mapping_network_ema"](z, y)
    assert torch.allclose(auto.networks["generator"](x, s), nets["generator_ema"](x, s))
    assert torch.allclose(raw.networks["generator"](x, s), nets["generator"](x, s))
    bare = _save(nets, tmp_path / "bare.pt", keep={"generator", "mapping_network", "style_encoder"})
    assert Translator.from_checkpoint(bare, device="cpu", registry=registry).weights == "raw"
    with pytest.raises(CheckpointError, match=r"bare\.pt.*no moving averages"):
        Translator.from_checkpoint(bare, device="cpu", registry=registry, weights="ema")
    partial = _save(nets, tmp_path / "partial.pt", keep={"generator", "mapping_network"})
    with pytest.raises(CheckpointError, match=r"partial\.pt.*lacks the style_encoder"):
        Translator.from_checkpoint(partial, device="cpu", registry=registry)


# ---------------------------------------------------------------------------- starkit translate
def _cli(*args):
    from click.testing import CliRunner

    from starkit.cli.main import cli

    return CliRunner().invoke(cli, ["translate", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def folders(tmp_path):
    """``inputs/`` (a.png, b.png) and ``refs/`` (cat.png, dog.png), 16 px noise."""
    rng = np.random.default_rng(5)
    for folder, names in (("inputs", ("a", "b")), ("refs", ("cat", "dog"))):
        (tmp_path / folder).mkdir()
        for name in names:
            Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(tmp_path / folder / f"{name}.png")
    return tmp_path / "inputs", tmp_path / "refs"


def test_cli_writes_styles_of_a_seed(v2_checkpoint, v2, folders, tmp_path):
    inputs, _ = folders
    out = tmp_path / "out"
    result = _cli("--checkpoint", v2_checkpoint[0], "--input", inputs, "--to", "toyexpr:happy", "--styles", 2,
                  "--seed", 3, "--out", out, "--grid", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sorted(Path(p).name for p in report["files"]) == [
        f"{s}__toyexpr-happy__style{j}.png" for s in ("a", "b") for j in (0, 1)]
    assert (report["styles"], report["seed"], report["references"]) == (2, 3, [])
    # The file is style 1 of seed 3, as the translator gives it.
    image, _ = load_input(inputs / "b.png", SIZE)
    expected = v2.translate_latent(v2.to_input(image[None].copy()), _targets(v2, ["toyexpr:happy"]), style=1, seed=3)
    from starkit.training.samples import to_uint8_images

    with Image.open(out / "b__toyexpr-happy__style1.png") as im:
        assert np.array_equal(np.asarray(im), to_uint8_images(expected)[0])
    with Image.open(report["grid"]) as grid:  # rows: 2 inputs; columns: the input and 2 styles
        assert grid.width >= 3 * 96 and 2 * 96 <= grid.height < 3 * 96
    # The same seed again: the same pixels.
    again = _cli("--checkpoint", v2_checkpoint[0], "--input", inputs / "b.png", "--to", "toyexpr:happy",
                 "--styles", 2, "--seed", 3, "--out", tmp_path / "again", "--device", "cpu")
    assert again.exit_code == 0 and "Styles: 2 per input and target, seed 3" in again.stdout
    assert (tmp_path / "again" / "b__toyexpr-happy__style1.png").read_bytes() == \
        (out / "b__toyexpr-happy__style1.png").read_bytes()


def test_cli_reference_guided_with_a_grid_showing_the_references(v2_checkpoint, v2, folders, tmp_path):
    inputs, refs = folders
    out = tmp_path / "out"
    result = _cli("--checkpoint", v2_checkpoint[0], "--input", inputs, "--to", "toyexpr:happy", "--to", "Blond_Hair",
                  "--reference", refs, "--out", out, "--grid", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sorted(Path(p).name for p in report["files"]) == sorted(
        f"{s}__{t}__ref-{r}.png" for s in ("a", "b") for t in ("toyexpr-happy", "Blond_Hair") for r in ("cat", "dog"))
    assert report["references"] == [str(refs / "cat.png"), str(refs / "dog.png")] and report["styles"] is None
    image, _ = load_input(inputs / "a.png", SIZE)
    dog, _ = load_input(refs / "dog.png", SIZE)
    expected = v2.translate_reference(v2.to_input(image[None].copy()), _targets(v2, ["toyfaces:Blond_Hair"]),
                                      v2.to_input(dog[None].copy()))
    from starkit.training.samples import to_uint8_images

    with Image.open(out / "a__Blond_Hair__ref-dog.png") as im:
        assert np.array_equal(np.asarray(im), to_uint8_images(expected)[0])
    # Grid: a row of references, then a row per input; columns: the input, 2 targets x 2 references.
    with Image.open(report["grid"]) as grid:
        pixels = np.asarray(grid.convert("RGB"))
    tile, gap, header = 96, 2, 4 + 2 * 15 + 4  # titles of two lines: the target, then "ref <stem>"
    assert pixels.shape[0] == header + 3 * (tile + gap) - gap
    last = pixels[header : header + tile, -tile:]  # the top-right tile: the last reference, dog
    assert np.array_equal(last[::6, ::6], dog)


def test_cli_refusals(v2_checkpoint, folders, tmp_path):
    inputs, refs = folders
    base = ("--checkpoint", v2_checkpoint[0], "--input", inputs, "--to", "toyexpr:happy", "--out", tmp_path / "o",
            "--device", "cpu")
    result = _cli(*base, "--condition", "seed=1")
    assert result.exit_code == 1 and "Error: --condition seed: StarGAN v2 takes no --condition" in result.stderr
    assert "--styles" in result.stderr and "--reference" in result.stderr
    result = _cli(*base, "--styles", 2, "--reference", refs)
    assert result.exit_code == 1 and "not both" in result.stderr
    result = _cli(*base, "--reference", tmp_path / "missing")
    assert result.exit_code == 1 and f"--reference {tmp_path / 'missing'}: no such file" in result.stderr
    result = _cli(*base, "--styles", 0)
    assert result.exit_code == 1 and "--styles must be at least 1" in result.stderr
    assert not (tmp_path / "o").exists()  # refused before any work


@pytest.fixture
def stargan_checkpoint(tmp_path):
    """A StarGAN checkpoint: a tiny reference-layout generator imported (no training)."""
    from starkit.families.stargan.networks import Generator
    from starkit.families.stargan.reference import to_reference_state_dict
    from starkit.training.import_reference import import_checkpoint

    torch.manual_seed(0)
    torch.save(to_reference_state_dict(Generator(5, conv_dim=4, repeat_num=2)), tmp_path / "200000-G.ckpt")
    import_checkpoint(tmp_path / "200000-G.ckpt", tmp_path / "stargan.pt", "stargan", image_size=128)
    return tmp_path / "stargan.pt"


def test_styles_seed_and_references_are_refused_for_stargan_naming_the_family(stargan_checkpoint, folders, tmp_path):
    inputs, refs = folders
    base = ("--checkpoint", stargan_checkpoint, "--input", inputs / "a.png", "--to", "Brown_Hair,Male",
            "--out", tmp_path / "o", "--device", "cpu")
    result = _cli(*base, "--styles", 2)
    assert result.exit_code == 1
    assert "Error: --styles 2: the stargan model family gives one translation per target" in result.stderr
    result = _cli(*base, "--seed", 1)
    assert result.exit_code == 1 and "--seed: the stargan model family" in result.stderr
    result = _cli(*base, "--reference", refs)
    assert result.exit_code == 1 and "--reference: the stargan model family takes no reference images" in result.stderr
    # --styles 1 is what StarGAN gives anyway: the usual output name.
    result = _cli(*base, "--styles", 1, "--json")
    assert result.exit_code == 0, result.output
    assert [Path(p).name for p in json.loads(result.stdout)["files"]] == ["a__Brown_Hair+Male.png"]


# ---------------------------------------------------------------------------- training sample grid
class _Step:
    """What the sample grid reads off the v2 step: its networks and domains."""

    def __init__(self, networks, domains):
        self.networks, self.domains = networks, domains


def _sample_inputs():
    from starkit.training.samples import SampleInputs

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (3, SIZE, SIZE, 3), dtype=np.uint8)
    labels = [np.array([0, 1, 0, 1, 0], np.float32), np.array([1, 0, 0, 0, 1], np.float32),
              np.array([0, 0, 1], np.float32)]  # Blond_Hair, Black_Hair, neutral
    return SampleInputs(images, ["toyfaces", "toyfaces", "toyexpr"], labels)


def test_sample_grid_shows_both_kinds_deterministically(tmp_path):
    from starkit.families.stargan_v2.samples import sample_blocks, write_samples
    from starkit.training.samples import render_grid

    space = _space()
    nets = _networks(space)
    nets["generator_ema"].train()
    step = _Step(nets, domain_set(space, []))
    inputs = _sample_inputs()
    state = torch.get_rng_state()
    path = write_samples(step, space, inputs, torch.device("cpu"), tmp_path / "s.png")
    assert torch.equal(torch.get_rng_state(), state) and nets["generator_ema"].training  # mode restored
    blocks = sample_blocks(step, space, inputs, torch.device("cpu"))
    (latent, _, latent_rows), (reference, ref_titles, ref_rows) = blocks
    assert latent.shape == (3, 1 + 6 * 2, SIZE, SIZE, 3) and latent_rows == inputs.datasets
    # References: the first input of each domain (Blond_Hair, Black_Hair, neutral), in domain order.
    assert reference.shape == (4, 4, SIZE, SIZE, 3) and ref_rows == [""] + inputs.datasets
    assert [t[1] for t in ref_titles[1:]] == ["Black_Hair", "Blond_Hair", "neutral"]
    assert np.array_equal(reference[0, 1], inputs.images[1]) and np.array_equal(reference[0, 3], inputs.images[2])
    sizes = [render_grid(t, c, row_titles=r).size for t, c, r in blocks]
    with Image.open(path) as im:
        assert im.size == (max(w for w, _ in sizes), sum(h for _, h in sizes) + 12)
    again = write_samples(step, space, inputs, torch.device("cpu"), tmp_path / "again.png")
    assert again.read_bytes() == path.read_bytes()
