"""Matching names the user typed (datasets, attributes) against the names that exist.

One rule everywhere: an exact name wins; otherwise a name that equals exactly one known name
when case is ignored is that name (``blond_hair`` -> ``Blond_Hair``); two or more such names
are ambiguous and the error lists them; no match gets the closest known names as a
did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
from typing import Iterable, Sequence

from .errors import StarkitError


#: The least difflib ratio for a suggestion (difflib's own default).
CUTOFF = 0.6
#: Suggestions score within this of the closest name.
MARGIN = 0.1


class AmbiguousNameError(StarkitError, LookupError):
    """A name matches several known names when case is ignored."""


class UnknownNameError(StarkitError, LookupError):
    """A name matches no known name; the message suggests the closest and lists them all."""


def case_insensitive_matches(name: str, known: Iterable[str]) -> list[str]:
    """The known names equal to ``name`` when case is ignored, in their given order."""
    folded = name.casefold()
    return [k for k in known if k.casefold() == folded]


def close_matches(name: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """Up to ``limit`` known names that look like ``name`` (ignoring case), closest first.

    Similarity is difflib's ratio; names far behind the closest one are left out, so that a
    one-letter slip suggests one name. A known name one of whose ``-``/``_``/``:`` parts is
    ``name`` also counts as close (``rafd`` -> ``synth-rafd``)."""
    known = list(dict.fromkeys(known))
    folded = name.casefold()
    scored = []
    for k in known:
        matcher = difflib.SequenceMatcher(None, folded, k.casefold())
        if matcher.real_quick_ratio() >= CUTOFF and matcher.quick_ratio() >= CUTOFF:
            ratio = matcher.ratio()
            if ratio >= CUTOFF:
                scored.append((ratio, k))
    scored.sort(key=lambda pair: -pair[0])
    found = [k for ratio, k in scored if ratio >= scored[0][0] - MARGIN]
    found += [k for k in known if k not in found and folded in _parts(k.casefold())]
    return found[:limit]


def _parts(name: str) -> set[str]:
    for sep in "-_:":
        name = name.replace(sep, " ")
    return set(name.split())


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" — did you mean 'x'?"`` (or ``'x', 'y' or 'z'``) for the closest known names;
    ``""`` when none is close."""
    found = [repr(k) for k in close_matches(name, known)]
    if not found:
        return ""
    listing = found[0] if len(found) == 1 else ", ".join(found[:-1]) + " or " + found[-1]
    return f" — did you mean {listing}?"


def resolve_name(name: str, known: Sequence[str], what: str) -> str | None:
    """The known name ``name`` stands for: itself, else its only case-insensitive match; None
    when nothing matches. Raises :class:`AmbiguousNameError` when several names match with
    case ignored (``what`` names the kind of name, e.g. ``"attribute"``)."""
    if name in known:
        return name
    matches = case_insensitive_matches(name, known)
    if len(matches) > 1:
        raise AmbiguousNameError(
            f"{what} {name!r} matches {', '.join(map(repr, matches))} when case is ignored; write it exactly"
        )
    return matches[0] if matches else None


def require_name(name: str, known: Sequence[str], what: str) -> str:
    """:func:`resolve_name`, with :class:`UnknownNameError` when nothing matches: ``unknown
    attribute 'x' — did you mean 'y'? (valid attributes: …)``."""
    found = resolve_name(name, known, what)
    if found is None:
        raise UnknownNameError(
            f"unknown {what} {name!r}{did_you_mean(name, known)} (valid {what}s: {', '.join(known)})"
        )
    return found
