"""Bootstrap and paired intervals over images: draws, exactness, coverage, sentences, rankings, speed."""

import math
import time

import numpy as np
import pytest

from segbench.errors import UserError
from segbench.metrics.intervals import Interval, bootstrap, paired_bootstrap, resample_counts
from segbench.metrics.iou import score_confusions
from segbench.metrics.ranking import rank_models


def _images(rng, accuracies, pixels=400):
    """Two-class images, half of each class, a fraction ``a`` of each half right (errors go to the other)."""
    half = pixels // 2
    right = np.round(np.asarray(accuracies) * half).astype(np.int64)
    mats = np.zeros((len(right), 2, 2), dtype=np.int64)
    mats[:, 0, 0] = mats[:, 1, 1] = right
    mats[:, 0, 1] = mats[:, 1, 0] = half - right
    return mats


def test_resample_counts_are_seeded_and_sum_to_n():
    a, b = resample_counts(7, 50, seed=3), resample_counts(7, 50, seed=3)
    assert a.shape == (50, 7) and (a == b).all() and (a.sum(1) == 7).all()
    assert not (resample_counts(7, 50, seed=4) == a).all()
    with pytest.raises(UserError):
        resample_counts(0, 10)


def test_resampled_sums_equal_summing_the_drawn_images():
    rng = np.random.default_rng(1)
    mats = rng.integers(0, 50, size=(9, 3, 3))
    result = bootstrap(mats, num_resamples=200, seed=5)
    counts = resample_counts(9, 200, seed=5)
    miou = [float(score_confusions((c[:, None, None] * mats).sum(0)).miou) for c in counts]
    lo, hi = np.percentile(miou, [2.5, 97.5])
    assert result.miou.low == pytest.approx(lo) and result.miou.high == pytest.approx(hi)
    assert result.miou.estimate == pytest.approx(float(score_confusions(mats.sum(0)).miou))
    assert result.miou.low <= result.miou.estimate <= result.miou.high
    assert len(result.iou) == 3 and result.to_dict(["a", "b", "c"])["iou"]["b"]["low"] is not None


def test_model_against_itself_is_exactly_zero():
    mats = np.random.default_rng(2).integers(0, 10**6, size=(30, 11, 11))
    diff = paired_bootstrap(mats, mats.copy(), "m", "m2")
    assert (diff.miou.estimate, diff.miou.low, diff.miou.high) == (0.0, 0.0, 0.0)
    assert (diff.pixel_accuracy.low, diff.pixel_accuracy.high) == (0.0, 0.0)
    assert all(i.low == 0.0 and i.high == 0.0 for i in diff.iou)
    assert not diff.significant
    assert diff.sentence() == "m and m2 are not distinguishable on 30 images (m - m2: +0.0 points [0.0, 0.0])"


def test_interval_covers_the_true_value_about_95_percent_of_the_time():
    """Per-image accuracy ~ Beta(8, 2): the population's pixel accuracy is 0.8 and, each class being half
    of every image, its mIoU is 0.8 / (2 - 0.8). Coverage over 200 seeded draws of 60 images."""
    rng = np.random.default_rng(0)
    true_pa, true_miou = 0.8, 0.8 / 1.2
    covered_pa = covered_miou = 0
    reps = 200
    for k in range(reps):
        mats = _images(rng, rng.beta(8, 2, size=60), pixels=10_000)
        result = bootstrap(mats, num_resamples=400, seed=k)
        covered_pa += result.pixel_accuracy.low <= true_pa <= result.pixel_accuracy.high
        covered_miou += result.miou.low <= true_miou <= result.miou.high
    assert 0.89 <= covered_pa / reps <= 0.99
    assert 0.89 <= covered_miou / reps <= 0.99


def test_paired_interval_of_a_known_gain_and_sentences():
    rng = np.random.default_rng(3)
    acc = rng.beta(8, 2, size=40)
    better, worse = _images(rng, np.minimum(acc + 0.05, 1)), _images(rng, acc)
    diff = paired_bootstrap(better, worse, "crf", "plain", seed=1)
    assert diff.significant and diff.miou.low > 0
    assert diff.sentence().startswith("crf > plain by ")
    assert paired_bootstrap(worse, better, "plain", "crf", seed=1).sentence() == diff.sentence()
    assert diff.gain("CRF").startswith("CRF: +")
    assert diff.to_dict()["significant"] is True


def test_interval_formatting():
    i = Interval(0.063, 0.041, 0.085)
    assert i.points() == "+6.3 points [4.1, 8.5]" and i.excludes_zero()
    assert not Interval(0.0, -0.01, 0.02).excludes_zero()
    assert Interval(math.nan, math.nan, math.nan).to_dict() == {"estimate": None, "low": None, "high": None}


def test_ranking_tiers_and_statements():
    rng = np.random.default_rng(4)
    acc = rng.beta(6, 3, size=8)
    models = {
        "good": _images(rng, np.minimum(acc + 0.15, 1)),
        "mid_a": _images(rng, acc),
        "mid_b": _images(rng, acc + rng.normal(0, 0.002, size=8).clip(-acc, 1 - acc)),
    }
    ranking = rank_models(models, seed=0)
    assert ranking.names[0] == "good"
    assert ranking.tiers[0] == ["good"] and sorted(ranking.tiers[1]) == ["mid_a", "mid_b"]
    statements = ranking.statements()
    assert statements[0].startswith(f"good > {ranking.tiers[1][0]} by ")
    assert statements[1].endswith("are not distinguishable on 8 images")
    assert len(ranking.to_dict()["pairs"]) == 3


def test_bad_arguments_raise_user_error():
    mats = np.ones((3, 2, 2), dtype=np.int64)
    with pytest.raises(UserError):
        bootstrap(mats, confidence=1.5)
    with pytest.raises(UserError):
        paired_bootstrap(mats, np.ones((4, 2, 2), dtype=np.int64))
    with pytest.raises(UserError):
        rank_models({})


def test_thousand_images_well_under_a_second():
    mats = np.random.default_rng(5).integers(0, 1000, size=(1000, 11, 11))
    bootstrap(mats[:5], num_resamples=10)  # numpy's lazy imports
    start = time.perf_counter()
    bootstrap(mats)
    assert time.perf_counter() - start < 1.0
