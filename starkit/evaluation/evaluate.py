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

import time
from pathlib import Path
from typing import Any, Sequence

from .classifier import AttributeClassifier
from .pipeline import METRICS, EvalOptions, TranslationPlan, evaluate_generator, evaluate_plan
from .rendering import counterfactual_renderer
from .targets import EVAL_FORMAT, EVAL_VERSION, EvaluationError, Target, condition, targets_for

__all__ = ["METRICS", "EVAL_FORMAT", "EVAL_VERSION", "EvalOptions", "EvaluationError", "Target", "TranslationPlan",
           "condition", "counterfactual_renderer", "evaluate_generator", "evaluate_plan", "evaluate_run", "targets_for"]


# ------------------------------------------------------------------------------ a training run
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
    return {
        "format": EVAL_FORMAT,
        "version": EVAL_VERSION,
        "starkit_version": __version__,
        "git_commit": _git_commit(),
        "run": str(run) if run is not None else None,
        "checkpoint": str(ckpt_path),
        "model": translator.family_name,  # both set from the checkpoint by load_translator
        "iteration": translator.iteration,
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
