"""``starkit import-checkpoint``: another implementation's weights as a starkit checkpoint
(by default the reference StarGAN's released generator)."""

from __future__ import annotations

import click

from .output import console, print_json


@click.command("import-checkpoint")
@click.argument("reference", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The starkit checkpoint to write.")
@click.option("--model", default="stargan", show_default=True, help="Model family whose importer converts the file.")
@click.option("--image-size", type=int, default=None,
              help="Image size the model was trained at (stargan: 128 or 256; default 128).")
@click.option("--attrs", default=None,
              help="The model's attributes, in the order it was trained with "
                   "(stargan default: Black_Hair,Blond_Hair,Brown_Hair,Male,Young).")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
def command(reference: str, out: str, model: str, image_size: int | None, attrs: str | None, as_json: bool) -> None:
    """Convert REFERENCE (for stargan: the authors' <iter>-G.ckpt) into a starkit checkpoint.

    For stargan the label space is one dataset `celeba`: hair colours as a one-hot group, the
    other attributes binary. The checkpoint holds the generator only, so `starkit translate`
    takes the inputs' labels from --source-labels (default: all zero) instead of a
    discriminator.
    """
    from ..training.import_reference import import_checkpoint

    options = {}
    if image_size is not None:
        options["image_size"] = image_size
    if attrs is not None:
        options["attributes"] = [a.strip() for a in attrs.split(",") if a.strip()]
    summary, description = import_checkpoint(reference, out, model, **options)
    if as_json:
        print_json(summary)
        return
    spaces: dict[str, list[str]] = {}
    for r in summary.get("label_space", []):
        if r["kind"] != "mask":
            spaces.setdefault(r["dataset"], []).append(f"{r['group']} ({r['kind']}): {', '.join(r['attributes'])}")
    lines = [f"Imported {summary.get('source', reference)}: {description}"]
    lines += [f"Label space {name}: {'; '.join(groups)}" for name, groups in spaces.items()]
    console.print("\n".join([*lines, f"Wrote {summary['out']}"]))
