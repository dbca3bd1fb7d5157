"""Intervals, paired comparisons and gains as the plain dicts a report or ``metrics.json`` holds.

Keys (fractions in ``[0, 1]`` like ``miou``; differences of fractions for comparisons):

- :func:`interval_fields`: ``miou_interval``, ``pixel_accuracy_interval``, ``mean_accuracy_interval``
  (``[low, high]``), ``iou_interval`` (one ``[low, high]`` per class, in class order),
  ``per_image_miou_mean`` with ``per_image_miou_interval``, ``per_image_miou_quantiles`` (min, 25th, median,
  75th, max of the images' own mIoUs) and ``bootstrap`` (``num_images``, ``num_resamples``, ``seed``,
  ``confidence``).
- :func:`comparison_list`: one ``{"a", "b", "difference", "interval", "significant", "statement"}`` per pair.
- :func:`gain`: ``{"label", "a", "b", "difference", "interval", "significant", "statement"}``.
- :func:`summarise`: one evaluation (``evaluate`` and ``compare``) as :func:`interval_fields` of its last variant,
  that variant's optional scores (``boundary``, ``trimap``, ``calibration``) and ``gains``, the paired gains
  of each step of the inference chain (TTA over plain, CRF over its input; inside the trimap bands too,
  :func:`step_gains`); :func:`flat_scores` its scalar columns for a table; :func:`confusions_npz` packs the
  per-image matrices into the ``confusions.npz`` saved beside the results.

Dataset-level mIoU and per-image mIoU are defined in :mod:`segbench.metrics.iou`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np

from segbench.metrics.intervals import Interval, PairedDifference, bootstrap, paired_bootstrap
from segbench.metrics.iou import as_confusions, per_image_miou
from segbench.metrics.per_image import ScoreOptions
from segbench.metrics.ranking import Ranking, rank_models

__all__ = ["band_gains", "comparison_dict", "comparison_list", "confusions_npz", "flat_scores", "gain",
           "interval_fields", "ranking", "step_gains", "summarise"]


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
        UserError: As :func:`~segbench.metrics.intervals.bootstrap`.
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
    """:func:`~segbench.metrics.ranking.rank_models` (every pair on the same resamples)."""
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
        UserError: As :func:`~segbench.metrics.intervals.paired_bootstrap`.
    """
    p = paired_bootstrap(with_step, without_step, name_a, name_b, num_resamples, seed)
    return {"label": label, **comparison_dict(p), "statement": p.gain(label)}


def band_gains(with_step, without_step, widths=(1, 2, 5, 10, 20, 40), num_resamples: int = 1000,
               seed: int = 0) -> list[dict]:  # fmt: skip
    """Paired intervals of a step's mIoU gain inside trimap bands (:mod:`segbench.metrics.trimap`).

    Args:
        with_step: Per-image band matrices ``(N, W, C, C)`` with the step.
        without_step: The same without it.
        widths: Band widths in pixels to score (those above ``W`` are left out).
        num_resamples: ``B``.
        seed: Seed of the resampling generator (the same draws at every width).

    Returns:
        One ``{"width_px", "difference", "interval", "significant"}`` per width.

    Raises:
        UserError: As :func:`~segbench.metrics.intervals.paired_bootstrap`.
    """
    a, b = np.asarray(with_step), np.asarray(without_step)
    out = []
    for w in widths:
        if 1 <= w <= a.shape[1]:
            p = paired_bootstrap(a[:, w - 1], b[:, w - 1], num_resamples=num_resamples, seed=seed)
            out.append({"width_px": int(w), "difference": _f(p.miou.estimate), "interval": _pair(p.miou),
                        "significant": p.significant})  # fmt: skip
    return out


def step_gains(variants: list, opts: ScoreOptions) -> list[dict]:
    """Paired mIoU gains of each step over the one before: ``TTA`` (tta - plain), ``CRF`` (crf - its input),
    each with ``bands`` (the gain inside trimap bands) when trimap scores were kept."""
    out = []
    for k in range(1, len(variants)):
        v, before = variants[k], variants[0] if variants[k].name == "tta" else variants[k - 1]
        if v.confusions is None or before.confusions is None or not opts.bootstrap:
            continue
        label = "TTA" if v.name == "tta" else "CRF"
        g = gain(label, v.confusions, before.confusions, v.name, before.name, opts.bootstrap, opts.seed)
        if v.trimap_confusions is not None and before.trimap_confusions is not None:
            g["bands"] = band_gains(v.trimap_confusions, before.trimap_confusions, num_resamples=opts.bootstrap,
                                    seed=opts.seed)  # fmt: skip
        out.append(g)
    return out


def summarise(result, opts: ScoreOptions) -> dict:
    """Intervals, per-image mIoU, optional scores and step gains of an evaluation (empty without labels).

    Args:
        result: An :class:`~segbench.engine.evaluate.EvalResult`.
        opts: The options it was evaluated with (``bootstrap`` 0: no intervals, no gains).

    Returns:
        Keys of :func:`segbench.metrics.summary.interval_fields` (with ``bootstrap`` on), ``boundary``,
        ``trimap``, ``calibration`` (when asked for) and ``gains`` (with TTA or CRF).
    """
    if not result.variants or result.variants[-1].confusions is None:
        return {}
    last = result.variants[-1]
    out = interval_fields(last.confusions, opts.bootstrap, opts.seed) if opts.bootstrap else {}
    out.update(last.extra)
    gains = step_gains(result.variants, opts)
    if gains:
        out["gains"] = gains
    return out


def flat_scores(summary: dict) -> dict:
    """Scalar columns of a summary for a results table: ``miou_lo``, ``miou_hi``, ``per_image_miou_mean``,
    ``boundary_miou``, ``ece`` (fractions; None when not measured)."""
    lo, hi = summary.get("miou_interval") or (None, None)
    return {
        "miou_lo": lo,
        "miou_hi": hi,
        "per_image_miou_mean": summary.get("per_image_miou_mean"),
        "boundary_miou": (summary.get("boundary") or {}).get("boundary_miou"),
        "ece": (summary.get("calibration") or {}).get("ece"),
    }


def confusions_npz(image_names: list[str], matrices: dict[str, np.ndarray], class_names: list[str] | None) -> bytes:
    """``confusions.npz`` bytes: ``image_names`` ``(N,)``, ``class_names`` ``(C,)`` and one int64 ``(N, C, C)``
    array per key of ``matrices`` (``[image, target, pred]`` pixel counts, images in ``image_names`` order)."""
    buf = io.BytesIO()
    arrays = {k: np.asarray(v, dtype=np.int64) for k, v in matrices.items()}
    np.savez_compressed(buf, image_names=np.asarray(image_names, dtype=str),
                        class_names=np.asarray(class_names or [], dtype=str), **arrays)  # fmt: skip
    return buf.getvalue()
