"""Rank models evaluated on the same images, saying which differences the data can tell apart.

Every pair gets a paired bootstrap interval (:mod:`segbench.metrics.intervals`) on the same resamples;
the ranking groups models into tiers and turns them into sentences for the report, e.g.
``"fast_scnn.camvid > lraspp_mobilenet_v3 by 6.3 points [4.1, 8.5]"`` and
``"unet, fcn8s_vgg16 and deeplabv3_resnet50 are not distinguishable on 8 images"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from segbench.errors import UserError
from segbench.metrics.intervals import (
    PairedDifference,
    check_confidence,
    checked_models,
    paired_difference,
    resample_counts,
    resampled_sums,
)
from segbench.metrics.iou import score_confusions

__all__ = ["Ranking", "rank_models"]


def _json(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


@dataclass
class Ranking:
    """Models ranked by dataset-level mIoU, grouped into tiers the data can tell apart.

    A tier starts with the best model not yet placed and takes, in rank order, each following model
    whose paired mIoU difference with the tier's first model is not significant, up to the first one
    that is; that one starts the next tier.

    Attributes:
        names: Model names, best mIoU first.
        miou: Dataset-level mIoU of each model.
        tiers: Lists of names, best tier first.
        pairs: Paired differences of every pair, the better-ranked model as A.
        num_images: ``N``.
    """

    names: list[str]
    miou: dict[str, float]
    tiers: list[list[str]]
    pairs: list[PairedDifference] = field(default_factory=list)
    num_images: int = 0

    def pair(self, name_a: str, name_b: str) -> PairedDifference:
        """The paired difference of two ranked models, A ranked above B."""
        return next(p for p in self.pairs if (p.name_a, p.name_b) == (name_a, name_b))

    def statements(self) -> list[str]:
        """One sentence per tier of several models and one per step between tiers, e.g.
        ``["fast_scnn.camvid > unet by 6.3 points [4.1, 8.5]", "unet, fcn and lraspp are not
        distinguishable on 8 images"]``."""
        out = []
        for k, tier in enumerate(self.tiers):
            if k > 0:
                out.append(self.pair(self.tiers[k - 1][0], tier[0]).sentence())
            if len(tier) > 1:
                listed = ", ".join(tier[:-1]) + f" and {tier[-1]}"
                out.append(f"{listed} are not distinguishable on {self.num_images} images")
        return out

    def to_dict(self) -> dict:
        """JSON-friendly dict: names, mIoU, tiers, statements and every pair."""
        return {
            "names": self.names,
            "miou": {k: _json(v) for k, v in self.miou.items()},
            "tiers": self.tiers,
            "statements": self.statements(),
            "pairs": [p.to_dict() for p in self.pairs],
            "num_images": self.num_images,
        }


def rank_models(
    confusions: Mapping[str, object], num_resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> Ranking:
    """Rank models evaluated on the same images, with paired intervals for every pair (same resamples).

    Args:
        confusions: Model name -> per-image matrices ``(N, C, C)``, the same images in the same order.
        num_resamples: ``B``.
        seed: Seed of the resampling generator, shared by all pairs.
        confidence: Coverage of the percentile intervals.

    Returns:
        :class:`Ranking`.

    Raises:
        UserError: No model, bad or different shapes, ``B`` < 1 or ``confidence`` outside (0, 1).
    """
    check_confidence(confidence)
    if not confusions:
        raise UserError("rank_models needs at least one model")
    models = checked_models(confusions)
    n = len(next(iter(models.values())))
    counts = resample_counts(n, num_resamples, seed)
    full = {k: score_confusions(c.sum(axis=0)) for k, c in models.items()}
    resampled = {k: score_confusions(resampled_sums(counts, c)) for k, c in models.items()}
    miou = {k: float(s.miou) for k, s in full.items()}
    names = sorted(models, key=lambda k: (-np.nan_to_num(miou[k], nan=-np.inf), k))
    pairs = [
        paired_difference((a, b), (full[a], full[b]), (resampled[a], resampled[b]), n, confidence)
        for a, b in combinations(names, 2)
    ]
    ranking = Ranking(names=names, miou=miou, tiers=[], pairs=pairs, num_images=n)
    for name in names:
        if ranking.tiers and not ranking.pair(ranking.tiers[-1][0], name).significant:
            ranking.tiers[-1].append(name)
        else:
            ranking.tiers.append([name])
    return ranking

