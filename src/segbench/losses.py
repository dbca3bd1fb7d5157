"""Segmentation losses: cross-entropy with class weights, OHEM cross-entropy, soft Dice, and their mix.

Label convention (segbench-wide): targets are int64 class indices ``(N, H, W)`` in ``[0, C)``; pixels
equal to ``ignore_index`` (255) count in no loss, no normaliser and no statistic. Logits are
``(N, C, H, W)``, unnormalised, at the target's size. Every loss returns a scalar that is 0 (with a
gradient) when no pixel of the batch is valid, never NaN.

Class weights come from the training labels: :func:`median_frequency_weights` (Eigen & Fergus) or
:func:`inverse_log_weights` (ENet). :class:`SegLoss` combines the terms with the weights of a recipe's
``loss`` section.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from segbench.classes import IGNORE_INDEX

__all__ = [
    "SegLoss",
    "cross_entropy",
    "dice_loss",
    "inverse_log_weights",
    "median_frequency_weights",
    "ohem_cross_entropy",
]


def _class_pixel_counts(masks: Iterable[torch.Tensor], num_classes: int, ignore_index: int):
    """Per class: labelled pixels, and labelled pixels of the images that contain the class (float64)."""
    counts = torch.zeros(num_classes, dtype=torch.float64)
    image_pixels = torch.zeros(num_classes, dtype=torch.float64)
    for m in masks:
        valid = m[m != ignore_index].long()
        c = torch.bincount(valid, minlength=num_classes)[:num_classes].double()
        counts += c
        image_pixels += (c > 0).double() * valid.numel()
    return counts, image_pixels


def median_frequency_weights(
    masks: Iterable[torch.Tensor], num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Median-frequency class balancing: ``w_c = median(f) / f_c``.

    ``f_c`` is the pixel count of class c divided by the labelled pixels of the images that contain c;
    the median is taken over the classes that occur. A class that never occurs gets weight 0.

    Reference: Eigen & Fergus, "Predicting Depth, Surface Normals and Semantic Labels with a Common
    Multi-Scale Convolutional Architecture", arXiv 1411.4734 (https://arxiv.org/abs/1411.4734).

    Args:
        masks: label maps ``(H, W)`` (any integer dtype), ``ignore_index`` pixels skipped.
        num_classes: C.
        ignore_index: label value left out.

    Returns:
        ``(C,)`` float32 weights.
    """
    counts, image_pixels = _class_pixel_counts(masks, num_classes, ignore_index)
    freq = counts / image_pixels.clamp(min=1)
    present = freq > 0
    weights = torch.zeros(num_classes, dtype=torch.float64)
    if present.any():
        weights[present] = freq[present].median() / freq[present]
    return weights.float()


def inverse_log_weights(
    masks: Iterable[torch.Tensor], num_classes: int, ignore_index: int = IGNORE_INDEX, c: float = 1.02
) -> torch.Tensor:
    """ENet's class weighting: ``w_k = 1 / ln(c + p_k)`` with ``p_k`` the share of labelled pixels of
    class k over the whole set and ``c = 1.02`` (the paper's value), which bounds the weights to
    ``[1 / ln(2.02), 1 / ln(1.02)] = [1.42, 50.5]``. A class that never occurs gets 1 / ln(1.02).

    Reference: Paszke et al., "ENet: A Deep Neural Network Architecture for Real-Time Semantic
    Segmentation", arXiv 1606.02147 (https://arxiv.org/abs/1606.02147).

    Args:
        masks: label maps ``(H, W)``, ``ignore_index`` pixels skipped.
        num_classes: C.
        ignore_index: label value left out.
        c: the additive constant inside the logarithm.

    Returns:
        ``(C,)`` float32 weights.
    """
    counts, _ = _class_pixel_counts(masks, num_classes, ignore_index)
    p = counts / counts.sum().clamp(min=1)
    return (1.0 / torch.log(c + p)).float()


def _zero_like(logits: torch.Tensor) -> torch.Tensor:
    return logits.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) connected


def cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Pixel-wise cross-entropy, averaged over the valid pixels (weighted mean with class weights).

    With ``weight``, the loss is ``sum_i w[y_i] * ce_i / sum_i w[y_i]`` over valid pixels i, as in
    :func:`torch.nn.functional.cross_entropy`, which computes it. With ``label_smoothing`` = e the
    target of a pixel is ``(1 - e) * onehot(y) + e / C`` (Szegedy et al., "Rethinking the Inception
    Architecture for Computer Vision", arXiv 1512.00567); ignored pixels stay out.

    Args:
        logits: ``(N, C, H, W)``.
        target: ``(N, H, W)`` int64; ``ignore_index`` pixels are left out.
        weight: optional ``(C,)`` class weights.
        ignore_index: label value left out.
        label_smoothing: e in ``[0, 1)``.

    Returns:
        Scalar tensor; 0 when no pixel is valid.
    """
    if not (target != ignore_index).any():
        return _zero_like(logits)
    return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing)


def ohem_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    thresh: float = 0.7,
    min_kept: int = 100_000,
    weight: torch.Tensor | None = None,
    ignore_index: int = IGNORE_INDEX,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Online hard example mining cross-entropy: the mean cross-entropy over the hard pixels only.

    A valid pixel is hard when the softmax probability of its true class is below ``thresh``. When fewer
    than ``k = min(min_kept * N, valid pixels)`` pixels are hard, the ``k`` valid pixels with the lowest
    true-class probability are kept instead, so at least ``k`` pixels always contribute. The kept
    pixels' cross-entropy is averaged (a ``weight[y]``-weighted mean with class weights). Pixel
    selection carries no gradient.

    References: Shrivastava, Gupta, Girshick, "Training Region-based Object Detectors with Online Hard
    Example Mining", arXiv 1604.03540 (https://arxiv.org/abs/1604.03540); for pixels ("online
    bootstrapping"), Wu, Shen, van den Hengel, "High-performance Semantic Segmentation Using Very Deep
    Fully Convolutional Networks", arXiv 1604.04339 (https://arxiv.org/abs/1604.04339). The defaults
    ``thresh=0.7, min_kept=100000`` (pixels per image) are those of MMSegmentation's PSPNet and FCN
    Cityscapes OHEM configs (``OHEMPixelSampler``, which also counts ``min_kept`` per image).

    Args:
        logits: ``(N, C, H, W)``.
        target: ``(N, H, W)`` int64; ``ignore_index`` pixels are never kept.
        thresh: probability threshold in ``(0, 1]``.
        min_kept: minimum number of kept pixels per image.
        weight: optional ``(C,)`` class weights.
        ignore_index: label value left out.
        label_smoothing: e in ``[0, 1)`` for the kept pixels' cross-entropy (see :func:`cross_entropy`);
            hardness is judged on the unsmoothed true-class probability.

    Returns:
        Scalar tensor; 0 when no pixel is valid.
    """
    n = logits.shape[0]
    flat_target = target.reshape(-1)
    valid = flat_target != ignore_index
    n_valid = int(valid.sum())
    if n_valid == 0:
        return _zero_like(logits)
    ce = F.cross_entropy(
        logits, target, ignore_index=ignore_index, reduction="none", label_smoothing=label_smoothing
    ).reshape(-1)
    with torch.no_grad():
        safe_target = torch.where(valid, flat_target, torch.zeros_like(flat_target))
        prob = logits.detach().float().softmax(1).permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
        prob = prob.gather(1, safe_target[:, None])[:, 0]
        prob = torch.where(valid, prob, torch.full_like(prob, 2.0))  # ignored pixels: never hard
        kept = prob < thresh
        k = min(int(min_kept) * n, n_valid)
        if int(kept.sum()) < k:
            kept = torch.zeros_like(kept)
            kept[prob.topk(k, largest=False).indices] = True
    pixel_w = kept.to(ce.dtype)
    if weight is not None:
        pixel_w = pixel_w * weight.to(ce.dtype)[safe_target]
    return (ce * pixel_w).sum() / pixel_w.sum().clamp(min=torch.finfo(ce.dtype).tiny)


def dice_loss(
    logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Soft multi-class Dice loss: ``1 - mean_c (2 * sum p_c g_c + s) / (sum p_c + sum g_c + s)``.

    ``p_c`` is the softmax probability of class c, ``g_c`` the one-hot target, sums over the valid
    pixels of the whole batch, ``s = smooth``; the mean runs over all C classes (a class absent from
    target and prediction scores close to 1, one absent from the target but predicted is pushed down).

    Reference: Milletari, Navab, Ahmadi, "V-Net: Fully Convolutional Neural Networks for Volumetric
    Medical Image Segmentation", arXiv 1606.04797 (https://arxiv.org/abs/1606.04797).

    Args:
        logits: ``(N, C, H, W)``.
        target: ``(N, H, W)`` int64; ``ignore_index`` pixels are left out of every sum.
        smooth: the additive smoothing ``s`` (> 0 keeps absent classes finite).
        ignore_index: label value left out.

    Returns:
        Scalar tensor in ``[0, 1]``; 0 when no pixel is valid.
    """
    valid = target != ignore_index
    if not valid.any():
        return _zero_like(logits)
    num_classes = logits.shape[1]
    prob = logits.float().softmax(1) * valid[:, None]
    onehot = F.one_hot(torch.where(valid, target, torch.zeros_like(target)), num_classes).permute(0, 3, 1, 2)
    onehot = onehot.to(prob.dtype) * valid[:, None]
    dims = (0, 2, 3)
    inter = (prob * onehot).sum(dims)
    card = prob.sum(dims) + onehot.sum(dims)
    return 1.0 - ((2.0 * inter + smooth) / (card + smooth)).mean()


class SegLoss:
    """Weighted sum of cross-entropy, OHEM cross-entropy and Dice: ``ce * CE + ohem * OHEM + dice * Dice``.

    Terms with weight 0 are not computed. ``class_weights`` apply to CE and OHEM (Dice is balanced by
    construction).

    Args:
        ce: weight of :func:`cross_entropy`.
        ohem: weight of :func:`ohem_cross_entropy`.
        dice: weight of :func:`dice_loss`.
        ohem_thresh: OHEM probability threshold.
        ohem_min_kept: OHEM minimum kept pixels per image.
        dice_smooth: Dice smoothing.
        label_smoothing: label smoothing e of CE and OHEM, in ``[0, 1)``.
        class_weights: optional ``(C,)`` tensor.
        ignore_index: label value left out of every term.

    Raises:
        ValueError: a negative weight, all weights 0, ``ohem_thresh`` outside ``(0, 1]`` or
            ``label_smoothing`` outside ``[0, 1)``.
    """

    def __init__(
        self,
        ce: float = 1.0,
        ohem: float = 0.0,
        dice: float = 0.0,
        ohem_thresh: float = 0.7,
        ohem_min_kept: int = 100_000,
        dice_smooth: float = 1.0,
        label_smoothing: float = 0.0,
        class_weights: torch.Tensor | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        self.weights = {"ce": ce, "ohem": ohem, "dice": dice}
        bad = [k for k, w in self.weights.items() if w < 0]
        if bad:
            raise ValueError(f"loss.{bad[0]}: a loss weight must be >= 0, got {self.weights[bad[0]]}")
        if not any(self.weights.values()):
            raise ValueError("loss: every loss weight (ce, ohem, dice) is 0; give at least one a positive weight")
        if not 0.0 < ohem_thresh <= 1.0:
            raise ValueError(f"loss.ohem_thresh: expected a probability in (0, 1], got {ohem_thresh}")
        if ohem_min_kept < 0:
            raise ValueError(f"loss.ohem_min_kept: expected >= 0, got {ohem_min_kept}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"loss.label_smoothing: expected a value in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing
        self.ohem_thresh, self.ohem_min_kept, self.dice_smooth = ohem_thresh, ohem_min_kept, dice_smooth
        self.class_weights = class_weights
        self.ignore_index = ignore_index

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the weighted total (scalar tensor) and each computed term's value (floats, unweighted).

        Shape:
            logits ``(N, C, H, W)``, target ``(N, H, W)`` int64.
        """
        terms: dict[str, torch.Tensor] = {}
        if self.weights["ce"]:
            terms["ce"] = cross_entropy(logits, target, self.class_weights, self.ignore_index, self.label_smoothing)
        if self.weights["ohem"]:
            terms["ohem"] = ohem_cross_entropy(
                logits, target, self.ohem_thresh, self.ohem_min_kept, self.class_weights, self.ignore_index,
                self.label_smoothing,
            )
        if self.weights["dice"]:
            terms["dice"] = dice_loss(logits, target, self.dice_smooth, self.ignore_index)
        total = None
        for name, value in terms.items():
            part = self.weights[name] * value
            total = part if total is None else total + part
        return total, {k: float(v.detach()) for k, v in terms.items()}
