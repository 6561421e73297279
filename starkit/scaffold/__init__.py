"""``starkit new-plugin``: write a ready-to-install plugin distribution for a new dataset.

The templates under ``templates/`` are ordinary files rendered with :class:`string.Template`
(``$name``, ``$module``, ...). ``templates/common`` is rendered for every layout and
``templates/<layout>`` for the chosen one; a folder named ``__module__`` becomes the plugin's
module, and the ``.tmpl`` suffix is dropped (it keeps pytest and linters away from templates).

Only the standard library is used here: the CLI imports this module at start-up.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Iterator

from .. import CONTRACT_VERSION
from ..errors import StarkitError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: Generic source layouts a new plugin can start from.
LAYOUTS: tuple[str, ...] = ("imagefolder", "attribute-table")

#: Lower-case words joined by single hyphens. Such a name is at once a valid dataset name, a
#: valid distribution name (``starkit-NAME``; those may not end with a hyphen) and, with
#: ``_`` for ``-``, a valid Python identifier.
PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


class ScaffoldError(StarkitError, ValueError):
    """A plugin cannot be scaffolded: an invalid name or layout, or the target exists."""


@dataclass(frozen=True)
class PluginNames:
    """The names a scaffolded plugin uses, all derived from the dataset name."""

    dataset: str  #: ``street-scenes``: the dataset and the entry point
    distribution: str  #: ``starkit-street-scenes``: the pip project and the folder
    module: str  #: ``starkit_street_scenes``: the importable hook module


def plugin_names(name: str) -> PluginNames:
    """Validate ``name`` and derive the distribution and module names from it."""
    if not isinstance(name, str) or not PLUGIN_NAME.match(name):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lower-case letters and digits, starting with a "
            "letter, with single hyphens between words (for example 'street-scenes')"
        )
    identifier = name.replace("-", "_")
    # The module is starkit_<identifier>, but authors often drop the prefix when they rename
    # the package or import it under its short name; keep the short name a legal identifier.
    if keyword.iskeyword(identifier):
        raise ScaffoldError(f"invalid plugin name {name!r}: {identifier!r} is a Python keyword")
    return PluginNames(dataset=name, distribution=f"starkit-{name}", module=f"starkit_{identifier}")


def scaffold_plugin(
    name: str, out: str | os.PathLike[str], layout: str = "imagefolder", description: str | None = None
) -> Path:
    """Create ``out/starkit-NAME/``, a plugin distribution that registers the dataset ``NAME``.

    Nothing is ever overwritten: an existing target is an error. Files are written into a
    hidden staging folder beside the target and renamed into place at the end, so a failure
    leaves no half-made plugin behind. Returns the created folder.
    """
    names = plugin_names(name)
    if layout not in LAYOUTS:
        raise ScaffoldError(f"unknown layout {layout!r}; valid layouts: {', '.join(LAYOUTS)}")
    description = " ".join((description or f"The {name} dataset ({layout} layout).").split())
    if not description.isprintable():
        raise ScaffoldError("the description must be printable text (no control characters)")
    values = {
        "name": names.dataset,
        "distribution": names.distribution,
        "module": names.module,
        "contract": CONTRACT_VERSION,
        "description": description,
        "description_py": repr(description),
        # A JSON string of printable text is also a valid TOML basic string (same escapes).
        "description_toml": json.dumps(description, ensure_ascii=False),
    }

    out = Path(out)
    target = out / names.distribution
    if target.exists() or target.is_symlink():
        raise ScaffoldError(f"{target} already exists; nothing was written (remove it or use another --out)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = out / f".{names.distribution}.{os.urandom(4).hex()}.partial"
        staging.mkdir()
    except OSError as exc:
        raise ScaffoldError(f"cannot create the plugin in {out}: {exc.strerror or exc}") from exc
    try:
        for parts, template in _templates(layout):
            relative = Path(*(names.module if p == "__module__" else p for p in parts))
            _write(staging / relative, Template(template).substitute(values))
        # A rename cannot replace a non-empty folder, so a target created meanwhile is kept.
        os.rename(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ScaffoldError(f"cannot write the plugin to {target}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _templates(layout: str) -> Iterator[tuple[tuple[str, ...], str]]:
    """``(path parts without .tmpl, template text)`` for every file the layout renders."""
    from importlib import resources  # only when scaffolding: keeps `starkit --help` fast

    root = resources.files(__name__) / "templates"
    for part in ("common", layout):
        yield from _walk(root / part, ())


def _walk(node: Traversable, parts: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            yield from _walk(child, (*parts, child.name))
        elif child.name.endswith(".tmpl"):
            yield (*parts, child.name.removesuffix(".tmpl")), child.read_text(encoding="utf-8")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
