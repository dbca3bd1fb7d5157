"""IoU, mIoU, pixel accuracy and mean accuracy from confusion matrices: segbench's one implementation.

The definitions are those of :mod:`segbench.metrics.confusion` (``mat[target, pred]``; IoU = TP / (TP + FP +
FN); pixel accuracy = trace / sum; a class absent from both target and prediction has IoU NaN and is left out
of mIoU), computed with numpy on stacks of matrices of shape ``(..., C, C)``, so that a bootstrap can score a
thousand resampled datasets in one call. :meth:`~segbench.metrics.confusion.ConfusionMatrix.compute`, the
trimap bands, the bootstrap, the rankings and the robustness sweep all call :func:`score_confusions`;
Boundary IoU calls :func:`iou_from_counts` on its own intersections and unions.

Two figures are called "mIoU" in the field, and they differ:

- **dataset-level mIoU** (what segbench, Cityscapes, PASCAL VOC and ADE20K report): sum the per-image
  matrices into one ``(C, C)`` matrix, compute each class's IoU from the summed counts, then take the
  NaN-ignoring mean over classes. Large images and frequent classes weigh more.
- **per-image mIoU**: compute each image's own IoUs from its own matrix (a class absent from both the
  image's target and its prediction is NaN and left out of that image's mean), average them into that
  image's mIoU, then average over images (an image without counted pixels is NaN and left out). Every
  image weighs the same, and a class a model misses in one image costs that image a whole class.

Neither is an estimate of the other; report which one a number is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segbench.errors import UserError

__all__ = ["ConfusionScores", "as_confusions", "iou_from_counts", "nanmean", "per_image_miou", "score_confusions"]

# Counts are added in float64 (BLAS) for speed; integer sums stay exact below 2 ** 53.
EXACT_LIMIT = 2**53


def as_confusions(confusions, name: str = "confusions") -> np.ndarray:
    """Check and convert per-image confusion matrices.

    Args:
        confusions: Array-like (numpy, torch, nested lists) of shape ``(N, C, C)``, non-negative integer
            counts, ``confusions[i, t, p]`` = pixels of image ``i`` with true class ``t`` predicted ``p``.
        name: Name used in error messages.

    Returns:
        int64 numpy array of shape ``(N, C, C)``.

    Raises:
        UserError: The shape is not ``(N, C, C)`` with N >= 1 and C >= 1, the values are not integers,
            or a count is negative.
    """
    if hasattr(confusions, "detach"):  # torch tensor
        confusions = confusions.detach().cpu().numpy()
    arr = np.asarray(confusions)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise UserError(f"{name} must have shape (num_images, C, C) with at least one image, got {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise UserError(f"{name} must hold integer pixel counts, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if (arr < 0).any():
        raise UserError(f"{name} holds negative counts")
    return arr


def nanmean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean over ``axis`` leaving NaN out; NaN where every value is NaN (no warning)."""
    kept = ~np.isnan(values)
    count = kept.sum(axis=axis)
    total = np.where(kept, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def iou_from_counts(intersection: np.ndarray, union: np.ndarray) -> np.ndarray:
    """IoU = intersection / union elementwise, NaN where the union is 0 (no warning).

    Args:
        intersection: Pixel counts of any shape, e.g. TP ``(..., C)``.
        union: Pixel counts of the same shape, e.g. TP + FP + FN.

    Returns:
        float64 array of that shape, fractions in ``[0, 1]`` or NaN.
    """
    intersection, union = np.asarray(intersection, np.float64), np.asarray(union, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, intersection / union, np.nan)


@dataclass
class ConfusionScores:
    """Metrics of a stack of confusion matrices; fractions in ``[0, 1]`` or NaN.

    Attributes:
        iou: ``(..., C)`` per-class IoU = TP / (TP + FP + FN); NaN where TP + FP + FN == 0.
        accuracy: ``(..., C)`` per-class recall = TP / (TP + FN); NaN where TP + FN == 0.
        miou: ``(...)`` NaN-ignoring mean of ``iou`` over classes.
        mean_accuracy: ``(...)`` NaN-ignoring mean of ``accuracy`` over classes.
        pixel_accuracy: ``(...)`` trace / sum; NaN where no pixel was counted.
    """

    iou: np.ndarray
    accuracy: np.ndarray
    miou: np.ndarray
    mean_accuracy: np.ndarray
    pixel_accuracy: np.ndarray


def score_confusions(mats: np.ndarray) -> ConfusionScores:
    """Per-class IoU, accuracy, mIoU, mean accuracy and pixel accuracy of every matrix of a stack.

    Args:
        mats: Counts of shape ``(..., C, C)``, ``mats[..., t, p]`` (integer or float holding integers).

    Returns:
        :class:`ConfusionScores` whose arrays have the leading shape ``...`` of ``mats``.

    Raises:
        UserError: ``mats`` is not at least 2-D with square last two axes.
    """
    mats = np.asarray(mats, dtype=np.float64)
    if mats.ndim < 2 or mats.shape[-1] != mats.shape[-2]:
        raise UserError(f"confusion matrices must have shape (..., C, C), got {mats.shape}")
    tp = np.diagonal(mats, axis1=-2, axis2=-1)
    target_count = mats.sum(axis=-1)  # TP + FN
    pred_count = mats.sum(axis=-2)  # TP + FP
    union = target_count + pred_count - tp
    total = target_count.sum(axis=-1)
    iou = iou_from_counts(tp, union)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(target_count > 0, tp / target_count, np.nan)
        pixel_accuracy = np.where(total > 0, tp.sum(axis=-1) / total, np.nan)
    return ConfusionScores(
        iou=iou,
        accuracy=accuracy,
        miou=nanmean(iou),
        mean_accuracy=nanmean(accuracy),
        pixel_accuracy=pixel_accuracy,
    )


def per_image_miou(confusions) -> np.ndarray:
    """Each image's own mIoU (see the module docstring for how it differs from dataset-level mIoU).

    Args:
        confusions: Per-image matrices ``(N, C, C)``, see :func:`as_confusions`.

    Returns:
        float64 array ``(N,)``: the NaN-ignoring mean over classes of the image's IoUs; NaN for an image
        without counted pixels.

    Raises:
        UserError: As :func:`as_confusions`.
    """
    return score_confusions(as_confusions(confusions)).miou
