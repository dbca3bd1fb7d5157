"""ECE: synthetic calibrated and over-confident predictors, a hand case, and torchmetrics' calibration error."""

import math

import pytest
import torch

from segbench.errors import UserError
from segbench.metrics.calibration import Calibration


def _two_class(conf: torch.Tensor, correct: torch.Tensor):
    """Probabilities (1, 2, 1, P) predicting class 0 with confidence ``conf``; target 0 where ``correct``."""
    probs = torch.stack([conf, 1 - conf]).view(1, 2, 1, -1)
    target = torch.where(correct, 0, 1).view(1, 1, -1)
    return probs, target


def test_perfectly_calibrated_predictor_has_ece_near_zero():
    g = torch.Generator().manual_seed(0)
    conf = 0.5 + 0.5 * torch.rand(200_000, generator=g, dtype=torch.float64)
    correct = torch.rand(200_000, generator=g, dtype=torch.float64) < conf  # right with probability conf
    cal = Calibration()
    for chunk in range(4):  # streams: four updates give the same as one
        sl = slice(chunk * 50_000, (chunk + 1) * 50_000)
        cal.update(*_two_class(conf[sl].float(), correct[sl]))
    scores = cal.compute()
    assert scores.ece < 0.01 and scores.num_pixels == 200_000


def test_over_confident_predictor_has_large_ece():
    g = torch.Generator().manual_seed(1)
    conf = torch.full((10_000,), 0.99)
    correct = torch.rand(10_000, generator=g) < 0.5
    cal = Calibration()
    cal.update(*_two_class(conf, correct))
    assert cal.compute().ece == pytest.approx(0.49, abs=0.02)


def test_hand_computed_bins_and_ignore_index():
    # confidences 0.55, 0.65, 0.95 (bins 9, 10, 15 of 15); correct, wrong, correct; one ignored pixel
    probs, target = _two_class(torch.tensor([0.55, 0.65, 0.95, 0.9]), torch.tensor([True, False, True, True]))
    target[0, 0, 3] = 255
    cal = Calibration(num_bins=15)
    cal.update(probs, target)
    s = cal.compute()
    assert s.num_pixels == 3 and s.count[8] == s.count[9] == s.count[14] == 1
    assert s.ece == pytest.approx((0.45 + 0.65 + 0.05) / 3)
    assert s.mce == pytest.approx(0.65)
    assert math.isnan(s.accuracy[0]) and s.to_dict()["reliability"]["accuracy"][0] is None


@pytest.mark.slow  # importing torchmetrics takes 20-50 s on the 2 loaded cores
def test_matches_torchmetrics_calibration_error():
    tm = pytest.importorskip("torchmetrics", reason="torchmetrics not installed (pip install 'segbench[test]')")
    g = torch.Generator().manual_seed(2)
    probs = torch.softmax(2 * torch.randn(2, 5, 16, 20, generator=g), 1)
    target = torch.randint(0, 6, (2, 16, 20), generator=g)  # 5 = ignore
    cal = Calibration(ignore_index=5)
    cal.update(probs, target)
    ref = tm.classification.MulticlassCalibrationError(num_classes=5, n_bins=15, norm="l1", ignore_index=5)
    assert cal.compute().ece == pytest.approx(float(ref(probs, target)), abs=1e-5)


def test_empty_and_bad_inputs():
    assert math.isnan(Calibration().compute().ece)
    with pytest.raises(UserError):
        Calibration(num_bins=0)
    with pytest.raises(UserError):
        Calibration().update(torch.rand(1, 2, 3, 3), torch.zeros(1, 3, 4, dtype=torch.int64))
    with pytest.raises(UserError):
        Calibration().update(torch.randn(1, 2, 3, 3) * 10, torch.zeros(1, 3, 3, dtype=torch.int64))
