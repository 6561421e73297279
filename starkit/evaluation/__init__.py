"""Evaluation: the attribute classifier, image metrics and the ``starkit eval`` pipeline.

Importing this package is free of torch; names resolve lazily from the modules that need it::

    from starkit.evaluation import evaluate_run, load_classifier

:mod:`.classifier`  the ResNet-18 attribute classifier (training, saving, loading, accuracy)
:mod:`.metrics`     L1, PSNR, FID (Fréchet distance, Inception features), LPIPS-style diversity
:mod:`.evaluate`    targets, the evaluation loop and its JSON report
"""

from __future__ import annotations

from ..lazy import lazy_exports


_LAZY: dict[str, str] = {
    "AttributeClassifier": "classifier",
    "ClassifierConfig": "classifier",
    "ClassifierError": "classifier",
    "dataset_accuracy": "classifier",
    "load_classifier": "classifier",
    "save_classifier": "classifier",
    "train_classifier": "classifier",
    "AlexNetDistance": "metrics",
    "InceptionFeatures": "metrics",
    "MetricWeightsError": "metrics",
    "frechet_distance": "metrics",
    "feature_stats": "metrics",
    "l1": "metrics",
    "psnr": "metrics",
    "EvalOptions": "evaluate",
    "EvaluationError": "evaluate",
    "Target": "evaluate",
    "evaluate_generator": "evaluate",
    "evaluate_run": "evaluate",
    "targets_for": "evaluate",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals())
