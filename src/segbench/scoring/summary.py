"""Intervals, paired comparisons and gains as the plain dicts a report or ``metrics.json`` holds.

Keys (fractions in ``[0, 1]`` like ``miou``; differences of fractions for comparisons):

- :func:`interval_fields`: ``miou_interval``, ``pixel_accuracy_interval``, ``mean_accuracy_interval``
  (``[low, high]``), ``iou_interval`` (one ``[low, high]`` per class, in class order),
  ``per_image_miou_mean`` with ``per_image_miou_interval``, ``per_image_miou_quantiles`` (min, 25th, median,
  75th, max of the images' own mIoUs) and ``bootstrap`` (``num_images``, ``num_resamples``, ``seed``,
  ``confidence``).
- :func:`comparison_list`: one ``{"a", "b", "difference", "interval", "significant", "statement"}`` per pair.
- :func:`gain`: ``{"label", "a", "b", "difference", "interval", "significant", "statement"}``.

Dataset-level mIoU and per-image mIoU are defined in :mod:`segbench.scoring.confusion`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from segbench.scoring.confusion import as_confusions, per_image_miou
from segbench.scoring.intervals import Interval, PairedDifference, bootstrap, paired_bootstrap
from segbench.scoring.ranking import Ranking, rank_models

__all__ = ["band_gains", "comparison_dict", "comparison_list", "gain", "interval_fields", "ranking"]


def _f(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _pair(i: Interval) -> list[float | None]:
    return [_f(i.low), _f(i.high)]


def interval_fields(confusions, num_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Bootstrap intervals over images of one model's metrics, and its per-image mIoU.

    Args:
        confusions: Per-image matrices ``(N, C, C)``.
        num_resamples: ``B``.
        seed: Seed of the resampling generator.
        confidence: Coverage of the intervals.

    Returns:
        The keys listed in the module docstring.

    Raises:
        UserError: As :func:`~segbench.scoring.intervals.bootstrap`.
    """
    mats = as_confusions(confusions)
    b = bootstrap(mats, num_resamples, seed, confidence)
    own = per_image_miou(mats)
    own = own[~np.isnan(own)]
    quantiles = np.quantile(own, [0, 0.25, 0.5, 0.75, 1]).tolist() if own.size else [None] * 5
    return {
        "miou_interval": _pair(b.miou),
        "pixel_accuracy_interval": _pair(b.pixel_accuracy),
        "mean_accuracy_interval": _pair(b.mean_accuracy),
        "iou_interval": [_pair(i) for i in b.iou],
        "per_image_miou_mean": _f(b.per_image_miou.estimate),
        "per_image_miou_interval": _pair(b.per_image_miou),
        "per_image_miou_quantiles": dict(zip(("min", "q25", "median", "q75", "max"), quantiles)),
        "bootstrap": {"num_images": b.num_images, "num_resamples": b.num_resamples, "seed": seed,
                      "confidence": b.confidence},  # fmt: skip
    }


def comparison_dict(p: PairedDifference) -> dict:
    """``{"a", "b", "difference", "interval", "significant", "statement"}`` of a paired mIoU difference A - B."""
    return {"a": p.name_a, "b": p.name_b, "difference": _f(p.miou.estimate), "interval": _pair(p.miou),
            "significant": p.significant, "statement": p.sentence()}  # fmt: skip


def ranking(confusions: Mapping[str, object], num_resamples: int = 1000, seed: int = 0) -> Ranking:
    """:func:`~segbench.scoring.ranking.rank_models` (every pair on the same resamples)."""
    return rank_models(confusions, num_resamples, seed)


def comparison_list(rank: Ranking) -> list[dict]:
    """Every pair of a ranking, the better-ranked model as ``a`` (:func:`comparison_dict`)."""
    return [comparison_dict(p) for p in rank.pairs]


def gain(label: str, with_step, without_step, name_a: str, name_b: str, num_resamples: int = 1000,
         seed: int = 0) -> dict:  # fmt: skip
    """Paired interval of the mIoU gain of a step (TTA, CRF) on the same images.

    Args:
        label: What the step is (``"CRF"``), the start of the statement ``"CRF: +2.6 points [1.9, 3.3]"``.
        with_step: Per-image matrices ``(N, C, C)`` with the step.
        without_step: Per-image matrices ``(N, C, C)`` without it, the same images in the same order.
        name_a: Name of the variant with the step.
        name_b: Name of the variant without it.
        num_resamples: ``B``.
        seed: Seed of the resampling generator.

    Returns:
        ``{"label", "a", "b", "difference", "interval", "significant", "statement"}``.

    Raises:
        UserError: As :func:`~segbench.scoring.intervals.paired_bootstrap`.
    """
    p = paired_bootstrap(with_step, without_step, name_a, name_b, num_resamples, seed)
    return {"label": label, **comparison_dict(p), "statement": p.gain(label)}


def band_gains(with_step, without_step, widths=(1, 2, 5, 10, 20, 40), num_resamples: int = 1000,
               seed: int = 0) -> list[dict]:  # fmt: skip
    """Paired intervals of a step's mIoU gain inside trimap bands (:mod:`segbench.scoring.trimap`).

    Args:
        with_step: Per-image band matrices ``(N, W, C, C)`` with the step.
        without_step: The same without it.
        widths: Band widths in pixels to score (those above ``W`` are left out).
        num_resamples: ``B``.
        seed: Seed of the resampling generator (the same draws at every width).

    Returns:
        One ``{"width_px", "difference", "interval", "significant"}`` per width.

    Raises:
        UserError: As :func:`~segbench.scoring.intervals.paired_bootstrap`.
    """
    a, b = np.asarray(with_step), np.asarray(without_step)
    out = []
    for w in widths:
        if 1 <= w <= a.shape[1]:
            p = paired_bootstrap(a[:, w - 1], b[:, w - 1], num_resamples=num_resamples, seed=seed)
            out.append({"width_px": int(w), "difference": _f(p.miou.estimate), "interval": _pair(p.miou),
                        "significant": p.significant})  # fmt: skip
    return out
