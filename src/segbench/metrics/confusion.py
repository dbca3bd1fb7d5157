"""Segmentation metrics from a confusion matrix.

:class:`ConfusionMatrix` accumulates ``mat[target, pred]`` (rows: ground truth, columns: prediction)
with :func:`torch.bincount` on the device of the label tensors, can be summed across
``torch.distributed`` processes, and turns into a :class:`SegMetrics` with pixel accuracy, mean class
accuracy, per-class IoU and mIoU.

Label convention (used throughout segbench): predictions and targets are int64 class indices in
``[0, num_classes)``; target pixels equal to ``ignore_index`` (255 by default, or the dataset's void id)
are excluded from the matrix and so from every metric.

Definitions, for class ``c`` with ``TP = mat[c, c]``, ``FN = mat[c, :].sum() - TP`` and
``FP = mat[:, c].sum() - TP``:

- IoU (Jaccard index) = TP / (TP + FP + FN)
- accuracy (per-class recall) = TP / (TP + FN)
- pixel accuracy = trace(mat) / mat.sum()
- mIoU = mean of the per-class IoUs, mean accuracy = mean of the per-class accuracies

All values are fractions in ``[0, 1]`` (multiply by 100 for percent). They are computed by
:func:`segbench.metrics.iou.score_confusions`, the one implementation of these definitions in segbench.

NaN rule for absent classes:

- a class absent from both target and prediction (TP + FP + FN == 0) has IoU NaN and is left out of
  mIoU (a NaN-ignoring mean); a class absent from the target but predicted somewhere has IoU 0 and
  counts in mIoU;
- a class absent from the target (TP + FN == 0) has accuracy NaN and is left out of mean accuracy;
- if no pixel was counted at all, every metric is NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from segbench.errors import UserError
from segbench.metrics.iou import score_confusions

__all__ = ["ConfusionMatrix", "SegMetrics"]


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


@dataclass
class SegMetrics:
    """Metrics computed from one confusion matrix. All values are fractions in ``[0, 1]``.

    See the module docstring for the definitions and the NaN rule.

    Attributes:
        pixel_accuracy: Correctly classified pixels / counted pixels.
        mean_accuracy: NaN-ignoring mean of ``accuracy``.
        iou: Per-class IoU = TP / (TP + FP + FN); NaN for a class absent from target and prediction.
        accuracy: Per-class recall = TP / (TP + FN); NaN for a class absent from the target.
        miou: NaN-ignoring mean of ``iou``.
        confusion: The ``(C, C)`` matrix as nested lists, ``confusion[target][pred]``.
        num_pixels: Number of counted (non-ignored) pixels.
    """

    pixel_accuracy: float
    mean_accuracy: float
    iou: list[float]
    accuracy: list[float]
    miou: float
    confusion: list[list[int]]
    num_pixels: int

    def to_dict(self, class_names: list[str] | None = None) -> dict:
        """Return a JSON-friendly dict; NaN values become ``None``.

        Args:
            class_names: One name per class, used as keys of ``iou`` and ``accuracy``. Defaults to
                the class indices as strings (``"0"``, ``"1"``, ...).

        Returns:
            Dict with keys ``pixel_accuracy``, ``mean_accuracy``, ``miou`` (floats or None), ``iou``
            and ``accuracy`` (dicts class name -> float or None), ``confusion`` (nested lists of int,
            ``[target][pred]``) and ``num_pixels`` (int).

        Raises:
            ValueError: If ``class_names`` does not have one entry per class.
        """
        num_classes = len(self.iou)
        if class_names is None:
            class_names = [str(i) for i in range(num_classes)]
        if len(class_names) != num_classes:
            raise ValueError(
                f"class_names has {len(class_names)} entries but the metrics have {num_classes} classes"
            )
        return {
            "pixel_accuracy": _json_float(self.pixel_accuracy),
            "mean_accuracy": _json_float(self.mean_accuracy),
            "miou": _json_float(self.miou),
            "iou": {name: _json_float(v) for name, v in zip(class_names, self.iou)},
            "accuracy": {name: _json_float(v) for name, v in zip(class_names, self.accuracy)},
            "confusion": [list(row) for row in self.confusion],
            "num_pixels": self.num_pixels,
        }


class ConfusionMatrix:
    """Running confusion matrix ``mat[target, pred]`` for ``num_classes`` classes.

    Example:
        >>> cm = ConfusionMatrix(num_classes=3)
        >>> cm.update(logits.argmax(1), masks)   # (N, H, W) int64 each
        >>> cm.all_reduce()                      # no-op unless torch.distributed is initialised
        >>> cm.compute().miou

    Args:
        num_classes: Number of classes ``C``.
        ignore_index: Target value excluded from the matrix (void / unlabelled pixels).
        device: Device on which ``mat`` starts (default CPU). ``update`` moves ``mat`` to the device of
            the label tensors, so counting happens where the predictions are.

    Attributes:
        mat: int64 tensor of shape ``(C, C)``; ``mat[t, p]`` counts pixels of true class ``t``
            predicted as ``p``.

    Raises:
        ValueError: If ``num_classes`` < 1.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None):
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.mat = torch.zeros(
            (self.num_classes, self.num_classes), dtype=torch.int64, device=device if device is not None else "cpu"
        )

    def reset(self) -> None:
        """Set every count back to zero (keeps the device)."""
        self.mat.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch of predicted and true labels.

        Args:
            pred: Predicted class indices, integer tensor of any shape, e.g. ``(N, H, W)``
                (``logits.argmax(1)``).
            target: True class indices, same shape as ``pred``; pixels equal to ``ignore_index`` are
                skipped.

        Raises:
            ValueError: If the shapes differ, a tensor is not of an integer dtype, or a prediction
                lies outside ``[0, num_classes)``.
            UserError: If a target value lies outside ``[0, num_classes)`` and is not
                ``ignore_index`` (usually a dataset / ``num_classes`` mismatch); the message lists
                the offending values.
        """
        if pred.shape != target.shape:
            raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        for name, t in (("pred", pred), ("target", target)):
            if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
                raise ValueError(f"{name} must hold integer class indices, got dtype {t.dtype}")
        if self.mat.device != target.device:
            self.mat = self.mat.to(target.device)
        pred = pred.to(device=target.device).reshape(-1)
        target = target.reshape(-1)
        c = self.num_classes
        if target.numel() == 0:
            return

        valid = target != self.ignore_index
        invalid = ~valid
        # Range checks on the original dtypes (a cast could wrap an out-of-range value into range); one sync.
        t_lo, t_hi = torch.aminmax(target.masked_fill(invalid, 0))
        p_lo, p_hi = torch.aminmax(pred.masked_fill(invalid, 0))
        t_lo, t_hi, p_lo, p_hi = torch.stack([v.to(torch.int64) for v in (t_lo, t_hi, p_lo, p_hi)]).tolist()
        if t_lo < 0 or t_hi >= c:
            bad = valid & ((target < 0) | (target >= c))
            values = torch.unique(target[bad]).tolist()
            shown = ", ".join(str(v) for v in values[:20]) + (", ..." if len(values) > 20 else "")
            raise UserError(
                f"target contains values outside [0, {c}) that are not ignore_index={self.ignore_index}: "
                f"{shown} (check num_classes and the dataset's label encoding)"
            )
        if p_lo < 0 or p_hi >= c:
            values = torch.unique(pred[valid & ((pred < 0) | (pred >= c))]).tolist()
            raise ValueError(f"pred contains values outside [0, {c}): {values[:20]}")

        # One bincount over target * C + pred, ignored pixels sent to an extra last bin; int32 arithmetic
        # (about 4x faster than int64 with boolean indexing on CPU) whenever C * C fits.
        dtype = torch.int32 if c * c < torch.iinfo(torch.int32).max else torch.int64
        index = (target.to(dtype).masked_fill(invalid, 0) * c + pred.to(dtype)).masked_fill_(invalid, c * c)
        self.mat += torch.bincount(index, minlength=c * c + 1)[: c * c].reshape(c, c)

    def all_reduce(self) -> None:
        """Sum ``mat`` over all ``torch.distributed`` processes, in place.

        A no-op when ``torch.distributed`` is unavailable or not initialised. With the NCCL backend
        ``mat`` must be on the process's CUDA device (it is after ``update`` with CUDA tensors).
        """
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.mat, op=dist.ReduceOp.SUM)

    def compute(self) -> SegMetrics:
        """Compute the metrics from the counts so far (see the module docstring for the NaN rule).

        Returns:
            A :class:`SegMetrics`; values are fractions in ``[0, 1]`` or NaN.
        """
        counts = self.mat.detach().cpu()
        scores = score_confusions(counts.numpy())
        return SegMetrics(
            pixel_accuracy=float(scores.pixel_accuracy),
            mean_accuracy=float(scores.mean_accuracy),
            iou=scores.iou.tolist(),
            accuracy=scores.accuracy.tolist(),
            miou=float(scores.miou),
            confusion=counts.tolist(),
            num_pixels=int(counts.sum().item()),
        )
