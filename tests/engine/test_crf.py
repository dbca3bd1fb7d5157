"""Dense CRF post-processing (segbench.engine.crf): behaviour with pydensecrf2, and the message without it."""

import numpy as np
import pytest
import torch

from segbench.engine import crf as crf_module
from segbench.engine.crf import INSTALL_HINT, CRFConfig, crf_available, dense_crf
from segbench.errors import UserError

needs_crf = pytest.mark.skipif(not crf_available(), reason="pydensecrf2 not installed (pip install 'segbench[crf]')")


def _halves(h=40, w=60):
    """An image dark on the left half and bright on the right; the true label is 0 left, 1 right."""
    image = np.zeros((h, w, 3), np.uint8)
    image[:, w // 2 :] = 200
    truth = (np.arange(w) >= w // 2)[None].repeat(h, 0).astype(np.int64)
    return image, truth


@needs_crf
def test_crf_leaves_a_confident_uniform_prediction_unchanged():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)  # texture must not matter
    probs = np.full((4, 30, 50), 0.01 / 3, np.float32)
    probs[2] = 0.99
    q = dense_crf(image, probs)
    assert q.shape == (4, 30, 50) and q.dtype == np.float32
    assert (q.argmax(0) == 2).all()
    assert q[2].min() > 0.99  # the smoothness and appearance terms only reinforce a uniform labelling
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-4)


@needs_crf
def test_crf_removes_label_noise_along_colour_edges():
    image, truth = _halves()
    rng = np.random.default_rng(1)
    p0 = np.where(truth == 0, 0.7, 0.3).astype(np.float32)
    noisy = rng.random(truth.shape) < 0.2  # 20 % of the pixels get the wrong, confident-ish label
    p0[noisy] = 1 - p0[noisy]
    probs = np.stack([p0, 1 - p0])
    before = (probs.argmax(0) != truth).mean()
    after = (dense_crf(image, probs).argmax(0) != truth).mean()
    assert before > 0.15 and after < 0.01


@needs_crf
def test_crf_accepts_tensors_and_a_batch_dimension():
    image, truth = _halves(8, 10)
    probs = torch.from_numpy(np.stack([1.0 - truth, truth]).astype(np.float32) * 0.8 + 0.1).unsqueeze(0)
    q = dense_crf(image, probs, CRFConfig(iterations=2))
    assert q.shape == (2, 8, 10) and (q.argmax(0) == truth).all()
    with pytest.raises(ValueError, match="do not match"):
        dense_crf(image[:4], probs)


@needs_crf
def test_crf_weights_zero_keep_the_unary_argmax():
    image, truth = _halves()
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(3), size=truth.shape).transpose(2, 0, 1).astype(np.float32)
    q = dense_crf(image, probs, CRFConfig(smooth_weight=0, appearance_weight=0, iterations=3))
    np.testing.assert_array_equal(q.argmax(0), probs.argmax(0))


def test_crf_defaults_are_deeplabs():
    cfg = CRFConfig()
    assert (cfg.iterations, cfg.smooth_weight, cfg.smooth_sxy) == (10, 3.0, 1.0)
    assert (cfg.appearance_weight, cfg.appearance_sxy, cfg.appearance_srgb) == (4.0, 67.0, 3.0)


def test_crf_overrides_and_errors():
    cfg = CRFConfig.from_overrides(["appearance_sxy=50", "smooth_weight=2"], iterations=5)
    assert (cfg.appearance_sxy, cfg.smooth_weight, cfg.iterations) == (50.0, 2.0, 5)
    with pytest.raises(UserError, match="--crf-param 'sigma=3': expected NAME=VALUE with NAME one of iterations"):
        CRFConfig.from_overrides(["sigma=3"])
    with pytest.raises(UserError, match="'abc' is not a number"):
        CRFConfig.from_overrides(["smooth_sxy=abc"])
    with pytest.raises(UserError, match="iterations 0"):
        CRFConfig(iterations=0)
    with pytest.raises(UserError, match="appearance_srgb"):
        CRFConfig(appearance_srgb=0)


def test_missing_binding_gives_one_clear_message(monkeypatch):
    monkeypatch.setattr(crf_module, "_module", lambda: None)
    assert not crf_available()
    image, truth = _halves(4, 4)
    with pytest.raises(UserError) as info:
        dense_crf(image, np.stack([truth, 1 - truth]).astype(np.float32))
    assert str(info.value) == INSTALL_HINT
    assert "pydensecrf2" in INSTALL_HINT and "pip install 'segbench[crf]'" in INSTALL_HINT
    with pytest.raises(UserError, match="pydensecrf2"):
        crf_module.require_crf()
