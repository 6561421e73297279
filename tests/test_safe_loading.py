"""Every file starkit reads with torch (checkpoints to translate, evaluate or resume from, the
reference weights to import, classifiers, metric weights) is read with ``weights_only=True``,
and a file that cannot be read that way gets one kind of error: it names the file, says what
the file is and what was expected, and never passes on torch's advice to retry with
``weights_only=False`` (which would run code from the file)."""

from __future__ import annotations

import pickle
import random
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from starkit.cli.main import cli
from starkit.errors import StarkitError
from starkit.evaluation import metrics
from starkit.evaluation.classifier import load_classifier
from starkit.families.stargan.reference import load_reference_checkpoint
from starkit.torch_files import read_tensor_file
from starkit.training.checkpoint import load_checkpoint


def _bad_files(tmp_path):
    """One file of each kind that ``torch.load(weights_only=True)`` refuses, with the words
    the error must use for it."""
    files = {}
    objects = tmp_path / "objects.pt"
    torch.save({"weights": torch.zeros(2), "rng": random.Random(0)}, objects)  # a pickled class
    files[objects] = "holds pickled Python objects"
    legacy = tmp_path / "legacy-objects.ckpt"
    torch.save({"rng": random.Random(0)}, legacy, _use_new_zipfile_serialization=False)
    files[legacy] = "holds pickled Python objects"
    plain_pickle = tmp_path / "plain.pkl"
    plain_pickle.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}, protocol=4))
    files[plain_pickle] = "is a Python pickle, not a file written by torch.save"
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    files[text] = "is not a PyTorch file"
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    files[empty] = "the file is empty"
    whole = tmp_path / "whole.pt"
    torch.save({"w": torch.zeros(64)}, whole)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    files[cut] = "damaged or incomplete PyTorch file"
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    files[npy] = "NumPy array file"
    return files


LOADERS = {
    "checkpoint": (lambda p: load_checkpoint(p), "is not a starkit checkpoint"),
    "classifier": (lambda p: load_classifier(p), "is not a starkit attribute classifier"),
    "reference": (lambda p: load_reference_checkpoint(p, "G"), "is not a reference StarGAN checkpoint"),
    "inception": (lambda p: metrics.InceptionFeatures(p), "is not a torchvision inception_v3 state dict"),
}


def _assert_safe_message(message: str, path, expected: str, reason: str) -> None:
    assert f"{path} {expected}" in message, message
    assert reason in message, message
    # torch's texts (its weights_only advice, its internals) never reach the user.
    for torch_text in ("weights_only", "trust", "Weights only load failed", "PytorchStreamReader", "UserWarning"):
        assert torch_text not in message, message


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_every_loader_says_what_the_file_is_and_never_suggests_unsafe_loading(tmp_path, loader):
    load, expected = LOADERS[loader]
    for path, reason in _bad_files(tmp_path).items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # torch's pickle-protocol warning would be noise here
            with pytest.raises(StarkitError) as err:
                load(path)
        _assert_safe_message(str(err.value), path, expected, reason)


def test_import_checkpoint_cli_refuses_a_pickle_without_torchs_advice(tmp_path):
    files = _bad_files(tmp_path)
    for path, reason in files.items():
        result = CliRunner().invoke(cli, ["import-checkpoint", str(path), "--out", str(tmp_path / "out.pt")])
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: ") and "Traceback" not in result.output
        _assert_safe_message(result.output, path, "is not a reference StarGAN checkpoint", reason)
    assert not (tmp_path / "out.pt").exists()


def test_translate_and_eval_cli_refuse_a_foreign_checkpoint_the_same_way(tmp_path):
    objects = tmp_path / "objects.pt"
    torch.save({"format": "starkit.checkpoint", "rng": random.Random(0)}, objects)
    faces = tmp_path / "faces"
    faces.mkdir()
    runner = CliRunner()
    for args in (
        ["translate", "--checkpoint", str(objects), "--input", str(faces), "--to", "Blond_Hair", "--out", str(tmp_path / "t")],
        ["eval", "--checkpoint", str(objects), "--data", str(tmp_path)],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 1, result.output
        _assert_safe_message(result.output.replace("\n", " "), objects, "is not a starkit checkpoint",
                             "holds pickled Python objects")


def test_a_plain_state_dict_is_named_as_such(tmp_path):
    plain = tmp_path / "G.pt"
    torch.save({"main.0.weight": torch.zeros(2)}, plain)
    with pytest.raises(StarkitError, match="it is a plain state dict .*starkit import-checkpoint"):
        load_checkpoint(plain)


def test_reader_returns_what_torch_save_wrote(tmp_path):
    path = tmp_path / "ok.pt"
    torch.save({"w": torch.arange(3), "n": 2}, path)
    data = read_tensor_file(path, expected="anything")
    assert data["n"] == 2 and data["w"].tolist() == [0, 1, 2]
