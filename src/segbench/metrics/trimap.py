"""Trimap accuracy: pixel accuracy and mIoU inside bands around the ground truth's class boundaries.

The band of width ``w`` is the set of labelled pixels ``p`` with a labelled pixel of *another class*
within ``w`` pixels (chessboard distance: in the ``(2w + 1) x (2w + 1)`` square centred on ``p``).
Void (``ignore_index``) pixels are never in a band and never make one: a class next to void has no
boundary there, and two classes separated by a void strip narrower than ``w`` do. The image border is
not a boundary. With ``w = 1`` the band holds both sides of every boundary, 2 px across; each step of
``w`` adds one pixel on each side. Scores inside a band use the definitions of :mod:`segbench.metrics`
on the confusion matrix of the band's pixels, accumulated over images.

Cost: about 1.4 s per 720 x 960 image with 11 classes for widths 1 to 40 (one thread, 2-core Intel Xeon VM
under load): a 6-step binary search per pixel on integral images. Off by default for that reason.

DeepLab measured its dense CRF this way (its Fig. 5 plots both scores against the band width): the
CRF's gain concentrates near boundaries, where whole-image mIoU hides it.

Reference:
    Chen, Papandreou, Kokkinos, Murphy, Yuille, "Semantic Image Segmentation with Deep Convolutional
    Nets and Fully Connected CRFs", ICLR 2015, https://arxiv.org/abs/1412.7062
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from segbench.errors import UserError
from segbench.metrics.iou import score_confusions
from segbench.metrics.labels import check_labels, integral, window_sum

__all__ = ["Trimap", "TrimapScores", "band_confusions", "counts_in_bands", "distance_to_other_class"]


def distance_to_other_class(target: torch.Tensor, ignore_index: int = 255, max_width: int = 40) -> torch.Tensor:
    """Chessboard distance from each labelled pixel to the nearest labelled pixel of another class.

    Args:
        target: True class indices ``(N, H, W)``, int64.
        ignore_index: Void value.
        max_width: Largest distance looked for.

    Returns:
        int64 tensor ``(N, H, W)``: the distance in ``[1, max_width]``, or ``max_width + 1`` where it is
        larger and at void pixels. Pixel ``p`` lies in the band of width ``w`` iff the value is <= ``w``.

    Raises:
        UserError: ``max_width`` < 1.
    """
    if max_width < 1:
        raise UserError(f"max_width must be >= 1, got {max_width}")
    valid = target != ignore_index
    classes = torch.unique(target[valid])
    if len(classes) == 0:
        return torch.full_like(target, max_width + 1)
    # other[:, k] marks the labelled pixels that are not of the k-th class present
    other = integral(valid.unsqueeze(1) & (target.unsqueeze(1) != classes.view(1, -1, 1, 1)))
    channel = torch.searchsorted(classes, target.masked_fill(~valid, classes[0]).contiguous())

    def other_within(radius: torch.Tensor) -> torch.Tensor:
        return window_sum(other, radius, channel) > 0

    # Binary search per pixel for the smallest width whose window holds another class (monotone in w).
    low = torch.ones_like(target)
    high = torch.full_like(target, max_width + 1)
    while bool((low < high).any()):
        mid = (low + high) // 2
        found = other_within(mid) & (low < high)
        high = torch.where(found, mid, high)
        low = torch.where(found | (low >= high), low, mid + 1)
    return torch.where(valid, high, max_width + 1)


def band_confusions(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = 255, max_width: int = 40
) -> np.ndarray:
    """Per-image confusion matrices of the pixels in each band of width 1 to ``max_width``.

    Args:
        pred: Predicted class indices ``(N, H, W)`` or ``(H, W)``, integer dtype.
        target: True class indices, same shape.
        num_classes: ``C``.
        ignore_index: Void value of the target.
        max_width: ``W``, the widest band.

    Returns:
        int64 numpy array ``(N, W, C, C)``; ``[i, w - 1, t, p]`` counts the pixels of image ``i`` in the
        band of width ``w`` with true class ``t`` predicted ``p`` (each band contains the narrower ones).

    Raises:
        UserError: Bad shapes, dtypes or values, or ``max_width`` < 1.
    """
    pred, target = check_labels(pred, target, num_classes, ignore_index)
    dist = distance_to_other_class(target, ignore_index, max_width)
    return counts_in_bands(pred, target, dist, num_classes, max_width)


def counts_in_bands(
    pred: torch.Tensor, target: torch.Tensor, dist: torch.Tensor, num_classes: int, max_width: int = 40
) -> np.ndarray:
    """:func:`band_confusions` from a distance map computed once (it depends on the target only, so several
    predictions of the same image, e.g. with and without CRF, or of several models, can share it).

    Args:
        pred: Checked predicted class indices ``(N, H, W)`` int64 (:func:`~segbench.metrics.labels.check_labels`).
        target: Checked true class indices, same shape.
        dist: :func:`distance_to_other_class` of ``target`` with the same ``max_width``.
        num_classes: ``C``.
        max_width: ``W``, the widest band.

    Returns:
        int64 numpy array ``(N, W, C, C)`` as :func:`band_confusions`.

    Raises:
        UserError: ``dist`` is not of the shape of ``target``.
    """
    if dist.shape != target.shape:
        raise UserError(f"distance map {tuple(dist.shape)} does not match target {tuple(target.shape)}")
    n, c = target.shape[0], num_classes
    keep = dist <= max_width
    image = torch.arange(n, device=target.device).view(n, 1, 1).expand_as(target)
    index = ((image * max_width + dist - 1) * c + target) * c + pred
    counts = torch.bincount(index[keep], minlength=n * max_width * c * c).view(n, max_width, c, c)
    return counts.cumsum(1).cpu().numpy()


@dataclass
class TrimapScores:
    """Scores in each band (fractions in ``[0, 1]`` or NaN).

    Attributes:
        widths: Band widths in pixels, 1 to ``W``.
        miou: mIoU of the band's pixels, one per width.
        pixel_accuracy: Pixel accuracy of the band's pixels, one per width.
        num_pixels: Labelled pixels in each band.
    """

    widths: list[int]
    miou: list[float]
    pixel_accuracy: list[float]
    num_pixels: list[int]

    def to_dict(self) -> dict:
        """JSON-friendly dict (``width_px``, ``miou``, ``pixel_accuracy``, ``num_pixels``), NaN as None."""
        def clean(values):
            return [None if v != v else v for v in values]

        return {"width_px": self.widths, "miou": clean(self.miou), "pixel_accuracy": clean(self.pixel_accuracy),
                "num_pixels": self.num_pixels}  # fmt: skip


class Trimap:
    """Running trimap scores over a dataset.

    Example:
        >>> trimap = Trimap(num_classes=11, ignore_index=11)
        >>> per_image = trimap.update(logits.max(1).indices, masks)   # (N, W, C, C)
        >>> trimap.compute().miou[9]                                  # band of width 10 px

    Args:
        num_classes: ``C``.
        ignore_index: Void value of the target.
        max_width: ``W``, the widest band in pixels (40 as in DeepLab's plot).

    Raises:
        UserError: ``num_classes`` or ``max_width`` < 1.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, max_width: int = 40):
        if num_classes < 1 or max_width < 1:
            raise UserError(f"num_classes and max_width must be >= 1, got {num_classes} and {max_width}")
        self.num_classes, self.ignore_index, self.max_width = num_classes, ignore_index, max_width
        self.confusions = np.zeros((max_width, num_classes, num_classes), dtype=np.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
        """Add a batch; returns its per-image band matrices ``(N, W, C, C)`` (:func:`band_confusions`), so a
        caller can keep them for paired intervals of a gain inside a band."""
        per_image = band_confusions(pred, target, self.num_classes, self.ignore_index, self.max_width)
        self.confusions += per_image.sum(0)
        return per_image

    def compute(self) -> TrimapScores:
        """Scores of each band from the counts so far."""
        scores = score_confusions(self.confusions)
        return TrimapScores(
            widths=list(range(1, self.max_width + 1)),
            miou=[float(v) for v in scores.miou],
            pixel_accuracy=[float(v) for v in scores.pixel_accuracy],
            num_pixels=[int(v) for v in self.confusions.sum(axis=(1, 2))],
        )
