"""Scores beyond the confusion matrix, for comparisons people can trust (segbench issue 15).

- :mod:`~segbench.scoring.confusion`: metrics of stacks of per-image confusion matrices; dataset-level
  vs per-image mIoU.
- :mod:`~segbench.scoring.intervals`: bootstrap intervals over images, paired intervals between models
  (and for TTA / CRF gains).
- :mod:`~segbench.scoring.ranking`: rankings that say which differences are significant.
- :mod:`~segbench.scoring.boundary`: Boundary IoU (arXiv 2103.16562).
- :mod:`~segbench.scoring.trimap`: accuracy and mIoU in bands around boundaries (arXiv 1412.7062).
- :mod:`~segbench.scoring.calibration`: expected calibration error and reliability diagrams
  (arXiv 1706.04599).

The package is in the metrics layer: it imports only numpy, torch and :mod:`segbench.errors`.
"""

from segbench.scoring.boundary import BoundaryIoU, BoundaryScores, boundary_counts
from segbench.scoring.calibration import Calibration, CalibrationScores
from segbench.scoring.confusion import ConfusionScores, per_image_miou, score_confusions
from segbench.scoring.intervals import Bootstrap, Interval, PairedDifference, bootstrap, paired_bootstrap
from segbench.scoring.ranking import Ranking, rank_models
from segbench.scoring.trimap import Trimap, TrimapScores, band_confusions

__all__ = [
    "Bootstrap",
    "BoundaryIoU",
    "BoundaryScores",
    "Calibration",
    "CalibrationScores",
    "ConfusionScores",
    "Interval",
    "PairedDifference",
    "Ranking",
    "Trimap",
    "TrimapScores",
    "band_confusions",
    "bootstrap",
    "boundary_counts",
    "paired_bootstrap",
    "per_image_miou",
    "rank_models",
    "score_confusions",
]
