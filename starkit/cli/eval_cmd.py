"""``starkit eval``: translate every test image to every target and measure the results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .options import weights_option
from .output import console, err_console, print_json


def _names(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("give at least one dataset name")
    return names


@click.command("eval")
@click.option("--run", "run_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Training run to evaluate (its checkpoints/latest.pt).")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A checkpoint file instead of --run.")
@click.option("--data", "data_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data root holding the datasets (default: the run's, else $STARKIT_DATA or ./data).")
@click.option("--classifier", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Attribute classifier from `starkit train-classifier` (enables target accuracy).")
@click.option("--on", "sources", callback=_names, default=None,
              help="Comma-separated datasets whose test images to translate (default: the run's). "
                   "A dataset outside the run gets the run's one-hot targets, e.g. expressions.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Test images per dataset (default: all).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images translated at once (each to every target).")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Processes drawing the synthetic faces' counterfactuals (0: in the main process, "
                   "torch's threads untouched; default: one per core up to four cores, beyond that the cores "
                   "torch's threads leave, torch in one thread per four cores).")
@click.option("--styles", type=click.IntRange(min=1), default=None,
              help="Diverse models (StarGAN v2): outputs per image and target domain, latent- and "
                   "reference-guided (default: 4).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Diverse models: the seed of the latent codes and of the reference images' draw.")
@click.option("--mask-ablation", is_flag=True,
              help="Encode other datasets' targets with the source dataset's mask (paper Fig. 7).")
@click.option("--inception-weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="torchvision inception_v3 state dict (enables FID).")
@click.option("--alexnet-weights", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="torchvision alexnet state dict (enables LPIPS-style diversity, uncalibrated).")
@weights_option
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the JSON report to this file (atomically).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON report (stable; see README).")
def command(
    run_dir: Path | None,
    checkpoint: Path | None,
    data_root: Path | None,
    classifier: Path | None,
    sources: list[str] | None,
    limit: int | None,
    batch_size: int,
    workers: int | None,
    styles: int | None,
    seed: int,
    mask_ablation: bool,
    inception_weights: Path | None,
    alexnet_weights: Path | None,
    weights: str,
    device: str,
    out: Path | None,
    as_json: bool,
) -> None:
    """Evaluate a trained model on the datasets' test images.

    Each test image is translated to every member of its dataset's one-hot groups, with each
    binary attribute flipped, and (joint runs) to every one-hot member of the other datasets.
    Reported: target accuracy judged by the attribute classifier (beside its accuracy on real
    images), reconstruction L1, on synthetic datasets L1/PSNR against the exact
    counterfactual beside the identity baseline, parameter counts, and FID / diversity when
    weight files are given. A diverse model (StarGAN v2) is translated to each of its domains
    --styles times, latent-guided and reference-guided, and reports the diversity across styles.
    """
    import json

    from ..durable import atomic_write_text
    from ..evaluation.evaluate import EvalOptions, evaluate_run

    options = EvalOptions(limit=limit, batch_size=batch_size, mask="source" if mask_ablation else "target",
                          workers=workers, styles=styles, seed=seed)
    report = evaluate_run(
        run_dir, data_root, checkpoint=checkpoint, classifier=classifier, sources=sources, options=options,
        device=device, inception_weights=inception_weights, alexnet_weights=alexnet_weights,
        progress=not as_json, weights=weights,
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(report, indent=2, sort_keys=True) + "\n")
    for note in report["notes"]:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    if as_json:
        print_json(report)
        return
    _print_report(report)
    if out is not None:
        console.print(f"report written to {out}")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(title: str, rows: list[dict[str, str | None]], left: tuple[str, ...]) -> Any:
    """A rich table of ``rows``; columns with nothing to show (no classifier, no synthetic
    faces, no weight files) are left out."""
    from rich.table import Table

    table = Table(title=title)
    columns = [c for c in rows[0] if any(r[c] is not None for r in rows)] if rows else []
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right")
    for r in rows:
        table.add_row(*[r[c] or "-" for c in columns])
    return table


def _print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    params = ", ".join(f"{k} {v:,}" for k, v in report["parameters"].items())
    averaged = ", G's moving average" if report.get("generator_weights") == "ema" else ""
    console.print(f"[bold]{report['checkpoint']}[/] (iteration {_fmt(report['iteration'])}{averaged}; parameters: {params})")
    if report["mask"] == "source":
        console.print("[yellow]mask ablation:[/] other datasets' targets carry the source dataset's mask")
    rows = []
    for source, d in report["datasets"].items():
        for target, t in d["targets"].items():
            for group, g in t["groups"].items():
                acc = None if g["accuracy"] is None else f"{g['accuracy']:.3f} ({g['chance']:.2f})"
                cf = None if g["counterfactual_l1"] is None else f"{g['counterfactual_l1']:.4f} / {g['identity_l1']:.4f}"
                rows.append({
                    "source → target": source if source == target else f"{source} → {target}",
                    "group": group,
                    "n": str(g["translations"]),
                    "accuracy (chance)": acc,
                    "on truth": _fmt(g["ground_truth_accuracy"]) if g["ground_truth_accuracy"] is not None else None,
                    "cf. L1 / identity": cf,
                    "rec. L1": _fmt(g["reconstruction_l1"], 4) if g["reconstruction_l1"] is not None else None,
                })
    console.print(_table("translations", rows, left=("source → target", "group")))
    real = Table(title="classifier on real test images")
    for col in ("dataset", "group", "accuracy"):
        real.add_column(col)
    shown = False
    for source, d in report["datasets"].items():
        for group, r in (d["real_accuracy"] or {}).items():
            real.add_row(source, group, _fmt(r["accuracy"]))
            shown = True
    if shown:
        console.print(real)
    per_source = [
        {
            "dataset": source,
            "images": str(d["images"]),
            "accuracy": _fmt(d["accuracy"]) if d["accuracy"] is not None else None,
            "rec. L1": _fmt(d["reconstruction_l1"], 4) if d["reconstruction_l1"] is not None else None,
            "FID": _fmt(d["fid"], 2) if d["fid"] is not None else None,
            "diversity (LPIPS, uncal.)": _fmt(d["lpips_uncalibrated_diversity"], 4)
            if d["lpips_uncalibrated_diversity"] is not None else None,
        }
        for source, d in report["datasets"].items()
    ]
    console.print(_table("per source dataset", per_source, left=("dataset",)))
    if report.get("guidance"):
        title = f"{report['styles']} styles per image and domain (seed {report['seed']})"
        console.print(_table(title, _guidance_rows(report["guidance"]), left=("guidance", "dataset")))


def _guidance_rows(guidance: dict[str, Any]) -> list[dict[str, str | None]]:
    """A diverse model's passes side by side, per source dataset."""
    rows = []
    for mode, body in guidance.items():
        for source, d in (body or {}).get("datasets", {}).items():
            rows.append({
                "guidance": f"{mode}-guided",
                "dataset": source,
                "accuracy": _fmt(d["accuracy"]) if d["accuracy"] is not None else None,
                "cf. L1": _fmt(d["counterfactual_l1"], 4) if d["counterfactual_l1"] is not None else None,
                "FID": _fmt(d["fid"], 2) if d["fid"] is not None else None,
                "style diversity (LPIPS, uncal.)": _fmt(d["style_diversity"], 4)
                if d["style_diversity"] is not None else None,
            })
    return rows
