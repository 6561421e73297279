"""What a model-family plugin declares (returned from the ``starkit_models`` hook).

A family bundles how to build its networks for a :class:`starkit.labels.LabelSpace` and how
to train them. Everything heavy (torch) is imported inside ``build`` and ``trainer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class ModelFamily:
    """A model family such as ``stargan``.

    ``build(label_space, config) -> dict[str, torch.nn.Module]`` makes the networks (e.g.
    ``{"G": ..., "D": ...}``). ``trainer(label_space, config, device)`` returns the object that
    owns the training step for this family (see :mod:`starkit.training`). ``default_config``
    holds the family's hyper-parameters; user config files override them key by key.
    ``resolve_config(config) -> dict``, when given, fills in what depends on the data once the
    image size is known (e.g. StarGAN's D depth); the run records the resolved values.
    """

    name: str
    build: Callable[..., Any]
    trainer: Callable[..., Any] | None = None
    default_config: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    resolve_config: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
