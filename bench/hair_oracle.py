"""How close structured recolourings of the input can get to a hair-colour counterfactual.

    .venv/bin/python bench/hair_oracle.py [--faces 100] [--size 32] [--seed 0]

For synth-celeba faces, each translated (exactly, by the renderer) to the two hair colours it
does not have, every candidate below is fitted to the exact counterfactual *with the answer
known* (least squares over the pixels that change), so each row is a ceiling for a generator
whose output has that structure, not something a generator reaches. L1 over the whole image,
pixels in [0, 1], and its ratio to the identity baseline (output = input), as in
``starkit eval``'s ``counterfactual_l1`` / ``identity_l1``:

- ``resample``: another rendering of the counterfactual (other sensor noise and hair texture),
  the evaluation's ``resample_l1``;
- ``affine map``: one 3×3 colour matrix and offset per image, applied to the changing pixels
  (what ``g_colour_map = "global"`` can express, given a perfect mask);
- ``gain``: one gain per channel per image on the changing pixels;
- ``mean colour``: the changing pixels painted in their mean target colour.
"""

from __future__ import annotations

import argparse

import numpy as np

from starkit.synth.attributes import HAIR_ATTRIBUTES, HAIR_COLORS

HAIRS = tuple(HAIR_ATTRIBUTES[c] for c in HAIR_COLORS)
#: A pixel changes where a channel of the counterfactual differs from the input by more than this.
CHANGED = 0.03


def fits(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Each candidate's output for input ``x`` and counterfactual ``y`` ([H, W, 3] in [0, 1])."""
    changed = np.abs(y - x).max(-1) > CHANGED
    out = {name: x.copy() for name in ("affine map", "gain", "mean colour")}
    if not changed.any():
        return out
    xs, ys = x[changed], y[changed]
    design = np.c_[xs, np.ones(len(xs))]
    out["affine map"][changed] = design @ np.linalg.lstsq(design, ys, rcond=None)[0]
    out["gain"][changed] = xs * ((xs * ys).sum(0) / np.maximum((xs * xs).sum(0), 1e-8))
    out["mean colour"][changed] = ys.mean(0)
    return out


def main(argv: list[str] | None = None) -> int:
    from starkit.synth.faces import dataset_face, labels_of, render_face, with_labels
    from starkit.synth.params import with_other_seed

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=100)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="synth-celeba's rendering seed")
    args = parser.parse_args(argv)

    errors: dict[str, list[float]] = {"identity": [], "resample": [], "affine map": [], "gain": [], "mean colour": []}
    for index in range(args.faces):
        params = dataset_face("synth-celeba", args.seed, index)
        x = render_face(params, args.size).astype(np.float32) / 255
        labels = labels_of(params, "synth-celeba")
        for hair in HAIRS:
            if labels.get(hair):
                continue
            target = with_labels(params, "synth-celeba", {h: int(h == hair) for h in HAIRS})
            y = render_face(target, args.size).astype(np.float32) / 255
            errors["identity"].append(float(np.abs(x - y).mean()))
            resampled = render_face(with_other_seed(target), args.size).astype(np.float32) / 255
            errors["resample"].append(float(np.abs(resampled - y).mean()))
            for name, out in fits(x, y).items():
                errors[name].append(float(np.abs(out - y).mean()))
    baseline = float(np.mean(errors["identity"]))
    print(f"{args.faces} synth-celeba faces (seed {args.seed}), {len(errors['identity'])} hair translations, "
          f"{args.size} px")
    for name, values in errors.items():
        print(f"{name:12s} L1 {np.mean(values):.4f}   ratio {np.mean(values) / baseline:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
