"""The figures of a corruption sweep (:mod:`segbench.engine.robustness`) from its confusion matrices: one
model's table (:func:`robustness_table`), bootstrap intervals over the images (:func:`robustness_intervals`) and
paired intervals between models (:func:`robustness_comparisons`).

Matrices are per cell, clean first, then corruption x severity in the plan's order; figures are fractions.
"""

from __future__ import annotations

import math

import numpy as np

from segbench.metrics.intervals import percentile_interval, resample_counts, resampled_sums
from segbench.metrics.iou import score_confusions

__all__ = ["robustness_comparisons", "robustness_intervals", "robustness_table"]


def _scores(mats: np.ndarray) -> float:
    return float(score_confusions(mats).miou)


def _resampled(per_image: np.ndarray, counts: np.ndarray, plan) -> tuple[np.ndarray, np.ndarray]:
    """Per resample: the clean mIoU ``(B,)`` and every corrupted cell's mIoU ``(B, corruptions, severities)``."""
    miou = score_confusions(resampled_sums(counts, per_image.transpose(1, 0, 2, 3))).miou  # (B, K)
    return miou[:, 0], miou[:, 1:].reshape(len(counts), len(plan.corruptions), len(plan.severities))


def _relative(mean: np.ndarray, clean: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(clean > 0, mean / clean, np.nan)


def robustness_intervals(per_image: np.ndarray, plan, num_resamples: int = 1000,
                         confidence: float = 0.95) -> dict:  # fmt: skip
    """Percentile bootstrap intervals over images of one model's robustness figures.

    Each resample draws the swept images with replacement (seed ``plan.seed``); every cell's mIoU is
    recomputed from that resample's summed matrices, and the clean mIoU, the mean over the corrupted cells
    and their ratio come from the same resample, so the relative figure's interval is paired with the clean
    one (:mod:`segbench.metrics.intervals`).

    Args:
        per_image: Confusion matrices ``(K, N, C, C)``: cells (clean first, then corruption x severity in
            ``plan``'s order) by images.
        plan: The sweep's :class:`~segbench.engine.robustness.CorruptionPlan` (corruptions, severities, seed).
        num_resamples: ``B``.
        confidence: Of the intervals.

    Returns:
        ``{"clean_miou_interval", "mean_miou_interval", "relative_miou_interval": [low, high], "mean_interval":
        {corruption: [low, high]}}`` (fractions).
    """
    counts = resample_counts(per_image.shape[1], num_resamples, plan.seed)
    clean, per = _resampled(per_image, counts, plan)
    mean = per.mean(axis=(1, 2))

    def bounds(samples):
        iv = percentile_interval(np.nan, samples, confidence)
        return [iv.low, iv.high]

    return {"clean_miou_interval": bounds(clean), "mean_miou_interval": bounds(mean),
            "relative_miou_interval": bounds(_relative(mean, clean)),
            "mean_interval": {name: bounds(per[:, j].mean(1)) for j, name in enumerate(plan.corruptions)}}  # fmt: skip


def robustness_comparisons(mats: dict, plan, num_resamples: int = 1000,
                           confidence: float = 0.95) -> list[dict]:  # fmt: skip
    """Paired intervals between every pair of models of a sweep: the difference of their mean corrupted mIoU
    and of their mIoU relative to clean, both models scored on the same resamples of the same images (so
    the images' shared difficulty cancels out, as in :func:`segbench.metrics.intervals.paired_bootstrap`).

    Args:
        mats: Row label -> per-image matrices ``(K, N, C, C)`` (:func:`robustness_intervals`), same ``K``, ``N``.
        plan: The sweep's :class:`~segbench.engine.robustness.CorruptionPlan` (corruptions, severities, seed).
        num_resamples: ``B``.
        confidence: Of the intervals.

    Returns:
        One dict per pair, the better mean corrupted mIoU first: ``{"a", "b", "mean_miou_difference",
        "relative_difference": {"estimate", "low", "high"}, "significant", "relative_significant",
        "statement"}`` (fractions; significant: the interval excludes 0).
    """
    if len(mats) < 2:
        return []
    counts = resample_counts(next(iter(mats.values())).shape[1], num_resamples, plan.seed)
    figures = {}
    for label, m in mats.items():
        t = robustness_table(m.sum(1), plan)
        clean, per = _resampled(m, counts, plan)
        mean = per.mean(axis=(1, 2))
        figures[label] = (t["mean_miou"], t["relative_miou"], mean, _relative(mean, clean))
    labels = sorted(figures, key=lambda k: -figures[k][0])
    out = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            fa, fb = figures[a], figures[b]
            d = percentile_interval(fa[0] - fb[0], fa[2] - fb[2], confidence)
            r = percentile_interval(fa[1] - fb[1], fa[3] - fb[3], confidence)
            out.append({"a": a, "b": b, "mean_miou_difference": d.to_dict(), "relative_difference": r.to_dict(),
                        "significant": d.excludes_zero(), "relative_significant": r.excludes_zero(),
                        "statement": f"{a} vs {b} under corruption: mIoU {d.points()}, relative to clean "
                                     f"{r.points()}"})  # fmt: skip
    return out


def robustness_table(mats: np.ndarray, plan) -> dict:
    """One model's robustness table from its matrices per cell ``(K, C, C)`` (clean first, then corruption x
    severity in ``plan``'s order; ``plan`` a :class:`~segbench.engine.robustness.CorruptionPlan`).

    Returns:
        ``{"clean_miou", "miou": {corruption: [per severity]}, "mean", "relative", "mean_miou", "relative_miou"}``
        (fractions).
    """
    clean = _scores(mats[0])
    per = score_confusions(mats[1:]).miou.reshape(len(plan.corruptions), len(plan.severities))
    miou = {c: [float(v) for v in per[j]] for j, c in enumerate(plan.corruptions)}
    mean = {c: float(np.mean(v)) for c, v in miou.items()}
    overall = float(np.mean(per)) if per.size else math.nan
    rel = (lambda v: v / clean if clean > 0 else math.nan)  # noqa: E731
    return {"clean_miou": clean, "miou": miou, "mean": mean, "relative": {c: rel(v) for c, v in mean.items()},
            "mean_miou": overall, "relative_miou": rel(overall)}  # fmt: skip
