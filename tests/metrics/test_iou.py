"""Stacked confusion-matrix scores against segbench.metrics, and per-image vs dataset-level mIoU by hand."""

import math

import numpy as np
import pytest
import torch

from segbench.errors import UserError
from segbench.metrics import ConfusionMatrix
from segbench.metrics.iou import as_confusions, nanmean, per_image_miou, score_confusions


def test_scores_match_segmetrics_on_random_matrices():
    rng = np.random.default_rng(0)
    mats = rng.integers(0, 5, size=(20, 4, 4))
    mats[3, 2, :] = mats[3, :, 2] = 0  # class 2 absent from image 3: NaN there
    scores = score_confusions(mats)
    for i, mat in enumerate(mats):
        cm = ConfusionMatrix(4)
        cm.mat = torch.from_numpy(mat)
        ref = cm.compute()
        np.testing.assert_allclose(scores.iou[i], ref.iou, equal_nan=True)
        np.testing.assert_allclose(scores.accuracy[i], ref.accuracy, equal_nan=True)
        assert scores.miou[i] == pytest.approx(ref.miou)
        assert scores.mean_accuracy[i] == pytest.approx(ref.mean_accuracy)
        assert scores.pixel_accuracy[i] == pytest.approx(ref.pixel_accuracy)
    assert math.isnan(scores.iou[3, 2])


def test_per_image_and_dataset_level_miou_differ_by_hand():
    # image 0: 8 pixels of class 0, all right; image 1: 1 pixel of class 0 and 1 of class 1, class 1 missed
    mats = np.array([[[8, 0], [0, 0]], [[1, 0], [1, 0]]])
    # image 0: IoU0 = 1, class 1 absent -> mIoU 1; image 1: IoU0 = 1/2, IoU1 = 0 -> mIoU 1/4
    assert per_image_miou(mats).tolist() == pytest.approx([1.0, 0.25])
    # summed [[9, 0], [1, 0]]: IoU0 = 9/10, IoU1 = 0 -> dataset-level mIoU 0.45, per-image mean 0.625
    summed = score_confusions(mats.sum(0))
    assert float(summed.miou) == pytest.approx(0.45)
    assert float(np.mean(per_image_miou(mats))) == pytest.approx(0.625)


def test_empty_image_is_nan_and_nanmean_is_quiet():
    mats = np.zeros((2, 3, 3), dtype=np.int64)
    mats[1] = np.eye(3, dtype=np.int64)
    out = per_image_miou(mats)
    assert math.isnan(out[0]) and out[1] == 1.0
    assert math.isnan(float(nanmean(np.array([np.nan, np.nan]))))


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 3)), np.zeros((0, 2, 2), dtype=int), np.zeros((1, 2, 3), dtype=int), np.zeros((1, 2, 2)),
            -np.ones((1, 2, 2), dtype=int)],  # fmt: skip
)
def test_bad_confusions_raise_user_error(bad):
    with pytest.raises(UserError):
        as_confusions(bad)


def test_torch_input_is_accepted():
    assert as_confusions(torch.ones(2, 3, 3, dtype=torch.int64)).dtype == np.int64
