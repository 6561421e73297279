"""Translation: inputs, targets and source labels, output files and grids, checkpoints
without a discriminator, and importing the reference implementation's generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from starkit.families.stargan.translator import StarGANTranslator
from starkit.labels import LabelError, LabelSpace
from starkit.training import train
from starkit.training.checkpoint import CheckpointError, load_checkpoint
from starkit.translate import (
    InputRecord,
    TranslateError,
    Translator,
    parse_source_labels,
    preprocessing_summary,
    target_slug,
    translate_files,
)


@pytest.fixture(scope="module")
def trained_run(toy_data_root, tmp_path_factory):
    from starkit.plugins import PluginRegistry

    out = tmp_path_factory.mktemp("translate") / "run"
    config = {
        "datasets": ["toyfaces", "toyexpr"], "data_root": str(toy_data_root), "iters": 2, "batch_size": 4,
        "workers": 0, "sample_every": 0, "g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 2,
    }
    train(out, config, registry=PluginRegistry(load_entry_points=False), progress=False)
    return out


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 24, 3), dtype=np.uint8)).save(folder / "tall.png")
    Image.fromarray(rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)).save(folder / "wide.jpg")
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / "wide.png")
    (folder / "readme.txt").write_text("not an image")
    return folder


def test_slugs_and_source_labels():
    assert target_slug("Blond_Hair,Male=0") == "Blond_Hair+Male-0"
    assert target_slug("rafd:happy") == "rafd-happy"
    space = LabelSpace.from_groups([("celeba", _celeba_groups())])
    assert parse_source_labels(space, "celeba", "Brown_Hair,Young").tolist() == [0, 0, 1, 0, 1]
    assert parse_source_labels(space, "celeba", None).tolist() == [0] * 5
    with pytest.raises(LabelError, match="Purple"):
        parse_source_labels(space, "celeba", "Purple")


def _celeba_groups():
    from starkit.spec import AttributeGroup

    return [AttributeGroup("hair", "onehot", ("Black_Hair", "Blond_Hair", "Brown_Hair")),
            AttributeGroup("attributes", "binary", ("Male", "Young"))]


def test_translate_folder_writes_one_image_per_input_and_target_and_a_grid(trained_run, images, tmp_path):
    translator = Translator.from_run(trained_run, device="cpu")
    assert translator.D is not None and translator.image_size == 16
    result = translate_files(translator, [images], ["Blond_Hair,Male=0", "toyexpr:happy"], tmp_path / "out", grid=True)
    names = sorted(p.name for p in result.files)
    assert names == sorted(
        f"{stem}__{slug}.png"
        for stem in ("tall", "wide-jpg", "wide-png")
        for slug in ("Blond_Hair+Male-0", "toyexpr-happy")
    )
    for path in result.files:
        with Image.open(path) as im:
            assert im.size == (16, 16) and im.mode == "RGB"
    assert result.source_labels == "discriminator" and result.source_dataset == "toyfaces"
    with Image.open(result.grid) as grid:
        assert grid.width >= 3 * 96 and grid.height >= 3 * 96  # 3 columns, 3 rows of >= 96 px tiles


class RecordingGenerator(nn.Module):
    """Returns its input and remembers the conditioning vectors it was given."""

    def __init__(self):
        super().__init__()
        self.calls: list[torch.Tensor] = []

    def forward(self, x, c):
        self.calls.append(c.clone())
        return x


class FixedClassifier(nn.Module):
    """A discriminator whose classifier always predicts the same logits."""

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits, dtype=torch.float32)

    def forward(self, x):
        return x.new_zeros((x.shape[0], 1, 1, 1)), self.logits.expand(x.shape[0], -1)


def _two_dataset_space():
    from starkit.spec import AttributeGroup

    return LabelSpace.from_groups(
        [("celeba", _celeba_groups()), ("rafd", [AttributeGroup("expression", "onehot", ("angry", "happy", "neutral"))])]
    )


def test_targets_start_from_predicted_labels_and_other_datasets_use_their_mask(images, tmp_path):
    space = _two_dataset_space()
    # D predicts: Brown_Hair, Male, not Young (the rafd logits are ignored for a celeba source).
    D = FixedClassifier([-1, -2, 3, 2, -2, 5, 0, 0])
    G = RecordingGenerator()
    translator = StarGANTranslator(G, space, 16, torch.device("cpu"), D=D)
    translate_files(translator, [images / "tall.png"], ["Blond_Hair", "Young", "rafd:happy"], tmp_path / "o")
    blond, young, happy = (c[0].tolist() for c in G.calls)
    #                 Black Blond Brown Male Young | angry happy neutral | mask celeba, rafd
    assert blond == [0, 1, 0, 1, 0, 0, 0, 0, 1, 0]
    assert young == [0, 0, 1, 1, 1, 0, 0, 0, 1, 0]
    assert happy == [0, 0, 0, 0, 0, 0, 1, 0, 0, 1]


def test_without_a_discriminator_source_labels_are_given_or_zero(images, tmp_path):
    space = _two_dataset_space()
    G = RecordingGenerator()
    translator = StarGANTranslator(G, space, 16, torch.device("cpu"))
    result = translate_files(translator, [images / "tall.png"], ["Brown_Hair,Male"], tmp_path / "o")
    assert result.source_labels == "zeros"
    assert G.calls[-1][0].tolist()[:5] == [0, 0, 1, 1, 0]
    # From all-zero labels a target must name a hair colour: the one-hot group needs a member.
    with pytest.raises(LabelError, match="hair"):
        translate_files(translator, [images / "tall.png"], ["Male"], tmp_path / "o")
    result = translate_files(translator, [images / "tall.png"], ["Male"], tmp_path / "o", source_labels="Blond_Hair,Young")
    assert result.source_labels == "given"
    assert G.calls[-1][0].tolist()[:5] == [0, 1, 0, 1, 1]


def test_bad_inputs_and_targets_are_clear_errors(trained_run, images, tmp_path):
    translator = Translator.from_run(trained_run, device="cpu")
    with pytest.raises(LabelError, match="Purple"):
        translate_files(translator, [images], ["Purple"], tmp_path / "o")
    with pytest.raises(TranslateError, match="no .png or .jpg"):
        translate_files(translator, [tmp_path], ["Blond_Hair"], tmp_path / "o")
    broken = images / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(TranslateError, match="broken.png"):
        translate_files(translator, [broken], ["Blond_Hair"], tmp_path / "o")
    with pytest.raises(CheckpointError, match="readme.txt"):
        Translator.from_checkpoint(images / "readme.txt")
    with pytest.raises(TranslateError, match="no checkpoint"):
        Translator.from_run(tmp_path)


# ---------------------------------------------------------------------------- reference weights
def import_reference_generator(reference, out, **options):
    """``starkit import-checkpoint`` (the stargan family's importer) as a function; its summary."""
    from starkit.training.import_reference import import_checkpoint

    return import_checkpoint(reference, out, "stargan", **options)[0]


@pytest.fixture
def reference_generator(tmp_path):
    """A reference-layout ``<iter>-G.ckpt`` of a small random generator (c_dim 5)."""
    from starkit.families.stargan.reference import to_reference_state_dict
    from starkit.families.stargan.networks import Generator

    torch.manual_seed(0)
    G = Generator(5, conv_dim=4, repeat_num=2).eval()
    path = tmp_path / "200000-G.ckpt"
    torch.save(to_reference_state_dict(G), path)
    return G, path


def test_imported_reference_generator_translates_like_the_reference(reference_generator, tmp_path):
    G, path = reference_generator
    out = tmp_path / "celeba-128.pt"
    summary = import_reference_generator(path, out, image_size=128)
    assert summary["g_conv_dim"] == 4 and summary["g_repeat_num"] == 2
    checkpoint = load_checkpoint(out)
    assert set(checkpoint["networks"]) == {"G"}  # no discriminator
    space = LabelSpace.from_dict(checkpoint["label_space"])
    assert space.names == ("celeba",) and space.dataset("celeba").attributes == (
        "Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
    assert [g.kind for g in space.dataset("celeba").groups] == ["onehot", "binary"]

    translator = Translator.from_checkpoint(out, device="cpu")
    assert translator.D is None
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    c = np.array([[0, 1, 0, 1, 0], [1, 0, 0, 0, 1]], dtype=np.float32)  # reference order
    assert torch.allclose(translator.translate(x, c), G(x, torch.from_numpy(c)), atol=1e-6)


def test_import_permutes_label_channels_for_another_attribute_order(reference_generator, tmp_path):
    G, path = reference_generator
    order = ["Male", "Black_Hair", "Young", "Blond_Hair", "Brown_Hair"]  # as the model was "trained"
    import_reference_generator(path, tmp_path / "p.pt", attributes=order)
    translator = Translator.from_checkpoint(tmp_path / "p.pt", device="cpu")
    space = translator.label_space
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    # "Blond_Hair, Male" in the reference's own input order (the order given) ...
    reference_c = torch.tensor([[1, 0, 0, 1, 0]], dtype=torch.float32)
    # ... is the same request in starkit's label space (hair colours first).
    name, row = space.target(["Blond_Hair", "Male"], "celeba", np.zeros(5, np.float32))
    ours = translator.translate(x, space.encode(name, row)[None])
    assert torch.allclose(ours, G(x, reference_c), atol=1e-6)


def test_import_errors_name_the_problem(reference_generator, tmp_path):
    from starkit.errors import StarkitError
    _, path = reference_generator
    with pytest.raises(StarkitError, match="conditioned on 5 labels"):
        import_reference_generator(path, tmp_path / "x.pt", attributes=["Male", "Young"])
    with pytest.raises(StarkitError, match="128 or 256"):
        import_reference_generator(path, tmp_path / "x.pt", image_size=64)
    with pytest.raises(StarkitError, match="missing.ckpt"):
        import_reference_generator(tmp_path / "missing.ckpt", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


# ---------------------------------------------------------------------- unreadable inputs, preprocessing
def _translate_cli(*args):
    from click.testing import CliRunner

    from starkit.cli.main import cli

    return CliRunner().invoke(cli, ["translate", *map(str, args)], catch_exceptions=False)


@pytest.fixture
def mixed_inputs(tmp_path):
    """Two good images (16x16 and a 1932x782 JPEG) and three bad ones: an empty PNG, text
    named .png and a truncated JPEG."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / "small.png")
    Image.fromarray(rng.integers(0, 255, (782, 1932, 3), dtype=np.uint8)).save(folder / "wide.jpg")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("not an image")
    data = (folder / "wide.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    return folder


def test_cli_translates_the_readable_inputs_and_lists_the_others(trained_run, mixed_inputs, tmp_path):
    out = tmp_path / "out"
    result = _translate_cli("--run", trained_run, "--input", mixed_inputs, "--to", "Blond_Hair", "--out", out,
                            "--grid", "--device", "cpu", "--json")
    assert result.exit_code == 3, result.output  # some inputs skipped: not 0, not an error's 1
    report = json.loads(result.stdout)
    assert sorted(Path(p).name for p in report["files"]) == ["small__Blond_Hair.png", "wide__Blond_Hair.png"]
    assert all(Path(p).is_file() for p in report["files"]) and Path(report["grid"]).is_file()
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"cut.jpg", "empty.png", "notes.png"}
    assert "empty file" in reasons["empty.png"] and "no known image format" in reasons["notes.png"]
    assert "truncated" in reasons["cut.jpg"]
    assert report["skipped_report"] == str(out / "skipped.json")
    assert json.loads((out / "skipped.json").read_text())["skipped"] == report["skipped"]
    for name, reason in reasons.items():
        assert f"{mixed_inputs / name}: {reason}" in result.stderr
    # What was done to each input: keys added beside the documented ones.
    assert {"files", "grid", "source_dataset", "source_labels"} <= set(report)
    wide = next(r for r in report["inputs"] if r["path"].endswith("wide.jpg"))
    assert wide == {"path": str(mixed_inputs / "wide.jpg"), "mode": "RGB", "original_size": [1932, 782],
                    "crop_box": [575, 0, 1357, 782], "resized_to": [16, 16]}
    note = "Note: 1 input: cropped 1932\u00d7782 to 782\u00d7782 and resized to 16\u00d716, the model's size"
    assert result.stderr.count(note) == 1
    assert "small.png" not in result.stderr  # already the model's size: nothing to say


def test_a_clean_rerun_exits_0_and_removes_the_old_skipped_list(trained_run, mixed_inputs, tmp_path):
    out = tmp_path / "out"
    assert _translate_cli("--run", trained_run, "--input", mixed_inputs, "--to", "Male=0", "--out", out,
                          "--device", "cpu").exit_code == 3
    assert (out / "skipped.json").is_file()
    for name in ("empty.png", "notes.png", "cut.jpg"):
        (mixed_inputs / name).unlink()
    result = _translate_cli("--run", trained_run, "--input", mixed_inputs, "--to", "Male=0", "--out", out,
                            "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["skipped"] == [] and report["skipped_report"] is None
    assert not (out / "skipped.json").exists()


def test_no_readable_input_is_an_error_naming_them(trained_run, mixed_inputs, tmp_path):
    for name in ("small.png", "wide.jpg"):
        (mixed_inputs / name).unlink()
    result = _translate_cli("--run", trained_run, "--input", mixed_inputs, "--to", "Male=0", "--out",
                            tmp_path / "out", "--device", "cpu")
    assert result.exit_code == 1
    assert "Error: no input could be translated: all 3 are unreadable" in result.stderr
    assert "empty.png: cannot decode image: empty file (0 bytes)" in result.stderr


def test_a_16_bit_input_is_translated_from_its_scaled_pixels(tmp_path):
    # G returns its input, so the output shows the pixels the model was given.
    Image.fromarray(np.full((24, 24), 16448, np.uint16)).save(tmp_path / "gray16.png")  # 16448 / 257 = 64
    translator = StarGANTranslator(RecordingGenerator(), _two_dataset_space(), 16, torch.device("cpu"))
    result = translate_files(translator, [tmp_path / "gray16.png"], ["Brown_Hair,Male"], tmp_path / "o")
    with Image.open(result.files[0]) as im:
        assert np.abs(np.asarray(im).astype(int) - 64).max() <= 1  # not clipped to white
    assert result.inputs[0].mode == "I;16"
    assert "1 input of pixel mode I;16: converted to 8-bit RGB" in preprocessing_summary(result.inputs)


def test_preprocessing_summary_is_one_line_per_kind():
    def record(w, h, mode="RGB", size=16):
        side = min(w, h)
        left, top = round((w - side) / 2), round((h - side) / 2)
        return InputRecord(Path(f"{w}x{h}.png"), mode, (w, h), (left, top, left + side, top + side), size)

    assert preprocessing_summary([record(1932, 782)] * 500) == [
        "500 inputs: cropped 1932\u00d7782 to 782\u00d7782 and resized to 16\u00d716, the model's size"
    ]
    records = (
        [record(1932, 782)] * 500
        + [record(100, 80), record(640, 480), record(300, 200, "RGBA")]
        + [record(64, 64)] * 2
        + [record(8, 8, "I;16")]
        + [record(20, 16)]
        + [record(16, 16)] * 7
    )
    assert preprocessing_summary(records) == [
        "503 inputs of 4 sizes (100\u00d780 to 1932\u00d7782): cropped to their centred square and resized to "
        "16\u00d716, the model's size",
        "2 inputs: resized 64\u00d764 to 16\u00d716, the model's size",
        "1 input: enlarged 8\u00d78 to 16\u00d716, the model's size",
        "1 input: cropped 20\u00d716 to 16\u00d716, the model's size",
        "1 input of pixel mode I;16: converted to 8-bit RGB",
        "1 input of pixel mode RGBA: converted to 8-bit RGB, transparency composited over white",
    ]
