"""``starkit train``: train one model on one or more datasets (joint training with mask vectors)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from .options import key_value_pairs
from .output import console, print_json


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--set key=value`` pairs; values are read as JSON when they parse (numbers, true,
    lists), else kept as strings."""
    out: dict[str, Any] = {}
    for key, raw in key_value_pairs(pairs, "--set"):
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _print_plan(plan: dict[str, Any]) -> None:
    from rich.table import Table

    ls = plan["label_space"]
    layout = Table(title=f"label space: dim {ls['dim']} = {ls['label_dim']} labels + {ls['mask_dim']} mask")
    for col in ("dataset", "group", "kind", "positions", "attributes"):
        layout.add_column(col)
    for row in ls["layout"]:
        start, stop = row["positions"]
        layout.add_row(row["dataset"], row["group"], row["kind"], f"{start}:{stop}", ", ".join(row["attributes"]))
    nets = Table(title=f"networks ({plan['model']})")
    for col in ("network", "class", "parameters"):
        nets.add_column(col, justify="right" if col == "parameters" else "left")
    for row in plan["networks"]:
        nets.add_row(row["network"], row["class"], f"{row['parameters']:,}")
    data = Table(title="datasets")
    for col in ("dataset", "path", "image size", "images"):
        data.add_column(col)
    for row in plan["datasets"]:
        counts = ", ".join(f"{split} {n:,}" for split, n in row["counts"].items())
        data.add_row(row["name"], row["path"], str(row["image_size"]), counts)
    for note in plan["notes"]:
        console.print(note)
    console.print(layout)
    console.print(nets)
    console.print(data)
    c = plan["config"]
    console.print(
        f"{c['iters']:,} iterations, batch {c['batch_size']}, {c['image_size']} px, seed {c['seed']} -> {plan['run_dir']}"
        + (f" (resuming {plan['resume_from']})" if plan["resume_from"] else "")
    )


def _print_options(model: str, as_json: bool) -> None:
    """``--options``: the family's options by group and its presets, then the training keys."""
    from ..catalog import get_model
    from ..training.config import TRAINING_FIELDS, family_fields, option_rows, options_markdown

    family = get_model(model)
    groups = dict(family.options) or {"options": tuple(family_fields(family.default_config).values())}
    groups["training"] = TRAINING_FIELDS
    if as_json:
        print_json({"model": family.name, "options": option_rows(groups),
                    "presets": {name: dict(values) for name, values in family.presets.items()}})
        return
    click.echo(options_markdown(groups))
    for name, values in family.presets.items():
        changes = ", ".join(f"{k}={v}" for k, v in values.items()) or "the defaults"
        click.echo(f"--preset {name}: {changes}")


def _check_usage(*, as_json: bool, dry_run: bool, out: str | None, preset: str | None, resume: bool,
                 datasets: str | None, config_file: str | None) -> None:
    """Flag combinations that cannot work, as click usage errors (exit 2)."""
    if as_json and not dry_run:
        raise click.UsageError("--json goes with --dry-run or --options")
    if not out:
        raise click.UsageError("Missing option '--out' (the run directory).")
    if preset and resume:
        raise click.UsageError("--preset starts a new run; --resume continues with the run's saved config")
    if not datasets and not resume and not config_file:
        raise click.UsageError("--datasets is required (e.g. --datasets celeba,rafd), unless --resume or a --config names them")


def _overrides(sets: tuple[str, ...], **flags: Any) -> dict[str, Any]:
    """The --set values with the flags that were given (an absent flag must not hide the same
    key given with --set); a key given both ways with different values is a usage error."""
    overrides: dict[str, Any] = _parse_sets(sets)
    for key, value in flags.items():
        if value is None:
            continue
        if key in overrides and overrides[key] != value:
            flag = "--data" if key == "data_root" else "--" + key.replace("_", "-")
            raise click.UsageError(f"{key} is given twice, as {flag} {value} and --set {key}={overrides[key]}")
        overrides[key] = value
    return overrides


@click.command("train")
@click.option("--datasets", help="Comma-separated datasets to train on jointly, e.g. celeba,rafd.")
@click.option("--data", "data_root", type=click.Path(file_okay=False), help="Data root (default: $STARKIT_DATA, else ./data).")
@click.option("--out", type=click.Path(dir_okay=True, file_okay=False), help="Run directory (required).")
@click.option("--model", help="Model family (default: stargan).")
@click.option("--preset", help="The model family's named preset to start from, e.g. paper, demo (see --options).")
@click.option("--options", "show_options", is_flag=True, help="List the model family's options and presets (with --json: as JSON), and exit.")
@click.option("--image-size", type=int, help="Image size; must match the shards' (default: theirs).")
@click.option("--batch-size", type=int, help="Images per iteration over all processes (default: 16).")
@click.option("--iters", type=int, help="Training iterations, one D step each (default: 200000).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="JSON or TOML file of config values.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Set any config value, e.g. g_conv_dim=32 (repeatable).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from checkpoints/latest.pt.")
@click.option("--device", help="auto (default), cpu, cuda or cuda:N.")
@click.option("--dry-run", is_flag=True, help="Build everything, print the label layout and network sizes, and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run or --options: print JSON.")
@click.option("--seed", type=int, help="Random seed (default: 0).")
@click.option("--sample-every", type=int, help="Iterations between sample grids (0: never; default 1000).")
@click.option("--save-every", type=int, help="Iterations between kept checkpoints (0: latest.pt only; default 10000).")
@click.option("--workers", type=int, help="Data-loading processes (default: 4).")
def command(
    datasets: str | None,
    data_root: str | None,
    out: str | None,
    model: str | None,
    preset: str | None,
    show_options: bool,
    image_size: int | None,
    batch_size: int | None,
    iters: int | None,
    config_file: str | None,
    sets: tuple[str, ...],
    resume: bool,
    device: str | None,
    dry_run: bool,
    as_json: bool,
    seed: int | None,
    sample_every: int | None,
    save_every: int | None,
    workers: int | None,
) -> None:
    """Train one model (StarGAN: one generator and one discriminator) on every selected dataset.

    Each dataset is read from DATA/NAME as `starkit add-dataset` wrote it; the joint label
    space and mask vector come from their manifests. Under torchrun, every process trains on
    its share of the data (DistributedDataParallel) and rank 0 writes the run directory.
    """
    from ..training.run import plan, prepare_run, run_setup

    if show_options:
        _print_options(model or "stargan", as_json)
        return
    _check_usage(as_json=as_json, dry_run=dry_run, out=out, preset=preset, resume=resume, datasets=datasets,
                 config_file=config_file)
    overrides = _overrides(sets, datasets=datasets, data_root=data_root, model=model, preset=preset,
                           image_size=image_size, batch_size=batch_size, iters=iters, device=device, seed=seed,
                           sample_every=sample_every, save_every=save_every, workers=workers)
    setup = prepare_run(out, overrides, config_file, resume)
    try:
        if dry_run:
            result = plan(setup)
            if as_json:
                print_json(result)
            else:
                _print_plan(result)
            return
        main = _is_main_process()
        if main:
            names = ", ".join(setup.config["datasets"])
            verb = "Resuming" if setup.resume_from else "Training"
            console.print(f"{verb} {setup.family.name} on {names} -> {setup.run_dir}")
        outcome = run_setup(setup, progress=main, console=console if main else None)
    finally:
        setup.close()
    _report_outcome(outcome, setup.run_dir, main)


def _report_outcome(outcome: Any, run_dir: Path, main: bool) -> None:
    """Say how the run ended (on the main process only); a run stopped early exits with
    status 130 and says how to continue it."""
    if outcome.interrupted:
        if main:
            where = outcome.checkpoint or "no checkpoint"
            console.print(f"Stopped after iteration {outcome.iteration} of {outcome.total}; {where}. "
                          f"Continue with: starkit train --out {run_dir} --resume")
        raise SystemExit(130)
    if main:
        console.print(f"Finished {outcome.iteration} iterations; checkpoint: {outcome.checkpoint}")

