"""bench/quality.py's command-line overrides: every number in the docs' side-by-side tables
comes from ``bench/quality.py --set KEY=VALUE``, so the overrides must reach the profile with
the field's type, and mistakes must be refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "quality.py"


@pytest.fixture(scope="module")
def quality(bench_script):
    return bench_script("quality")


def test_overrides_take_each_fields_type(quality):
    base = quality.PROFILES["cpu20"]
    out = quality.apply_overrides(base, ["lambda_cls_gp=1", "iters=2000", "g_output=image"])
    assert out.lambda_cls_gp == 1.0 and isinstance(out.lambda_cls_gp, float)
    assert out.iters == 2000 and isinstance(out.iters, int)
    assert out.g_output == "image"
    assert quality.apply_overrides(base, []) == base
    assert out.seed == base.seed  # nothing else changed


@pytest.mark.parametrize("pair, message", [
    ("lambda_cls_gb=1", "KEY one of"),
    ("lambda_cls_gp", "KEY=VALUE"),
    ("iters=many", "iters must be of type int"),
])
def test_bad_overrides_are_refused_by_name(quality, pair, message):
    with pytest.raises(SystemExit, match=message):
        quality.apply_overrides(quality.PROFILES["cpu20"], [pair])


def test_training_seed_is_its_own_field_and_reaches_training(quality, tmp_path, monkeypatch):
    base = quality.PROFILES["cpu20"]
    assert base.train_seed == base.seed
    out = quality.apply_overrides(base, ["train_seed=1"])
    assert (out.seed, out.train_seed) == (base.seed, 1)  # same data and judge, another G training
    # The generators are trained with train_seed (captured instead of training).
    seen = {}
    monkeypatch.setattr("starkit.training.train", lambda run, config, **kw: seen.update(config))
    quality.train_generator("jnt", ["synth-celeba"], out, tmp_path / "data", tmp_path / "runs")
    assert seen["seed"] == 1


# Profile fields that are not training keys of the generators' runs.
NOT_TRAINING = {"image_size", "count", "test_fraction", "seed", "train_seed", "classifier_iters",
                "classifier_batch_size", "classifier_image_size", "classifier_lr", "classifier_augment",
                "eval_limit", "figure_rows", "device", "workers", "mask_sharpness_from_fraction"}


def test_every_training_field_of_the_profile_reaches_training(quality, tmp_path, monkeypatch):
    from dataclasses import fields

    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    seen = {}
    monkeypatch.setattr("starkit.training.train", lambda run, config, **kw: seen.update(config))
    profile = quality.PROFILES["cpu20"]
    quality.train_generator("jnt", ["synth-celeba"], profile, tmp_path / "data", tmp_path / "runs")
    for field in fields(profile):
        if field.name in NOT_TRAINING:
            continue
        assert field.name in seen, f"Profile.{field.name} does not reach training"
        assert seen[field.name] == getattr(profile, field.name), field.name
        assert field.name in STARGAN_DEFAULTS or field.name in ("iters", "batch_size", "precision"), field.name
    # The mask push starts at its share of the run.
    assert seen["mask_sharpness_from"] == round(profile.mask_sharpness_from_fraction * profile.iters)
    assert profile.lambda_mask_sharpness > 0 and seen["mask_sharpness_groups"] == profile.mask_sharpness_groups


def test_a_mask_push_on_groups_the_datasets_lack_is_left_out(quality, tmp_path, monkeypatch):
    """SNG (synth-rafd alone) has no hair: a push on the translations that change the hair
    would weigh on none of them, and the training config would refuse the unknown group."""
    seen = {}
    monkeypatch.setattr("starkit.training.train", lambda run, config, **kw: seen.update(config))
    profile = quality.PROFILES["cpu20"]
    assert profile.mask_sharpness_groups == "hair"
    quality.train_generator("sng", [quality.RAFD], profile, tmp_path / "data", tmp_path / "runs")
    assert seen["lambda_mask_sharpness"] == 0.0 and seen["mask_sharpness_groups"] == ""
    quality.train_generator("jnt", [quality.CELEBA, quality.RAFD], profile, tmp_path / "data", tmp_path / "runs")
    assert seen["lambda_mask_sharpness"] == profile.lambda_mask_sharpness and seen["mask_sharpness_groups"] == "hair"
    # A push on every translation (no groups) is kept for SNG as well.
    every = quality.apply_overrides(profile, ["mask_sharpness_groups="])
    assert quality.training_keys(every, [quality.RAFD])["lambda_mask_sharpness"] == profile.lambda_mask_sharpness


def test_the_readme_demo_trains_the_benchmarks_recipe(quality):
    """configs/demo.toml says it is the cpu20 profile's recipe: every training key the profile
    sets away from the paper's defaults is in it, with the profile's value."""
    import tomllib
    from dataclasses import fields

    from starkit.default_plugins.stargan import STARGAN_DEFAULTS

    demo = tomllib.loads((SCRIPT.parents[1] / "configs" / "demo.toml").read_text(encoding="utf-8"))
    profile = quality.PROFILES["cpu20"]
    recipe = quality.training_keys(profile)
    assert demo["iters"] == profile.iters  # so that the push starts where the profile's does
    for field in fields(profile):
        name, value = field.name, getattr(profile, field.name)
        # The demo keeps the trainer's precision "auto" (bf16 where the CPU runs it natively: the
        # faster run for a user); the benchmark pins its precision so that machines compare.
        if name in NOT_TRAINING or name in ("d_augment", "precision"):
            continue
        if name in ("iters", "batch_size") or value != STARGAN_DEFAULTS.get(name):
            assert demo.get(name) == value, f"configs/demo.toml: {name} = {demo.get(name)!r}, the profile has {value!r}"
    for name, value in demo.items():
        if name in STARGAN_DEFAULTS:
            assert value == recipe.get(name, STARGAN_DEFAULTS[name]), name
    for name in ("mask_sharpness_from",):  # derived from the profile's fields
        if recipe[name] != STARGAN_DEFAULTS[name]:
            assert demo.get(name) == recipe[name], f"configs/demo.toml: {name} = {demo.get(name)!r}, the recipe has {recipe[name]!r}"


def test_recipe_cost_times_the_recipe_keys_on_equal_footing(tmp_path, bench_script):
    """bench/recipe_cost.py: 'before' and 'now' differ only in the recipe's keys, start from the
    same weights, and the run writes a ratio per mode."""
    import json

    module = bench_script("recipe_cost")
    profile = module.q.PROFILES["cpu20"]
    now = {k: getattr(profile, k) for k in module.RECIPE_KEYS}
    assert any(now.values())  # the benchmark's recipe uses them
    _, _, steps = module.build_steps({"before": dict(module.RECIPE_KEYS), "now": now})
    before, after = steps["before"], steps["now"]
    from starkit.families.stargan.parts.extra_terms import ClassifierDoubt

    def doubt(step):
        return [part.weight for part in step.parts if isinstance(part, ClassifierDoubt)]

    assert (doubt(before), before.cross_targets, before.mask_noise) == ([], 0.0, 0.0)
    assert before.config["g_colour_map"] == "none" and after.config["g_colour_map"] == now["g_colour_map"]
    assert (doubt(after), after.cross_targets, after.mask_noise) == (
        [now["lambda_cls_fake"]], now["cross_targets"], now["mask_noise"])
    assert {k: v for k, v in before.config.items() if k not in now} == {k: v for k, v in after.config.items() if k not in now}
    # The same G apart from the colour map's layers (its output channel, its linear layer).
    plain, mapped = before.G.state_dict(), after.G.state_dict()
    for name, value in plain.items():
        if name == "to_rgb.weight" and mapped[name].shape != value.shape:
            assert mapped[name][: value.shape[0]].equal(value)
        else:
            assert mapped[name].equal(value), name
    out = tmp_path / "cost.json"
    import torch

    threads = torch.get_num_threads()  # the script runs single-threaded, as the benchmark's jobs do
    try:
        assert module.main(["--iters", "2", "--repeats", "1", "--warmup", "1", "--keys", "mask_noise",
                            "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads(out.read_text())
    assert set(result["ratio_to_before_median"]) == {"now", "only mask_noise"}
    assert all(v > 0 for v in result["ratio_to_before_median"].values())
    with pytest.raises(SystemExit, match="not one of"):
        module.main(["--keys", "lambda_cls"])


def test_results_name_the_cpu_they_ran_on(quality):
    """Float results differ between CPUs, so every results file says which one computed it."""
    import torch

    cpu = quality.cpu_description()
    assert cpu["capability"] == torch.backends.cpu.get_cpu_capability()
    info = Path("/proc/cpuinfo")
    if info.exists() and "model name" in info.read_text():
        assert cpu["model"] and cpu["model"] in info.read_text()


def test_results_record_each_generators_training_config_without_machine_paths(quality, tmp_path):
    import json

    run = tmp_path / "runs" / "sng"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"datasets": ["synth-rafd"], "data_root": "/tmp/x",
                                                 "lambda_mask_sharpness": 0.0}), encoding="utf-8")
    assert quality.run_config(run) == {"datasets": ["synth-rafd"], "lambda_mask_sharpness": 0.0}


def test_the_generators_recipe_is_the_quality_benchmark_preset(quality, tmp_path, monkeypatch):
    """Profile's recipe fields take their defaults from starkit's quality-benchmark preset (one
    place for the recipe), one field per StarGAN option so that --set and sweeps reach any of
    them, and the runs record the preset's name."""
    import pickle

    from starkit.families.stargan.options import PAPER_DEFAULTS
    from starkit.families.stargan.presets import PRESETS

    profile = quality.PROFILES["cpu20"]
    preset = PRESETS[quality.PRESET]
    for key in set(PAPER_DEFAULTS) - {"mask_sharpness_from"}:
        assert getattr(profile, key) == preset.get(key, PAPER_DEFAULTS[key]), key
    for key in ("iters", "batch_size", "precision", "device", "workers"):
        assert getattr(profile, key) == preset[key], key
    assert round(profile.mask_sharpness_from_fraction * profile.iters) == preset["mask_sharpness_from"]
    seen = {}
    monkeypatch.setattr("starkit.training.train", lambda run, config, **kw: seen.update(config))
    quality.train_generator("jnt", ["synth-celeba"], profile, tmp_path / "data", tmp_path / "runs")
    assert seen["preset"] == "quality-benchmark" and seen["beta1"] == PAPER_DEFAULTS["beta1"]
    augmented = quality.apply_overrides(profile, ["d_augment=translation,cutout", "beta1=0"])
    assert augmented.d_augment == ["translation", "cutout"] and augmented.beta1 == 0.0
    assert pickle.loads(pickle.dumps(augmented)) == augmented  # the spawned jobs receive it
