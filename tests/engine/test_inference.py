"""Sliding-window inference, test-time augmentation and the auto-mode rule (segbench.engine.inference)."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from segbench.engine import inference as inf
from segbench.engine.evaluate import predict_logits
from segbench.engine.inference import (
    DEFAULT_WINDOW,
    InferenceConfig,
    choose_mode,
    gaussian_weights,
    predict_label,
    predict_probs,
    slide_logits,
    training_size,
    whole_logits,
    window_positions,
)
from segbench.errors import UserError
from segbench.models import build_model
from segbench.preprocessing import Preprocessing

PRE = Preprocessing()  # ImageNet's normalisation


@pytest.fixture(scope="module")
def fast_scnn():
    """A Fast-SCNN with non-trivial batch-norm statistics, in eval mode (its output depends on context)."""
    torch.manual_seed(0)
    model = build_model("fast_scnn", num_classes=5).train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, 64, 64))
    return model.eval()


class Pixelwise(nn.Module):
    """Logits computed per pixel from its colour alone (a 1x1 convolution): any window, padding or
    flip gives the same logits at a pixel, so sliding windows and flips must reproduce whole-image output."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        torch.manual_seed(1)
        self.conv = nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        return self.conv(x)


class XRamp(nn.Module):
    """Logits that ignore the image: class 0 grows from left to right, class 1 is 0."""

    def forward(self, x):
        n, _, h, w = x.shape
        ramp = torch.linspace(-3, 3, w).view(1, 1, 1, w).expand(n, 1, h, w)
        return torch.cat([ramp, torch.zeros_like(ramp)], 1)


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- whole image ----------------------------------------------------------------------------------


def test_whole_mode_is_the_softmax_of_predict_logits(fast_scnn):
    image = _image(45, 61)
    logits = predict_logits(fast_scnn, image, PRE)
    probs = predict_probs(fast_scnn, image, PRE, InferenceConfig(mode="whole"))
    assert probs.shape == (1, 5, 45, 61) and probs.dtype == torch.float32
    torch.testing.assert_close(probs, torch.softmax(logits, 1), rtol=0, atol=1e-6)
    assert torch.equal(probs.argmax(1), logits.argmax(1))
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 45, 61))


# --- sliding window -------------------------------------------------------------------------------


def test_slide_equals_whole_when_one_window_covers_the_image(fast_scnn):
    image = _image(48, 64)
    whole = whole_logits(fast_scnn, image, PRE)
    slide = slide_logits(fast_scnn, image, PRE, window=(48, 64), stride=(32, 32))
    assert torch.equal(slide, whole)
    cfg = InferenceConfig(mode="slide", window=(48, 64))
    assert torch.equal(predict_probs(fast_scnn, image, PRE, cfg), predict_probs(fast_scnn, image, PRE))
    gauss = slide_logits(fast_scnn, image, PRE, window=(48, 64), stride=(48, 64), gaussian=True)
    torch.testing.assert_close(gauss, whole, rtol=1e-5, atol=1e-5)


def test_overlapping_windows_see_less_context_so_differ_from_whole(fast_scnn):
    """With a real network, windows smaller than the image change the result (so the test above is not
    trivially true), but every pixel still gets finite logits."""
    image = _image(64, 80)
    whole = whole_logits(fast_scnn, image, PRE)
    slide = slide_logits(fast_scnn, image, PRE, window=(32, 32), stride=(16, 24))
    assert slide.shape == whole.shape and torch.isfinite(slide).all()
    assert not torch.allclose(slide, whole, atol=1e-3)


@pytest.mark.parametrize(
    ("size", "window", "stride", "gaussian"),
    [
        ((50, 70), (16, 24), (16, 24), False),  # no overlap
        ((50, 70), (16, 24), (5, 7), False),  # heavy overlap, uneven last window
        ((50, 70), (32, 32), (20, 11), True),
        ((10, 12), (32, 40), (16, 16), False),  # image smaller than the window: padded, cropped back
        ((10, 90), (32, 40), (16, 16), True),  # smaller in one axis only
        ((1, 1), (8, 8), (4, 4), True),
    ],
)
def test_slide_with_a_pixelwise_model_reproduces_whole_image_logits(size, window, stride, gaussian):
    model = Pixelwise().eval()
    image = _image(*size, seed=3)
    whole = whole_logits(model, image, PRE)
    slide = slide_logits(model, image, PRE, window=window, stride=stride, gaussian=gaussian)
    torch.testing.assert_close(slide, whole, rtol=1e-5, atol=1e-5)


def test_small_image_is_padded_with_the_mean_colour_and_cropped_back(fast_scnn):
    image = _image(20, 30)
    out = slide_logits(fast_scnn, image, PRE, window=(48, 64), stride=(32, 32))
    from segbench.data.transforms import preprocess

    padded = torch.nn.functional.pad(preprocess(image, PRE), (0, 64 - 30, 0, 48 - 20))
    with torch.inference_mode():
        expected = fast_scnn(padded)[:, :, :20, :30]
    assert out.shape == (1, 5, 20, 30)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 400), window=st.integers(1, 120), data=st.data())
def test_window_positions_cover_every_pixel_and_stay_inside(size, window, data):
    stride = data.draw(st.integers(1, window))
    starts = window_positions(size, window, stride)
    assert starts == sorted(set(starts)) and starts[0] == 0
    covered = np.zeros(size, bool)
    for s in starts:
        assert 0 <= s and (s + window <= size or (s == 0 and size <= window))
        covered[s : s + window] = True
    assert covered.all()
    assert all(b - a <= stride for a, b in itertools.pairwise(starts))


def test_gaussian_weights_peak_at_the_centre_and_fall_to_the_borders():
    w = gaussian_weights((33, 17))[0, 0]
    assert w.shape == (33, 17) and w.max() == 1.0 and w[16, 8] == 1.0
    torch.testing.assert_close(w, w.flip(0))
    torch.testing.assert_close(w, w.flip(1))
    assert (w[:16, 8].diff() > 0).all() and (w[16, :8].diff() > 0).all()
    # sigma = side / 8: at the border (16 px from the centre of a 33 px side) the weight is exp(-0.5 (16 / 4.125)^2)
    assert float(w[0, 8]) == pytest.approx(np.exp(-0.5 * (16 / (33 / 8)) ** 2), rel=1e-5)


# --- test-time augmentation -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["whole", "slide"])
def test_tta_with_one_scale_and_no_flip_equals_plain_inference(fast_scnn, mode):
    image = _image(40, 52)
    base = InferenceConfig(mode=mode, window=(32, 32))
    tta = InferenceConfig(mode=mode, window=(32, 32), scales=(1.0,), flip=False)
    assert not tta.tta
    assert torch.equal(
        predict_probs(fast_scnn, image, PRE, tta), predict_probs(fast_scnn, image, PRE, base)
    )


def test_flip_tta_undoes_the_flip():
    image = _image(30, 41)
    model = Pixelwise().eval()  # flip-equivariant: the averaged flip must land where it started
    plain = predict_probs(model, image, PRE)
    flipped = predict_probs(model, image, PRE, InferenceConfig(flip=True))
    torch.testing.assert_close(flipped, plain, rtol=1e-5, atol=1e-6)
    # A model that ignores the image: the flipped pass, mirrored back, is the mirror image of the plain one,
    # so the average is left-right symmetric and differs from plain.
    ramp_plain = predict_probs(XRamp(), image, PRE)
    ramp_tta = predict_probs(XRamp(), image, PRE, InferenceConfig(flip=True))
    torch.testing.assert_close(ramp_tta, ramp_tta.flip(3))
    torch.testing.assert_close(ramp_tta, (ramp_plain + ramp_plain.flip(3)) / 2)
    assert not torch.allclose(ramp_tta, ramp_plain, atol=1e-3)


def test_multi_scale_tta_averages_probabilities_at_the_input_size(fast_scnn):
    image = np.full((36, 48, 3), (90, 120, 30), np.uint8)  # uniform: every scale sees the same colour
    pix = Pixelwise().eval()
    cfg = InferenceConfig(scales=(0.5, 0.75, 1.25, 1.75), flip=True)
    torch.testing.assert_close(
        predict_probs(pix, image, PRE, cfg), predict_probs(pix, image, PRE), rtol=1e-5, atol=1e-6
    )
    noisy = _image(36, 48)
    out = predict_probs(fast_scnn, noisy, PRE, cfg)
    assert out.shape == (1, 5, 36, 48)
    torch.testing.assert_close(out.sum(1), torch.ones(1, 36, 48))
    # the mean over scales of each scale's (plain + flipped) / 2, built here scale by scale
    single = [predict_probs(fast_scnn, noisy, PRE, InferenceConfig(scales=(s,), flip=True)) for s in cfg.scales]
    torch.testing.assert_close(out, torch.stack(single).mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (7, 2)])
@pytest.mark.parametrize(
    "cfg",
    [
        InferenceConfig(),
        InferenceConfig(mode="slide", window=(16, 16)),
        InferenceConfig(mode="auto", window=(16, 16), memory_budget_mib=0),
        InferenceConfig(scales=(0.5, 1.5), flip=True),
    ],
)
def test_tiny_images_are_segmented_at_their_size(fast_scnn, size, cfg):
    probs = predict_probs(fast_scnn, _image(*size), PRE, cfg)
    assert probs.shape == (1, 5, *size) and torch.isfinite(probs).all()
    torch.testing.assert_close(probs.sum(1), torch.ones(1, *size))


# --- auto mode and the config ---------------------------------------------------------------------


def test_auto_slides_when_the_image_is_much_larger_than_the_window(fast_scnn, monkeypatch):
    monkeypatch.setattr(inf, "_probe_peak_mib", lambda *a: pytest.fail("memory rule not needed here"))
    cfg = InferenceConfig(mode="auto", window=(32, 48), auto_size_ratio=2.0)
    assert choose_mode(fast_scnn, (65, 40), cfg) == "slide"  # 65 > 2 x 32
    assert choose_mode(fast_scnn, (30, 97), cfg) == "slide"  # 97 > 2 x 48
    assert choose_mode(fast_scnn, (64, 96), replace_budget(cfg, 0)) == "whole"  # exactly 2x: whole
    assert choose_mode(fast_scnn, (500, 500), InferenceConfig(mode="whole")) == "whole"
    assert choose_mode(fast_scnn, (5, 5), InferenceConfig(mode="slide")) == "slide"


def replace_budget(cfg, mib):
    from dataclasses import replace

    return replace(cfg, memory_budget_mib=mib)


def test_auto_slides_when_whole_image_memory_would_exceed_the_budget(fast_scnn, monkeypatch):
    calls = []

    def probe(model, window, device):
        calls.append(window)
        return 10.0  # MiB at the window size

    monkeypatch.setattr(inf, "_probe_peak_mib", probe)
    cfg = InferenceConfig(mode="auto", window=(32, 32), memory_budget_mib=30.0)
    # 64 x 32 = 2 windows -> 20 MiB predicted: within budget; 64 x 64 = 4 windows -> 40 MiB: over
    assert inf.estimate_whole_memory_mib(fast_scnn, (64, 32), (32, 32)) == pytest.approx(20.0)
    assert choose_mode(fast_scnn, (64, 32), cfg) == "whole"
    assert choose_mode(fast_scnn, (64, 64), cfg) == "slide"
    assert choose_mode(fast_scnn, (64, 64), replace_budget(cfg, 0)) == "whole"  # 0 disables the rule
    assert calls == [(32, 32)] * 3  # the estimate, then the two choices under a budget; none at budget 0
    image = _image(64, 64)
    slid = predict_probs(fast_scnn, image, PRE, cfg)
    expected = predict_probs(fast_scnn, image, PRE, InferenceConfig(mode="slide", window=(32, 32)))
    assert torch.equal(slid, expected)


def test_memory_probe_is_measured_once_per_model(fast_scnn):
    inf._PROBE_CACHE.clear()
    first = inf._probe_peak_mib(fast_scnn, (32, 32), "cpu")
    assert first >= 0
    assert inf._probe_peak_mib(fast_scnn, (32, 32), "cpu") == first
    assert len(inf._PROBE_CACHE[fast_scnn]) == 1


def test_window_comes_from_the_models_training_size():
    meta = {"config": {"data": {"crop_size": [360, 480]}}}
    assert training_size(meta) == (360, 480)
    assert training_size({}) is None and training_size({"config": {"data": {"crop_size": "x"}}}) is None
    cfg = InferenceConfig(mode="auto").for_model(meta)
    assert cfg.window == (360, 480) and cfg.resolved_stride() == (240, 320)
    assert InferenceConfig(window=(100, 100)).for_model(meta).window == (100, 100)
    assert InferenceConfig().for_model({}).window == DEFAULT_WINDOW
    with pytest.raises(UserError, match="--stride 400 400: must not exceed the window 360 480"):
        InferenceConfig(stride=(400, 400)).for_model(meta)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"mode": "tiles"}, "--mode 'tiles'"),
        ({"window": (0, 10)}, "--window 0 10"),
        ({"stride": (5,)}, "--stride 5"),
        ({"window": (10, 10), "stride": (11, 5)}, "must not exceed the window"),
        ({"scales": ()}, "--tta-scales"),
        ({"scales": (1.0, -0.5)}, "--tta-scales"),
        ({"memory_budget_mib": -1}, "--memory-budget"),
    ],
)
def test_bad_inference_options_are_user_errors(kwargs, fragment):
    with pytest.raises(UserError, match=fragment.replace("(", r"\(")):
        InferenceConfig(**kwargs)


def test_describe_and_to_dict():
    cfg = InferenceConfig(mode="slide", window=(60, 90), gaussian=True, scales=(0.5, 1.0), flip=True)
    assert cfg.tta and not cfg.plain.tta and cfg.plain.mode == "slide"
    text = cfg.describe()
    assert "slide" in text and "60x90" in text and "stride 40x60" in text and "gaussian" in text
    assert "TTA scales 0.5,1 + flip" in text
    assert cfg.to_dict()["stride"] == [40, 60] and InferenceConfig().describe() == "whole image"


def test_predict_probs_rejects_non_rgb_arrays(fast_scnn):
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predict_probs(fast_scnn, np.zeros((4, 4), np.uint8), PRE)


# --- label maps, finished band by band ------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "cfg"),
    [
        ((70, 90), InferenceConfig(mode="slide", window=(32, 40), stride=(20, 30))),
        ((70, 90), InferenceConfig(mode="slide", window=(32, 40), stride=(11, 7), gaussian=True)),
        ((33, 90), InferenceConfig(mode="slide", window=(32, 40), stride=(32, 40))),  # last band of 1 row
        ((20, 25), InferenceConfig(mode="slide", window=(32, 40))),  # one padded window
        ((70, 90), InferenceConfig(mode="auto", window=(16, 20))),  # auto slides (70 > 2 x 16)
        ((40, 50), InferenceConfig()),  # whole image
        ((40, 50), InferenceConfig(mode="slide", window=(16, 16), flip=True)),  # TTA: through predict_probs
    ],
)
def test_predict_label_matches_the_probabilities(fast_scnn, size, cfg):
    image = _image(*size, seed=7)
    label, conf = predict_label(fast_scnn, image, PRE, cfg)
    probs = predict_probs(fast_scnn, image, PRE, cfg)
    top, expected = probs.max(1)
    assert label.shape == conf.shape == size and label.dtype == np.uint8 and conf.dtype == np.float32
    np.testing.assert_array_equal(label, expected[0].numpy())
    np.testing.assert_allclose(conf, top[0].numpy(), rtol=1e-6, atol=1e-7)
    assert (conf > 0).all() and (conf <= 1).all()
