"""Expected calibration error (ECE) of max-softmax confidence over labelled pixels, and the data of a
reliability diagram, accumulated over images as bin counts and sums (so it streams).

Each labelled pixel (target not ``ignore_index``) has a confidence ``conf = max_c probs[c]`` and is
correct when ``argmax_c probs[c]`` equals the target. Confidences fall into ``M`` equal-width bins
``((m - 1) / M, m / M]`` (``M`` = 15; a confidence of exactly 0 goes to the first bin). With ``n_m``
pixels in bin ``m``, accuracy ``acc_m`` (fraction correct) and mean confidence ``conf_m``,

    ECE = sum_m (n_m / n) * |acc_m - conf_m|,

a fraction in ``[0, 1]`` (x 100 for percent). A calibrated model has ``acc_m`` close to ``conf_m`` in
every bin: a pixel predicted with confidence 0.8 is right 80% of the time, so its softmax can be
thresholded. The same accumulator works for any backend's probabilities (e.g. to see whether int8
quantisation changes calibration).

Reference:
    Guo, Pleiss, Sun, Weinberger, "On Calibration of Modern Neural Networks", ICML 2017,
    https://arxiv.org/abs/1706.04599
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from segbench.errors import UserError

__all__ = ["Calibration", "CalibrationScores"]


@dataclass
class CalibrationScores:
    """ECE and the reliability diagram.

    Attributes:
        ece: Expected calibration error, a fraction; NaN when no pixel was counted.
        mce: Maximum calibration error, the largest ``|acc_m - conf_m|`` over non-empty bins.
        bin_lower: Lower edge of each bin.
        bin_upper: Upper edge of each bin.
        count: Pixels in each bin.
        accuracy: Fraction of correct pixels in each bin; NaN for an empty bin.
        confidence: Mean confidence in each bin; NaN for an empty bin.
        num_pixels: Labelled pixels counted.
    """

    ece: float
    mce: float
    bin_lower: list[float]
    bin_upper: list[float]
    count: list[int]
    accuracy: list[float]
    confidence: list[float]
    num_pixels: int

    def to_dict(self) -> dict:
        """JSON-friendly dict, NaN as None; ``reliability`` holds the per-bin lists."""
        def clean(v):
            return None if isinstance(v, float) and math.isnan(v) else v

        return {
            "ece": clean(self.ece),
            "mce": clean(self.mce),
            "num_pixels": self.num_pixels,
            "reliability": {
                "bin_lower": self.bin_lower,
                "bin_upper": self.bin_upper,
                "count": self.count,
                "accuracy": [clean(v) for v in self.accuracy],
                "confidence": [clean(v) for v in self.confidence],
            },
        }


class Calibration:
    """Running calibration bins over a dataset.

    Example:
        >>> cal = Calibration(ignore_index=11)
        >>> cal.update(logits.softmax(1), masks)   # (N, C, H, W) and (N, H, W)
        >>> cal.compute().ece

    Args:
        num_bins: ``M``, equal-width confidence bins on ``[0, 1]`` (15 in Guo et al.).
        ignore_index: Target value excluded from the counts.

    Attributes:
        count: int64 ``(M,)`` pixels per bin.
        confidence_sum: float64 ``(M,)`` sum of the confidences per bin.
        correct: int64 ``(M,)`` correct pixels per bin.

    Raises:
        UserError: ``num_bins`` < 1.
    """

    def __init__(self, num_bins: int = 15, ignore_index: int = 255):
        if num_bins < 1:
            raise UserError(f"num_bins must be >= 1, got {num_bins}")
        self.num_bins, self.ignore_index = num_bins, ignore_index
        self.count = np.zeros(num_bins, dtype=np.int64)
        self.confidence_sum = np.zeros(num_bins, dtype=np.float64)
        self.correct = np.zeros(num_bins, dtype=np.int64)

    @torch.no_grad()
    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch.

        Args:
            probs: Class probabilities ``(N, C, H, W)``, floating point, summing to 1 over ``C``
                (``logits.softmax(1)``).
            target: True class indices ``(N, H, W)``, integer dtype; ``ignore_index`` pixels are skipped.

        Raises:
            UserError: Bad shapes or dtypes, or probabilities outside ``[0, 1]``.
        """
        if probs.ndim != 4 or target.shape != (probs.shape[0], *probs.shape[2:]):
            raise UserError(f"probs must be (N, C, H, W) and target (N, H, W), got {tuple(probs.shape)} and "
                            f"{tuple(target.shape)}")  # fmt: skip
        if not probs.dtype.is_floating_point or target.dtype.is_floating_point or target.dtype == torch.bool:
            raise UserError(f"probs must be floating point and target integer, got {probs.dtype}, {target.dtype}")
        conf, pred = probs.max(1)
        target = target.to(conf.device)
        valid = target != self.ignore_index
        conf, correct = conf[valid].to(torch.float64), (pred[valid] == target[valid])
        if conf.numel() and (float(conf.min()) < 0 or float(conf.max()) > 1 + 1e-6):
            raise UserError("probs must lie in [0, 1]: pass logits.softmax(1), not logits")
        m = self.num_bins
        index = (torch.ceil(conf * m).to(torch.int64) - 1).clamp(0, m - 1)
        self.count += torch.bincount(index, minlength=m).cpu().numpy()
        self.confidence_sum += torch.bincount(index, weights=conf, minlength=m).cpu().numpy()
        self.correct += torch.bincount(index[correct], minlength=m).cpu().numpy()

    def compute(self) -> CalibrationScores:
        """ECE, MCE and the reliability diagram from the counts so far."""
        n = int(self.count.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = np.where(self.count > 0, self.correct / np.maximum(self.count, 1), np.nan)
            confidence = np.where(self.count > 0, self.confidence_sum / np.maximum(self.count, 1), np.nan)
        gap = np.abs(accuracy - confidence)
        filled = self.count > 0
        edges = np.linspace(0.0, 1.0, self.num_bins + 1)
        return CalibrationScores(
            ece=float((self.count[filled] / n * gap[filled]).sum()) if n else math.nan,
            mce=float(gap[filled].max()) if n else math.nan,
            bin_lower=edges[:-1].tolist(),
            bin_upper=edges[1:].tolist(),
            count=self.count.tolist(),
            accuracy=accuracy.tolist(),
            confidence=confidence.tolist(),
            num_pixels=n,
        )
