"""The evaluation pipeline behind ``starkit eval``: translate every test image to every target
and measure the result.

For each source dataset ``d`` and each of its test images the targets are (see
:func:`targets_for`):

* every member of each of ``d``'s one-hot groups (the rest of the row keeps the image's labels),
* every binary attribute of ``d`` flipped,
* in a joint run, every member of each one-hot group of every *other* dataset ``e``, with
  ``e``'s mask: e.g. synth-rafd expressions on synth-celeba faces (the paper's Figure 6).

A source dataset outside the run's label space (a synth-rafd-only run shown synth-celeba
faces) gets only the third kind: its own labels mean nothing to the generator.

Each translation ``y = G(x, c)`` is measured by:

* target accuracy: the attribute classifier's prediction for the target group (one-hot: the
  arg-max member; binary: the flipped bit) equals the target,
* reconstruction L1 ``|x - G(y, c_x)|`` (sources in the label space),
* on synthetic datasets, L1 and PSNR against the exact counterfactual rendering of the same
  face with the target labels (from the parameters in the shards' ``meta``), next to the
  identity baseline (output = input) and the classifier's accuracy on those renderings,
* FID against the real test images and the LPIPS-style diversity of each image's outputs,
  when weight files are given.

``mask="source"`` is the mask-vector ablation of the paper's Figure 7: a target of another
dataset is written into that dataset's slice but the mask names the source dataset, so a
generator that relies on the mask should ignore it (accuracy near chance).

:func:`evaluate_generator` takes any generator; :func:`evaluate_run` loads one from a training run.
The result is a JSON-serialisable dict whose layout the README's "Evaluation" section
documents (``format`` "starkit.eval", ``version`` 1).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import StarkitError
from ..labels import LabelSpace
from .classifier import AttributeClassifier, to_model_range
from .metrics import (
    FID_HINT,
    LPIPS_HINT,
    RunningStats,
    changed_pixels,
    frechet_distance,
    l1,
    l1_parts,
    psnr,
    to_unit,
)

EVAL_FORMAT = "starkit.eval"
EVAL_VERSION = 1
MASK_MODES = ("target", "source")
TEST_SPLIT = "test"


class EvaluationError(StarkitError):
    """Evaluation cannot run as asked (missing split, unknown dataset, bad option)."""


# ------------------------------------------------------------------------------ targets
@dataclass(frozen=True)
class Target:
    """One translation target for one image: the target dataset's own label row, and which
    group/attribute the translation is judged on (``value``: the requested 0/1). ``entry``:
    the report's name for it when not the attribute's (a domain ``Male=1``, reported apart
    from ``Male=0``)."""

    dataset: str
    group: str
    kind: str  # "onehot" | "binary"
    attribute: str
    value: int
    labels: np.ndarray  # float32 [k of ``dataset``]
    entry: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dataset, self.group, self.entry or self.attribute)


def targets_for(label_space: LabelSpace, source: str, source_labels: np.ndarray | None) -> list[Target]:
    """Every target for one image of ``source`` whose labels are ``source_labels`` (``None``
    for a source outside the label space). The list's order and keys depend only on
    ``source``, so a batch's images share them position by position."""
    out: list[Target] = []
    own = source in label_space.names
    if own:
        row0 = np.asarray(source_labels, dtype=np.float32).reshape(-1)
        for gs in label_space.group_slices(source):
            for j, attr in enumerate(gs.group.attributes):
                row = row0.copy()
                if gs.group.kind == "onehot":
                    row[gs.local] = 0
                    row[gs.local_start + j] = 1
                    value = 1
                else:
                    value = 1 - int(row0[gs.local_start + j])
                    row[gs.local_start + j] = value
                out.append(Target(source, gs.group.name, gs.group.kind, attr, value, row))
    for other in label_space.names:
        if other == source:
            continue
        slices = label_space.group_slices(other)
        base = np.zeros(label_space.dataset(other).width, dtype=np.float32)
        # Other one-hot groups of the target dataset need a member too; their first stands in
        # (the translation is judged only on the requested group). Binary attributes stay off,
        # as in LabelSpace.target.
        for gs in slices:
            if gs.group.kind == "onehot":
                base[gs.local_start] = 1
        for gs in slices:
            if gs.group.kind != "onehot":
                continue
            for j, attr in enumerate(gs.group.attributes):
                row = base.copy()
                row[gs.local] = 0
                row[gs.local_start + j] = 1
                out.append(Target(other, gs.group.name, "onehot", attr, 1, row))
    return out


def condition(label_space: LabelSpace, targets: Sequence[Target], source: str, mask: str = "target") -> np.ndarray:
    """Conditioning vectors ``[B, dim]`` for one target per image. ``mask="source"`` marks the
    source dataset in the mask instead of the target's (the Figure 7 ablation)."""
    c = np.stack([label_space.encode(t.dataset, t.labels) for t in targets]).astype(np.float32)
    if mask == "source" and label_space.mask_dim and source in label_space.names:
        c[:, label_space.mask_slice] = 0
        c[:, label_space.label_dim + label_space.index(source)] = 1
    return c


def chance_level(kind: str, width: int) -> float:
    """Accuracy of guessing: one in ``width`` for a one-hot group, one half for a bit."""
    return 1.0 / width if kind == "onehot" else 0.5


# ------------------------------------------------------------------------------ judging
class Judge:
    """Scores translations with an attribute classifier, matching attributes by name so a
    classifier trained on a differently ordered label space still judges correctly."""

    def __init__(self, classifier: AttributeClassifier):
        self.classifier = classifier
        self.space = classifier.label_space
        self._where: dict[tuple[str, str], tuple[str, Any, int]] = {}
        for d in self.space.datasets:
            for gs in self.space.group_slices(d.name):
                for j, attr in enumerate(gs.group.attributes):
                    self._where[(d.name, attr)] = (gs.group.kind, gs, j)

    def can_judge(self, dataset: str, attribute: str, kind: str) -> bool:
        found = self._where.get((dataset, attribute))
        return found is not None and found[0] == kind

    def hits(self, logits: Any, targets: Sequence[Target]) -> np.ndarray | None:
        """Per image, whether the classifier sees its target (``targets[b]`` for image ``b``, all
        with the same dataset, group and attribute) in its logits ``[B, label_dim]``; ``None``
        when this classifier has no head for that attribute."""
        first = targets[0]
        if not self.can_judge(first.dataset, first.attribute, first.kind):
            return None
        kind, gs, j = self._where[(first.dataset, first.attribute)]
        logits = np.asarray(logits.cpu())[:, gs.joint]
        if kind == "onehot":
            return logits.argmax(1) == j
        wanted = np.array([t.value for t in targets])
        return (logits[:, j] > 0).astype(int) == wanted


# ------------------------------------------------------------------------------ counterfactuals
def counterfactual_renderer(meta: Mapping[str, Any] | None) -> tuple[Any, str | None]:
    """For a synthetic image's ``meta``: ``(render, None)`` with ``render(dataset, {attr: 0/1},
    size, other_seed=False) -> uint8 image`` drawing the same face with other labels (with
    ``other_seed``, as another equally real picture: other sensor noise and hair texture,
    :func:`starkit.synth.params.with_other_seed`); ``(None, reason)`` when there is no exact
    counterfactual (no face parameters, or a different renderer version)."""
    if not meta or "params" not in meta:
        return None, None  # not a synthetic face: nothing to say
    from ..synth.faces import FaceParams, render_face, with_labels, with_other_seed

    try:
        params = FaceParams.from_dict(meta["params"])
    except StarkitError as exc:
        return None, f"counterfactuals unavailable: {exc}"

    def render(dataset: str, labels: Mapping[str, int], size: int, other_seed: bool = False) -> np.ndarray:
        target = with_labels(params, dataset, labels)
        return render_face(with_other_seed(target) if other_seed else target, size)

    return render, None


# ------------------------------------------------------------------------------ accumulation
class _Mean:
    """Running sum and count; ``value`` is ``None`` when empty."""

    __slots__ = ("total", "count")

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def add(self, values: Any) -> None:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        self.total += float(v.sum())
        self.count += int(v.size)

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


def _rounded(x: float | None, digits: int = 6) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, digits)


class _SourceTally:
    """Everything measured for one source dataset."""

    def __init__(self) -> None:
        self.images = 0
        self.real_pred: list[np.ndarray] = []
        self.real_true: list[np.ndarray] = []
        # keyed by (target dataset, group, attribute) and metric name
        self.metrics: dict[tuple[str, str, str], dict[str, _Mean]] = defaultdict(lambda: defaultdict(_Mean))
        self.diversity = _Mean()
        self.fid_real: RunningStats | None = None
        self.fid_real_cached = False  # the real side came from the cache (fid_cache)
        self.fid_fake: RunningStats | None = None
        self.notes: set[str] = set()


# ------------------------------------------------------------------------------ the pipeline
@dataclass
class EvalOptions:
    """How to evaluate. ``limit``: test images per source dataset (``None``: all);
    ``batch_size``: images translated at once (each to every target); ``workers``: processes
    that draw the counterfactual renderings (``None``: as :func:`~starkit.evaluation.rendering.plan_cpu`
    picks; 0: in this process). ``styles``: outputs per image and target of a diverse
    translator (``None``: :data:`~starkit.evaluation.diverse.DEFAULT_STYLES`; others make one),
    drawn from ``seed`` (latent codes and reference images)."""

    limit: int | None = None
    batch_size: int = 16
    mask: str = "target"
    split: str = TEST_SPLIT
    image_size: int | None = None  # None: the generator's training size, else the shards'
    workers: int | None = None
    styles: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mask not in MASK_MODES:
            raise EvaluationError(f"mask must be one of {MASK_MODES}, got {self.mask!r}")
        if self.limit is not None and self.limit < 1:
            raise EvaluationError(f"--limit must be at least 1, got {self.limit}")
        if self.batch_size < 1:
            raise EvaluationError(f"batch size must be at least 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 0:
            raise EvaluationError(f"workers must be 0 or more, got {self.workers}")
        if self.styles is not None and self.styles < 1:
            raise EvaluationError(f"--styles must be at least 1, got {self.styles}")
        if self.seed < 0:
            raise EvaluationError(f"--seed must be 0 or more, got {self.seed}")


class TranslationPlan:
    """How the pipeline translates a batch: each image's targets, ``styles`` outputs per image
    and target, and the cycle back to the input. This one drives a generator ``G(x, c)``: the
    targets of :func:`targets_for`, one output per target, the cycle ``G(y, c_x)``. A diverse
    translator has its own plans (:mod:`starkit.evaluation.diverse`)."""

    styles = 1
    #: What the progress bar adds to a batch's description (the guidance of a diverse pass).
    label = ""

    def __init__(self, generator: Any):
        self.generator = generator

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric block's names in this plan's report."""
        return METRICS

    def targets(self, space: LabelSpace, source: str, source_labels: np.ndarray | None) -> list[Target]:
        return targets_for(space, source, source_labels)

    def begin(self, evaluator: "_BatchEvaluator", batch: "_Batch") -> None:
        """Called once for each batch, before its outputs."""

    def outputs(self, evaluator: "_BatchEvaluator", batch: "_Batch", xs: Any, c: Any, style: int) -> Any:
        """Output ``style`` for the rows ``xs`` ``[T*B,3,H,W]`` (target-major) and their targets ``c``."""
        return evaluator._rows(lambda a, b: self.generator(a, b).float().clamp(-1, 1), xs, c)

    def reconstruct(self, evaluator: "_BatchEvaluator", batch: "_Batch", xs: Any, y: Any,
                    style: int) -> tuple[Any, np.ndarray | None]:
        """``(cycle, rows)``: the outputs ``y`` translated back to the inputs' own labels
        (``None`` for a source outside the label space) and which of the batch's images have
        a cycle (``None``: all)."""
        import torch

        space = evaluator.space
        if batch.source not in space.names:
            return None, None
        targets = len(batch.per_image[0])
        c_orig = torch.from_numpy(space.encode(batch.source, batch.labels)).to(evaluator.device).repeat(targets, 1)
        return evaluator._rows(lambda a, b: self.generator(a, b).float(), y, c_orig), None


def evaluate_generator(
    generator: Any,
    label_space: LabelSpace,
    stores: Sequence[Any],
    *,
    classifier: AttributeClassifier | None = None,
    options: EvalOptions | None = None,
    device: Any = "cpu",
    inception: Any = None,
    alexnet: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate ``generator`` (``G(x [B,3,H,W] in [-1,1], c [B,dim]) -> images``: a network, or
    a family translator's ``translate``) on the test
    split of each shard store in ``stores``. ``inception`` / ``alexnet``:
    :class:`~starkit.evaluation.metrics.InceptionFeatures` / ``AlexNetDistance`` instances,
    or ``None`` (their metrics are then reported as not computed, with the hint to enable
    them). Returns the report's ``datasets``/``summary``/``notes`` part; :func:`evaluate_run`
    adds the run's description around it."""
    was_training = getattr(generator, "training", False)
    if hasattr(generator, "eval"):
        generator.eval()
    try:
        return evaluate_plan(TranslationPlan(generator), label_space, stores, classifier=classifier, options=options,
                             device=device, inception=inception, alexnet=alexnet, progress=progress)
    finally:
        if hasattr(generator, "train"):
            generator.train(was_training)


def evaluate_plan(
    plan: TranslationPlan,
    label_space: LabelSpace,
    stores: Sequence[Any],
    *,
    classifier: AttributeClassifier | None = None,
    options: EvalOptions | None = None,
    device: Any = "cpu",
    inception: Any = None,
    alexnet: Any = None,
    progress: bool = True,
) -> dict[str, Any]:
    """:func:`evaluate_generator` for any :class:`TranslationPlan`: the report's
    ``datasets``/``summary``/``notes`` part."""
    from .progress import progress_bar

    opts = options or EvalOptions()
    judge = Judge(classifier) if classifier is not None else None
    notes = _missing_metric_notes(judge, inception, alexnet)
    notes.extend(_check_stores(stores, label_space, classifier, opts, plan))
    counts = {s.name: s.count(opts.split) if opts.limit is None else min(opts.limit, s.count(opts.split)) for s in stores}
    tallies = {s.name: _SourceTally() for s in stores}
    to_cache = _cached_real_fid(stores, counts, tallies, opts, inception)
    started = time.perf_counter()
    with _cpu_plan(opts, device, stores) as pool, progress_bar(progress) as bar:
        run_batch = _BatchEvaluator(plan, label_space, judge, opts, device, inception, alexnet, pool)
        task = _translate_all(run_batch, stores, counts, tallies, bar)
        bar.update(task, description="report (FID, accuracy)")
        notes.extend(_save_real_fid(to_cache, tallies))
        datasets = {s.name: _dataset_report(s, tallies[s.name], label_space, judge, inception, alexnet, plan.metrics)
                    for s in stores}
    for name, tally in tallies.items():
        notes.extend(f"{name}: {note}" for note in sorted(tally.notes))
    report = {"datasets": datasets, "notes": notes, "seconds": round(time.perf_counter() - started, 2)}
    report["summary"] = _summary(report["datasets"], plan.metrics)
    return report


def _missing_metric_notes(judge: Judge | None, inception: Any, alexnet: Any) -> list[str]:
    """A note, with the option that enables it, for each metric that will not be computed."""
    notes: list[str] = []
    if judge is None:
        notes.append("target accuracy not computed: pass --classifier FILE (train one with `starkit train-classifier`)")
    if inception is None:
        notes.append(FID_HINT)
    if alexnet is None:
        notes.append(LPIPS_HINT)
    return notes


def _check_stores(stores: Sequence[Any], label_space: LabelSpace, classifier: AttributeClassifier | None,
                  opts: EvalOptions, plan: TranslationPlan) -> list[str]:
    """Refuse, before any work, a store without the split or with nothing to translate to;
    returns a note for each source whose own targets the classifier cannot judge."""
    notes: list[str] = []
    for store in stores:
        if opts.split not in store.splits:
            raise EvaluationError(f"{store.path}: dataset has no {opts.split!r} split; splits: {', '.join(store.splits)}")
        if not plan.targets(label_space, store.name, np.zeros(label_space.dataset(store.name).width)
                            if store.name in label_space.names else None):
            raise EvaluationError(
                f"dataset {store.name!r} is not in the model's label space ({', '.join(label_space.names)}) "
                "and the model has no one-hot group to carry over to it: nothing to translate"
            )
        if classifier is not None and not classifier.knows(store.name) and store.name in label_space.names:
            notes.append(f"{store.name}: the classifier has no head for this dataset; its targets are not judged")
    return notes


def _translate_all(run_batch: "_BatchEvaluator", stores: Sequence[Any], counts: Mapping[str, int],
                   tallies: Mapping[str, _SourceTally], bar: Any) -> Any:
    """Every batch of every store, one batch ahead: the next batch's renderings are drawn by
    the workers while this one's networks run. The bar counts translations; returns its task."""
    per_image = {s.name: run_batch.targets_per_image(s.name) * run_batch.plan.styles for s in stores}
    task = bar.add_task("translate", total=sum(counts[n] * per_image[n] for n in counts), status="")
    pending: tuple[_Batch, Any] | None = None
    for store in stores:
        tally = tallies[store.name]
        for start in range(0, counts[store.name], run_batch.opts.batch_size):
            batch = run_batch.prepare(store, range(start, min(counts[store.name], start + run_batch.opts.batch_size)), tally)
            if pending is not None:
                _finish(run_batch, *pending, bar, task)
            pending = (batch, tally)
    if pending is not None:
        _finish(run_batch, *pending, bar, task)
    return task


def _finish(run_batch: "_BatchEvaluator", batch: "_Batch", tally: _SourceTally, bar: Any, task: Any) -> None:
    targets = len(batch.per_image[0])
    bar.update(task, description=f"translate {batch.source}{run_batch.plan.label} ({targets} targets per image)")
    run_batch.measure(batch, tally)
    bar.update(task, advance=len(batch.labels) * targets * run_batch.plan.styles, status=_status(tally))


@contextlib.contextmanager
def _cpu_plan(opts: EvalOptions, device: Any, stores: Sequence[Any]) -> Iterator[Any]:
    """The render workers, and torch's thread count while they run (restored afterwards);
    no workers, and torch's threads untouched, when no store has faces to re-render or
    ``opts.workers`` is 0."""
    import torch

    from .rendering import RenderPool, plan_cpu

    if not any(_has_face_params(s, opts.split) for s in stores):
        yield RenderPool(0)
        return
    workers, threads = plan_cpu(opts.workers, on_cpu=torch.device(device).type == "cpu")
    if workers == 0:
        yield RenderPool(0)
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with RenderPool(workers) as pool:
            yield pool
    finally:
        torch.set_num_threads(before)


def _cached_real_fid(stores: Sequence[Any], counts: Mapping[str, int], tallies: Mapping[str, _SourceTally],
                     opts: EvalOptions, inception: Any) -> dict[str, str]:
    """Put the real images' Inception statistics that an earlier evaluation saved into the
    tallies; returns the cache keys of those still to compute (and save), by dataset. Only
    feature networks that say what they are (``identity``) are cached."""
    identity = getattr(inception, "identity", None)
    if identity is None:
        return {}
    from .fid_cache import load_real_stats, real_stats_key

    missing = {}
    for s in stores:
        key = real_stats_key(s, opts.split, counts[s.name], opts.image_size or s.image_size, identity)
        cached = load_real_stats(key, inception.dim)
        if cached is not None and cached.count == counts[s.name]:
            tallies[s.name].fid_real, tallies[s.name].fid_real_cached = cached, True
        else:
            missing[s.name] = key
    return missing


def _save_real_fid(keys: Mapping[str, str], tallies: Mapping[str, _SourceTally]) -> list[str]:
    """Save the real-image statistics computed in this evaluation; notes for those that failed."""
    from .fid_cache import save_real_stats

    reasons = (save_real_stats(key, tallies[name].fid_real) for name, key in keys.items()
               if tallies[name].fid_real is not None)
    return [reason for reason in reasons if reason]


def _has_face_params(store: Any, split: str) -> bool:
    """Whether the store's images carry face parameters (synthetic datasets): the first test
    image tells, as ingestion writes the same kind of meta for every image of a dataset."""
    if not store.count(split):
        return False
    meta = store.read(split, 0)[3]
    return bool(meta) and "params" in meta


def _status(t: _SourceTally) -> str:
    parts = []
    acc = _pooled(t.metrics, "accuracy")
    if acc is not None:
        parts.append(f"acc {acc:.3f}")
    rec = _pooled(t.metrics, "reconstruction_l1")
    if rec is not None:
        parts.append(f"rec L1 {rec:.4f}")
    return " ".join(parts)


def _pooled(metrics: Mapping[Any, Mapping[str, _Mean]], name: str, keys: Iterable[Any] | None = None) -> float | None:
    total = _Mean()
    for key in (metrics if keys is None else keys):
        m = metrics[key].get(name) if key in metrics else None
        if m is not None and m.count:
            total.total += m.total
            total.count += m.count
    return total.value


@dataclass
class _Batch:
    """One batch of a source's test images, their targets (``per_image[b][t]``: the same
    keys at each ``t``) and their renderings on the way (``renders[b]``; ``None`` for an image
    without face parameters)."""

    source: str
    x: Any
    labels: np.ndarray
    per_image: list[list[Target]]
    renders: list[Any]
    indices: Sequence[int] = ()  # the images' positions in the source's split


#: Pixels per network call (64 images at 32 px): big enough to keep the calls' overhead small,
#: small enough that activations of larger images stay within cache and memory.
PIXELS_PER_CALL = 64 * 32 * 32


class _BatchEvaluator:
    """Translates one batch of a source dataset's test images to every target and adds the
    measurements to that source's tally. All of a batch's translations go through each
    network together (``rows``: target-major, row ``t * B + b`` is image ``b`` to its target
    ``t``), in calls of at most :data:`PIXELS_PER_CALL` pixels."""

    def __init__(self, plan: TranslationPlan, label_space: LabelSpace, judge: Judge | None, opts: EvalOptions,
                 device: Any, inception: Any, alexnet: Any, pool: Any):
        self.plan = plan
        self.space = label_space
        self.judge = judge
        self.opts = opts
        self.device = device
        self.inception = inception
        self.alexnet = alexnet
        self.pool = pool

    def targets_per_image(self, source: str) -> int:
        own = source in self.space.names
        return len(self.plan.targets(self.space, source, np.zeros(self.space.dataset(source).width) if own else None))

    def model_input(self, images: np.ndarray, size: int) -> Any:
        """uint8 images ``[N,H,W,3]`` as the model takes them: ``[N,3,size,size]`` in [-1, 1] on the device."""
        import torch
        import torch.nn.functional as F

        x = to_model_range(torch.from_numpy(images).permute(0, 3, 1, 2)).to(self.device)
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return x

    def _inputs(self, store: Any, indices: range) -> tuple[Any, np.ndarray, list[Mapping[str, Any] | None]]:
        records = [store.read(self.opts.split, i) for i in indices]
        x = self.model_input(np.stack([r[0] for r in records]), self.opts.image_size or store.image_size)
        return x, np.stack([r[1] for r in records]).astype(np.float32), [r[3] for r in records]

    def prepare(self, store: Any, indices: range, tally: _SourceTally) -> _Batch:
        """Read a batch and send its renderings to the workers."""
        source = store.name
        in_space = source in self.space.names
        x, labels, metas = self._inputs(store, indices)
        per_image = [self.plan.targets(self.space, source, labels[b] if in_space else None) for b in range(len(labels))]
        renders: list[Any] = []
        for meta, targets in zip(metas, per_image):
            render, reason = counterfactual_renderer(meta)
            if reason:
                tally.notes.add(reason)
            renders.append(None if render is None else self.pool.submit((meta, _requests(self.space, targets), x.shape[-1])))
        return _Batch(source, x, labels, per_image, renders, indices)

    def _rows(self, fn: Any, *tensors: Any) -> Any:
        """``fn`` over the rows of ``tensors`` in calls of at most :data:`PIXELS_PER_CALL` pixels."""
        import torch

        n, side = tensors[0].shape[0], tensors[0].shape[-1]
        step = max(1, PIXELS_PER_CALL // (side * side))
        return torch.cat([fn(*(t[i:i + step] for t in tensors)) for i in range(0, n, step)])

    def measure(self, batch: _Batch, tally: _SourceTally) -> None:
        """Translate the batch to every target (``plan.styles`` outputs each) and add what is
        measured to ``tally``."""
        import torch

        T = len(batch.per_image[0])
        by_target = [[targets_b[t] for targets_b in batch.per_image] for t in range(T)]
        tally.images += len(batch.labels)
        with torch.inference_mode():
            self._measure_real(batch, tally)
            c = torch.from_numpy(np.concatenate([condition(self.space, ts, batch.source, self.opts.mask)
                                                 for ts in by_target]))
            xs = batch.x.repeat(T, 1, 1, 1)
            self.plan.begin(self, batch)
            truth = _Truths(self, batch)
            outputs = []
            for style in range(self.plan.styles):
                y = self.plan.outputs(self, batch, xs, c.to(self.device), style)
                self._measure_outputs(batch, tally, by_target, xs, y, style, truth)
                if self.alexnet is not None and self.plan.styles > 1:
                    outputs.append(y)
            if outputs:
                self._measure_style_diversity(tally, by_target, outputs)

    def _measure_real(self, batch: _Batch, tally: _SourceTally) -> None:
        """The classifier's predictions on the real images and their Inception features."""
        judge = self.judge
        if judge is not None and judge.classifier.knows(batch.source):
            tally.real_pred.append(np.asarray(judge.classifier.predict(batch.x, batch.source).cpu()))
            tally.real_true.append(batch.labels)
        if self.inception is not None:
            tally.fid_real = tally.fid_real or RunningStats(self.inception.dim)
            tally.fid_fake = tally.fid_fake or RunningStats(self.inception.dim)
            if not tally.fid_real_cached:
                tally.fid_real.update(self.inception(batch.x))

    def _measure_outputs(self, batch: _Batch, tally: _SourceTally, by_target: list[list[Target]], xs: Any, y: Any,
                         style: int, truth: "_Truths") -> None:
        """Everything measured on one output ``y`` per row (target-major): accuracy, cycle,
        counterfactuals, FID's fakes and the distance between one image's targets."""
        import torch

        x, B, judge = batch.x, len(batch.labels), self.judge
        in_space = batch.source in self.space.names
        rec, cycled = self.plan.reconstruct(self, batch, xs, y, style)
        logits = self._rows(judge.classifier.logits, y) if judge is not None else None
        embeddings = []
        for t, targets in enumerate(by_target):
            rows = slice(t * B, (t + 1) * B)
            bucket = tally.metrics[targets[0].key]
            bucket["translations"].add(np.ones(B))
            if rec is not None:
                errors = l1(to_unit(rec[rows]), to_unit(x)).cpu()
                bucket["reconstruction_l1"].add(errors if cycled is None else np.asarray(errors)[cycled])
            if logits is not None:
                hit = judge.hits(logits[rows], targets)
                if hit is not None:
                    bucket["accuracy"].add(hit)
            truth.measure(bucket, t, targets, x, y[rows])
            # FID compares with real images of the source dataset: only its own targets.
            if self.inception is not None and (not in_space or targets[0].dataset == batch.source):
                tally.fid_fake.update(self.inception(y[rows]))
            if self.alexnet is not None:
                embeddings.append(self.alexnet.embed(y[rows]))
        if len(embeddings) > 1:
            pairs = [self.alexnet.distance(embeddings[i], embeddings[j]).cpu()
                     for i in range(len(embeddings)) for j in range(i + 1, len(embeddings))]
            tally.diversity.add(torch.stack(pairs).mean(0))

    def _measure_style_diversity(self, tally: _SourceTally, by_target: list[list[Target]], outputs: list[Any]) -> None:
        """Per image and target, the mean distance between its outputs of different styles."""
        import torch

        B = len(by_target[0])
        for t, targets in enumerate(by_target):
            rows = slice(t * B, (t + 1) * B)
            embeddings = [self.alexnet.embed(y[rows]) for y in outputs]
            pairs = [self.alexnet.distance(embeddings[i], embeddings[j]).cpu()
                     for i in range(len(embeddings)) for j in range(i + 1, len(embeddings))]
            tally.metrics[targets[0].key]["style_diversity"].add(torch.stack(pairs).mean(0))


def _requests(space: LabelSpace, targets: Sequence[Target]) -> list[tuple[str, dict[str, int]]]:
    """What each target asks the renderer for: its dataset and that dataset's labels."""
    return [(t.dataset, {a: int(v) for a, v in zip(space.dataset(t.dataset).attributes, t.labels)}) for t in targets]


class _Truths:
    """A batch's exact counterfactuals (and the other seed's renderings of them), collected
    from the workers, and the classifier's logits on them, for the images that have them."""

    def __init__(self, evaluator: _BatchEvaluator, batch: _Batch):
        import torch

        self.rows = [b for b, r in enumerate(batch.renders) if r is not None]
        self.logits = None
        if not self.rows:
            return
        drawn = np.stack([evaluator.pool.result(batch.renders[b]) for b in self.rows], axis=1)  # [T, B', 2, H, W, 3]
        images = to_model_range(torch.from_numpy(drawn).permute(0, 1, 2, 5, 3, 4)).to(batch.x.device)
        self.exact, self.other = images[:, :, 0], images[:, :, 1]  # [T, B', 3, H, W] each
        self.judge = evaluator.judge
        if self.judge is not None:
            flat = self.exact.flatten(0, 1)
            self.logits = evaluator._rows(self.judge.classifier.logits, flat).view(*self.exact.shape[:2], -1)

    def measure(self, bucket: Mapping[str, _Mean], t: int, targets: Sequence[Target], x: Any, y: Any) -> None:
        """L1/PSNR of outputs, of the inputs (identity baseline) and of another rendering of
        the same counterfactual (other noise and hair texture: what a perfect translation that
        cannot know the exact noise scores) against the exact counterfactual renderings, for
        the images that have one. The outputs' L1 is also split between the pixels the
        counterfactual changes and those it leaves as they were (what a translation changed
        that its target does not concern)."""
        if not self.rows:
            return
        rows = self.rows
        gt_u, y_u, x_u = to_unit(self.exact[t]), to_unit(y[rows]), to_unit(x[rows])
        bucket["counterfactual_l1"].add(l1(y_u, gt_u).cpu())
        changed = changed_pixels(x_u, gt_u)
        where_changed, where_unchanged = l1_parts(y_u, gt_u, changed)
        bucket["counterfactual_l1_changed"].add(where_changed.cpu())
        bucket["counterfactual_l1_unchanged"].add(where_unchanged.cpu())
        bucket["changed_fraction"].add(changed.flatten(1).float().mean(1).cpu())
        bucket["counterfactual_psnr"].add(psnr(y_u, gt_u).cpu())
        bucket["identity_l1"].add(l1(x_u, gt_u).cpu())
        bucket["identity_psnr"].add(psnr(x_u, gt_u).cpu())
        other_u = to_unit(self.other[t])
        bucket["resample_l1"].add(l1(other_u, gt_u).cpu())
        bucket["resample_psnr"].add(psnr(other_u, gt_u).cpu())
        if self.logits is not None:
            hit = self.judge.hits(self.logits[t], [targets[b] for b in rows])
            if hit is not None:
                bucket["ground_truth_accuracy"].add(hit)


# ------------------------------------------------------------------------------ the report
METRICS = (
    "accuracy",
    "reconstruction_l1",
    "counterfactual_l1",
    "counterfactual_l1_changed",
    "counterfactual_l1_unchanged",
    "changed_fraction",
    "counterfactual_psnr",
    "identity_l1",
    "identity_psnr",
    "resample_l1",
    "resample_psnr",
    "ground_truth_accuracy",
)


def _metric_block(metrics: Mapping[Any, Mapping[str, _Mean]], keys: list[Any],
                  names: Sequence[str] = METRICS) -> dict[str, Any]:
    block: dict[str, Any] = {"translations": sum(_count(metrics[k]) for k in keys)}
    for name in names:
        block[name] = _rounded(_pooled(metrics, name, keys))
    return block


def _count(bucket: Mapping[str, _Mean]) -> int:
    return bucket["translations"].count if "translations" in bucket else 0


def _dataset_report(
    store: Any,
    tally: _SourceTally,
    label_space: LabelSpace,
    judge: Judge | None,
    inception: Any,
    alexnet: Any,
    names: Sequence[str] = METRICS,
) -> dict[str, Any]:
    from .classifier import group_accuracy

    in_space = store.name in label_space.names
    by_dataset: dict[str, dict[str, dict[str, list]]] = {}
    for key in tally.metrics:
        ds, group, attr = key
        by_dataset.setdefault(ds, {}).setdefault(group, {}).setdefault(attr, []).append(key)
    targets: dict[str, Any] = {}
    for ds, groups in by_dataset.items():
        group_reports = {}
        for gname, attrs in groups.items():
            gs = next(g for g in label_space.group_slices(ds) if g.group.name == gname)
            keys = [k for ks in attrs.values() for k in ks]
            block = _metric_block(tally.metrics, keys, names)
            block["kind"] = gs.group.kind
            block["chance"] = round(chance_level(gs.group.kind, len(gs.group.attributes)), 6)
            block["attributes"] = {a: _metric_block(tally.metrics, ks, names) for a, ks in attrs.items()}
            group_reports[gname] = block
        all_keys = [k for g in groups.values() for ks in g.values() for k in ks]
        targets[ds] = {**_metric_block(tally.metrics, all_keys, names), "groups": group_reports}
    real = None
    if tally.real_pred:
        real = group_accuracy(np.concatenate(tally.real_pred), np.concatenate(tally.real_true), judge.classifier.label_space, store.name)
        real = {g: {**r, "accuracy": _rounded(r["accuracy"]),
                    "attributes": {a: _rounded(v) for a, v in r["attributes"].items()}} for g, r in real.items()}
    all_keys = list(tally.metrics)
    fid = None
    if inception is not None and tally.fid_real is not None and tally.fid_real.count > 1 and tally.fid_fake.count > 1:
        fid = _rounded(frechet_distance(tally.fid_real.stats(), tally.fid_fake.stats()))
    return {
        "images": tally.images,
        "in_label_space": in_space,
        "real_accuracy": real,
        "targets": targets,
        **_metric_block(tally.metrics, all_keys, names),
        "fid": fid,
        "lpips_uncalibrated_diversity": _rounded(tally.diversity.value) if alexnet is not None else None,
    }


def _summary(datasets: Mapping[str, Mapping[str, Any]], names: Sequence[str] = METRICS) -> dict[str, Any]:
    """Translation-weighted means over source datasets."""

    def weighted(name: str) -> float | None:
        num = den = 0.0
        for d in datasets.values():
            v, n = d.get(name), d.get("translations", 0)
            if v is not None and n:
                num += v * n
                den += n
        return _rounded(num / den) if den else None

    return {
        "images": sum(d["images"] for d in datasets.values()),
        "translations": sum(d.get("translations", 0) for d in datasets.values()),
        **{name: weighted(name) for name in names},
    }


# ------------------------------------------------------------------------------ a training run
def _checkpoint_facts(path: Path) -> dict[str, Any]:
    """Iteration and model family of a checkpoint, read memory-mapped (the weights stay on
    disk; the translator has loaded them already)."""
    from ..torch_files import read_tensor_file

    try:
        data = read_tensor_file(path, expected="a starkit checkpoint", mmap=True)
    except StarkitError:  # the translator has already validated the file; facts are optional
        return {}
    return {"iteration": data.get("iteration"), "model": data.get("model")}


def _git_commit() -> str | None:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def evaluate_run(
    run: str | Path | None = None,
    data_root: str | Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    classifier: str | Path | AttributeClassifier | None = None,
    sources: Sequence[str] | None = None,
    options: EvalOptions | None = None,
    device: str = "auto",
    inception_weights: str | Path | None = None,
    alexnet_weights: str | Path | None = None,
    progress: bool = True,
    weights: str = "auto",
) -> dict[str, Any]:
    """Evaluate a training run (its ``checkpoints/latest.pt``) or a ``checkpoint`` file on the
    test splits under ``data_root`` (default: the run's own data root, else the usual
    resolution). ``sources``: datasets whose test images are translated (default: the run's);
    one outside the run's label space gets only other datasets' targets. Returns the full
    JSON report (``format`` "starkit.eval"). ``weights``: which generator weights, as in
    :func:`starkit.inference.load_translator` (the moving average when the run kept one). The
    checkpoint's model family translates (:class:`starkit.inference.Translator`)."""
    from ..training.run import open_datasets
    from .metrics import AlexNetDistance, InceptionFeatures

    if (run is None) == (checkpoint is None):
        raise EvaluationError("give exactly one of a run directory (--run) or a checkpoint file (--checkpoint)")
    opts = options or EvalOptions()
    started = time.perf_counter()
    translator, run_config = _open_translator(run, checkpoint, device, weights)
    space = translator.label_space
    root = data_root if data_root is not None else run_config.get("data_root")
    names = list(sources) if sources else list(space.names)
    if len(set(names)) != len(names):
        raise EvaluationError(f"dataset listed twice in {names}")
    clf = _judging_classifier(classifier, translator.device, set(names) | set(space.names))
    inception = InceptionFeatures(inception_weights, translator.device) if inception_weights else None
    alexnet = AlexNetDistance(alexnet_weights, translator.device) if alexnet_weights else None
    if opts.image_size is None:
        opts = EvalOptions(**{**opts.__dict__, "image_size": translator.image_size})
    stores = open_datasets(names, root)
    read = list(stores)  # and, for a diverse translator, the datasets its references come from
    try:
        body = _evaluate_stores(translator, stores, root, read, classifier=clf, options=opts, inception=inception,
                                alexnet=alexnet, progress=progress)
    finally:
        for s in read:
            s.close()
    return {
        **_run_description(run, translator, read, opts),
        **_judges_description(clf, inception, inception_weights, alexnet, alexnet_weights),
        **body,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _evaluate_stores(translator: Any, stores: Sequence[Any], root: Any, read: list[Any], **kw: Any) -> dict[str, Any]:
    """The report's body for the translator: :func:`evaluate_generator` on its ``translate``, or
    for a diverse translator :func:`~starkit.evaluation.diverse.evaluate_translator` (whose
    references' stores are added to ``read``, to be closed by the caller)."""
    if not getattr(translator, "diverse", False):
        body = evaluate_generator(translator.translate, translator.label_space, stores, device=translator.device, **kw)
        body["notes"].extend(_single_output_notes(kw["options"]))
        return body
    from .diverse import evaluate_translator, open_reference_stores

    references, reference_notes = open_reference_stores(translator, stores, root)
    read += [s for s in references.values() if s not in stores]
    body = evaluate_translator(translator, stores, reference_stores=references, **kw)
    body["notes"] = reference_notes + body["notes"]
    return body


def _single_output_notes(opts: EvalOptions) -> list[str]:
    """Notes for options that only a diverse translator (several outputs per target) uses."""
    given = [flag for flag, used in (("--styles", opts.styles not in (None, 1)), ("--seed", opts.seed != 0)) if used]
    return [f"{' and '.join(given)} ignored: this model makes one output per target"] if given else []


def _open_translator(run: str | Path | None, checkpoint: str | Path | None, device: str,
                     weights: str) -> tuple[Any, dict[str, Any]]:
    """The translator of the run's latest checkpoint (or of ``checkpoint``) and the run's
    config (empty for a bare checkpoint, or a run without config.json)."""
    from ..inference import Translator
    from ..training.run import read_run_config

    if run is not None:
        translator = Translator.from_run(run, device, weights=weights)
        return translator, read_run_config(Path(run)) if (Path(run) / "config.json").is_file() else {}
    return Translator.from_checkpoint(checkpoint, device, weights=weights), {}


def _judging_classifier(classifier: str | Path | AttributeClassifier | None, device: Any,
                        datasets: set[str]) -> AttributeClassifier | None:
    """The attribute classifier (loaded from its file when given one), refused when it has a
    head for none of ``datasets`` (the sources and the model's own)."""
    from .classifier import load_classifier

    clf = classifier
    if clf is not None and not isinstance(clf, AttributeClassifier):
        clf = load_classifier(clf, device)
    if clf is not None and not set(clf.label_space.names) & datasets:
        raise EvaluationError(
            f"the classifier {clf.info.get('path', '')} was trained on {', '.join(clf.label_space.names)}; "
            f"it cannot judge {', '.join(sorted(datasets))}"
        )
    return clf


def _run_description(run: str | Path | None, translator: Any, stores: Sequence[Any], opts: EvalOptions) -> dict[str, Any]:
    """The report's head: what was evaluated (run, checkpoint, weights, data) and how."""
    from .. import __version__

    ckpt_path = Path(translator.source)
    space = translator.label_space
    parameters = {name: sum(p.numel() for p in module.parameters()) for name, module in translator.networks.items()}
    facts = _checkpoint_facts(ckpt_path)
    return {
        "format": EVAL_FORMAT,
        "version": EVAL_VERSION,
        "starkit_version": __version__,
        "git_commit": _git_commit(),
        "run": str(run) if run is not None else None,
        "checkpoint": str(ckpt_path),
        "model": facts.get("model"),
        "iteration": facts.get("iteration"),
        "generator_weights": translator.weights,
        "data": [str(s.path) for s in stores],
        "device": str(translator.device),
        "split": opts.split,
        "limit": opts.limit,
        "mask": opts.mask,
        "image_size": opts.image_size,
        "label_space": space.to_dict(),
        "parameters": parameters,
    }


def _judges_description(clf: AttributeClassifier | None, inception: Any, inception_weights: str | Path | None,
                        alexnet: Any, alexnet_weights: str | Path | None) -> dict[str, Any]:
    """The report's part on what judged the translations: the classifier, FID's and LPIPS's weights."""
    return {
        "classifier": None if clf is None else {
            "path": clf.info.get("path"),
            "image_size": clf.image_size,
            "datasets": list(clf.label_space.names),
            "test_accuracy": clf.info.get("test_accuracy", {}),
        },
        "fid": {"enabled": inception is not None, "weights": str(inception_weights) if inception else None,
                "features": "torchvision inception_v3 pool3 (2048-d)"},
        "lpips": {"enabled": alexnet is not None, "weights": str(alexnet_weights) if alexnet else None,
                  "calibrated": False},
    }
