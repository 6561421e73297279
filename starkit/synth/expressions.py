"""Facial expressions as muscle-like actions.

Each expression is a small set of actions on brows, lids, mouth, cheeks and nose, loosely after
the action units of the Facial Action Coding System (e.g. happy = cheek raiser + lip-corner
puller; sad = inner-brow raiser + lip-corner depressor; surprise = brow raisers + jaw drop).
The painter in :mod:`starkit.synth.faces` turns actions into geometry, so an expression
changes only brows, eyes, nose, mouth, cheeks and their expression lines, never the face
outline, hair or background. The values below were tuned so that every pair of expressions
stays distinguishable at 64 pixels (``bench/synth_gallery.py`` renders them side by side).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .attributes import EXPRESSIONS


@dataclass(frozen=True)
class FaceActions:
    """Action strengths; 0 is the relaxed face. Signs are documented per field."""

    brow_inner: float = 0.0  # + raises the inner ends of the brows, - lowers them
    brow_outer: float = 0.0  # + raises the outer ends
    brow_knit: float = 0.0  # + pulls the inner ends together (and a little down)
    brow_arch: float = 0.0  # + rounds the brows, - flattens them
    lid_upper: float = 0.0  # + opens the eyes wide (white above the iris), - lowers the lids
    lid_lower: float = 0.0  # + raises the lower lids (squint)
    gaze_down: float = 0.0  # + looks down
    mouth_corners: float = 0.0  # + lifts both corners (smile), - pulls them down (frown)
    smirk: float = 0.0  # + lifts only the corner on the face's smirk side
    mouth_open: float = 0.0  # 0 closed .. 1 jaw dropped
    mouth_width: float = 1.0  # multiplies the mouth's width (stretch or pucker)
    mouth_round: float = 0.0  # 0 lens-shaped opening .. 1 round "O"
    lip_press: float = 0.0  # + presses the lips thin
    upper_lip_raise: float = 0.0  # + lifts the upper lip (sneer), strongest on the smirk side
    teeth_upper: float = 0.0  # how much of the upper teeth an open mouth shows
    teeth_lower: float = 0.0  # how much of the lower teeth an open mouth shows
    cheek_raise: float = 0.0  # + lifts and rounds the cheeks
    nose_wrinkle: float = 0.0  # + wrinkles the nose bridge
    nostril_flare: float = 0.0  # + widens the nostrils
    forehead_lines: float = 0.0  # horizontal forehead creases (raised brows)
    glabella_lines: float = 0.0  # vertical creases between the brows (frowning)
    smile_lines: float = 0.0  # depth of the nasolabial folds
    chin_raise: float = 0.0  # + pushes the lower lip up into a pout

    def scaled(self, factor: float) -> "FaceActions":
        """The same expression at another intensity (``mouth_width`` scales around 1)."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = 1.0 + (value - 1.0) * factor if f.name == "mouth_width" else value * factor
        return FaceActions(**values)


ACTIONS: dict[str, FaceActions] = {
    # Brows pulled down and together into a V, glaring lids, lips pressed thin.
    "angry": FaceActions(
        brow_inner=-1.0, brow_outer=0.35, brow_knit=1.0, brow_arch=-0.6, lid_upper=-0.35, lid_lower=0.55,
        mouth_corners=-0.45, lip_press=1.0, mouth_width=0.86, nostril_flare=0.6, glabella_lines=1.0,
        chin_raise=0.5,
    ),
    # A one-sided, closed-lip smirk; one lid slightly lowered.
    "contemptuous": FaceActions(
        smirk=1.0, lip_press=0.45, lid_upper=-0.25, lid_lower=0.2, brow_outer=0.1, smile_lines=0.3,
    ),
    # Nose wrinkled, upper lip raised over the teeth, corners down, squinting.
    "disgusted": FaceActions(
        brow_inner=-0.6, brow_outer=-0.15, brow_knit=0.65, lid_upper=-0.35, lid_lower=0.85,
        mouth_corners=-0.6, upper_lip_raise=1.0, mouth_open=0.1, teeth_upper=0.9, cheek_raise=0.45,
        nose_wrinkle=1.0, nostril_flare=0.9, smile_lines=0.9, glabella_lines=0.5,
    ),
    # Brows raised but drawn together and flat, eyes wide, mouth stretched open sideways.
    "fearful": FaceActions(
        brow_inner=1.0, brow_outer=0.3, brow_knit=0.75, brow_arch=-0.8, lid_upper=1.0, lid_lower=0.15,
        mouth_open=0.42, mouth_width=1.22, mouth_corners=-0.55, teeth_lower=0.8, teeth_upper=0.35,
        forehead_lines=0.8, glabella_lines=0.3,
    ),
    # Big symmetric smile showing the upper teeth; cheeks up, eyes smiling.
    "happy": FaceActions(
        brow_inner=0.1, brow_outer=0.05, lid_upper=-0.15, lid_lower=0.6, mouth_corners=1.0, mouth_open=0.5,
        mouth_width=1.2, teeth_upper=1.0, cheek_raise=1.0, smile_lines=1.0,
    ),
    "neutral": FaceActions(),
    # Inner brows up (the oblique "worried" brow), lids heavy, gaze down, corners down, pout.
    "sad": FaceActions(
        brow_inner=0.95, brow_outer=-0.45, brow_knit=0.5, brow_arch=-0.4, lid_upper=-0.4, gaze_down=0.7,
        mouth_corners=-0.85, mouth_width=0.94, lip_press=0.15, chin_raise=0.8,
    ),
    # Brows high and round, eyes wide, jaw dropped into an "O".
    "surprised": FaceActions(
        brow_inner=1.0, brow_outer=1.0, brow_arch=0.7, lid_upper=1.0, mouth_open=1.0, mouth_width=0.6,
        mouth_round=1.0, teeth_upper=0.2, forehead_lines=1.0,
    ),
}

assert tuple(sorted(ACTIONS)) == EXPRESSIONS  # every labelled expression has actions


def actions_for(expression: str, intensity: float = 1.0) -> FaceActions:
    """The actions of ``expression`` at ``intensity`` (1: as tabulated)."""
    return ACTIONS[expression].scaled(intensity)
