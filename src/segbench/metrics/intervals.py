"""Bootstrap intervals over images for dataset-level metrics, and paired intervals between models.

A resample draws ``N`` of the ``N`` evaluated images with replacement; its dataset-level metrics are
recomputed from the sum of the drawn images' confusion matrices (see :mod:`segbench.metrics.iou`).
The ``B`` resamples are one ``(B, N)`` matrix of draw counts, so their summed matrices are one matrix
product ``(B, N) @ (N, C * C)``: no Python loop over resamples. The interval is the percentile interval
of the ``B`` resampled values (2.5th and 97.5th percentiles for 95%); the point estimate is the metric
of the full set of images, not the mean of the resamples.

Paired intervals score two models on the *same* resamples and take the percentiles of the ``B``
differences, so image-to-image variation that both models share cancels out; a model against itself
gives exactly 0 with a 0-width interval (the sums are of integers below 2 ** 53, so exact in float64).
A difference is called significant when its interval excludes 0. Pairs are not corrected for multiple
comparisons: with many models, expect about one in twenty pairs to look significant by chance.

Cost (median of 5 calls, 1000 images x 11 classes, B = 1000, on a 2-core Intel Xeon VM shared with
other jobs, load about 6, numpy 2.4.6): :func:`bootstrap` 0.20 s, :func:`paired_bootstrap` 0.23 s. The
first call in a process adds about 0.3 s of numpy's lazy imports.

Reference:
    Efron and Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall 1993 (percentile interval,
    chapter 13).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from segbench.errors import UserError
from segbench.metrics.iou import EXACT_LIMIT, ConfusionScores, as_confusions, score_confusions
from segbench.options import check

__all__ = [
    "Bootstrap",
    "Interval",
    "PairedDifference",
    "bootstrap",
    "paired_bootstrap",
    "resample_counts",
]


def _json(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval; fractions (or differences of fractions) or NaN.

    Attributes:
        estimate: Value on all images.
        low: Lower percentile of the resampled values (2.5th for a 95% interval).
        high: Upper percentile (97.5th for 95%).
    """

    estimate: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        """True when the whole interval lies strictly above or strictly below 0."""
        return self.low > 0 or self.high < 0

    def points(self) -> str:
        """``"+6.3 points [4.1, 8.5]"``: the interval in percentage points (x 100), one decimal."""
        return f"{100 * self.estimate:+.1f} points [{100 * self.low:.1f}, {100 * self.high:.1f}]"

    def to_dict(self) -> dict:
        """``{"estimate", "low", "high"}`` with NaN as None."""
        return {"estimate": _json(self.estimate), "low": _json(self.low), "high": _json(self.high)}


def resample_counts(num_images: int, num_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Draw counts of ``num_resamples`` bootstrap resamples of ``num_images`` images.

    Args:
        num_images: Number of images ``N`` (>= 1).
        num_resamples: Number of resamples ``B`` (>= 1).
        seed: Seed of the :func:`numpy.random.default_rng` generator; the same seed gives the same draws.

    Returns:
        int64 array ``(B, N)``; ``counts[b, i]`` is how often image ``i`` was drawn in resample ``b``;
        every row sums to ``N``.

    Raises:
        UserError: ``num_images`` or ``num_resamples`` < 1.
    """
    if num_images < 1 or num_resamples < 1:
        raise UserError(f"num_images and num_resamples must be >= 1, got {num_images} and {num_resamples}")
    draws = np.random.default_rng(seed).integers(0, num_images, size=(num_resamples, num_images))
    draws += np.arange(num_resamples)[:, None] * num_images
    return np.bincount(draws.ravel(), minlength=num_resamples * num_images).reshape(num_resamples, num_images)


def check_confidence(confidence: float) -> None:
    """Raise :class:`UserError` unless ``confidence`` lies in (0, 1) (the row ``confidence`` of
    :data:`segbench.options.OPTIONS`)."""
    check("confidence", confidence)


def percentile_interval(estimate, samples: np.ndarray, confidence: float) -> list[Interval] | Interval:
    """Percentile interval(s) of ``samples`` ``(B, ...)`` around ``estimate`` ``(...)``, NaN left out."""
    tail = 100 * (1 - confidence) / 2
    if not np.isnan(samples).any():
        low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    else:
        with warnings.catch_warnings():  # an all-NaN column (class absent everywhere) gives NaN quietly
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
    estimate = np.asarray(estimate, dtype=np.float64)
    if estimate.ndim == 0:
        return Interval(float(estimate), float(low), float(high))
    return [Interval(float(e), float(lo), float(hi)) for e, lo, hi in zip(estimate, low, high)]


def resampled_sums(counts: np.ndarray, confusions: np.ndarray) -> np.ndarray:
    """Summed matrices ``(B, ...)`` of each resample of per-image matrices ``(N, ...)`` (``(N, C, C)``, or
    ``(N, K, C, C)`` for K matrices per image): one product ``(B, N) @ (N, K * C * C)`` in float64."""
    n = confusions.shape[0]
    if int(counts.max(initial=0)) * int(confusions.sum()) >= EXACT_LIMIT:
        raise UserError("too many pixels for exact float64 sums (over 2**53); bootstrap fewer images")
    flat = confusions.reshape(n, -1).astype(np.float64)
    return (counts.astype(np.float64) @ flat).reshape(-1, *confusions.shape[1:])


def _per_image_mean(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mean of per-image ``values`` ``(N,)`` in each resample ``(B,)``, NaN images left out."""
    kept = ~np.isnan(values)
    weights = counts @ kept.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weights > 0, (counts @ np.where(kept, values, 0.0)) / weights, np.nan)


@dataclass
class Bootstrap:
    """Bootstrap intervals of one model's dataset-level metrics (fractions in ``[0, 1]``).

    Attributes:
        miou: Dataset-level mIoU (from the summed matrix).
        pixel_accuracy: Pixel accuracy.
        mean_accuracy: Mean class accuracy.
        iou: One interval per class; NaN for a class absent from every image's target and prediction.
        per_image_miou: Mean over images of each image's own mIoU (a different figure, see
            :mod:`segbench.metrics.iou`).
        num_images: ``N``.
        num_resamples: ``B``.
        confidence: Coverage of the intervals, e.g. 0.95.
    """

    miou: Interval
    pixel_accuracy: Interval
    mean_accuracy: Interval
    iou: list[Interval]
    per_image_miou: Interval
    num_images: int
    num_resamples: int
    confidence: float

    def to_dict(self, class_names: list[str] | None = None) -> dict:
        """JSON-friendly dict; ``iou`` keyed by class name (default ``"0"``, ``"1"``, ...).

        Raises:
            UserError: ``class_names`` does not have one entry per class.
        """
        names = _class_names(class_names, len(self.iou))
        out = {k: getattr(self, k).to_dict() for k in ("miou", "pixel_accuracy", "mean_accuracy", "per_image_miou")}
        out["iou"] = {name: i.to_dict() for name, i in zip(names, self.iou)}
        out.update(num_images=self.num_images, num_resamples=self.num_resamples, confidence=self.confidence)
        return out


def _class_names(class_names: list[str] | None, num_classes: int) -> list[str]:
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise UserError(f"class_names has {len(class_names)} entries but there are {num_classes} classes")
    return list(class_names)


def bootstrap(confusions, num_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> Bootstrap:
    """Bootstrap intervals over images for one model's dataset-level metrics.

    Args:
        confusions: Per-image confusion matrices ``(N, C, C)``, ``[image, target, pred]``, int counts.
        num_resamples: ``B``, the number of resamples.
        seed: Seed of the resampling generator (:func:`resample_counts`).
        confidence: Coverage of the percentile intervals.

    Returns:
        :class:`Bootstrap`.

    Raises:
        UserError: Bad shapes or counts (:func:`~segbench.metrics.iou.as_confusions`), ``B`` < 1,
            ``confidence`` outside (0, 1), or more pixels than float64 sums exactly.
    """
    check_confidence(confidence)
    confusions = as_confusions(confusions)
    counts = resample_counts(len(confusions), num_resamples, seed)
    full = score_confusions(confusions.sum(axis=0))
    resampled = score_confusions(resampled_sums(counts, confusions))
    per_image = score_confusions(confusions).miou
    return Bootstrap(
        miou=percentile_interval(full.miou, resampled.miou, confidence),
        pixel_accuracy=percentile_interval(full.pixel_accuracy, resampled.pixel_accuracy, confidence),
        mean_accuracy=percentile_interval(full.mean_accuracy, resampled.mean_accuracy, confidence),
        iou=percentile_interval(full.iou, resampled.iou, confidence),
        per_image_miou=percentile_interval(
            np.nanmean(per_image) if (~np.isnan(per_image)).any() else math.nan,
            _per_image_mean(counts.astype(np.float64), per_image),
            confidence,
        ),
        num_images=len(confusions),
        num_resamples=num_resamples,
        confidence=confidence,
    )


@dataclass
class PairedDifference:
    """Model A minus model B on the same images and the same resamples (differences of fractions).

    Attributes:
        name_a: Name of model A.
        name_b: Name of model B.
        miou: Dataset-level mIoU of A minus that of B.
        pixel_accuracy: Pixel accuracy of A minus that of B.
        iou: Per-class IoU of A minus that of B.
        num_images: ``N``.
        confidence: Coverage of the intervals.
    """

    name_a: str
    name_b: str
    miou: Interval
    pixel_accuracy: Interval
    iou: list[Interval]
    num_images: int
    confidence: float

    @property
    def significant(self) -> bool:
        """True when the mIoU difference's interval excludes 0."""
        return self.miou.excludes_zero()

    def sentence(self) -> str:
        """``"A > B by 6.3 points [4.1, 8.5]"`` (the better one first) or ``"A and B are not
        distinguishable on 8 images (A - B: +0.4 points [-1.2, 2.0])"``; mIoU, percentage points."""
        m = self.miou
        if not self.significant:
            return (
                f"{self.name_a} and {self.name_b} are not distinguishable on {self.num_images} images "
                f"({self.name_a} - {self.name_b}: {m.points()})"
            )
        first, second, m = (self.name_a, self.name_b, m) if m.low > 0 else (
            self.name_b, self.name_a, Interval(-m.estimate, -m.high, -m.low))  # fmt: skip
        return f"{first} > {second} by {100 * m.estimate:.1f} points [{100 * m.low:.1f}, {100 * m.high:.1f}]"

    def gain(self, label: str) -> str:
        """``"CRF: +2.6 points [1.9, 3.3]"``: the mIoU gain of A (e.g. with CRF) over B (without)."""
        return f"{label}: {self.miou.points()}"

    def to_dict(self, class_names: list[str] | None = None) -> dict:
        """JSON-friendly dict with the sentence and ``significant``.

        Raises:
            UserError: ``class_names`` does not have one entry per class.
        """
        names = _class_names(class_names, len(self.iou))
        return {
            "a": self.name_a,
            "b": self.name_b,
            "miou": self.miou.to_dict(),
            "pixel_accuracy": self.pixel_accuracy.to_dict(),
            "iou": {name: i.to_dict() for name, i in zip(names, self.iou)},
            "significant": self.significant,
            "sentence": self.sentence(),
            "num_images": self.num_images,
            "confidence": self.confidence,
        }


def paired_difference(
    names: tuple[str, str], scores: tuple[ConfusionScores, ConfusionScores],
    resampled: tuple[ConfusionScores, ConfusionScores], num_images: int, confidence: float,
) -> PairedDifference:  # fmt: skip
    """A :class:`PairedDifference` from the full-data and resampled scores of A and B (same resamples)."""
    (fa, fb), (ra, rb) = scores, resampled
    return PairedDifference(
        name_a=names[0],
        name_b=names[1],
        miou=percentile_interval(fa.miou - fb.miou, ra.miou - rb.miou, confidence),
        pixel_accuracy=percentile_interval(
            fa.pixel_accuracy - fb.pixel_accuracy, ra.pixel_accuracy - rb.pixel_accuracy, confidence
        ),
        iou=percentile_interval(fa.iou - fb.iou, ra.iou - rb.iou, confidence),
        num_images=num_images,
        confidence=confidence,
    )


def checked_models(confusions: Mapping[str, object]) -> dict[str, np.ndarray]:
    """Name -> checked ``(N, C, C)`` matrices; raises :class:`UserError` unless all shapes are equal."""
    models = {name: as_confusions(c, f"confusions of {name}") for name, c in confusions.items()}
    shapes = {c.shape for c in models.values()}
    if len(shapes) > 1:
        raise UserError(f"paired intervals need the same images and classes for every model, got shapes {shapes}")
    return models


def paired_bootstrap(
    confusions_a, confusions_b, name_a: str = "A", name_b: str = "B",
    num_resamples: int = 1000, seed: int = 0, confidence: float = 0.95,
) -> PairedDifference:  # fmt: skip
    """Paired bootstrap interval of model A minus model B, evaluated on the same images in the same order.

    Also the interval of a gain: A = with TTA (or CRF), B = without, on the same images.

    Args:
        confusions_a: Per-image matrices ``(N, C, C)`` of model A.
        confusions_b: Per-image matrices ``(N, C, C)`` of model B, image ``i`` the same as A's.
        name_a: Name of A in sentences.
        name_b: Name of B in sentences.
        num_resamples: ``B``.
        seed: Seed of the resampling generator; both models use the same draws.
        confidence: Coverage of the percentile intervals.

    Returns:
        :class:`PairedDifference`; exactly 0 with a 0-width interval when A and B are the same matrices.

    Raises:
        UserError: Bad shapes or counts, A and B of different shapes, ``B`` < 1 or ``confidence``
            outside (0, 1).
    """
    check_confidence(confidence)
    a = as_confusions(confusions_a, f"confusions of {name_a}")
    b = as_confusions(confusions_b, f"confusions of {name_b}")
    if a.shape != b.shape:
        raise UserError(f"paired intervals need the same images and classes, got shapes {a.shape} and {b.shape}")
    counts = resample_counts(len(a), num_resamples, seed)
    full = (score_confusions(a.sum(axis=0)), score_confusions(b.sum(axis=0)))
    resampled = (score_confusions(resampled_sums(counts, a)), score_confusions(resampled_sums(counts, b)))
    return paired_difference((name_a, name_b), full, resampled, len(a), confidence)
