"""Image-quality metrics for evaluating translations: L1, PSNR, FID and an LPIPS-style diversity.

Conventions (the README's ``## Evaluation`` section documents them for users):

* Pixel metrics (:func:`l1`, :func:`psnr`) work on images scaled to ``[0, 1]``; an L1 of 0.05
  is an average error of 5 % of the intensity range. Both return one value per image; callers
  average.
* PSNR of identical images is infinite. JSON has no infinity, so averages use per-image values
  capped at :data:`PSNR_CAP_DB` (documented, and large enough never to flatter a real output).
* FID is computed from the 2048-d pool3 features of an Inception-v3 whose weights the user
  provides as a local torchvision state dict. Nothing is downloaded. The numbers are therefore
  comparable with each other but not with published FIDs computed with the TensorFlow
  Inception graph.
* The diversity score follows LPIPS (Zhang et al., 2018): unit-normalised AlexNet activations
  of five layers, squared differences averaged over space. LPIPS proper weighs channels with
  learned linear layers that starkit does not ship, so every channel weighs the same here; the
  report calls it "LPIPS (uncalibrated)". It ranks diversity sensibly but its scale is not
  LPIPS's.

Heavy imports (torch, torchvision, scipy) happen inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StarkitError

#: A pixel "changes" where some channel of two ``[0, 1]`` images differs by more than half an
#: 8-bit step: images decoded from 8-bit files (shards, renderings) differ by at least a whole
#: step wherever they differ at all.
CHANGE_TOLERANCE = 0.5 / 255

#: Per-image PSNR is capped here (dB) before averaging, so identical images give a finite mean.
PSNR_CAP_DB = 100.0

#: What a report says when a metric needs weights the user did not point to.
FID_HINT = (
    "FID not computed: pass --inception-weights FILE (a torchvision inception_v3 state dict, "
    "e.g. saved from torchvision.models.inception_v3(weights='IMAGENET1K_V1')); "
    "nothing is downloaded at run time"
)
LPIPS_HINT = (
    "LPIPS (uncalibrated) diversity not computed: pass --alexnet-weights FILE (a torchvision "
    "alexnet state dict, e.g. saved from torchvision.models.alexnet(weights='IMAGENET1K_V1'))"
)


class MetricWeightsError(StarkitError, ValueError):
    """A weight file for FID or LPIPS is missing, unreadable or of the wrong network."""


# ------------------------------------------------------------------------------ pixel metrics
def to_unit(images: Any) -> Any:
    """Model-range images ``[-1, 1]`` to ``[0, 1]`` (clamped: a generator's tanh never leaves
    the range, but a numerically perturbed input may)."""
    return ((images + 1) / 2).clamp(0, 1)


def l1(a: Any, b: Any) -> Any:
    """Mean absolute difference per image of ``[B, C, H, W]`` tensors in ``[0, 1]`` -> ``[B]``."""
    _same_shape(a, b)
    return (a - b).abs().flatten(1).mean(1)


def changed_pixels(before: Any, after: Any, tolerance: float = CHANGE_TOLERANCE) -> Any:
    """``[B, 1, H, W]`` bool: where some channel of ``after`` differs from ``before`` (both
    ``[B, C, H, W]`` in ``[0, 1]``) by more than ``tolerance``."""
    _same_shape(before, after)
    return (after - before).abs().amax(dim=1, keepdim=True) > tolerance


def l1_parts(a: Any, b: Any, where: Any) -> tuple[Any, Any]:
    """:func:`l1` of ``a`` and ``b`` split by the ``[B, 1, H, W]`` bool mask ``where``: the
    part from the pixels inside it and the part from those outside, each as a share of the
    per-image mean, so that the two add up to ``l1(a, b)`` (``[B]`` each)."""
    _same_shape(a, b)
    if where.shape != (a.shape[0], 1, *a.shape[2:]):
        raise ValueError(f"mask of shape {tuple(where.shape)} for images of shape {tuple(a.shape)}")
    err = (a - b).abs()
    where = where.bool()
    inside = (err * where.to(err.dtype)).flatten(1).mean(1)
    outside = (err * (~where).to(err.dtype)).flatten(1).mean(1)  # not total - inside: never < 0
    return inside, outside


def psnr(a: Any, b: Any, cap_db: float | None = PSNR_CAP_DB) -> Any:
    """Peak signal-to-noise ratio in dB per image of ``[B, C, H, W]`` tensors in ``[0, 1]``.

    ``10 · log10(1 / MSE)``; identical images give ``inf``, or ``cap_db`` when a cap is set
    (the default, so that averages stay finite).
    """
    import torch

    _same_shape(a, b)
    mse = (a.double() - b.double()).pow(2).flatten(1).mean(1)
    value = 10 * torch.log10(1.0 / mse)  # mse == 0 -> 1/0 = +inf -> +inf dB, as it should
    if cap_db is not None:
        value = value.clamp(max=cap_db)
    return value.float()


def _same_shape(a: Any, b: Any) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")


# ------------------------------------------------------------------------------ Fréchet distance
@dataclass
class GaussianStats:
    """Mean and covariance of a feature set: all FID needs from each side."""

    mean: np.ndarray
    cov: np.ndarray
    count: int


class RunningStats:
    """Accumulates the mean and covariance of feature rows in float64 without keeping them
    (a few thousand translations × 2048 features would not fit comfortably otherwise)."""

    def __init__(self, dim: int):
        self.dim = dim
        self.count = 0
        self._sum = np.zeros(dim, dtype=np.float64)
        self._outer = np.zeros((dim, dim), dtype=np.float64)

    def update(self, features: Any) -> None:
        f = np.asarray(features.detach().cpu() if hasattr(features, "detach") else features, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != self.dim:
            raise ValueError(f"expected features [N, {self.dim}], got shape {f.shape}")
        self.count += f.shape[0]
        self._sum += f.sum(0)
        self._outer += f.T @ f

    def state(self) -> tuple[int, np.ndarray, np.ndarray]:
        """``(count, sum, sum of outer products)``: all it holds, for saving."""
        return self.count, self._sum, self._outer

    @classmethod
    def from_state(cls, count: int, total: np.ndarray, outer: np.ndarray) -> "RunningStats":
        """The inverse of :meth:`state`; a ``ValueError`` when the arrays do not fit together."""
        total, outer = np.asarray(total, dtype=np.float64), np.asarray(outer, dtype=np.float64)
        if total.ndim != 1 or outer.shape != (total.size, total.size) or count < 0:
            raise ValueError(f"inconsistent statistics: sum {total.shape}, outer {outer.shape}, count {count}")
        stats = cls(total.size)
        stats.count, stats._sum, stats._outer = int(count), total.copy(), outer.copy()
        return stats

    def stats(self) -> GaussianStats:
        if self.count < 2:
            raise ValueError("need at least two feature rows for a covariance")
        mean = self._sum / self.count
        # Unbiased covariance, as numpy.cov (and every FID implementation) uses.
        cov = (self._outer - self.count * np.outer(mean, mean)) / (self.count - 1)
        return GaussianStats(mean, cov, self.count)


def feature_stats(features: Any) -> GaussianStats:
    """:class:`GaussianStats` of feature rows ``[N, D]``."""
    f = np.asarray(features, dtype=np.float64)
    running = RunningStats(f.shape[1])
    running.update(f)
    return running.stats()


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray, method: str = "auto") -> float:
    """``tr(sqrt(cov1 · cov2))`` for symmetric positive semi-definite covariances.

    ``method="scipy"`` takes ``scipy.linalg.sqrtm`` of the product (the textbook route; the
    product is not symmetric, so the square root can pick up a tiny imaginary part, dropped).
    ``method="eigh"`` uses the identity ``tr(sqrt(A·B)) = tr(sqrt(sqrt(A)·B·sqrt(A)))``: both
    steps are symmetric eigen-decompositions, which are stable and need only NumPy.
    ``"auto"`` uses scipy when it is installed, else ``eigh``.
    """
    if method == "auto":
        try:
            import scipy.linalg  # noqa: F401

            method = "scipy"
        except ImportError:
            method = "eigh"
    if method == "scipy":
        import warnings

        import scipy.linalg

        with warnings.catch_warnings():
            warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
            try:
                root = scipy.linalg.sqrtm(cov1 @ cov2)
            except (scipy.linalg.LinAlgWarning, np.linalg.LinAlgError):
                root = None
        if root is not None and np.isfinite(root).all():
            return float(np.real(np.trace(root)))
        # Singular product (fewer samples than feature dimensions, as with small test sets):
        # the general square root is ill-conditioned there, the symmetric route is not.
        method = "eigh"
    if method == "eigh":
        w1, v1 = np.linalg.eigh((cov1 + cov1.T) / 2)
        sqrt1 = (v1 * np.sqrt(np.clip(w1, 0, None))) @ v1.T
        middle = sqrt1 @ cov2 @ sqrt1
        w = np.linalg.eigvalsh((middle + middle.T) / 2)
        return float(np.sqrt(np.clip(w, 0, None)).sum())
    raise ValueError(f"unknown method {method!r}; use 'auto', 'scipy' or 'eigh'")


def frechet_distance(a: GaussianStats, b: GaussianStats, method: str = "auto") -> float:
    """Fréchet distance between two Gaussians:
    ``|mu_a - mu_b|² + tr(cov_a) + tr(cov_b) - 2 tr(sqrt(cov_a · cov_b))``."""
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature sizes differ: {a.mean.shape} vs {b.mean.shape}")
    diff = a.mean - b.mean
    value = diff @ diff + np.trace(a.cov) + np.trace(b.cov) - 2 * trace_sqrt_product(a.cov, b.cov, method)
    return float(max(value, 0.0))  # rounding may leave a tiny negative for equal sets


# ------------------------------------------------------------------------------ feature networks
def _load_state_dict(path: str | Path, what: str) -> dict:
    from ..torch_files import read_tensor_file

    p = Path(path)
    if not p.is_file():
        raise MetricWeightsError(f"{p}: {what} weight file not found")
    state = read_tensor_file(p, expected=f"a torchvision {what} state dict", error=MetricWeightsError)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise MetricWeightsError(f"{p}: expected a {what} state dict, found {type(state).__name__}")
    return state


def _load_into(model: Any, state: dict, path: str | Path, what: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise MetricWeightsError(f"{path}: not a torchvision {what} state dict ({first})") from None


class InceptionFeatures:
    """Inception-v3 pool3 features (2048-d) of images in ``[-1, 1]``, from a local weight file.

    The network is torchvision's ``inception_v3(weights=None, aux_logits=True,
    init_weights=False)`` with the file's weights. torchvision's ImageNet weights expect the
    Google-style input scaling ``(x - 0.5) / 0.5``, i.e. exactly the model range ``[-1, 1]``,
    so images go in unchanged apart from bilinear resizing to 299×299.
    """

    dim = 2048
    size = 299

    def __init__(self, weights: str | Path, device: Any = "cpu"):
        import torch
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=True, init_weights=False)
        _load_into(net, _load_state_dict(weights, "inception_v3"), weights, "inception_v3")
        from ..data.shards import file_sha256

        #: What the features depend on (keys the cache of real-image statistics).
        self.identity = f"inception_v3 pool3 {self.size}px bilinear, weights sha256 {file_sha256(Path(weights))}"
        net.fc = torch.nn.Identity()  # logits -> the pooled 2048-d features
        self.net = net.eval().to(device)
        self.device = device

    def __call__(self, images: Any) -> Any:
        import torch
        import torch.nn.functional as F

        x = images.to(self.device, torch.float32)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        with torch.inference_mode():
            return self.net(x).float()


class AlexNetDistance:
    """LPIPS-style perceptual distance without the learned channel weights ("uncalibrated").

    For each of AlexNet's five ReLU outputs: normalise each spatial position's channel vector
    to unit length, square the difference between the two images, average over channels and
    space; sum the five layers. Inputs are images in ``[-1, 1]``; images smaller than 64 px
    are upsampled to 64 px, since AlexNet's stride-4 stem leaves too little of them otherwise.
    """

    RELU_LAYERS = (1, 4, 7, 9, 11)  # positions of the ReLUs in torchvision's alexnet.features
    MIN_SIZE = 64

    def __init__(self, weights: str | Path, device: Any = "cpu"):
        import torch
        from torchvision.models import alexnet

        net = alexnet(weights=None)
        _load_into(net, _load_state_dict(weights, "alexnet"), weights, "alexnet")
        self.features = net.features[: self.RELU_LAYERS[-1] + 1].eval().to(device)
        self.device = device
        self._mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
        self._std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)

    def embed(self, images: Any) -> list[Any]:
        """Unit-normalised activations of the five layers for images ``[B, 3, H, W]``."""
        import torch
        import torch.nn.functional as F

        x = to_unit(images.to(self.device, torch.float32))
        if min(x.shape[-2:]) < self.MIN_SIZE:
            x = F.interpolate(x, size=(self.MIN_SIZE, self.MIN_SIZE), mode="bilinear", align_corners=False)
        x = (x - self._mean) / self._std
        out = []
        with torch.inference_mode():
            for i, layer in enumerate(self.features):
                x = layer(x)
                if i in self.RELU_LAYERS:
                    out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    @staticmethod
    def distance(fa: list[Any], fb: list[Any]) -> Any:
        """Per-image distance ``[B]`` between two :meth:`embed` results."""
        return sum((a - b).pow(2).mean(dim=(1, 2, 3)) for a, b in zip(fa, fb))
