"""evaluate's per-image confusion matrices, optional scores and summaries (segbench.metrics.per_image / summary)."""

import numpy as np
import pytest
import torch
from torch import nn

from segbench.classes import ClassSet
from segbench.data.datasets import SegmentationDataset
from segbench.engine.evaluate import evaluate
from segbench.errors import UserError
from segbench.metrics import per_image_miou, score_confusions
from segbench.metrics.per_image import DistanceCache, ScoreOptions
from segbench.metrics.summary import confusions_npz, interval_fields, step_gains, summarise
from segbench.metrics.trimap import band_confusions

H, W = 20, 30


class KnownAccuracy(nn.Module):
    """Predicts the true label on the first ``round(p * W)`` columns of image k and class 1 - label elsewhere,
    so image k's pixel accuracy is known exactly; the labels are read from the image's red channel."""

    def forward(self, x):
        labels = (x[:, 0] > 0).long()  # red channel 255 -> class 1 after normalisation with mean 0.5
        correct_cols = int(round(float(x[0, 1, 0, 0] * 0.5 + 0.5) * W))  # green encodes p
        pred = labels.clone()
        pred[:, :, correct_cols:] = 1 - labels[:, :, correct_cols:]
        logits = torch.nn.functional.one_hot(pred, 2).permute(0, 3, 1, 2).float() * 4
        return logits


def _dataset(tmp_path, accuracies, rng):
    from PIL import Image

    (tmp_path / "images").mkdir(parents=True)
    (tmp_path / "masks").mkdir()
    pairs = []
    for k, p in enumerate(accuracies):
        label = (rng.random((H, W)) < 0.5).astype(np.uint8)
        label[0, 0] = 255  # one void pixel
        image = np.zeros((H, W, 3), dtype=np.uint8)
        image[..., 0] = np.where(label == 1, 255, 0)
        image[..., 1] = round(p * 255)
        Image.fromarray(image).save(tmp_path / "images" / f"im{k}.png")
        Image.fromarray(label, mode="L").save(tmp_path / "masks" / f"im{k}.png")
        pairs.append((tmp_path / "images" / f"im{k}.png", tmp_path / "masks" / f"im{k}.png"))
    return SegmentationDataset(pairs, ClassSet("two", ("a", "b"), ((0, 0, 0), (255, 255, 255))))


def _run(tmp_path, accuracies, **kw):
    ds = _dataset(tmp_path, accuracies, np.random.default_rng(0))
    return evaluate(KnownAccuracy(), ds, 2, (0.5,) * 3, (0.5,) * 3, progress=False, class_names=["a", "b"], **kw)


def test_per_image_matrices_hold_each_image_and_sum_to_the_dataset(tmp_path):
    accuracies = [0.2, 0.5, 0.9, 1.0]
    res = _run(tmp_path, accuracies)
    mats = res.variants[-1].confusions
    assert mats.shape == (4, 2, 2) and mats.dtype == np.int64
    assert res.image_names == ["im0", "im1", "im2", "im3"]
    assert np.array_equal(mats.sum(0), np.asarray(res.metrics.confusion))
    expected = [round(p * W) * H / (H * W) for p in accuracies]
    got = score_confusions(mats).pixel_accuracy * (H * W - 1) / (H * W)  # void pixel left out of each image
    assert got == pytest.approx(expected, abs=1 / W)
    assert mats.sum(axis=(1, 2)).tolist() == [H * W - 1] * 4


def test_optional_scores_are_off_by_default_and_on_when_asked(tmp_path):
    plain = _run(tmp_path / "a", [1.0, 1.0])
    assert plain.variants[-1].extra == {} and plain.variants[-1].trimap_confusions is None
    opts = ScoreOptions(boundary=True, trimap=True, max_width=5, ece=True, bootstrap=50)
    res = _run(tmp_path / "b", [1.0, 1.0], scores=opts)
    extra = res.variants[-1].extra
    assert extra["boundary"]["boundary_miou"] == pytest.approx(1.0)  # perfect predictions
    assert extra["trimap"]["miou"] == pytest.approx([1.0] * 5)
    assert 0 <= extra["calibration"]["ece"] < 0.05  # confident and right
    assert res.variants[-1].trimap_confusions.shape == (2, 5, 2, 2)
    summary = summarise(res, opts)
    for key in ("miou_interval", "pixel_accuracy_interval", "iou_interval", "per_image_miou_mean", "boundary"):
        assert key in summary
    assert summary["miou_interval"] == [1.0, 1.0]
    assert extra["boundary"]["boundary_miou_interval"] == [1.0, 1.0]


def test_distance_cache_gives_the_bands_of_band_confusions():
    rng = np.random.default_rng(1)
    target = torch.from_numpy(rng.integers(0, 3, (1, 16, 16)))
    target[0, :2] = 255
    pred = torch.from_numpy(rng.integers(0, 3, (1, 16, 16)))
    from segbench.metrics.per_image import ImageScores

    cache = DistanceCache(6)
    scores = ImageScores(3, 255, ScoreOptions(trimap=True, max_width=6), cache)
    scores.update("x", pred, target)
    scores.update("x", pred, target)  # second time from the cache
    assert list(cache.maps) == ["x"]
    expected = band_confusions(pred, target, 3, 255, 6)[0]
    assert np.array_equal(scores.stacked_trimap()[1], expected)


def test_interval_fields_cover_a_known_pixel_accuracy():
    """Images whose pixel accuracy is drawn from Beta(6, 2) (population value 0.75): the 95% interval of
    interval_fields covers 0.75 in about 95% of 150 seeded draws of 40 images."""
    rng = np.random.default_rng(5)
    covered = 0
    for k in range(150):
        acc = rng.beta(6, 2, size=40)
        correct = np.round(acc * 1000).astype(np.int64)
        mats = np.zeros((40, 2, 2), dtype=np.int64)
        mats[:, 0, 0], mats[:, 0, 1] = correct // 2, 500 - correct // 2
        mats[:, 1, 1], mats[:, 1, 0] = correct - correct // 2, 500 - (correct - correct // 2)
        lo, hi = interval_fields(mats, num_resamples=300, seed=k)["pixel_accuracy_interval"]
        covered += lo <= 0.75 <= hi
    assert 0.88 <= covered / 150 <= 0.99


def test_a_step_against_itself_gains_exactly_zero(tmp_path):
    res = _run(tmp_path, [0.3, 0.6, 0.9])
    v = res.variants[0]
    twin = type(v)("crf", confusions=v.confusions.copy())
    (g,) = step_gains([v, twin], ScoreOptions(bootstrap=200))
    assert g["difference"] == 0.0 and g["interval"] == [0.0, 0.0] and not g["significant"]
    assert g["statement"] == "CRF: +0.0 points [0.0, 0.0]"


def test_confusions_npz_round_trip(tmp_path):
    res = _run(tmp_path, [0.5, 1.0])
    data = confusions_npz(res.image_names, {"plain": res.variants[0].confusions}, ["a", "b"])
    (tmp_path / "c.npz").write_bytes(data)
    with np.load(tmp_path / "c.npz") as z:
        assert z["image_names"].tolist() == ["im0", "im1"] and z["class_names"].tolist() == ["a", "b"]
        assert np.array_equal(z["plain"], res.variants[0].confusions)
        assert per_image_miou(z["plain"]).shape == (2,)


def test_bad_score_options_are_user_errors():
    for kw in ({"dilation_ratio": 0}, {"max_width": 0}, {"num_bins": 0}, {"bootstrap": -1}):
        with pytest.raises(UserError):
            ScoreOptions(**kw)
