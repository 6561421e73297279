"""The attribute classifier that judges translations.

StarGAN measured how well RaFD expressions were synthesised with an expression classifier
trained from scratch on real images (a ResNet-18, paper §5.5). starkit does the same for every
attribute of every dataset at once: one ``torchvision.models.resnet18(weights=None,
num_classes=label_space.label_dim)`` whose logits are split by the label space, so each
dataset's head is trained only on that dataset's images (``LabelSpace.classification_loss``)
and read with ``LabelSpace.predict``.

Checkpoint (format ``starkit.attribute_classifier``, version 1), loadable with
``torch.load(path, weights_only=True)``::

    format, version     tag and version
    arch                "resnet18"
    label_space         LabelSpace.to_json() (a JSON string)
    image_size          input side in pixels; other sizes are resized to it
    state_dict          the network's weights
    training            {datasets, iters, batch_size, lr, seed, data, seconds}
    test_accuracy       {dataset: {group: {...}}} measured on the real test split at the end
    starkit_version     version that wrote it
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import StarkitError
from ..labels import LabelError, LabelSpace
from ..torch_files import read_tensor_file

CLASSIFIER_FORMAT = "starkit.attribute_classifier"
CLASSIFIER_VERSION = 1
ARCH = "resnet18"


class ClassifierError(StarkitError):
    """A classifier file is missing, unreadable or not a starkit attribute classifier, or a
    classifier cannot judge the datasets asked of it."""


# ------------------------------------------------------------------------------ the model
def build_network(label_space: LabelSpace) -> Any:
    """A ResNet-18 from scratch with one logit per attribute of the label space (no mask)."""
    from torchvision.models import resnet18

    return resnet18(weights=None, num_classes=label_space.label_dim)


@dataclass
class AttributeClassifier:
    """A trained classifier: the network, the label space its logits follow, its input size."""

    net: Any
    label_space: LabelSpace
    image_size: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> Any:
        return next(self.net.parameters()).device

    def to(self, device: Any) -> "AttributeClassifier":
        self.net.to(device)
        return self

    def logits(self, images: Any) -> Any:
        """Logits ``[B, label_dim]`` for images ``[B, 3, H, W]`` in ``[-1, 1]`` (any size:
        resized to :attr:`image_size`). Runs in eval mode without gradients."""
        import torch

        x = _resize(images.to(self.device, torch.float32), self.image_size)
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.inference_mode():
                return self.net(x).float()
        finally:
            self.net.train(was_training)

    def predict(self, images: Any, dataset: str) -> Any:
        """Hard labels ``[B, k]`` of ``dataset`` (binary: logit > 0, one-hot: arg-max)."""
        return self.label_space.predict(self.logits(images), dataset)

    def knows(self, dataset: str) -> bool:
        return dataset in self.label_space.names


def _resize(x: Any, size: int) -> Any:
    import torch.nn.functional as F

    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    # Antialiasing matters when shrinking: without it thin strokes alias away.
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


# ------------------------------------------------------------------------------ accuracy
def group_accuracy(pred: np.ndarray, labels: np.ndarray, label_space: LabelSpace, dataset: str) -> dict[str, Any]:
    """Accuracy of hard predictions ``[N, k]`` against true labels ``[N, k]`` of ``dataset``,
    per group.

    One-hot groups: the arg-max matches the set member (rows with no member set are not
    counted); per attribute, the recall of rows whose true member it is. Binary groups: the
    fraction of correct bits over the group's attributes; per attribute, that attribute's.
    """
    out: dict[str, Any] = {}
    for gs in label_space.group_slices(dataset):
        p, t = pred[:, gs.local], labels[:, gs.local]
        attrs: dict[str, Any] = {}
        if gs.group.kind == "onehot":
            known = t.sum(1) > 0
            hit = (p.argmax(1) == t.argmax(1)) & known
            for j, attr in enumerate(gs.group.attributes):
                rows = known & (t[:, j] > 0)
                attrs[attr] = _ratio(hit[rows].sum(), rows.sum())
            out[gs.group.name] = {
                "kind": "onehot",
                "accuracy": _ratio(hit.sum(), known.sum()),
                "count": int(known.sum()),
                "attributes": attrs,
            }
        else:
            correct = p == t
            for j, attr in enumerate(gs.group.attributes):
                attrs[attr] = _ratio(correct[:, j].sum(), len(correct))
            out[gs.group.name] = {
                "kind": "binary",
                "accuracy": _ratio(correct.sum(), correct.size),
                "count": int(len(correct)),
                "attributes": attrs,
            }
    return out


def _ratio(num: Any, den: Any) -> float | None:
    return float(num) / float(den) if den else None


def dataset_accuracy(
    classifier: AttributeClassifier,
    store: Any,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """The classifier's per-group accuracy (:func:`group_accuracy`) on real images of a shard
    store's ``split`` (the first ``limit`` images)."""
    import torch

    if not classifier.knows(store.name):
        raise ClassifierError(
            f"the classifier was trained on {', '.join(classifier.label_space.names)}, not {store.name!r}"
        )
    n = store.count(split) if limit is None else min(limit, store.count(split))
    preds, labels = [], []
    for start in range(0, n, batch_size):
        rows = [store.read_image_labels(split, i) for i in range(start, min(n, start + batch_size))]
        images = torch.from_numpy(np.stack([r[0] for r in rows])).permute(0, 3, 1, 2)
        preds.append(np.asarray(classifier.predict(to_model_range(images), store.name).cpu()))
        labels.append(np.stack([r[1] for r in rows]).astype(np.float32))
    if not preds:
        return {}
    return group_accuracy(np.concatenate(preds), np.concatenate(labels), classifier.label_space, store.name)


def to_model_range(images_uint8: Any) -> Any:
    """uint8 ``[B, 3, H, W]`` -> float ``[-1, 1]`` (the generator's range; the classifier is
    trained on it too, so it reads real images and translations alike)."""
    return images_uint8.float().div(127.5).sub(1.0)


# ------------------------------------------------------------------------------ files
def save_classifier(classifier: AttributeClassifier, path: str | Path) -> Path:
    """Write the classifier atomically (temp file, fsync, rename)."""
    from .. import __version__
    from ..training.checkpoint import save_checkpoint

    state = {k: v.detach().cpu() for k, v in classifier.net.state_dict().items()}
    payload = {
        "format": CLASSIFIER_FORMAT,
        "version": CLASSIFIER_VERSION,
        "arch": ARCH,
        "label_space": classifier.label_space.to_json(),
        "image_size": int(classifier.image_size),
        "state_dict": state,
        "training": dict(classifier.info.get("training", {})),
        "test_accuracy": dict(classifier.info.get("test_accuracy", {})),
        "starkit_version": __version__,
    }
    return save_checkpoint(payload, path)


def load_classifier(path: str | Path, device: Any = "cpu") -> AttributeClassifier:
    """Read a classifier written by :func:`save_classifier` (``weights_only=True``: no code
    from the file runs). Anything else is refused with a :class:`ClassifierError` that says
    what the file is instead."""
    path = Path(path)
    if not path.is_file():
        raise ClassifierError(f"{path}: no such classifier file")
    data = read_tensor_file(
        path, expected="a starkit attribute classifier", error=ClassifierError,
        hint="Train one with `starkit train-classifier`.",
    )
    tag = data.get("format") if isinstance(data, dict) else None
    if tag != CLASSIFIER_FORMAT:
        what = "a starkit training checkpoint (a generator, not a classifier)" if tag == "starkit.checkpoint" else (
            f"a file with format tag {tag!r}" if tag else f"a {type(data).__name__} without a starkit format tag"
        )
        raise ClassifierError(
            f"{path} is not a starkit attribute classifier: it is {what}. "
            "Train a classifier with `starkit train-classifier`."
        )
    version = data.get("version")
    if not isinstance(version, int) or version > CLASSIFIER_VERSION:
        raise ClassifierError(f"{path}: classifier format version {version!r} is newer than this starkit reads")
    for key in ("label_space", "image_size", "state_dict", "arch"):
        if key not in data:
            raise ClassifierError(f"{path}: classifier file lacks the field {key!r}")
    if data["arch"] != ARCH:
        raise ClassifierError(f"{path}: classifier architecture {data['arch']!r} is not supported (expected {ARCH})")
    try:
        space = LabelSpace.from_json(data["label_space"])
    except (LabelError, ValueError) as exc:
        raise ClassifierError(f"{path}: label space: {exc}") from None
    net = build_network(space)
    try:
        net.load_state_dict(data["state_dict"])
    except RuntimeError as exc:
        raise ClassifierError(f"{path}: weights do not fit a {ARCH} for {space!r}: {str(exc).splitlines()[0]}") from None
    info = {"training": data.get("training", {}), "test_accuracy": data.get("test_accuracy", {}), "path": str(path)}
    return AttributeClassifier(net.eval().to(device), space, int(data["image_size"]), info)


# ------------------------------------------------------------------------------ training
@dataclass(frozen=True)
class ClassifierConfig:
    """Training hyper-parameters: Adam with a learning rate decayed to zero along a cosine.

    ``augment``: ``"robust"`` (default) adds random framing and colour changes to the flip
    (:func:`starkit.data.loading.robust_transforms`), so that a head learnt on one dataset's
    photos still reads another dataset's faces — what judging cross-dataset translations
    needs; ``"flip"`` is StarGAN's own augmentation only.

    2000 iterations of 32 images take about a minute on a GPU; on a CPU they take tens of
    minutes at 64 px, which is why ``bench/quality.py`` trains for 800."""

    iters: int = 2000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    image_size: int | None = None  # None: the datasets' image size
    seed: int = 0
    num_workers: int = 0
    eval_limit: int | None = 1000  # test images per dataset for the final accuracy
    augment: str = "robust"

    def __post_init__(self) -> None:
        from ..data.loading import AUGMENTATIONS

        if self.augment not in AUGMENTATIONS:
            raise ClassifierError(f"augment must be one of {', '.join(AUGMENTATIONS)}, got {self.augment!r}")
        for name in ("iters", "batch_size"):
            if getattr(self, name) < 1:
                raise ClassifierError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ClassifierError(f"lr must be positive, got {self.lr}")
        if self.image_size is not None and self.image_size < 16:
            raise ClassifierError(f"image size must be at least 16 pixels, got {self.image_size}")


def open_stores(datasets: Sequence[str], data_root: str | Path | None) -> list[Any]:
    """Open each dataset's shard store under ``data_root`` (the usual resolution rules, and
    the training command's message for a dataset that has not been added)."""
    from ..training.run import open_datasets

    if not datasets:
        raise ClassifierError("no datasets given")
    if len(set(datasets)) != len(datasets):
        raise ClassifierError(f"dataset listed twice in {list(datasets)}")
    return open_datasets(list(datasets), data_root)


def label_space_of(stores: Sequence[Any]) -> LabelSpace:
    """The label space of shard stores, in the given order (their manifests' groups)."""
    return LabelSpace.from_groups((s.name, s.groups) for s in stores)


def train_classifier(
    datasets: Sequence[str],
    data_root: str | Path | None = None,
    config: ClassifierConfig | None = None,
    device: Any = "auto",
    progress: bool = True,
    out: str | Path | None = None,
) -> AttributeClassifier:
    """Train the attribute classifier on the real training shards of ``datasets``.

    Batches alternate between the datasets (the joint loader's round-robin); each batch's
    loss is ``LabelSpace.classification_loss`` on its dataset's slice, so each head learns only
    from its own dataset. At the end the classifier is scored on each dataset's test split
    (``info["test_accuracy"]``) and, when ``out`` is given, saved there atomically.
    """
    from ..training.device import resolve_device, seed_everything

    cfg = config or ClassifierConfig()
    dev = resolve_device(str(device))
    stores = open_stores(list(datasets), data_root)
    space = label_space_of(stores)
    image_size = int(cfg.image_size or max(s.image_size for s in stores))
    for s in stores:
        if "train" not in s.splits:
            raise ClassifierError(f"{s.path}: dataset has no 'train' split to learn from")

    seed_everything(cfg.seed)
    net = build_network(space).to(dev)
    clf = AttributeClassifier(net, space, image_size)
    optimizer, scheduler = _cosine_adam(net, cfg)
    loader = _training_loader(stores, cfg)
    started = time.perf_counter()
    running = _train_network(net, space, loader, optimizer, scheduler, cfg, dev, image_size, progress)
    seconds = time.perf_counter() - started
    net.eval()
    clf.info["training"] = _training_record(space, stores, cfg, seconds, running)
    clf.info["test_accuracy"] = {
        s.name: dataset_accuracy(clf, s, "test", cfg.eval_limit) if "test" in s.splits else {} for s in stores
    }
    loader.close()
    for s in stores:
        s.close()
    if out is not None:
        save_classifier(clf, out)
        clf.info["path"] = str(out)
    return clf


def _cosine_adam(net: Any, cfg: ClassifierConfig) -> tuple[Any, Any]:
    """Adam, and its learning rate decayed to zero along a cosine over ``cfg.iters``."""
    import torch

    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda it: 0.5 * (1 + np.cos(np.pi * min(it, cfg.iters) / cfg.iters))
    )
    return optimizer, scheduler


def _training_loader(stores: Sequence[Any], cfg: ClassifierConfig) -> Any:
    """Augmented training batches, alternating between the datasets (no batch larger than the
    smallest dataset)."""
    from ..data.loading import AUGMENTATIONS, JointLoader, ShardImageDataset

    parts = [ShardImageDataset(s, split="train", augment=True, seed=cfg.seed, transforms=AUGMENTATIONS[cfg.augment]())
             for s in stores]
    return JointLoader(parts, batch_size=min(cfg.batch_size, min(len(p) for p in parts)),
                       num_workers=cfg.num_workers, seed=cfg.seed,
                       persistent_workers=cfg.num_workers > 0)


def _train_network(net: Any, space: LabelSpace, loader: Any, optimizer: Any, scheduler: Any, cfg: ClassifierConfig,
                   dev: Any, image_size: int, progress: bool) -> dict[str, float]:
    """Train ``net`` for ``cfg.iters`` batches, each on its own dataset's slice of the logits;
    returns each dataset's smoothed loss (shown on the progress bar as it goes)."""
    from ..data.loading import to_model_input
    from .progress import progress_bar

    running: dict[str, float] = {}
    net.train()
    with progress_bar(progress) as bar:
        task = bar.add_task("train classifier", total=cfg.iters, status="")
        batches = iter(loader)
        for it in range(cfg.iters):
            d, batch = next(batches)
            name = space.names[d]
            x = _resize(to_model_input(batch["image"], dev), image_size)
            y = batch["labels"].to(dev)
            logits = net(x)
            loss = space.classification_loss(logits, y, name)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            value = loss.item()
            running[name] = 0.9 * running.get(name, value) + 0.1 * value
            bar.update(task, advance=1, status=" ".join(f"{k} {v:.3f}" for k, v in running.items()))
    return running


def _training_record(space: LabelSpace, stores: Sequence[Any], cfg: ClassifierConfig, seconds: float,
                     running: Mapping[str, float]) -> dict[str, Any]:
    """The checkpoint's ``training`` entry: how it was trained, on what, how long, final losses."""
    return {
        "datasets": list(space.names),
        "iters": cfg.iters,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "augment": cfg.augment,
        "seed": cfg.seed,
        "data": [str(s.path) for s in stores],
        "seconds": round(seconds, 2),
        "final_loss": {k: round(v, 5) for k, v in running.items()},
    }


def summarize_accuracy(test_accuracy: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """``{dataset: {group: accuracy}}`` from :func:`group_accuracy` results (for printing)."""
    return {d: {g: r.get("accuracy") for g, r in groups.items()} for d, groups in test_accuracy.items()}
