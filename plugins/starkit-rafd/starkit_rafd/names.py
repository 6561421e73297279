"""RaFD's file names, which encode everything known about an image.

``Rafd090_01_Caucasian_female_angry_frontal.jpg``: camera angle (``000``, ``045``, ``090`` =
frontal camera, ``135``, ``180``), subject number, ethnicity (Caucasian, Moroccan, Kid),
gender, expression, gaze direction (frontal, left, right).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

#: The eight expressions, in the order of the one-hot group.
EXPRESSIONS: tuple[str, ...] = (
    "angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised",
)
POSES: tuple[str, ...] = ("000", "045", "090", "135", "180")
GAZES: tuple[str, ...] = ("frontal", "left", "right")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

PATTERN_HELP = "Rafd<pose>_<subject>_<ethnicity>_<gender>_<expression>_<gaze>.jpg"
_NAME = re.compile(
    r"Rafd(?P<pose>\d{3})_(?P<subject>\d+)_(?P<ethnicity>[A-Za-z]+)_(?P<gender>[A-Za-z]+)"
    r"_(?P<expression>[A-Za-z]+)_(?P<gaze>[A-Za-z]+)\.(?:jpe?g|png)",
    re.IGNORECASE,
)


class RafdNameError(ValueError):
    """A file name that does not describe a RaFD image; ``str(exc)`` is the reason."""


@dataclass(frozen=True)
class RafdName:
    pose: str
    subject: int
    ethnicity: str
    gender: str
    expression: str
    gaze: str

    def meta(self) -> dict[str, object]:
        """What ingestion stores beside the image (subject and pose matter for evaluation)."""
        return asdict(self)


def parse_name(filename: str) -> RafdName:
    match = _NAME.fullmatch(filename)
    if match is None:
        raise RafdNameError(f"file name does not follow RaFD's pattern {PATTERN_HELP}")
    parts = match.groupdict()
    expression, gaze, gender = parts["expression"].lower(), parts["gaze"].lower(), parts["gender"].lower()
    if parts["pose"] not in POSES:
        raise RafdNameError(f"unknown camera angle {parts['pose']!r} (RaFD has {', '.join(POSES)})")
    if expression not in EXPRESSIONS:
        raise RafdNameError(f"unknown expression {parts['expression']!r} (RaFD has {', '.join(EXPRESSIONS)})")
    if gaze not in GAZES:
        raise RafdNameError(f"unknown gaze {parts['gaze']!r} (RaFD has {', '.join(GAZES)})")
    if gender not in ("female", "male"):
        raise RafdNameError(f"unknown gender {parts['gender']!r} (RaFD has female, male)")
    return RafdName(
        pose=parts["pose"],
        subject=int(parts["subject"]),
        ethnicity=parts["ethnicity"],
        gender=gender,
        expression=expression,
        gaze=gaze,
    )
