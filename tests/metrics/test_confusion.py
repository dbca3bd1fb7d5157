"""ConfusionMatrix / SegMetrics against hand-computed matrices."""

import json
import math

import numpy as np
import pytest
import torch

from segbench.errors import UserError
from segbench.metrics import ConfusionMatrix, SegMetrics


def t(values):
    return torch.tensor(values, dtype=torch.int64)


# target / pred for the 3-class example; mat[target, pred] = [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
TARGET = [0, 0, 0, 1, 1, 2, 2, 2, 2]
PRED = [0, 0, 1, 1, 2, 2, 2, 2, 0]


def test_three_class_example():
    cm = ConfusionMatrix(num_classes=3)
    cm.update(t(PRED).reshape(1, 3, 3), t(TARGET).reshape(1, 3, 3))
    assert cm.mat.dtype == torch.int64
    assert cm.mat.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    m = cm.compute()
    assert isinstance(m, SegMetrics)
    # TP = 2, 1, 3; FP = 1, 1, 1; FN = 1, 1, 1
    assert m.iou == pytest.approx([2 / 4, 1 / 3, 3 / 5])
    assert m.miou == pytest.approx((2 / 4 + 1 / 3 + 3 / 5) / 3)
    assert m.accuracy == pytest.approx([2 / 3, 1 / 2, 3 / 4])
    assert m.mean_accuracy == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)
    assert m.pixel_accuracy == pytest.approx(6 / 9)
    assert m.num_pixels == 9
    assert m.confusion == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]


def test_updates_accumulate_and_reset():
    cm = ConfusionMatrix(num_classes=3)
    cm.update(t(PRED[:4]), t(TARGET[:4]))
    cm.update(t(PRED[4:]), t(TARGET[4:]))
    assert cm.mat.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    cm.reset()
    assert cm.mat.sum().item() == 0


def test_ignore_index_pixels_excluded():
    cm = ConfusionMatrix(num_classes=3, ignore_index=255)
    # extra ignored pixels, with predictions that would otherwise change every count (even out of range)
    cm.update(t(PRED + [0, 1, 2, 7]), t(TARGET + [255, 255, 255, 255]))
    assert cm.mat.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    assert cm.compute().num_pixels == 9


def test_custom_ignore_index_and_uint8_target():
    cm = ConfusionMatrix(num_classes=2, ignore_index=0)
    cm.update(t([0, 1, 1]), torch.tensor([0, 1, 0], dtype=torch.uint8))
    assert cm.mat.tolist() == [[0, 0], [0, 1]]


def test_class_absent_from_target_and_pred_is_nan_and_left_out():
    cm = ConfusionMatrix(num_classes=4)
    cm.update(t(PRED), t(TARGET))
    m = cm.compute()
    assert math.isnan(m.iou[3]) and math.isnan(m.accuracy[3])
    assert m.miou == pytest.approx((2 / 4 + 1 / 3 + 3 / 5) / 3)
    assert m.mean_accuracy == pytest.approx((2 / 3 + 1 / 2 + 3 / 4) / 3)


def test_class_absent_from_target_but_predicted_counts_as_zero():
    cm = ConfusionMatrix(num_classes=3)
    cm.update(t([0, 2, 1, 1]), t([0, 0, 1, 1]))  # mat = [[1, 0, 1], [0, 2, 0], [0, 0, 0]]
    m = cm.compute()
    assert m.iou == pytest.approx([0.5, 1.0, 0.0])
    assert m.miou == pytest.approx(0.5)
    assert math.isnan(m.accuracy[2])
    assert m.mean_accuracy == pytest.approx(0.75)
    assert m.pixel_accuracy == pytest.approx(0.75)


def test_out_of_range_target_raises_user_error_listing_values():
    cm = ConfusionMatrix(num_classes=3)
    with pytest.raises(UserError) as info:
        cm.update(t([0, 1, 2, 0]), t([0, 3, -1, 255]))
    assert "3" in str(info.value) and "-1" in str(info.value)
    assert cm.mat.sum().item() == 0


def test_bad_inputs_raise_value_error():
    cm = ConfusionMatrix(num_classes=3)
    with pytest.raises(ValueError):
        cm.update(t([0, 1]), t([0, 1, 2]))
    with pytest.raises(ValueError):
        cm.update(torch.zeros(3), t([0, 1, 2]))
    with pytest.raises(ValueError):
        cm.update(t([0, 5, 1]), t([0, 1, 2]))


@pytest.mark.parametrize("all_ignored", [False, True])
def test_empty_is_nan(all_ignored):
    cm = ConfusionMatrix(num_classes=3)
    if all_ignored:
        cm.update(t([0, 1]), t([255, 255]))
    m = cm.compute()
    assert m.num_pixels == 0
    for value in [m.pixel_accuracy, m.mean_accuracy, m.miou, *m.iou, *m.accuracy]:
        assert math.isnan(value)


def test_to_dict_nan_becomes_none_and_is_json():
    cm = ConfusionMatrix(num_classes=4)
    cm.update(t(PRED), t(TARGET))
    d = cm.compute().to_dict(["sky", "road", "car", "bike"])
    assert set(d) == {"pixel_accuracy", "mean_accuracy", "miou", "iou", "accuracy", "confusion", "num_pixels"}
    assert d["iou"]["bike"] is None and d["accuracy"]["bike"] is None
    assert d["iou"]["sky"] == pytest.approx(0.5)
    assert d["confusion"][0] == [2, 1, 0, 0]
    json.dumps(d, allow_nan=False)
    assert list(cm.compute().to_dict()["iou"]) == ["0", "1", "2", "3"]
    with pytest.raises(ValueError):
        cm.compute().to_dict(["a", "b"])
    empty = ConfusionMatrix(num_classes=2).compute().to_dict()
    assert empty["miou"] is None and empty["pixel_accuracy"] is None and empty["num_pixels"] == 0


def test_all_reduce_without_distributed_is_noop():
    cm = ConfusionMatrix(num_classes=3)
    cm.update(t(PRED), t(TARGET))
    cm.all_reduce()
    assert cm.mat.sum().item() == 9


def test_invalid_num_classes():
    with pytest.raises(ValueError):
        ConfusionMatrix(num_classes=0)


@pytest.mark.parametrize("target_dtype", [torch.uint8, torch.int32, torch.int64])
def test_matches_a_plain_count_and_checks_values_before_narrowing(target_dtype):
    g = torch.Generator().manual_seed(3)
    c = 7
    target = torch.randint(0, c, (2, 31, 45), generator=g)
    target[:, :5] = 255
    pred = torch.randint(0, c, (2, 31, 45), generator=g)
    pred[:, :5] = 99  # anything goes where the target is ignored
    cm = ConfusionMatrix(c)
    cm.update(pred, target.to(target_dtype))
    expected = np.zeros((c, c), dtype=np.int64)
    for t, p in zip(target.flatten().tolist(), pred.flatten().tolist()):
        if t != 255:
            expected[t, p] += 1
    np.testing.assert_array_equal(cm.mat.numpy(), expected)
    wrapped = pred.clone()
    wrapped[0, 10, 10] = 2**32 + 1  # would read as 1 after a cast to int32
    with pytest.raises(ValueError, match="outside"):
        cm.update(wrapped, target)
