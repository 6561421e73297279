"""Where a trained generator's hair-colour error lies, and which of G's losses pulls it there.

    .venv/bin/python bench/hair_pull.py RUN_DIR DATA_DIR [--faces 60] [--grad-faces 40] [--json OUT]

For synth-celeba test faces, each translated by the run's generator to every hair colour, against
the exact counterfactual renderings (as ``starkit eval`` does). Ratios are to the identity
baseline's L1 (output = input), over all hair translations, so ``changed part + unchanged part``
is the hair-L1 ratio of ``bench/quality.py`` (on these faces):

- ``changed_part`` / ``unchanged_part``: the L1 on the pixels the counterfactual changes (any
  channel by more than 0.03) and on the rest;
- ``missed``: the share of changed pixels G leaves nearly as they were (every channel within
  0.03), and their share of the changed part;
- ``changed_part_after_affine_fix``: the changed part once G's own colours there are mapped to
  the counterfactual by the best affine colour map per image (fitted with the answer known):
  what is left when only the per-image colour is wrong; ``..._after_target_shift``: after one
  colour shift per target colour instead;
- per (source, target) pair: the mean error per channel on the changed pixels, and ``way``: how
  far G's mean colour there went from the source's toward the counterfactual's (1: all the way);
- ``unchanged_near_part`` / ``unchanged_far_part``: the unchanged part split between the pixels
  within ``NEAR`` pixels of a changed one (the hair's edges) and the rest; with ``--heatmap``, a
  PNG of the mean error on unchanged pixels per position (white: 0.1 or more, in [0, 1] units).
- ``mask_openings``: for a generator that draws masks (``g_output`` attention: the
  paint mask's opening ``1 − K``; ``g_colour_map`` global: the recolour mask), each mask's mean
  on the changed and on the unchanged pixels of translations to another colour: a mask half
  open on the hair lets the source colour through, one open off the hair spills there.
  ``mask_histograms``: the shares of those pixels whose mask falls in each of the bins
  0–0.1, 0.1–0.25, 0.25–0.5, 0.5–0.75, 0.75–0.9, 0.9–1 (which hair pixels a mask leaves shut,
  which half open).

With ``--grad-faces`` > 0 it also reads the gradients of G's three losses (adversarial,
classification, reconstruction at ``lambda_rec``) with respect to the translation, on the
changed pixels of translations to another colour: the cosine of each term's descent direction
with the way back to the input and with the way to the counterfactual. A diagnosis of one
checkpoint, not a benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

CHANGED = 0.03  # as starkit.evaluation.metrics.CHANGE_TOLERANCE, in [0, 1] units
NEAR = 2  # pixels: how far from a changed pixel an unchanged one counts as "near"
MASK_BINS = np.array([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0])  # np.histogram: the last bin holds 1.0
MASK_BIN_LABELS = tuple(f"{lo:g}-{hi:g}" for lo, hi in zip(MASK_BINS[:-1], MASK_BINS[1:]))
CELEBA = "synth-celeba"


def hair_translations(translator: Any, store: Any, faces: int):
    """Yields ``(source colour, target colour, x, x in [0, 1], gt, c_org, c, target labels)`` per
    hair translation: ``x`` as G takes it, the others ``[H, W, 3]`` in [0, 1]; the conditioning
    vectors; the target's synth-celeba label row ``[1, k]``."""
    import torch

    from starkit.evaluation.classifier import to_model_range
    from starkit.evaluation.evaluate import condition, counterfactual_renderer, targets_for

    space = translator.label_space
    attrs = list(space.dataset(CELEBA).attributes)
    for index in range(min(faces, store.count("test"))):
        image, labels, _, meta = store.read("test", index)
        render, reason = counterfactual_renderer(meta)
        if render is None:
            raise SystemExit(f"{CELEBA} test image {index}: no exact counterfactual ({reason or 'not synthetic'})")
        x = to_model_range(torch.from_numpy(image[None]).permute(0, 3, 1, 2)).to(translator.device)
        x_unit = image.astype(np.float32) / 255
        c_org = torch.from_numpy(space.encode(CELEBA, labels[None])).to(translator.device)
        source = next((a for a, v in zip(attrs, labels) if v == 1 and a.endswith("_Hair")), "?")
        for target in targets_for(space, CELEBA, labels):
            if target.group != "hair":
                continue
            wanted = {a: int(v) for a, v in zip(attrs, target.labels)}
            gt = render(CELEBA, wanted, x.shape[-1]).astype(np.float32) / 255
            c = torch.from_numpy(condition(space, [target], CELEBA)).to(translator.device)
            yield (source, target.attribute, x, x_unit, gt, c_org, c,
                   torch.from_numpy(target.labels[None]).to(translator.device))


def near(mask: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ``radius`` (Chebyshev distance) of a true pixel of ``mask`` ``[H, W]``."""
    h, w = mask.shape
    padded = np.pad(mask, radius)
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy:dy + h, dx:dx + w]
    return out


def error_split(translator: Any, store: Any, faces: int) -> dict[str, Any]:
    import torch

    totals = dict.fromkeys(("identity", "changed", "unchanged", "n_changed", "missed", "missed_error",
                            "affine_fix", "own", "near"), 0.0)
    heat = heat_count = 0.0
    pairs: dict[tuple[str, str], list[dict[str, np.ndarray]]] = {}
    kept = []
    # Per mask G draws: its summed opening on changed and on unchanged pixels, and their counts.
    openings: dict[str, np.ndarray] = {}
    # ... and how many of those pixels fall in each of MASK_BINS ([changed, unchanged] x bins).
    histograms: dict[str, np.ndarray] = {}
    opening_pixels = np.zeros(2)
    draws_masks = True
    for source, target, x, xu, gt, _, c, _ in hair_translations(translator, store, faces):
        with torch.inference_mode():
            masks: dict[str, Any] = {}
            if draws_masks:
                try:
                    y, masks = translator.G(x, c, with_masks=True)
                except TypeError:  # a generator without masks to report
                    draws_masks = False
            if not draws_masks:
                y = translator.G(x, c)
            y = y.float().clamp(-1, 1)
        yu = ((y[0].permute(1, 2, 0).cpu().numpy() + 1) / 2)
        error = np.abs(yu - gt).mean(-1)
        changed = np.abs(gt - xu).max(-1) > CHANGED
        missed = changed & (np.abs(yu - xu).max(-1) <= CHANGED)
        totals["identity"] += np.abs(xu - gt).mean(-1).sum()
        totals["changed"] += error[changed].sum()
        totals["unchanged"] += error[~changed].sum()
        totals["near"] += error[~changed & near(changed, NEAR)].sum()
        heat = heat + np.where(changed, 0.0, error)
        heat_count = heat_count + (~changed)
        totals["n_changed"] += changed.sum()
        totals["missed"] += missed.sum()
        totals["missed_error"] += error[missed].sum()
        if source == target:
            totals["own"] += error.sum()
        elif masks:
            opening_pixels += (changed.sum(), (~changed).sum())
            for name, mask in masks.items():
                m = mask[0, 0].float().cpu().numpy()
                openings[name] = openings.get(name, np.zeros(2)) + (m[changed].sum(), m[~changed].sum())
                counts = np.stack([np.histogram(m[side], MASK_BINS)[0] for side in (changed, ~changed)])
                histograms[name] = histograms.get(name, 0) + counts
        if changed.sum() < 8:  # too few pixels to fit a map to (own colour, or nearly)
            totals["affine_fix"] += error[changed].sum()
            continue
        ys, gs, xs = yu[changed], gt[changed], xu[changed]
        design = np.c_[ys, np.ones(len(ys))]
        fitted = design @ np.linalg.lstsq(design, gs, rcond=None)[0]
        totals["affine_fix"] += np.abs(fitted - gs).mean(-1).sum()
        if source != target:
            pairs.setdefault((source, target), []).append({"y": ys.mean(0), "gt": gs.mean(0), "x": xs.mean(0)})
            kept.append((target, ys, gs))
    base = totals["identity"]
    shift = {t: np.concatenate([ys - gs for tt, ys, gs in kept if tt == t]).mean(0) for t in {t for t, _, _ in kept}}
    shifted = sum(np.abs(ys - shift[t] - gs).mean(-1).sum() for t, ys, gs in kept)
    unshifted = sum(np.abs(ys - gs).mean(-1).sum() for _, ys, gs in kept)
    per_pair = {}
    for (source, target), rows in sorted(pairs.items()):
        y, g, x = (np.array([r[k] for r in rows]) for k in ("y", "gt", "x"))
        per_pair[f"{source}->{target}"] = {
            "translations": len(rows),
            "mean_error_rgb": [round(float(v), 4) for v in (y - g).mean(0)],
            "way": round(float(np.mean((y - x).sum(1) / (g - x).sum(1))), 3),
        }
    return {
        "hair_l1_ratio": _ratio((totals["changed"] + totals["unchanged"]) / base),
        "changed_part": _ratio(totals["changed"] / base),
        "unchanged_part": _ratio(totals["unchanged"] / base),
        "unchanged_near_part": _ratio(totals["near"] / base),
        "unchanged_far_part": _ratio((totals["unchanged"] - totals["near"]) / base),
        "own_colour_share": _ratio(totals["own"] / (totals["changed"] + totals["unchanged"])),
        "missed_pixels": _ratio(totals["missed"] / totals["n_changed"]),
        "missed_share_of_changed_part": _ratio(totals["missed_error"] / totals["changed"]),
        "changed_part_after_affine_fix": _ratio(totals["affine_fix"] / base),
        "changed_part_after_target_shift": _ratio((totals["changed"] - unshifted + shifted) / base),
        "pairs": per_pair,
        "mask_openings": {name: {"changed": _ratio(v[0] / max(opening_pixels[0], 1)),
                                 "unchanged": _ratio(v[1] / max(opening_pixels[1], 1))}
                          for name, v in sorted(openings.items())},
        "mask_histograms": {name: {side: {label: _ratio(n / max(row.sum(), 1)) for label, n in zip(MASK_BIN_LABELS, row)}
                                   for side, row in zip(("changed", "unchanged"), h)}
                            for name, h in sorted(histograms.items())},
        "unchanged_heatmap": heat / np.maximum(heat_count, 1),
    }


def _ratio(value: Any) -> float:
    return round(float(value), 4)


def gradient_pull(translator: Any, store: Any, faces: int, lambda_rec: float) -> dict[str, Any]:
    import torch

    from starkit.families.stargan.losses import generator_adversarial_loss, reconstruction_loss
    from starkit.families.stargan.parts.targets import centered_labels

    G, D, space = translator.G, translator.D, translator.label_space
    if D is None:
        raise SystemExit("the checkpoint holds no discriminator: the gradients need D")
    for p in list(G.parameters()) + list(D.parameters()):
        p.requires_grad_(False)
    found: dict[str, list[tuple[float, float, float]]] = {"adversarial": [], "classification": [], "reconstruction": []}
    for source, target, x, _, gt, c_org, c, wanted in hair_translations(translator, store, faces):
        if source == target:
            continue
        gt_t = torch.from_numpy(gt).permute(2, 0, 1)[None].to(x.device) * 2 - 1
        y = G(x, c).detach().requires_grad_(True)
        # Images in [-1, 1] here: twice the threshold in [0, 1] units.
        changed = ((gt_t - x).abs().amax(1, keepdim=True) > 2 * CHANGED).expand_as(x)
        # A projection critic is told the target, as in the training step (others ignore it).
        src, cls = D(y, centered_labels(space, wanted, CELEBA))
        terms = {
            "adversarial": generator_adversarial_loss(src),
            "classification": space.classification_loss(cls, wanted, CELEBA),
            "reconstruction": lambda_rec * reconstruction_loss(x, G(y, c_org)),
        }
        back, forward = (x - y).detach()[changed], (gt_t - y).detach()[changed]
        for name, loss in terms.items():
            grad, = torch.autograd.grad(loss, y, retain_graph=True)
            descent = -grad[changed]
            found[name].append((float(descent @ back / (descent.norm() * back.norm() + 1e-12)),
                                float(descent @ forward / (descent.norm() * forward.norm() + 1e-12)),
                                float(grad[changed].norm())))
    out = {}
    for name, rows in found.items():
        a = np.array(rows)
        out[name] = {"cos_toward_input": round(float(a[:, 0].mean()), 3),
                     "cos_toward_counterfactual": round(float(a[:, 1].mean()), 3),
                     "gradient_norm": round(float(a[:, 2].mean()), 4), "translations": len(rows)}
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    from starkit.training.run import open_datasets, read_run_config
    from starkit.translate import Translator

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a training run's folder (its checkpoints/latest.pt)")
    parser.add_argument("data", type=Path, help="the folder holding synth-celeba's shards")
    parser.add_argument("--faces", type=int, default=60, help="synth-celeba test faces for the error split")
    parser.add_argument("--grad-faces", type=int, default=40, help="faces for the gradient reading (0: skip it)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--heatmap", type=Path, default=None,
                        help="write the mean error on unchanged pixels per position here (PNG)")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    translator = Translator.from_run(args.run, "cpu")
    if CELEBA not in translator.label_space.names:
        raise SystemExit(f"{args.run}: the run was not trained on {CELEBA}")
    lambda_rec = float(read_run_config(args.run).get("lambda_rec", 10.0))
    store = open_datasets([CELEBA], args.data)[0]
    try:
        split = error_split(translator, store, args.faces)
        heatmap = split.pop("unchanged_heatmap")
        report: dict[str, Any] = {"run": str(args.run), "faces": args.faces, "split": split}
        if args.grad_faces > 0:
            report["gradients"] = gradient_pull(translator, store, args.grad_faces, lambda_rec)
    finally:
        store.close()
    if args.heatmap:
        from torchvision.utils import save_image

        save_image(torch.from_numpy(np.clip(heatmap / 0.1, 0, 1)).float()[None], args.heatmap)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
