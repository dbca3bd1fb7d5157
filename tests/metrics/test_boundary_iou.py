"""Boundary IoU: hand cases, an independent erosion-based implementation, and torchmetrics' Jaccard index."""

import math

import numpy as np
import pytest
import torch

from segbench.errors import UserError
from segbench.metrics.boundary import BoundaryIoU, boundary_counts, boundary_distance, boundary_interval
from segbench.metrics.intervals import resample_counts


def _erode_reference(mask: np.ndarray, d: int) -> np.ndarray:
    """The paper's recipe: pad with one background pixel, erode d times with a 3 x 3 kernel, take the rest."""
    m = np.pad(mask, 1)
    for _ in range(d):
        e = np.ones_like(m)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                e &= np.roll(np.roll(m, dy, 0), dx, 1)
        e[0, :] = e[-1, :] = e[:, 0] = e[:, -1] = False
        m = e
    return mask & ~m[1:-1, 1:-1]


def _reference_counts(pred, target, c, ignore, d):
    valid = target != ignore
    inter, union = np.zeros(c, dtype=np.int64), np.zeros(c, dtype=np.int64)
    for k in range(c):
        g = _erode_reference(target == k, d) & valid
        p = _erode_reference(pred == k, d) & valid
        inter[k], union[k] = (g & p).sum(), (g | p).sum()
    return inter, union


def test_perfect_prediction_gives_one():
    target = torch.zeros(1, 40, 50, dtype=torch.int64)
    target[0, 10:30, 15:35] = 1
    biou = BoundaryIoU(num_classes=2)
    biou.update(target.clone(), target)
    scores = biou.compute()
    assert scores.iou == [1.0, 1.0] and scores.miou == 1.0


def test_one_pixel_shift_of_a_square_is_below_one():
    target = torch.zeros(1, 40, 50, dtype=torch.int64)
    target[0, 10:30, 15:35] = 1
    pred = torch.roll(target, 1, dims=2)
    inter, union = boundary_counts(pred, target, 2)  # d = round(0.02 * 64) = 1: 1-px rings of 76 px
    # the rings share their top and bottom rows but for one pixel each: 38 px; union 76 + 76 - 38
    assert inter[0, 1] / union[0, 1] == pytest.approx(38 / 114)
    assert inter[0, 1] / union[0, 1] < 380 / 420  # mask IoU of the same shift


def test_hand_computed_case():
    # 1 x 6 strip, d = 1: class 0 = [0, 1, 2], class 1 = [3, 4, 5]; every pixel is within 1 of the image
    # border (the strip is one row), so the boundary regions are the whole masks: plain IoU.
    target = torch.tensor([[0, 0, 0, 1, 1, 1]])
    pred = torch.tensor([[0, 0, 1, 1, 1, 1]])
    inter, union = boundary_counts(pred, target, 2, dilation_ratio=0.01)
    assert inter.tolist() == [[2, 3]] and union.tolist() == [[3, 4]]


@pytest.mark.parametrize("ratio", [0.02, 0.05, 0.1])
def test_matches_the_erosion_reference_on_random_maps(ratio):
    rng = np.random.default_rng(0)
    target = np.kron(rng.integers(0, 5, size=(2, 6, 8)), np.ones((1, 6, 6), dtype=np.int64))  # 4 = void
    pred = np.where(rng.random(target.shape) < 0.1, rng.integers(0, 4, size=target.shape), target.clip(max=3))
    inter, union = boundary_counts(torch.from_numpy(pred), torch.from_numpy(target), 4, ignore_index=4,
                                   dilation_ratio=ratio)  # fmt: skip
    d = boundary_distance(36, 48, ratio)
    for i in range(2):
        ref_inter, ref_union = _reference_counts(pred[i], target[i], 4, 4, d)
        assert inter[i].tolist() == ref_inter.tolist() and union[i].tolist() == ref_union.tolist()


@pytest.mark.slow  # importing torchmetrics takes 20-50 s on the 2 loaded cores
def test_whole_masks_boundary_iou_equals_torchmetrics_jaccard():
    tm = pytest.importorskip("torchmetrics", reason="torchmetrics not installed (pip install 'segbench[test]')")
    rng = np.random.default_rng(1)
    target = torch.from_numpy(rng.integers(0, 5, size=(3, 20, 24)))  # 4 = ignore
    pred = torch.from_numpy(rng.integers(0, 4, size=(3, 20, 24)))
    # a ratio that makes d larger than the image: every pixel is boundary, boundary IoU = mask IoU
    biou = BoundaryIoU(num_classes=4, ignore_index=4, dilation_ratio=1.0)
    biou.update(pred, target)
    jaccard = tm.classification.MulticlassJaccardIndex(num_classes=4, average=None, ignore_index=4)
    np.testing.assert_allclose(biou.compute().iou, jaccard(pred, target).numpy(), rtol=1e-6)


def test_absent_class_is_nan_and_left_out():
    target = torch.zeros(1, 8, 8, dtype=torch.int64)
    biou = BoundaryIoU(num_classes=3)
    biou.update(target, target)
    scores = biou.compute()
    assert math.isnan(scores.iou[2]) and scores.miou == 1.0
    assert scores.to_dict(["a", "b", "c"])["boundary_iou"]["c"] is None


def test_distance_and_errors():
    assert boundary_distance(720, 960) == 24 and boundary_distance(10, 10) == 1
    with pytest.raises(UserError):
        boundary_distance(10, 10, 0)
    with pytest.raises(UserError):
        boundary_counts(torch.zeros(2, 3, dtype=torch.int64), torch.zeros(3, 2, dtype=torch.int64), 2)
    with pytest.raises(UserError):
        boundary_counts(torch.full((2, 2), 5), torch.zeros(2, 2, dtype=torch.int64), 2)
    with pytest.raises(UserError):
        boundary_counts(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.int64), 2)


def test_boundary_interval_resamples_images_and_brackets_the_estimate():
    rng = np.random.default_rng(3)
    union = rng.integers(50, 200, (40, 4))
    inter = (union * rng.uniform(0.2, 0.9, (40, 4))).astype(np.int64)
    inter[:, 3] = union[:, 3] = 0  # a class without any boundary: left out of the mean
    got = boundary_interval(inter, union, num_resamples=300, seed=1)
    assert got.estimate == pytest.approx(np.mean(inter.sum(0)[:3] / union.sum(0)[:3]))
    assert got.low < got.estimate < got.high
    # the draws of the mIoU bootstrap with the same seed, each resample's mIoU recomputed by hand
    counts = resample_counts(40, 300, seed=1)
    by_hand = [np.mean((c @ inter)[:3] / (c @ union)[:3]) for c in counts]
    assert [got.low, got.high] == pytest.approx(np.percentile(by_hand, [2.5, 97.5]))
    same = boundary_interval(np.tile(inter[:1], (40, 1)), np.tile(union[:1], (40, 1)), 300, seed=1)
    assert same.low == pytest.approx(same.high) and same.low == pytest.approx(np.mean(inter[0, :3] / union[0, :3]))
    with pytest.raises(UserError):
        boundary_interval(inter[:, :2], union, 10)
