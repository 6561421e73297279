"""The stargan family's typed option groups, their one validation, the named presets
(``starkit train --preset``) and the generated option listing (``--options``)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner

from starkit.cli.main import cli
from starkit.families.stargan.options import (
    FIELDS_BY_KEY,
    OPTION_FIELDS,
    OPTION_GROUPS,
    PAPER_DEFAULTS,
    StarGANOptions,
    validate_options,
)
from starkit.families.stargan.presets import PRESETS, preset_toml
from starkit.training.config import TRAINING_FIELDS, ConfigError, resolve_config

REPO = Path(__file__).resolve().parents[1]
TINY = ["--set", "g_conv_dim=4", "--set", "d_conv_dim=4", "--set", "g_repeat_num=1", "--set", "d_repeat_num=2"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _family():
    from starkit.catalog import get_model

    return get_model("stargan")


def _resolve(file_values=None, overrides=None):
    family = _family()
    return resolve_config(family.default_config, file_values, {"datasets": ["a"], **(overrides or {})},
                          file_label="--config f.toml", options=family.options, presets=family.presets)


# ---------------------------------------------------------------------------- the groups
def test_every_option_has_one_group_a_type_a_paper_default_and_help():
    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    keys = [f.name for group in OPTION_FIELDS.values() for f in group]
    assert len(keys) == len(set(keys)) == len(PAPER_DEFAULTS)  # one flat namespace
    assert STARGAN_DEFAULTS == PAPER_DEFAULTS and _family().default_config == PAPER_DEFAULTS
    assert not set(keys) & {f.name for f in TRAINING_FIELDS}
    for f in FIELDS_BY_KEY.values():
        assert f.kind in (int, float, str, list) and f.help and "\n" not in f.help, f.name
    # The paper: Adam 1e-4 for both networks, betas (0.5, 0.999), five D steps per G step.
    assert (PAPER_DEFAULTS["g_lr"], PAPER_DEFAULTS["d_lr"], PAPER_DEFAULTS["n_critic"]) == (1e-4, 1e-4, 5)
    assert set(OPTION_GROUPS) >= {"model", "optim", "loss"}


def test_typed_groups_hold_the_configs_values_as_their_kinds():
    options = StarGANOptions.from_config({**PAPER_DEFAULTS, "lambda_hist": 3, "g_lr": 1, "n_critic": 2})
    assert options.colour_critic.lambda_hist == 3.0 and isinstance(options.colour_critic.lambda_hist, float)
    assert isinstance(options.optim.g_lr, float) and options.optim.n_critic == 2
    assert options.model.g_conv_dim == 64 and options.augment.d_augment == []
    for name, cls in OPTION_GROUPS.items():
        assert {f.name for f in fields(getattr(options, name))} == {f.name for f in fields(cls)}
    with pytest.raises(Exception):  # frozen: read once, never changed
        options.optim.g_lr = 2.0


@pytest.mark.parametrize("change, message", [
    ({"g_lr": 0.0}, "g_lr: must be > 0, got 0.0"),
    ({"beta2": 1.0}, r"beta2: must be in \[0, 1\), got 1.0"),
    ({"n_critic": True}, "n_critic: must be an integer, got True"),
    ({"lambda_rec": "10"}, "lambda_rec: must be a number, got '10'"),
    ({"g_colour_map": "global"}, "g_colour_map: needs g_output 'attention'"),
    ({"lambda_mask": 1.0}, "lambda_mask: needs g_output 'attention'"),
    ({"image_size": 32, "d_repeat_num": 6}, "d_repeat_num: 6 halvings need an image size divisible by 64"),
    ({"image_size": 30}, "image_size: must be divisible by 4"),
    ({"d_augment": ["flip"]}, "d_augment: unknown augmentation 'flip'"),
])
def test_one_validation_names_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        validate_options({**PAPER_DEFAULTS, **change})


def test_range_checks_run_when_the_config_is_resolved_naming_the_file():
    """The options' own checks are part of their declaration, so a bad value in a config file
    is refused when the config is resolved, naming the file (before, only the build refused
    it, without saying where it came from)."""
    with pytest.raises(ConfigError, match=r"--config f\.toml: lambda_cls_gp: must be >= 0, got -1\.0"):
        _resolve({"lambda_cls_gp": -1.0})
    with pytest.raises(ConfigError, match=r"--config f\.toml: hist_bins: must be an integer in \[2, 32\]"):
        _resolve({"hist_bins": 64})


# ---------------------------------------------------------------------------- presets
def test_presets_are_small_overrides_of_known_keys():
    family = _family()
    known = set(PAPER_DEFAULTS) | {f.name for f in TRAINING_FIELDS}
    assert PRESETS["paper"] == {} and {"paper", "demo", "quality-benchmark"} <= set(family.presets)
    for name, values in PRESETS.items():
        assert set(values) <= known, name
        assert all(values[k] != PAPER_DEFAULTS.get(k) for k in values if k in PAPER_DEFAULTS), name
        validate_options({**PAPER_DEFAULTS, **{k: v for k, v in values.items() if k in PAPER_DEFAULTS}})


def test_preset_precedence_defaults_preset_file_flags():
    config = _resolve({"g_lr": 3e-4, "n_critic": 2}, {"preset": "demo", "n_critic": 3})
    assert config["preset"] == "demo"
    assert config["g_conv_dim"] == 16 and config["iters"] == 3000  # the preset over the defaults
    assert config["g_lr"] == 3e-4  # the file over the preset
    assert config["n_critic"] == 3  # the flags over the file
    assert config["beta1"] == 0.5  # the defaults where nobody says
    assert _resolve()["preset"] is None and _resolve()["g_conv_dim"] == 64
    # A config file may name the preset too.
    assert _resolve({"preset": "demo"})["g_output"] == "attention"


def test_an_unknown_preset_lists_the_familys_presets():
    with pytest.raises(ConfigError, match="no preset 'dmeo'; did you mean 'demo'.*paper, demo, quality-benchmark"):
        _resolve(overrides={"preset": "dmeo"})
    with pytest.raises(ConfigError, match="preset: model family 'v2' has no presets"):
        resolve_config({"width": 8}, None, {"datasets": ["a"], "model": "v2", "preset": "demo"})


def test_configs_demo_toml_is_the_demo_preset():
    path = REPO / "configs" / "demo.toml"
    assert path.read_text(encoding="utf-8") == preset_toml("demo")
    assert tomllib.loads(path.read_text(encoding="utf-8")) == PRESETS["demo"]


# ---------------------------------------------------------------------------- the CLI
def test_train_preset_resolves_and_records_it(toy_data_root, tmp_path, registry):
    out = tmp_path / "run"
    plan = run("train", "--datasets", "toyfaces,toyexpr", "--data", toy_data_root, "--out", out, "--preset", "demo",
               "--set", "g_conv_dim=4", "--dry-run", "--json")
    assert plan.exit_code == 0, plan.output
    config = json.loads(plan.output)["config"]
    assert config["preset"] == "demo" and config["g_conv_dim"] == 4 and config["d_conv_dim"] == 16
    assert config["lambda_hist"] == 3.0 and config["iters"] == 3000
    bad = run("train", "--datasets", "toyfaces", "--data", toy_data_root, "--out", out, "--preset", "tiny")
    assert bad.exit_code == 1 and "no preset 'tiny'" in bad.output and "paper, demo" in bad.output
    resumed = run("train", "--out", out, "--resume", "--preset", "demo")
    assert resumed.exit_code == 2 and "--preset starts a new run" in resumed.output


def test_train_options_lists_every_option_and_preset():
    text = run("train", "--options")
    assert text.exit_code == 0, text.output
    for key in [*PAPER_DEFAULTS, *(f.name for f in TRAINING_FIELDS)]:
        assert f"| `{key}` |" in text.output, key
    assert "--preset demo: g_conv_dim=16" in text.output
    listed = json.loads(run("train", "--options", "--json").output)
    rows = {row["key"]: row for row in listed["options"]}
    assert rows["g_lr"] == {"group": "optim", "key": "g_lr", "type": "float", "default": 1e-4,
                            "help": FIELDS_BY_KEY["g_lr"].help}
    assert listed["presets"]["quality-benchmark"]["precision"] == "fp32"
    assert run("train").exit_code == 2  # --out is still needed to train


def test_building_the_training_step_checks_each_option_once(monkeypatch):
    # The step validates its config into typed groups once; its networks are built from those
    # groups, not checked again (the model options used to be checked a second time).
    import collections

    import torch

    import starkit.families.stargan.options as options
    from starkit.families.stargan.step import StarGANStep
    from starkit.labels import LabelSpace
    from starkit.spec import AttributeGroup
    from starkit.training.device import Runtime

    checked = collections.Counter()
    real = options._field_problem
    monkeypatch.setattr(options, "_field_problem", lambda f, value: checked.update([f.name]) or real(f, value))
    space = LabelSpace.from_groups([("faces", [AttributeGroup("hair", "onehot", ("black", "blond"))])])
    tiny = {"g_conv_dim": 4, "d_conv_dim": 4, "g_repeat_num": 1, "d_repeat_num": 2, "image_size": 16, "seed": 0}
    step = StarGANStep(space, {**PAPER_DEFAULTS, **tiny}, Runtime(torch.device("cpu")))
    assert set(checked) == set(FIELDS_BY_KEY) and set(checked.values()) == {1}, checked
    from starkit.families.stargan.networks import build_stargan

    checked_again = build_stargan(space, {**PAPER_DEFAULTS, **tiny})  # the same networks, shape for shape
    for name in ("G", "D"):
        shapes = {k: v.shape for k, v in getattr(step, name).state_dict().items()}
        assert shapes == {k: v.shape for k, v in checked_again[name].state_dict().items()}
