"""``starkit import-checkpoint``: the reference StarGAN's released generator as a starkit checkpoint."""

from __future__ import annotations

import click

from .output import console, print_json


@click.command("import-checkpoint")
@click.argument("reference", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The starkit checkpoint to write.")
@click.option("--image-size", type=click.Choice(["128", "256"]), default="128", show_default=True,
              help="Image size the model was trained at.")
@click.option("--attrs", default="Black_Hair,Blond_Hair,Brown_Hair,Male,Young", show_default=True,
              help="The model's attributes, in the order it was trained with.")
@click.option("--json", "as_json", is_flag=True, help="Print a summary as JSON.")
def command(reference: str, out: str, image_size: str, attrs: str, as_json: bool) -> None:
    """Convert REFERENCE (the authors' <iter>-G.ckpt) into a starkit checkpoint.

    The label space is one dataset `celeba`: hair colours as a one-hot group, the other
    attributes binary. The checkpoint holds the generator only, so `starkit translate` takes
    the inputs' labels from --source-labels (default: all zero) instead of a discriminator.
    """
    from ..training.import_reference import import_reference_generator

    summary = import_reference_generator(
        reference, out, image_size=int(image_size), attributes=[a.strip() for a in attrs.split(",") if a.strip()]
    )
    if as_json:
        print_json(summary)
        return
    groups = "; ".join(f"{r['group']} ({r['kind']}): {', '.join(r['attributes'])}" for r in summary["label_space"])
    console.print(
        f"Imported {summary['source']}: generator conv_dim {summary['g_conv_dim']}, "
        f"{summary['g_repeat_num']} residual blocks, {summary['parameters']:,} parameters\n"
        f"Label space celeba: {groups}\nWrote {summary['out']}"
    )
