"""Evaluation: the attribute classifier, image metrics and the ``starkit eval`` pipeline.

Importing this package is free of torch; names resolve lazily from the modules that need it::

    from starkit.evaluation import evaluate_run, load_classifier

:mod:`.classifier`  the ResNet-18 attribute classifier (training, saving, loading, accuracy)
:mod:`.metrics`     L1, PSNR, FID (Fréchet distance, Inception features), LPIPS-style diversity
:mod:`.evaluate`    targets, the evaluation loop and its JSON report
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
