"""What a part of the ``stargan`` step is: extra loss terms and updates composed into the paper's
iteration, each behind its own option.

The step computes the paper's D and G losses, then asks every active part, in a fixed order,
for its terms: ``d_terms(batch)`` and ``g_terms(batch, fake, masks)`` each return
``{logged name: (weight, term)}``, and the step adds ``weight · term`` to its loss in that
order (a weight of ``None`` logs the term without adding it). A part may also own networks
(saved in checkpoints under their names), optimisers, an update of its own after the D step
(the colour critic's) or after the G step (the moving average's), and networks to freeze
while G is trained. A part whose option is off is not composed at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import Tensor, nn

if TYPE_CHECKING:  # for annotations only
    from ....labels import LabelSpace
    from .targets import Targets

#: ``{logged name: (weight, term)}``; weight ``None``: logged, not added to the loss.
Terms = dict[str, tuple[float | None, Tensor]]


@dataclass
class StepBatch:
    """One iteration's batch as the parts see it. ``d_real`` (what D saw of the real images)
    and ``cls_fake`` (D's classification logits for the translations) are filled in by the
    D step."""

    space: LabelSpace
    iteration: int
    dataset: str
    labels: Tensor
    x_real: Tensor
    c_org: Tensor
    targets: Targets
    d_real: Tensor | None = None
    cls_fake: Tensor | None = None


class StepPart:
    """A part that adds nothing; subclasses override what they need."""

    #: True when the part reads the masks G draws (``g_terms``' ``masks``).
    needs_masks = False

    def networks(self) -> dict[str, nn.Module]:
        """Networks the part owns, by their checkpoint names."""
        return {}

    def optimizers(self) -> dict[str, Any]:
        """Optimisers the part owns, by their checkpoint names."""
        return {}

    def base_lrs(self) -> dict[str, float]:
        """Base learning rates of the part's optimisers, by name."""
        return {}

    def frozen_in_g_step(self) -> list[nn.Module]:
        """Networks whose parameters must not take gradients while G is trained."""
        return []

    def d_terms(self, batch: StepBatch) -> Terms:
        return {}

    def after_d_step(self, batch: StepBatch, x_fake: Tensor) -> dict[str, Tensor]:
        """The part's own update after D's (``x_fake``: the translations D saw); its losses."""
        return {}

    def g_terms(self, batch: StepBatch, fake: Tensor, masks: dict[str, Tensor] | None) -> Terms:
        return {}

    def after_g_step(self, iteration: int) -> None:
        """The part's own update after G's."""


def add_terms(loss: Tensor, logged: dict[str, Tensor], terms: Terms) -> Tensor:
    """``loss`` plus each weighted term, in order; every term is logged under its name."""
    for name, (weight, term) in terms.items():
        logged[name] = term
        if weight is not None:
            loss = loss + weight * term
    return loss
