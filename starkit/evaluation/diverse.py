"""Evaluation of a diverse translator (StarGAN v2): several outputs per image and target domain.

A diverse translator makes a different output for each style it is given, so ``starkit eval``
translates every test image to every one of its domains ``styles`` times, in two passes:

* *latent-guided*: style ``k`` is latent code ``k`` of the seed (``translate_latent``); every
  image gets the same codes, so two evaluations with one seed see the same styles;
* *reference-guided* (translators that take references): style ``k`` of image ``i`` translated
  to domain ``d`` is the style of a test image of ``d``, drawn from ``d``'s dataset as a
  function of ``(seed, source dataset, i, d)`` only (batching changes nothing).

Each pass runs the pipeline of :mod:`starkit.evaluation.evaluate` with its own
:class:`~starkit.evaluation.evaluate.TranslationPlan`: accuracy, FID and the counterfactual
metrics pool over the styles, and ``style_diversity`` is the mean LPIPS-style distance between
the outputs of one image for one domain. The cycle ``G(G(x, d), d_x)`` takes its style from
the input itself where the translator reads references (the cycle of the paper's training
loss), else from the same latent code.
"""

from __future__ import annotations

import zlib
from typing import Any, Mapping, Sequence

import numpy as np

from ..domains import DomainSet
from ..labels import LabelSpace
from .classifier import AttributeClassifier
from .pipeline import METRICS, EvalOptions, TranslationPlan, evaluate_plan
from .targets import EvaluationError, Target

#: Outputs per image and domain when ``--styles`` is not given.
DEFAULT_STYLES = 4
#: The passes, in the order they run; the report's top-level numbers are the first's.
GUIDANCE = ("latent", "reference")
#: Mixed into the reference draws' seeds, so they share no stream with anything else keyed on the seed.
_REFERENCE_TAG = 0x4556_414C  # "EVAL"


def domain_targets(domains: DomainSet, source: str, source_labels: np.ndarray | None) -> list[Target]:
    """One target per domain, in the domains' order. A domain of the source's own dataset keeps
    the image's other labels (its counterfactual is the same face with that member or that side
    of the attribute); one of another dataset takes that dataset's first member of each other
    one-hot group, binary attributes off, as :func:`~starkit.evaluation.evaluate.targets_for`
    does. A binary side is reported as ``attribute=value``."""
    space = domains.space
    out = []
    for index, d in enumerate(domains.domains):
        if d.dataset == source and source_labels is not None:
            row = np.asarray(source_labels, dtype=np.float32).reshape(-1).copy()
        else:
            row = space.first_members_row(d.dataset)
        gs = next(g for g in space.group_slices(d.dataset) if g.group.name == d.group)
        if d.onehot:
            row[gs.local] = 0
        row[space.dataset(d.dataset).attributes.index(d.attribute)] = d.value
        kind = "onehot" if d.onehot else "binary"
        out.append(Target(d.dataset, d.group, kind, d.attribute, d.value, row,
                          entry=None if d.onehot else f"{d.attribute}={d.value}"))
    return out




class _Guided(TranslationPlan):
    """What both passes share: the domains as targets, ``styles`` outputs each, the
    ``style_diversity`` metric and the cycle back to the input's own domain."""

    def __init__(self, translator: Any, styles: int, seed: int):
        super().__init__(translator)
        self.translator = translator
        self.domains: DomainSet = translator.domains
        self.styles = styles
        self.seed = seed

    @property
    def metrics(self) -> tuple[str, ...]:
        return (*METRICS, "style_diversity")

    def targets(self, space: LabelSpace, source: str, source_labels: np.ndarray | None) -> list[Target]:
        return domain_targets(self.domains, source, source_labels)

    def reconstruct(self, evaluator: Any, batch: Any, xs: Any, y: Any, style: int) -> tuple[Any, np.ndarray | None]:
        """The outputs translated back to each input's own domain, in the input's own style
        (read off the input where the translator takes references); images whose labels name
        no domain (a one-hot group with no member set) have no cycle."""
        import torch

        if batch.source not in self.domains.space.names:
            return None, None
        own = self.domains.of_labels(batch.source, batch.labels)
        cycled = own >= 0
        if not cycled.any():
            return None, None
        stand_in = own[cycled][0]
        vectors = np.stack([self.domains.target_vector(int(d) if d >= 0 else int(stand_in)) for d in own])
        c_own = torch.from_numpy(vectors).to(evaluator.device).repeat(len(batch.per_image[0]), 1)
        tr = self.translator
        if tr.takes_reference:
            rec = evaluator._rows(lambda a, b, r: tr.translate_reference(a, b, r).float(), y, c_own, xs)
        else:
            rec = evaluator._rows(lambda a, b: tr.translate_latent(a, b, style=style, seed=self.seed).float(), y, c_own)
        return rec, None if cycled.all() else cycled


class _LatentGuided(_Guided):
    label = ", latent-guided"

    def outputs(self, evaluator: Any, batch: Any, xs: Any, c: Any, style: int) -> Any:
        tr, seed = self.translator, self.seed
        return evaluator._rows(lambda a, b: tr.translate_latent(a, b, style=style, seed=seed).float().clamp(-1, 1),
                               xs, c)


class ReferencePools:
    """Per domain, the test images of its dataset that belong to it (``pools[d]``: indices into
    ``stores[domains.domains[d].dataset]``'s ``split``), and the reproducible draw of references
    from them. ``missing``: the names of domains without one (no images, or no such split)."""

    def __init__(self, domains: DomainSet, stores: Mapping[str, Any], split: str):
        self.domains = domains
        self.stores = stores
        self.split = split
        self.pools: list[np.ndarray] = []
        members: dict[str, dict[int, np.ndarray]] = {}
        for name, store in stores.items():
            if name in domains.space.names and split in store.splits:
                members[name] = domains.members(name, store.labels(split))
        for index, d in enumerate(domains.domains):
            self.pools.append(members.get(d.dataset, {}).get(index, np.zeros(0, np.int64)))
        self.missing = [d.name for d, pool in zip(domains.domains, self.pools) if not len(pool)]

    def draw(self, seed: int, source: str, image: int, domain: int, count: int) -> np.ndarray:
        """``count`` test-split indices of images of ``domain`` for image ``image`` of ``source``
        (without repeats while the domain has enough images)."""
        pool = self.pools[domain]
        rng = np.random.default_rng([_REFERENCE_TAG, seed, zlib.crc32(source.encode("utf-8")), image, domain])
        return pool[rng.choice(len(pool), size=count, replace=len(pool) < count)]

    def read(self, domain: int, index: int) -> np.ndarray:
        """Test image ``index`` of ``domain``'s dataset (uint8 HWC)."""
        store = self.stores[self.domains.domains[domain].dataset]
        return store.read_image_labels(self.split, int(index))[0]


class _ReferenceGuided(_Guided):
    label = ", reference-guided"

    def __init__(self, translator: Any, styles: int, seed: int, pools: ReferencePools):
        super().__init__(translator, styles, seed)
        self.pools = pools
        self._references: Any = None  # [styles, T*B, 3, H, W] for the batch being measured

    def begin(self, evaluator: Any, batch: Any) -> None:
        """Draw and read the batch's references: row ``t*B + b`` of style ``k`` is image ``b``'s
        ``k``-th reference for domain ``t``."""
        import torch

        T, B, size = len(batch.per_image[0]), len(batch.indices), batch.x.shape[-1]
        drawn = [[self.pools.draw(self.seed, batch.source, int(i), t, self.styles) for i in batch.indices]
                 for t in range(T)]
        images = self._read({(t, int(j)) for t in range(T) for picks in drawn[t] for j in picks}, evaluator, size)
        order = [images[(t, int(picks[k]))] for k in range(self.styles) for t in range(T) for picks in drawn[t]]
        self._references = torch.stack(order).view(self.styles, T * B, 3, size, size)

    def _read(self, wanted: set[tuple[int, int]], evaluator: Any, size: int) -> dict[tuple[int, int], Any]:
        """``{(domain, index): image [3, size, size] in [-1, 1]}``, read and resized a dataset
        at a time (datasets may be stored at different sizes)."""
        by_dataset: dict[str, list[tuple[int, int]]] = {}
        for key in sorted(wanted):
            by_dataset.setdefault(self.pools.domains.domains[key[0]].dataset, []).append(key)
        out = {}
        for keys in by_dataset.values():
            images = evaluator.model_input(np.stack([self.pools.read(*key) for key in keys]), size)
            out.update(zip(keys, images))
        return out

    def outputs(self, evaluator: Any, batch: Any, xs: Any, c: Any, style: int) -> Any:
        tr = self.translator
        return evaluator._rows(lambda a, b, r: tr.translate_reference(a, b, r).float().clamp(-1, 1),
                               xs, c, self._references[style])


def evaluate_translator(
    translator: Any,
    stores: Sequence[Any],
    *,
    reference_stores: Mapping[str, Any] | None = None,
    classifier: AttributeClassifier | None = None,
    options: EvalOptions | None = None,
    inception: Any = None,
    alexnet: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a diverse translator on the test images of ``stores``: the report's body, whose
    ``datasets``/``summary`` are the latent-guided pass's and whose ``guidance`` holds each
    pass's. ``reference_stores``: the stores to draw references from, by dataset (default:
    ``stores``); the translator's datasets that are missing there get no references."""
    opts = options or EvalOptions()
    if opts.mask != "target":
        raise EvaluationError("--mask-ablation: this model has no mask vector (its targets are domains)")
    if getattr(translator, "domains", None) is None:
        raise EvaluationError(f"the {type(translator).__name__} translator is diverse but names no domains")
    styles = opts.styles or DEFAULT_STYLES
    plans: dict[str, TranslationPlan] = {"latent": _LatentGuided(translator, styles, opts.seed)}
    notes: list[str] = []
    if translator.takes_reference:
        pools = ReferencePools(translator.domains, reference_stores or {s.name: s for s in stores}, opts.split)
        if pools.missing:
            notes.append(f"reference-guided evaluation skipped: no {opts.split!r} image of domain "
                         f"{', '.join(pools.missing)} to take a style from")
        else:
            plans["reference"] = _ReferenceGuided(translator, styles, opts.seed, pools)
    passes = {name: evaluate_plan(plan, translator.label_space, stores, classifier=classifier, options=opts,
                                  device=translator.device, inception=inception, alexnet=alexnet, progress=progress)
              for name, plan in plans.items()}
    for body in passes.values():
        notes.extend(n for n in body["notes"] if n not in notes)
    latent = passes["latent"]
    return {
        "datasets": latent["datasets"],
        "summary": latent["summary"],
        "notes": notes,
        "styles": styles,
        "seed": opts.seed,
        "guidance": {name: {"datasets": body["datasets"], "summary": body["summary"]} if body else None
                     for name, body in ((g, passes.get(g)) for g in GUIDANCE)},
        "seconds": round(sum(body["seconds"] for body in passes.values()), 2),
    }


def open_reference_stores(translator: Any, stores: Sequence[Any], data_root: Any) -> tuple[dict[str, Any], list[str]]:
    """The stores references are drawn from, by dataset: ``stores`` and the translator's other
    datasets under ``data_root``; notes for those that cannot be opened (their domains then
    have no references)."""
    from ..errors import StarkitError
    from ..training.run import open_datasets

    out = {s.name: s for s in stores}
    notes = []
    if not getattr(translator, "takes_reference", False):
        return out, notes
    for name in translator.label_space.names:
        if name in out:
            continue
        try:
            out[name] = open_datasets([name], data_root)[0]
        except StarkitError as exc:
            notes.append(f"{name}: no reference images for its domains: {exc}")
    return out, notes
