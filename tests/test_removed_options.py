"""StarGAN options this starkit no longer has (starkit.families.stargan.removed).

Given on the command line or in a config file they are refused with a message saying so (not
"unknown key"); in a saved run or checkpoint they are dropped where they held the value that
behaves as what remains, and refused, naming the file, key and value, where they did not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from starkit.cli.main import cli
from starkit.training import train
from starkit.training.checkpoint import load_checkpoint
from starkit.families.stargan.removed import REMOVED_STARGAN_KEYS, drop_removed_keys, retired_option
from starkit.training.config import ConfigError, resolve_config

TINY = {"g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 2}


def _config(data_root: Path, **extra) -> dict:
    return {"datasets": ["toyfaces", "toyexpr"], "data_root": str(data_root), "iters": 2, "batch_size": 4,
            "workers": 0, "sample_every": 0, "log_every": 1, "tensorboard": False, **TINY, **extra}


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained_run(toy_data_root, tmp_path_factory):
    """A finished two-iteration run (read-only: copy what a test changes)."""
    from starkit.plugins import PluginRegistry

    run = tmp_path_factory.mktemp("removed") / "run"
    train(run, _config(toy_data_root), registry=PluginRegistry(load_entry_points=False), progress=False)
    return run


def _copy_run(run: Path, to: Path, **saved) -> Path:
    """``run`` copied to ``to``, its config.json and checkpoint's config holding ``saved`` too."""
    import shutil

    shutil.copytree(run, to)
    config_path = to / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), **saved}))
    ckpt = to / "checkpoints" / "latest.pt"
    data = torch.load(ckpt, weights_only=True)
    data["config"].update(saved)
    torch.save(data, ckpt)
    return to


# ---------------------------------------------------------------------------- given anew
@pytest.mark.parametrize("pair", ["g_condition=norm", "lambda_change=1", "target_sampling=permute"])
def test_a_removed_option_given_with_set_is_refused_as_removed(toy_data_root, tmp_path, registry, pair):
    out = tmp_path / "run"
    result = _cli("train", "--datasets", "toyfaces,toyexpr", "--data", toy_data_root, "--out", out,
                  "--set", pair, "--dry-run")
    key = pair.split("=")[0]
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"Error: {key}: this version of starkit no longer has this option" in result.output
    assert "unknown config key" not in result.output and not out.exists()


def test_a_removed_option_in_a_config_file_names_the_file(tmp_path):
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS
    from starkit.training.config import load_config_file

    toml = tmp_path / "old.toml"
    toml.write_text('datasets = ["a"]\nlambda_path = 1.0\n')
    with pytest.raises(ConfigError, match=rf"--config {toml}: lambda_path: this version of starkit no longer "
                                          r"has this option \(it now always behaves as lambda_path = 0.0\)"):
        resolve_config(STARGAN_DEFAULTS, load_config_file(toml), file_label=f"--config {toml}", retired=retired_option)


@pytest.mark.parametrize("value", ["residual", "gated"])
def test_a_removed_generator_output_is_refused_with_the_choices_that_remain(value):
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    with pytest.raises(ConfigError, match=rf"g_output: this version of starkit no longer has g_output = "
                                          rf"'{value}' \(choose from 'image', 'attention'\)"):
        resolve_config(STARGAN_DEFAULTS, None, {"datasets": ["a"], "g_output": value}, retired=retired_option)


def test_another_family_may_use_a_name_stargan_removed():
    family = {"g_condition": "adain", "g_output": "residual"}
    config = resolve_config(family, None, {"datasets": ["a"], "model": "v2", "g_condition": "norm"})
    assert config["g_condition"] == "norm" and config["g_output"] == "residual"
    from starkit.catalog import get_model

    assert get_model("stargan").retired_option is retired_option  # the family's own, not the core's


# ---------------------------------------------------------------------------- saved runs and checkpoints
def test_every_removed_key_at_its_old_default_is_dropped_silently():
    saved = {"model": "stargan", "iters": 5, **REMOVED_STARGAN_KEYS}
    assert drop_removed_keys(saved, "config.json") == {"model": "stargan", "iters": 5}
    # A key that only tuned a penalty that was off changed nothing either.
    assert drop_removed_keys({"lambda_path": 0.0, "path_fraction": 0.5, "change_cap": 0.2,
                              "lambda_mask_sharpness": 0.0, "mask_sharpness_on": "paint"}, "c") == {
        "lambda_mask_sharpness": 0.0}
    # Naming every mask the generator draws is what sharpening does now.
    net = {"g_output": "attention", "g_colour_map": "global", "lambda_mask_sharpness": 1.0}
    assert drop_removed_keys({**net, "mask_sharpness_on": "recolour, paint"}, "c") == net
    with pytest.raises(ConfigError, match="mask_sharpness_on = 'paint'"):
        drop_removed_keys({**net, "mask_sharpness_on": "paint"}, "c")


@pytest.mark.parametrize("saved, named", [
    ({"g_condition": "norm"}, "g_condition = 'norm'"),
    ({"lambda_path": 1.0}, "lambda_path = 1.0"),
    ({"lambda_mask_sharpness": 1.0, "mask_sharpness_on": "paint"}, "mask_sharpness_on = 'paint'"),
    ({"g_output": "residual"}, "g_output = 'residual'"),
])
def test_a_removed_key_that_changed_the_run_is_refused_naming_file_key_and_value(saved, named):
    with pytest.raises(ConfigError) as info:
        drop_removed_keys({"model": "stargan", **saved}, "run/config.json", "0.0.9")
    assert str(info.value) == (f"run/config.json: {named}, which this version of starkit no longer has; use "
                               "starkit 0.0.9 for this run (a run folder's config.json records it as starkit_version)")
    with pytest.raises(ConfigError, match="use the starkit version that trained it"):
        drop_removed_keys({"model": "stargan", **saved}, "c")


def test_an_old_run_with_harmless_removed_keys_resumes_and_translates(trained_run, tmp_path, registry):
    from starkit.translate import Translator

    harmless = {"g_condition": "input", "lambda_change": 0.0, "path_fraction": 0.25, "target_sampling": "permute"}
    run = _copy_run(trained_run, tmp_path / "old", **harmless)
    translator = Translator.from_run(run, "cpu", registry=registry)
    assert translator.G.output == "image"
    resumed = train(run, {"iters": 3}, resume=True, registry=registry, progress=False)
    assert resumed.iteration == 3
    assert not set(harmless) & set(json.loads((run / "config.json").read_text()))
    assert not set(harmless) & set(load_checkpoint(run / "checkpoints" / "latest.pt")["config"])


def test_an_old_run_that_used_a_removed_option_is_refused_by_resume_translate_and_eval(trained_run, tmp_path):
    run = _copy_run(trained_run, tmp_path / "old", lambda_path=1.0)
    before = (run / "config.json").read_text()
    resume = _cli("train", "--out", run, "--resume")
    assert resume.exit_code != 0 and "Traceback" not in resume.output
    refusal = f"Error: {run / 'config.json'}: lambda_path = 1.0, which this version of starkit no longer has"
    assert refusal in resume.output
    assert "starkit_version" in resume.output
    assert (run / "config.json").read_text() == before  # nothing rewritten
    for command in (["translate", "--run", run, "--input", tmp_path, "--to", "Male", "--out", tmp_path / "t"],
                    ["eval", "--run", run]):
        result = _cli(*command)
        assert result.exit_code != 0 and "Traceback" not in result.output, command
        assert "lambda_path = 1.0, which this version of starkit no longer has; use starkit " in result.output, command
