"""StarGAN v2's training sample grid: one PNG showing both ways it translates, drawn with the
moving averages (the networks that ``translate`` and ``eval`` use).

* **latent-guided** (top): rows are the fixed sample inputs; columns the input, then every
  domain with :data:`STYLES_PER_DOMAIN` styles (one when there are many domains), the same
  latent codes in every grid of a run;
* **reference-guided** (below): a first row of reference images, one per domain, taken from
  the sample inputs (the first input of each domain; a domain none of them belongs to has no
  column); rows are the inputs, each translated in the style the style encoder reads off the
  reference above it.

Latent codes come from :func:`.translator.latent_code` (a private generator seeded with
:data:`SAMPLE_SEED`): the grids are deterministic and draw nothing from the training streams.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ...domains import DomainSet
from ...labels import LabelSpace
from ...training.samples import SampleInputs, render_grid, save_png, to_uint8_images
from .translator import TRANSLATING, StarGANv2Translator

#: The latent codes of the sample grids are styles 0, 1, ... of this seed.
SAMPLE_SEED = 0
#: Styles per domain in the latent-guided block: two while the grid stays narrow, else one.
STYLES_PER_DOMAIN = 2
MAX_DOMAINS_FOR_TWO_STYLES = 6
#: White pixels between the two blocks.
BLOCK_GAP = 12


@contextlib.contextmanager
def _modes_kept(modules: Sequence[Any]) -> Iterator[None]:
    """Restore each module's train/eval mode afterwards (the translator puts them in eval)."""
    modes = [m.training for m in modules]
    try:
        yield
    finally:
        for module, mode in zip(modules, modes):
            module.train(mode)


def _latent_dim(mapping_network: Any) -> int:
    """The latent width: the input width of the mapping network's first linear layer."""
    import torch

    return next(m for m in mapping_network.modules() if isinstance(m, torch.nn.Linear)).in_features


def sample_translator(step: Any, image_size: int, device: Any) -> StarGANv2Translator:
    """A translator over the step's moving averages (the trained networks where it has none)."""
    nets = {name: step.networks.get(f"{name}_ema", step.networks[name]) for name in TRANSLATING}
    return StarGANv2Translator(nets, step.domains, image_size, device, _latent_dim(nets["mapping_network"]),
                               weights="ema" if "generator_ema" in step.networks else "raw")


def _domain_title(domains: DomainSet, index: int, qualify: bool) -> list[str]:
    d = domains.domains[index]
    short = d.name.partition(":")[2]
    return [d.dataset, short] if qualify else [short]


def _targets(domains: DomainSet, index: int, rows: int) -> np.ndarray:
    return np.repeat(domains.target_vector(index)[None], rows, axis=0)


def latent_block(translator: StarGANv2Translator, inputs: SampleInputs, x: Any, qualify: bool) -> tuple:
    """Tiles ``[N, 1 + domains * styles, H, W, 3]`` and their column titles."""
    domains = translator.domains
    styles = STYLES_PER_DOMAIN if len(domains) <= MAX_DOMAINS_FOR_TWO_STYLES else 1
    tiles, titles = [inputs.images], [["input", "(latent)"]]
    for d in range(len(domains)):
        for j in range(styles):
            out = translator.translate_latent(x, _targets(domains, d, len(x)), style=j, seed=SAMPLE_SEED)
            tiles.append(to_uint8_images(out))
            titles.append(_domain_title(domains, d, qualify) + ([f"style {j}"] if styles > 1 else []))
    return np.stack(tiles, axis=1), titles


def reference_picks(domains: DomainSet, inputs: SampleInputs) -> dict[int, int]:
    """``{domain: index of the first sample input in it}`` for the domains some input is in."""
    picks: dict[int, int] = {}
    for i, (dataset, labels) in enumerate(zip(inputs.datasets, inputs.labels)):
        picks.setdefault(int(domains.of_labels(dataset, labels[None])[0]), i)
    picks.pop(-1, None)  # an input whose labels name no domain
    return dict(sorted(picks.items()))


def reference_block(translator: StarGANv2Translator, inputs: SampleInputs, x: Any, qualify: bool) -> tuple | None:
    """Tiles ``[1 + N, 1 + references, H, W, 3]`` (a first row of the references above a blank
    corner) and their column titles; ``None`` when no input belongs to any domain."""
    picks = reference_picks(translator.domains, inputs)
    if not picks:
        return None
    size = inputs.images.shape[1]
    header = [np.full((size, size, 3), 255, np.uint8)] + [inputs.images[i] for i in picks.values()]
    tiles, titles = [inputs.images], [["input", "(reference)"]]
    for d, i in picks.items():
        out = translator.translate_reference(x, _targets(translator.domains, d, len(x)), x[i : i + 1])
        tiles.append(to_uint8_images(out))
        titles.append(_domain_title(translator.domains, d, qualify))
    return np.concatenate([np.stack(header)[None], np.stack(tiles, axis=1)]), titles


def sample_blocks(step: Any, space: LabelSpace, inputs: SampleInputs, device: Any) -> list[tuple]:
    """The grid's blocks as ``(tiles, column titles, row titles)``: latent-guided, then
    reference-guided (when some input belongs to a domain)."""
    import torch

    from ...data.loading import to_model_input

    translator = sample_translator(step, inputs.images.shape[1], device)
    qualify = len(space.datasets) > 1
    rows = list(inputs.datasets)
    with torch.no_grad():
        x = to_model_input(torch.from_numpy(inputs.images).permute(0, 3, 1, 2).contiguous(), device)
        blocks = [(*latent_block(translator, inputs, x, qualify), rows)]
        reference = reference_block(translator, inputs, x, qualify)
    if reference is not None:
        # no title on the references' row: a wider one would shift this block's columns
        # against the latent block's (the column titles already say what the row shows)
        blocks.append((*reference, [""] + rows))
    return blocks


def write_samples(step: Any, space: LabelSpace, inputs: SampleInputs, device: Any, path: str | Path) -> Path:
    """The step's sample grid (see the module docstring) written atomically to ``path``."""
    from PIL import Image

    nets = list(step.networks.values())
    with _modes_kept(nets):
        blocks = sample_blocks(step, space, inputs, device)
    images = [render_grid(tiles, titles, row_titles=rows) for tiles, titles, rows in blocks]
    width = max(im.width for im in images)
    height = sum(im.height for im in images) + BLOCK_GAP * (len(images) - 1)
    canvas = Image.new("RGB", (width, height), "white")
    top = 0
    for im in images:
        canvas.paste(im, (0, top))
        top += im.height + BLOCK_GAP
    return save_png(canvas, path)
