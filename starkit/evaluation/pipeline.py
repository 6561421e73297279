"""The evaluation pipeline: a :class:`TranslationPlan` (which targets, which outputs) run over
the test images of each source dataset, measured and reduced to the report's per-dataset,
per-target blocks (the measurements are listed in :mod:`starkit.evaluation.evaluate`)."""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

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
from .rendering import counterfactual_renderer
from .targets import MASK_MODES, TEST_SPLIT, EvaluationError, Target, chance_level, condition, targets_for

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
