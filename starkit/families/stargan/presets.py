"""Named presets of the ``stargan`` family: ``starkit train --preset NAME``.

A preset is a small dict of overrides over the paper's defaults (the family's options, and the
training keys a recipe fixes: budget, intervals, workers). Precedence, lowest first: the
defaults, the preset, a ``--config`` file, ``--set`` and flags. Each departure from the paper
names, in its comment, its row in docs/design-decisions.md ("Kept choices"), where the runs
that chose it are. Free of torch.
"""

from __future__ import annotations

from typing import Any

#: The CPU recipe: what lets a run of a few thousand iterations at 32 px learn something.
CPU_RECIPE: dict[str, Any] = {
    # "Small networks and budget"
    "g_conv_dim": 16, "d_conv_dim": 16, "g_repeat_num": 3, "d_repeat_num": 4, "batch_size": 16, "iters": 3000,
    # "`n_critic` 1 (paper 5); Adam at `g_lr` 2e-4, `d_lr` 4e-4 (paper 1e-4 both)"
    "n_critic": 1, "g_lr": 2e-4, "d_lr": 4e-4,
    # "`lambda_cls_gp` 0.3: an input-gradient penalty on D's domain classifier"
    "lambda_cls_gp": 0.3,
    # "`lambda_cls_fake` 0.3, `cross_targets` 0.25, `mask_noise` 0.5, together"
    "lambda_cls_fake": 0.3, "cross_targets": 0.25, "mask_noise": 0.5,
    # "`g_output = "attention"`: G paints a colour image where it opens a mask"
    "g_output": "attention",
    # "`g_skip = "unet"`: U-Net skips"
    "g_skip": "unet",
    # "`g_upsample = "resize"`: nearest-neighbour up-sampling and a 3×3 convolution"
    "g_upsample": "resize",
    # "`g_out_kernel` 3 (paper 7)"
    "g_out_kernel": 3,
    # "`g_colour_map = "global"`: one affine colour map per image, applied where a second mask says"
    "g_colour_map": "global",
    # "`lambda_hist` 3: a colour critic that sees each image's colour histogram and its labels"
    "lambda_hist": 3.0,
    # "`lambda_mask_sharpness` 1 on both masks, from `mask_sharpness_from` 2,250 (the last quarter), ..."
    "lambda_mask_sharpness": 1.0, "mask_sharpness_from": 2250, "mask_sharpness_groups": "hair",
}

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's configuration (the defaults; a GPU's work: 200,000 iterations).
    "paper": {},
    # The README demo on 2 CPU cores: the recipe, with sample grids and checkpoints for a user.
    "demo": {**CPU_RECIPE, "sample_every": 500, "latest_every": 250, "save_every": 0, "workers": 1},
    # bench/quality.py's generators: the recipe, in fp32 on the CPU, one process each, no sample grids.
    # "`precision = "fp32"` in the benchmark (the demo keeps the trainer's `auto`)"
    "quality-benchmark": {**CPU_RECIPE, "precision": "fp32", "device": "cpu", "workers": 0, "sample_every": 0,
                          "log_every": 25, "latest_every": 3000, "save_every": 0},
}


def preset_toml(name: str) -> str:
    """Preset ``name`` as a flat TOML config file (``configs/demo.toml`` is ``preset_toml("demo")``)."""
    import json

    lines = [f'# Generated from the stargan family\'s "{name}" preset (starkit/families/stargan/presets.py):',
             f"# the same values as `starkit train --preset {name}`; each departure from the paper's",
             "# defaults has its row, with the runs that chose it, in docs/design-decisions.md.",
             "# Regenerate with: .venv/bin/python -c \"from starkit.families.stargan.presets import "
             f"preset_toml; print(preset_toml('{name}'), end='')\" > FILE"]
    for key, value in PRESETS[name].items():
        text = str(value).lower() if isinstance(value, bool) else json.dumps(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"
