"""Metrics have one home, segbench.metrics, and one IoU: evaluation, the running matrix, the stacked scores and
Boundary IoU agree on hand-made counts; the old homes (segbench.scoring, engine/scores.py, engine/summary.py)
are gone and no module outside segbench/metrics defines a metric of the package under the same name."""

import ast
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import segbench
import segbench.metrics
from segbench.classes import ClassSet
from segbench.data.datasets import SegmentationDataset
from segbench.engine.evaluate import evaluate
from segbench.metrics import BoundaryIoU, ConfusionMatrix, SegMetrics, iou_from_counts, score_confusions
from segbench.metrics.summary import interval_fields

PACKAGE = Path(segbench.__file__).parent

# Target row and prediction row of a 2 x 11 image (both rows the same); 255 is void.
TARGET = [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 255]
PRED = [0, 0, 0, 1, 0, 0, 1, 1, 1, 1, 0]
# mat[target, pred] of both rows: class 0: 3 right, 1 as class 1; class 1: 2 as class 0, 4 right; void left out
HAND = np.array([[6, 2], [4, 8]])
# IoU0 = 6 / (6 + 2 + 4) = 1/2, IoU1 = 8 / (8 + 4 + 2) = 4/7
HAND_MIOU = (1 / 2 + 4 / 7) / 2


def test_old_homes_are_gone():
    assert importlib.util.find_spec("segbench.scoring") is None
    assert not (PACKAGE / "scoring").exists()
    for old in ("segbench.engine.scores", "segbench.engine.summary"):
        assert importlib.util.find_spec(old) is None, old
    assert (PACKAGE / "metrics").is_dir() and not (PACKAGE / "metrics.py").exists()


def _top_level_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")}


def test_no_metric_is_defined_outside_the_metrics_package():
    metric_names = set().union(*(_top_level_names(p) for p in (PACKAGE / "metrics").glob("*.py")))
    assert {"score_confusions", "ConfusionMatrix", "bootstrap", "summarise", "ImageScores"} <= metric_names
    outside = {
        (str(p.relative_to(PACKAGE)), name)
        for p in PACKAGE.rglob("*.py")
        if "metrics" not in p.relative_to(PACKAGE).parts
        for name in _top_level_names(p) & metric_names
    }
    assert not outside, f"metrics defined outside segbench/metrics: {sorted(outside)}"


def test_public_names_of_the_old_module_and_package_are_exported():
    for name in ("ConfusionMatrix", "SegMetrics", "BoundaryIoU", "Calibration", "Trimap", "bootstrap",
                 "paired_bootstrap", "rank_models", "per_image_miou", "score_confusions", "ScoreOptions"):  # fmt: skip
        assert name in segbench.metrics.__all__ and hasattr(segbench.metrics, name), name


def test_running_matrix_and_stacked_scores_are_the_same_numbers():
    rng = np.random.default_rng(3)
    mats = rng.integers(0, 50, size=(30, 6, 6))
    mats[4, 1, :] = mats[4, :, 1] = 0  # class 1 absent from matrix 4: NaN and left out of its mIoU
    stacked = score_confusions(mats)
    for i, mat in enumerate(mats):
        cm = ConfusionMatrix(6)
        cm.mat = torch.from_numpy(mat)
        m = cm.compute()
        # exactly equal, not approximately: compute() calls score_confusions
        assert m.miou == float(stacked.miou[i]) and m.mean_accuracy == float(stacked.mean_accuracy[i])
        assert m.pixel_accuracy == float(stacked.pixel_accuracy[i])
        np.testing.assert_array_equal(m.iou, stacked.iou[i])
    assert math.isnan(stacked.iou[4, 1]) and not math.isnan(stacked.miou[4])


class FixedPrediction(nn.Module):
    """Predicts :data:`PRED` on every row, whatever the image."""

    def forward(self, x):
        n, _, h, w = x.shape
        pred = torch.tensor(PRED).expand(n, h, w)
        return torch.nn.functional.one_hot(pred, 2).permute(0, 3, 1, 2).float() * 4


def test_evaluation_and_the_metrics_package_agree_on_a_hand_made_matrix(tmp_path):
    from PIL import Image

    label = np.array([TARGET, TARGET], dtype=np.uint8)
    Image.fromarray(np.zeros((2, 11, 3), dtype=np.uint8)).save(tmp_path / "im.png")
    Image.fromarray(label, mode="L").save(tmp_path / "mask.png")
    ds = SegmentationDataset([(tmp_path / "im.png", tmp_path / "mask.png")],
                             ClassSet("two", ("a", "b"), ((0, 0, 0), (255, 255, 255))))  # fmt: skip
    res = evaluate(FixedPrediction(), ds, 2, (0.5,) * 3, (0.5,) * 3, progress=False, class_names=["a", "b"])
    assert isinstance(res.metrics, SegMetrics)
    assert res.metrics.confusion == HAND.tolist()
    assert res.variants[-1].confusions.tolist() == [HAND.tolist()]
    assert res.metrics.iou == pytest.approx([1 / 2, 4 / 7], abs=1e-15)
    assert res.metrics.miou == pytest.approx(HAND_MIOU, abs=1e-15)
    assert res.metrics.miou == float(score_confusions(HAND).miou)
    assert res.metrics.pixel_accuracy == pytest.approx(14 / 20, abs=1e-15)
    assert res.metrics.mean_accuracy == pytest.approx((6 / 8 + 8 / 12) / 2, abs=1e-15)
    # one image: every bootstrap resample is that image, so the interval is the point
    assert interval_fields(HAND[None], num_resamples=20)["miou_interval"] == [pytest.approx(HAND_MIOU)] * 2


def test_boundary_iou_uses_the_same_ratio_rule():
    assert iou_from_counts(np.array([1, 0, 3]), np.array([2, 0, 3])).tolist()[::2] == [0.5, 1.0]
    assert math.isnan(iou_from_counts(np.array([0]), np.array([0]))[0])
    b = BoundaryIoU(2)
    b.intersection[:], b.union[:] = [1, 0], [4, 0]
    scores = b.compute()
    assert scores.iou[0] == 0.25 and math.isnan(scores.iou[1]) and scores.miou == 0.25
