"""One evaluation's uncertainty and extra scores as plain dicts, shared by ``evaluate`` and ``compare``.

:func:`summarise` turns an :class:`~segbench.engine.evaluate.EvalResult` into the keys of
:mod:`segbench.scoring.summary` (bootstrap intervals of the last variant, per-image mIoU), the optional
scores of the last variant (``boundary``, ``trimap``, ``calibration``), and the paired gains of each step of
the inference chain (TTA over plain, CRF over its input; inside the trimap bands too). :func:`confusions_npz`
packs the per-image matrices into the ``confusions.npz`` saved beside the results.
"""

from __future__ import annotations

import io

import numpy as np

from segbench.engine.scores import ScoreOptions
from segbench.scoring.summary import band_gains, gain, interval_fields

__all__ = ["confusions_npz", "flat_scores", "step_gains", "summarise"]


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
        Keys of :func:`segbench.scoring.summary.interval_fields` (with ``bootstrap`` on), ``boundary``,
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
