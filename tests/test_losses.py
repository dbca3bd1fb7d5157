"""segbench.losses on hand-made pixels whose values can be checked by hand."""

import math

import pytest
import torch

from segbench.losses import (
    SegLoss,
    cross_entropy,
    dice_loss,
    inverse_log_weights,
    median_frequency_weights,
    ohem_cross_entropy,
)

LN2 = math.log(2.0)


def _pixels(logit_rows, targets):
    """Logits (1, C, 1, P) from one [c0, c1, ...] list per pixel, targets (1, 1, P)."""
    logits = torch.tensor(logit_rows, dtype=torch.float32).T[None, :, None, :].contiguous()
    return logits.requires_grad_(), torch.tensor(targets)[None, None, :]


def _binary(probs, targets):
    """Two classes; pixel i gives class 0 the probability probs[i] (logits [logit(p), 0])."""
    return _pixels([[math.log(p / (1 - p)), 0.0] for p in probs], targets)


def test_cross_entropy_mean_over_valid_pixels_and_class_weights():
    # pixel a: logits [0, 0], class 0 -> ln 2; pixel b: logits [ln 3, 0], class 1 -> p = 1/4 -> ln 4;
    # pixel c is void (255) and counts nowhere
    logits, target = _pixels([[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]], [0, 1, 255])
    assert cross_entropy(logits, target).item() == pytest.approx((LN2 + 2 * LN2) / 2)
    # class weights [1, 3]: (1 * ln 2 + 3 * ln 4) / (1 + 3) = 7/4 ln 2
    weighted = cross_entropy(logits, target, weight=torch.tensor([1.0, 3.0]))
    assert weighted.item() == pytest.approx(7 / 4 * LN2)
    weighted.backward()
    assert logits.grad[0, :, 0, 2].abs().max() == 0  # the void pixel gets no gradient


def test_every_loss_is_zero_with_a_gradient_when_all_pixels_are_void():
    logits, target = _pixels([[1.0, 2.0], [3.0, -1.0]], [255, 255])
    for fn in (cross_entropy, ohem_cross_entropy, dice_loss):
        value = fn(logits, target)
        assert value.item() == 0.0 and not math.isnan(value.item())
        value.backward()
        assert logits.grad is not None and logits.grad.abs().max() == 0


def test_ohem_keeps_pixels_below_the_threshold():
    # true-class probabilities 0.9, 0.6, 0.3, 0.5: with thresh 0.7 the last three are hard
    logits, target = _binary([0.9, 0.6, 0.3, 0.5], [0, 0, 0, 0])
    loss = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=1)
    assert loss.item() == pytest.approx(-(math.log(0.6) + math.log(0.3) + math.log(0.5)) / 3, rel=1e-5)
    loss.backward()
    assert logits.grad[0, :, 0, 0].abs().max() == 0  # the easy pixel (0.9) contributes nothing


def test_ohem_keeps_at_least_min_kept_hardest_pixels():
    # thresh 0.4 makes only the 0.3 pixel hard, but min_kept=2 keeps the two hardest: 0.3 and 0.5
    logits, target = _binary([0.9, 0.6, 0.3, 0.5], [0, 0, 0, 0])
    loss = ohem_cross_entropy(logits, target, thresh=0.4, min_kept=2)
    assert loss.item() == pytest.approx(-(math.log(0.3) + math.log(0.5)) / 2, rel=1e-5)
    # min_kept counts per image: the same pixels as 2 images of 2 pixels keep 2 x 1 = 2 pixels
    two = logits.detach().reshape(1, 2, 2, 2).permute(2, 1, 0, 3).contiguous()  # (2, C, 1, 2)
    loss2 = ohem_cross_entropy(two, target.reshape(2, 1, 2), thresh=0.4, min_kept=1)
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-5)
    # never more than the valid pixels, and a void pixel is never kept however hard it is
    logits, target = _binary([0.9, 0.6, 0.01], [0, 0, 255])
    loss = ohem_cross_entropy(logits, target, thresh=0.1, min_kept=10)
    assert loss.item() == pytest.approx(-(math.log(0.9) + math.log(0.6)) / 2, rel=1e-5)


def test_ohem_with_class_weights_is_a_weighted_mean_of_the_kept_pixels():
    # pixel 0: class 0 with p = 0.5; pixel 1: class 1 with p(class 1) = 0.25; pixel 2: easy (p = 0.95)
    logits, target = _pixels([[0.0, 0.0], [math.log(3.0), 0.0], [math.log(19.0), 0.0]], [0, 1, 0])
    loss = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=0, weight=torch.tensor([1.0, 3.0]))
    assert loss.item() == pytest.approx((1 * LN2 + 3 * 2 * LN2) / 4, rel=1e-5)


def test_dice_loss_by_hand():
    # logits [0, 0]: p = (0.5, 0.5) everywhere; targets [0, 1] (+ one void pixel left out)
    # per class: intersection 0.5, cardinality 0.5 + 0.5 + 1 = 2
    logits, target = _pixels([[0.0, 0.0], [0.0, 0.0], [9.0, -9.0]], [0, 1, 255])
    assert dice_loss(logits, target, smooth=0.0).item() == pytest.approx(1 - 2 * 0.5 / 2)
    assert dice_loss(logits, target, smooth=1.0).item() == pytest.approx(1 - (2 * 0.5 + 1) / (2 + 1))
    # confident and right: close to 0; confident and wrong: close to 1
    right, target = _pixels([[20.0, -20.0], [-20.0, 20.0]], [0, 1])
    assert dice_loss(right, target, smooth=0.0).item() == pytest.approx(0.0, abs=1e-6)
    wrong, target = _pixels([[-20.0, 20.0], [20.0, -20.0]], [0, 1])
    assert dice_loss(wrong, target, smooth=0.0).item() == pytest.approx(1.0, abs=1e-6)


def test_median_frequency_weights_hand_computed():
    # image 1: 4 valid pixels, class 0 x3, class 1 x1; image 2: 2 valid pixels, both class 2 (+2 void)
    # f_c = pixels of c / pixels of the images containing c: f0 = 3/4, f1 = 1/4, f2 = 2/2 = 1
    # median(f) = 3/4 -> w = [1, 3, 0.75]; class 3 never appears -> weight 0
    masks = [torch.tensor([[0, 0], [0, 1]]), torch.tensor([[2, 2], [255, 255]])]
    torch.testing.assert_close(median_frequency_weights(masks, 4), torch.tensor([1.0, 3.0, 0.75, 0.0]))


def test_inverse_log_weights_hand_computed():
    # 6 valid pixels: class 0 x3, class 1 x1, class 2 x2 -> p = 1/2, 1/6, 1/3; class 3 absent -> p = 0
    masks = [torch.tensor([[0, 0], [0, 1]]), torch.tensor([[2, 2], [255, 255]])]
    expected = [1 / math.log(1.02 + p) for p in (1 / 2, 1 / 6, 1 / 3, 0.0)]
    weights = inverse_log_weights(masks, 4)
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights, torch.tensor(expected, dtype=torch.float32))
    assert weights[3].item() == pytest.approx(50.5, abs=0.01)  # the bound 1 / ln(1.02)


def test_seg_loss_is_the_weighted_sum_of_its_terms():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 6)
    target = torch.randint(0, 3, (2, 5, 6))
    target[0, 0] = 255
    w = torch.tensor([1.0, 2.0, 0.5])
    mix = SegLoss(ce=1.0, ohem=0.5, dice=2.0, ohem_thresh=0.6, ohem_min_kept=4, class_weights=w)
    total, parts = mix(logits, target)
    ce = cross_entropy(logits, target, w)
    ohem = ohem_cross_entropy(logits, target, 0.6, 4, w)
    dice = dice_loss(logits, target)
    assert total.item() == pytest.approx(ce.item() + 0.5 * ohem.item() + 2.0 * dice.item(), rel=1e-6)
    assert parts == pytest.approx({"ce": ce.item(), "ohem": ohem.item(), "dice": dice.item()})
    total, parts = SegLoss(ce=0.0, dice=1.0)(logits, target)  # terms with weight 0 are not computed
    assert set(parts) == {"dice"} and total.item() == pytest.approx(dice.item())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ce": -1.0}, "loss.ce: a loss weight must be >= 0"),
        ({"ce": 0.0}, "every loss weight"),
        ({"ohem_thresh": 1.5}, "loss.ohem_thresh"),
        ({"ohem_min_kept": -1}, "loss.ohem_min_kept"),
    ],
)
def test_seg_loss_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SegLoss(**kwargs)
