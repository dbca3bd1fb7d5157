"""Segmentation metrics, all in one package (the metrics layer: imports only numpy, torch and
:mod:`segbench.errors`).

- :mod:`~segbench.metrics.confusion`: :class:`ConfusionMatrix`, the running ``(C, C)`` matrix
  ``mat[target, pred]`` (torch, any device, ``torch.distributed``), and :class:`SegMetrics`; the definitions
  and the NaN rule.
- :mod:`~segbench.metrics.iou`: IoU, mIoU, pixel and mean accuracy of stacks of confusion matrices, the one
  implementation of those definitions; dataset-level vs per-image mIoU.
- :mod:`~segbench.metrics.intervals`: bootstrap intervals over images, paired intervals between models
  (and for TTA / CRF gains).
- :mod:`~segbench.metrics.ranking`: rankings that say which differences are significant.
- :mod:`~segbench.metrics.boundary`: Boundary IoU (arXiv 2103.16562), with :mod:`~segbench.metrics.labels`.
- :mod:`~segbench.metrics.trimap`: accuracy and mIoU in bands around boundaries (arXiv 1412.7062).
- :mod:`~segbench.metrics.calibration`: expected calibration error and reliability diagrams
  (arXiv 1706.04599).
- :mod:`~segbench.metrics.per_image`: what an evaluation keeps per image (:class:`ScoreOptions`,
  :class:`ImageScores`).
- :mod:`~segbench.metrics.summary`: intervals, comparisons, gains and an evaluation's summary as the plain
  dicts of a report or ``metrics.json``.
"""

from segbench.metrics.boundary import BoundaryIoU, BoundaryScores, boundary_counts
from segbench.metrics.calibration import Calibration, CalibrationScores
from segbench.metrics.confusion import ConfusionMatrix, SegMetrics
from segbench.metrics.intervals import Bootstrap, Interval, PairedDifference, bootstrap, paired_bootstrap
from segbench.metrics.iou import ConfusionScores, iou_from_counts, per_image_miou, score_confusions
from segbench.metrics.per_image import DistanceCache, ImageScores, ScoreOptions
from segbench.metrics.ranking import Ranking, rank_models
from segbench.metrics.trimap import Trimap, TrimapScores, band_confusions

__all__ = [
    "Bootstrap",
    "BoundaryIoU",
    "BoundaryScores",
    "Calibration",
    "CalibrationScores",
    "ConfusionMatrix",
    "ConfusionScores",
    "DistanceCache",
    "ImageScores",
    "Interval",
    "PairedDifference",
    "Ranking",
    "ScoreOptions",
    "SegMetrics",
    "Trimap",
    "TrimapScores",
    "band_confusions",
    "bootstrap",
    "boundary_counts",
    "iou_from_counts",
    "paired_bootstrap",
    "per_image_miou",
    "rank_models",
    "score_confusions",
]
