"""What :func:`segbench.engine.evaluate.evaluate` keeps per image besides the dataset's confusion matrix.

Always: one ``(C, C)`` confusion matrix per image (``[target, pred]``, pixels), so that every figure can be
recomputed on any subset of the images and bootstrapped (:mod:`segbench.metrics.intervals`). On request
(:class:`ScoreOptions`), because each costs more than a few seconds on a CPU:

- Boundary IoU (Cheng et al., arXiv 2103.16562; about 0.3 s per 720 x 960 image),
- trimap accuracy: mIoU and pixel accuracy in bands of 1..40 px around the ground truth's class boundaries
  (Chen et al., arXiv 1412.7062; about 1.4 s per 720 x 960 image for the distance map, computed once per
  image and shared by every variant and model of a run through :class:`DistanceCache`),
- calibration: ECE over 15 equal-width bins of max-softmax confidence and the reliability diagram
  (Guo et al., arXiv 1706.04599; one softmax per image, plus its time for whole-image inference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from segbench.errors import UserError
from segbench.metrics.boundary import BoundaryIoU, boundary_interval
from segbench.metrics.calibration import Calibration
from segbench.metrics.confusion import ConfusionMatrix
from segbench.metrics.labels import check_labels
from segbench.metrics.trimap import Trimap, counts_in_bands, distance_to_other_class
from segbench.options import SCORE_FIELDS, check_fields

__all__ = ["DistanceCache", "ImageScores", "ScoreOptions"]


@dataclass(frozen=True)
class ScoreOptions:
    """Which optional scores :func:`~segbench.engine.evaluate.evaluate` accumulates, and the bootstrap.

    Attributes:
        boundary: Boundary IoU per class and mean.
        dilation_ratio: Boundary IoU's ``d`` as a fraction of the image diagonal (0.02 in the paper).
        trimap: mIoU and pixel accuracy in bands of width 1..``max_width`` px around label boundaries.
        max_width: The widest trimap band in pixels (40 as DeepLab's plot).
        ece: Expected calibration error and the reliability diagram of max-softmax confidence.
        num_bins: ECE bins (15 equal-width bins, as Guo et al.).
        bootstrap: ``B``, resamples of the images for the 95% intervals (0: no intervals).
        seed: Seed of the resampling generator (the same draws for every model of a run).

    Raises:
        UserError: A value out of range.
    """

    boundary: bool = False
    dilation_ratio: float = 0.02
    trimap: bool = False
    max_width: int = 40
    ece: bool = False
    num_bins: int = 15
    bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, SCORE_FIELDS)  # the ranges of segbench.options, the same as the flags'

    def enabled(self) -> list[str]:
        """Names of the optional scores asked for: ``boundary``, ``trimap``, ``ece``."""
        return [name for name in ("boundary", "trimap", "ece") if getattr(self, name)]


@dataclass
class DistanceCache:
    """Trimap distance maps by image name (they depend on the ground truth only), stored as uint8, so that
    the variants and models of one run compute each image's map once (about 0.35 MB per 360 x 480 image)."""

    max_width: int = 40
    maps: dict[str, torch.Tensor] = field(default_factory=dict)

    def get(self, name: str, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
        """Distance map ``(1, H, W)`` int64 of ``target`` ``(1, H, W)`` (:func:`distance_to_other_class`)."""
        hit = self.maps.get(name)
        if hit is None or hit.shape != target.shape:
            hit = distance_to_other_class(target, ignore_index, self.max_width).to(torch.uint8).cpu()
            self.maps[name] = hit
        return hit.to(device=target.device, dtype=torch.int64)


class ImageScores:
    """Per-image accumulators of one variant of the inference chain (plain, +TTA, +CRF).

    Args:
        num_classes: ``C``.
        ignore_index: Target value excluded from every count.
        options: Which optional scores to accumulate.
        cache: Shared trimap distance maps (a fresh one when None).

    Attributes:
        confusions: One int64 ``(C, C)`` matrix per image, ``[target, pred]``.
        total: The summed matrix as a :class:`~segbench.metrics.ConfusionMatrix`.
    """

    def __init__(self, num_classes: int, ignore_index: int, options: ScoreOptions, cache: DistanceCache | None = None):
        self.num_classes, self.ignore_index, self.options = num_classes, ignore_index, options
        self.total = ConfusionMatrix(num_classes, ignore_index)
        self.confusions: list[np.ndarray] = []
        self.boundary = BoundaryIoU(num_classes, ignore_index, options.dilation_ratio) if options.boundary else None
        self.boundary_counts: list[tuple[np.ndarray, np.ndarray]] = []  # per image (intersection, union), (C,) each
        self.trimap = Trimap(num_classes, ignore_index, options.max_width) if options.trimap else None
        self.trimap_confusions: list[np.ndarray] = []  # per image (W, C, C), for paired gains inside a band
        self.calibration = Calibration(options.num_bins, ignore_index) if options.ece else None
        self.calibration_counts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per image count, conf, correct
        self.cache = cache if cache is not None else DistanceCache(options.max_width)

    @property
    def wants_probs(self) -> bool:
        """Whether :meth:`update` needs the class probabilities (for calibration)."""
        return self.calibration is not None

    def update(self, name: str, pred: torch.Tensor, target: torch.Tensor, probs: torch.Tensor | None = None) -> None:
        """Add one image.

        Args:
            name: The image's name (key of the trimap distance cache).
            pred: Predicted class indices ``(1, H, W)`` int64.
            target: True class indices ``(1, H, W)``; ``ignore_index`` pixels are not counted.
            probs: Class probabilities ``(1, C, H, W)`` that ``pred`` is the argmax of; needed for ECE.

        Raises:
            UserError: Values outside the classes (as :class:`~segbench.metrics.ConfusionMatrix`).
        """
        cm = ConfusionMatrix(self.num_classes, self.ignore_index, device=target.device)
        cm.update(pred, target)
        self.total.mat = self.total.mat.to(cm.mat.device) + cm.mat
        self.confusions.append(cm.mat.cpu().numpy())
        if self.boundary is not None:
            inter, union = self.boundary.update(pred, target)
            self.boundary_counts.append((inter[0], union[0]))
        if self.trimap is not None:
            p, t = check_labels(pred, target, self.num_classes, self.ignore_index)
            dist = self.cache.get(name, t, self.ignore_index)
            bands = counts_in_bands(p, t, dist, self.num_classes, self.options.max_width)
            self.trimap.confusions += bands[0]
            self.trimap_confusions.append(bands[0])
        if self.calibration is not None:
            one = Calibration(self.options.num_bins, self.ignore_index)
            if probs is not None:
                one.update(probs.float(), target)
            self._add_calibration(one.count, one.confidence_sum, one.correct)

    def _add_calibration(self, count: np.ndarray, confidence_sum: np.ndarray, correct: np.ndarray) -> None:
        """One image's calibration bins into the totals (the same additions whether the image was just scored
        or comes from another process: :meth:`replay`)."""
        self.calibration.count += count
        self.calibration.confidence_sum += confidence_sum
        self.calibration.correct += correct
        self.calibration_counts.append((count, confidence_sum, correct))

    def per_image(self) -> dict[str, np.ndarray]:
        """Every image's counts behind the optional scores, in image order (first axis ``N``), as asked for:
        ``boundary`` ``(N, 2, C)`` (intersection, union), ``trimap`` ``(N, W, C, C)`` and
        ``calibration_count`` / ``calibration_confidence`` / ``calibration_correct`` ``(N, B)``: all that
        :meth:`replay` needs to rebuild :meth:`extra`, e.g. from the shards of a torchrun evaluation (the
        per-image confusion matrices are :meth:`stacked`)."""
        out = {}
        if self.boundary is not None:
            out["boundary"] = np.stack([np.stack(pair) for pair in self.boundary_counts])
        if self.trimap is not None:
            out["trimap"] = self.stacked_trimap()
        if self.calibration is not None:
            for key, column in zip(("count", "confidence", "correct"), zip(*self.calibration_counts)):
                out[f"calibration_{key}"] = np.stack(column)
        return out

    @classmethod
    def replay(cls, num_classes: int, ignore_index: int, options: ScoreOptions, per_image: dict) -> ImageScores:
        """Accumulators of the optional scores holding the images of ``per_image`` (:meth:`per_image`'s
        arrays, or the images of several such concatenated in image order), with the same additions in the
        same order as :meth:`update` made: integer counts and float sums alike equal those of one process
        scoring the images one by one, so :meth:`extra` gives the same scores (the confusion matrices are
        not replayed).

        Raises:
            ValueError: an array the options need is missing, or the arrays hold different image counts.
        """
        scores = cls(num_classes, ignore_index, options)
        needed = (["boundary"] if options.boundary else []) + (["trimap"] if options.trimap else [])
        needed += [f"calibration_{k}" for k in ("count", "confidence", "correct")] if options.ece else []
        missing = [k for k in needed if per_image.get(k) is None]
        if missing:
            raise ValueError(f"per-image counts without {', '.join(missing)}")
        sizes = {len(per_image[k]) for k in needed}
        if len(sizes) > 1:
            raise ValueError(f"per-image counts of different image counts: {sorted(sizes)}")
        for i in range(sizes.pop() if sizes else 0):
            if scores.boundary is not None:
                inter, union = per_image["boundary"][i]
                scores.boundary.intersection += inter
                scores.boundary.union += union
                scores.boundary_counts.append((inter, union))
            if scores.trimap is not None:
                scores.trimap.confusions += per_image["trimap"][i]
                scores.trimap_confusions.append(per_image["trimap"][i])
            if scores.calibration is not None:
                scores._add_calibration(*(per_image[f"calibration_{k}"][i] for k in ("count", "confidence", "correct")))
        return scores

    def stacked(self) -> np.ndarray | None:
        """Per-image matrices ``(N, C, C)`` int64, or None before the first image."""
        return np.stack(self.confusions) if self.confusions else None

    def stacked_trimap(self) -> np.ndarray | None:
        """Per-image band matrices ``(N, W, C, C)`` int64, or None without trimap scores."""
        return np.stack(self.trimap_confusions) if self.trimap_confusions else None

    def extra(self, class_names: list[str] | None) -> dict:
        """The optional scores as JSON-friendly dicts: ``boundary`` (with ``boundary_miou_interval``, the 95%
        bootstrap interval on the mIoU interval's resamples, when ``bootstrap`` is on), ``trimap``,
        ``calibration``."""
        out = {}
        if self.boundary is not None:
            out["boundary"] = self.boundary.compute().to_dict(class_names)
            if self.options.bootstrap and self.boundary_counts:
                inter, union = (np.stack(a) for a in zip(*self.boundary_counts))
                i = boundary_interval(inter, union, self.options.bootstrap, self.options.seed)
                out["boundary"]["boundary_miou_interval"] = [i.to_dict()["low"], i.to_dict()["high"]]
        if self.trimap is not None:
            out["trimap"] = self.trimap.compute().to_dict()
        if self.calibration is not None:
            out["calibration"] = self.calibration.compute().to_dict()
        return out
