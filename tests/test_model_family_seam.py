"""The model-family seam: a family that is not StarGAN (tests/cae_family.py, a conditional
autoencoder) trains, checkpoints, resumes, translates, evaluates and imports weights through
the real CLI, and the core modules do not name or import the StarGAN family."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from cae_family import CAEPlugin, Decoder, Encoder
from starkit.cli.main import cli
from starkit.training.checkpoint import load_checkpoint

STARKIT = Path(__file__).resolve().parents[1] / "starkit"
#: Modules that must reach a family only through the seam.
CORE_MODULES = ["translate.py", "translate_inputs.py", "translate_styles.py", "domains.py", "data/references.py", "inference.py", "evaluation", "training/trainer.py", "training/run.py",
                "training/checkpoint.py", "training/samples.py", "training/import_reference.py", "cli"]
#: What naming or importing the StarGAN family looks like in code.
STARGAN_PATTERNS = [r"[\"']G[\"']", r"[\"']D[\"']", r"G_ema", r"\.G\b", r"\.D\b", r"default_plugins",
                    r"families\.stargan", r"models\.stargan", r"stargan_step", r"from \.\.?models\b",
                    r"import_reference_generator"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def cae(registry):
    """The process-wide registry, with the ``cae`` family registered as an in-process plugin."""
    registry.register(CAEPlugin(), "cae")
    return registry


def _inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        Image.fromarray((np.random.default_rng(i).random((20, 24, 3)) * 255).astype(np.uint8)).save(folder / f"f{i}.png")
    return folder


def test_a_conditional_autoencoder_family_trains_resumes_translates_and_evaluates_through_the_cli(
        cae, toy_data_root, tmp_path):
    out = tmp_path / "run"
    trained = run("train", "--model", "cae", "--datasets", "toyfaces,toyexpr", "--data", toy_data_root, "--out", out,
                  "--iters", 4, "--batch-size", 4, "--workers", 0, "--sample-every", 2, "--save-every", 2,
                  "--set", "cae_dim=4", "--seed", 1)
    assert trained.exit_code == 0, trained.output
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["iter-0000002.png", "iter-0000004.png"]
    saved = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert saved["model"] == "cae" and set(saved["networks"]) == {"encoder", "decoder"}
    assert set(saved["rng"][0]["generators"]) == {"noise"}

    resumed = run("train", "--out", out, "--resume", "--iters", 6, "--workers", 0)
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(out / "checkpoints" / "latest.pt")["iteration"] == 6

    inputs = _inputs(tmp_path)
    translated = run("translate", "--run", out, "--input", inputs, "--to", "toyexpr:angry", "--to", "Blond_Hair",
                     "--source-labels", "Black_Hair", "--condition", "scale=0.5", "--out", tmp_path / "t",
                     "--grid", "--json", "--device", "cpu")
    assert translated.exit_code == 0, translated.output
    report = json.loads(translated.stdout)
    assert len(report["files"]) == 4 and all(Path(f).is_file() for f in report["files"])
    assert Path(report["grid"]).is_file() and report["source_labels"] == "given"
    # The family cannot predict an input's labels: without --source-labels they are zero.
    zeros = run("translate", "--run", out, "--input", inputs, "--to", "toyexpr:angry", "--out", tmp_path / "z",
                "--device", "cpu")
    assert zeros.exit_code == 0 and "all zero" in zeros.output

    evaluated = run("eval", "--run", out, "--limit", 2, "--workers", 0, "--json", "--device", "cpu")
    assert evaluated.exit_code == 0, evaluated.output
    ev = json.loads(evaluated.stdout)
    assert ev["model"] == "cae" and ev["iteration"] == 6 and ev["generator_weights"] == "raw"
    assert ev["parameters"] == {"encoder": sum(p.numel() for p in Encoder(4).parameters()),
                                "decoder": sum(p.numel() for p in Decoder(4, 10).parameters())}
    assert ev["summary"]["images"] == 4 and ev["summary"]["reconstruction_l1"] is not None


def test_a_family_refuses_what_it_does_not_take_by_name(cae, toy_data_root, tmp_path):
    out = tmp_path / "run"
    assert run("train", "--model", "cae", "--datasets", "toyfaces", "--data", toy_data_root, "--out", out,
               "--iters", 1, "--batch-size", 2, "--workers", 0, "--sample-every", 0).exit_code == 0
    inputs = _inputs(tmp_path)
    style = run("translate", "--run", out, "--input", inputs, "--to", "Male", "--source-labels", "Black_Hair",
                "--condition", "style=3", "--out", tmp_path / "t")
    assert style.exit_code == 1 and "--condition style: the cae family takes only scale" in style.output
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())
    malformed = run("translate", "--run", out, "--input", inputs, "--to", "Male", "--condition", "scale",
                    "--out", tmp_path / "t")
    assert malformed.exit_code == 2 and "KEY=VALUE" in malformed.output
    ema = run("eval", "--run", out, "--weights", "ema", "--limit", 1, "--workers", 0)
    assert ema.exit_code == 1 and "keeps no moving average" in ema.output and "Traceback" not in ema.output


def test_import_checkpoint_uses_the_named_familys_importer(cae, tmp_path):
    torch.manual_seed(0)
    encoder, decoder = Encoder(4), Decoder(4, 2)
    foreign = tmp_path / "foreign.pt"
    torch.save({"attributes": ["Smiling", "Glasses"], "image_size": 16, "dim": 4,
                "encoder": encoder.state_dict(), "decoder": decoder.state_dict()}, foreign)
    imported = run("import-checkpoint", foreign, "--model", "cae", "--out", tmp_path / "cae.pt")
    assert imported.exit_code == 0, imported.output
    assert "autoencoder of width 4" in imported.output and "Label space foreign: attributes (binary)" in imported.output
    checkpoint = load_checkpoint(tmp_path / "cae.pt")
    assert checkpoint["model"] == "cae" and checkpoint["iteration"] == 0
    assert torch.equal(checkpoint["networks"]["decoder"]["net.0.weight"], decoder.state_dict()["net.0.weight"])
    translated = run("translate", "--checkpoint", tmp_path / "cae.pt", "--input", _inputs(tmp_path), "--to", "Smiling",
                     "--out", tmp_path / "t", "--json", "--device", "cpu")
    assert translated.exit_code == 0, translated.output
    assert len(json.loads(translated.stdout)["files"]) == 2
    # StarGAN's importer options mean nothing to this family: refused by name.
    sized = run("import-checkpoint", foreign, "--model", "cae", "--image-size", 128, "--out", tmp_path / "x.pt")
    assert sized.exit_code == 1 and "no option image_size" in sized.output and not (tmp_path / "x.pt").exists()
    unknown = run("import-checkpoint", foreign, "--model", "stargan2", "--out", tmp_path / "x.pt")
    assert unknown.exit_code == 1 and "unknown model family 'stargan2'" in unknown.output


def test_stargan_takes_no_conditioning(registry, tmp_path):
    from starkit.families.stargan.reference import to_reference_state_dict
    from starkit.families.stargan.networks import Generator

    torch.manual_seed(0)
    reference = tmp_path / "1-G.ckpt"
    torch.save(to_reference_state_dict(Generator(5, conv_dim=4, repeat_num=1)), reference)
    assert run("import-checkpoint", reference, "--out", tmp_path / "s.pt").exit_code == 0
    result = run("translate", "--checkpoint", tmp_path / "s.pt", "--input", _inputs(tmp_path), "--to",
                 "Brown_Hair,Male", "--condition", "seed=3", "--out", tmp_path / "t")
    assert result.exit_code == 1
    assert "--condition seed: this model takes no conditioning beyond the target labels" in result.output


def test_a_family_without_a_translator_is_refused_naming_the_checkpoint(cae, tmp_path):
    from starkit.hookspecs import hookimpl
    from starkit.inference import load_translator
    from starkit.model_family import ModelFamily
    from starkit.training.checkpoint import CheckpointError, save_checkpoint

    class Mute:
        @hookimpl
        def starkit_models(self):
            return [ModelFamily(name="mute", build=lambda space, config: {})]

    cae.register(Mute(), "mute")
    payload = {"format": "starkit.checkpoint", "version": 1, "model": "mute", "iteration": 0,
               "label_space": {"datasets": []}, "config": {"image_size": 16}, "networks": {}}
    from starkit.labels import LabelSpace
    from starkit.spec import AttributeGroup

    payload["label_space"] = LabelSpace.from_groups([("d", [AttributeGroup("a", "binary", ("x",))])]).to_dict()
    save_checkpoint(payload, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=r"m\.pt: the model family 'mute' provides no translator"):
        load_translator(tmp_path / "m.pt", "cpu", cae)


def _code_lines(path: Path) -> list[tuple[int, str]]:
    """Lines of code outside docstrings and comments (prose may explain StarGAN)."""
    text = re.sub(r'"""[\s\S]*?"""', lambda m: "\n" * m.group(0).count("\n"), path.read_text())
    return [(i, line.split("#")[0]) for i, line in enumerate(text.splitlines(), 1)]


def test_core_modules_do_not_name_or_import_the_stargan_family():
    files = [p for m in CORE_MODULES for p in ([STARKIT / m] if m.endswith(".py") else sorted((STARKIT / m).glob("*.py")))]
    assert len(files) > 10
    found = [f"{p.relative_to(STARKIT)}:{i}: {line.strip()}"
             for p in files for i, line in _code_lines(p) for pattern in STARGAN_PATTERNS if re.search(pattern, line)]
    assert found == []


class _ScheduledCAEStep:
    """The cae step with its own learning-rate schedule and sample grid (the optional parts of
    the StepRunner seam): a constant rate of 0.25 × base, and a one-pixel PNG as its grid."""

    def __new__(cls, label_space, config, runtime):
        from cae_family import CAEStep

        step = CAEStep(label_space, config, runtime)
        step.learning_rates = lambda iteration, total: {"autoencoder": 0.25 * step.base_lrs["autoencoder"]}

        def write_samples(space, inputs, device, path):
            from starkit.training.samples import save_png

            return save_png(Image.new("RGB", (1, 1), (7, 8, 9)), path)

        step.write_samples = write_samples
        return step


def test_a_step_may_bring_its_own_learning_rate_schedule_and_sample_grid(registry, toy_data_root, tmp_path):
    from starkit.hookspecs import hookimpl
    from starkit.model_family import ModelFamily
    from cae_family import CAE_DEFAULTS, build

    class Plugin:
        @hookimpl
        def starkit_models(self):
            return [ModelFamily(name="cae-scheduled", build=build, trainer=_ScheduledCAEStep,
                                default_config=dict(CAE_DEFAULTS))]

    registry.register(Plugin(), "cae-scheduled")
    out = tmp_path / "run"
    trained = run("train", "--model", "cae-scheduled", "--datasets", "toyfaces", "--data", toy_data_root, "--out", out,
                  "--iters", 4, "--batch-size", 4, "--workers", 0, "--sample-every", 4, "--set", "log_every=2",
                  "--set", "cae_dim=4")
    assert trained.exit_code == 0, trained.output
    rates = [json.loads(line)["lr/autoencoder"] for line in (out / "metrics.jsonl").read_text().splitlines()
             if "lr/autoencoder" in line]
    # the paper's schedule would decay to 0 over the second half; this step's stays constant
    assert rates and all(r == pytest.approx(0.25 * CAE_DEFAULTS["cae_lr"]) for r in rates)
    assert Image.open(out / "samples" / "iter-0000004.png").size == (1, 1)
