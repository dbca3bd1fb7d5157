"""Corruption plans, seeded corrupted images and the robustness table (segbench.engine.robustness)."""

import importlib.util

import numpy as np
import pytest
import torch

from segbench.engine.robustness import (
    GROUPS,
    CorruptionPlan,
    Runner,
    corrupt_image,
    corruption_sweep,
    parse_severities,
    robustness_comparisons,
    robustness_intervals,
    robustness_table,
)
from segbench.errors import UserError
from segbench.preprocessing import Preprocessing

needs_package = pytest.mark.skipif(importlib.util.find_spec("imagecorruptions") is None,
                                   reason="imagecorruptions not installed (pip install 'segbench[robustness]')")

HALF = Preprocessing((0.5,) * 3, (0.5,) * 3)


def test_groups_are_the_fifteen_imagenet_c_corruptions():
    names = [n for g in GROUPS.values() for n in g]
    assert len(names) == len(set(names)) == 15
    assert CorruptionPlan.parse(["all"]).corruptions == tuple(names)
    assert CorruptionPlan.parse(["blur", "fog", "motion_blur"]).corruptions == GROUPS["blur"] + ("fog",)


def test_parse_severities():
    assert parse_severities("1-5") == (1, 2, 3, 4, 5)
    assert parse_severities("5,1,3") == (1, 3, 5)
    for bad in ("0", "6", "3-2", "x", ""):
        with pytest.raises(UserError):
            parse_severities(bad)
    with pytest.raises(UserError):
        CorruptionPlan.parse(["rain"])


@needs_package
@pytest.mark.parametrize("name", ["gaussian_noise", "impulse_noise", "fog", "jpeg_compression", "frost"])
def test_corrupted_image_is_seeded_and_depends_on_severity(name):
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    state = np.random.get_state()
    a = corrupt_image(image, name, 3, seed=1, index=2)
    assert np.array_equal(a, corrupt_image(image, name, 3, seed=1, index=2))
    assert a.shape == image.shape and a.dtype == np.uint8
    assert not np.array_equal(a, corrupt_image(image, name, 5, seed=1, index=2))
    assert not np.array_equal(a, image)
    assert np.array_equal(state[1], np.random.get_state()[1])  # numpy's global generator restored


def test_table_means_and_relative_to_clean():
    plan = CorruptionPlan(("a", "b"), (1, 2))
    perfect = np.diag([50, 50])
    half = np.array([[25, 25], [25, 25]])  # IoU 1/3 per class
    mats = np.stack([perfect, perfect, half, half, half])  # clean, a1, a2, b1, b2
    t = robustness_table(mats, plan)
    assert t["clean_miou"] == 1.0 and t["miou"]["a"] == pytest.approx([1.0, 1 / 3])
    assert t["mean"]["b"] == pytest.approx(1 / 3) and t["relative"]["a"] == pytest.approx(2 / 3)
    assert t["mean_miou"] == pytest.approx(0.5) and t["relative_miou"] == pytest.approx(0.5)


def test_a_subset_of_images_is_spread_over_the_sequence():
    assert CorruptionPlan(("fog",), max_images=3).image_indices(101) == [0, 50, 100]
    assert CorruptionPlan(("fog",), max_images=5).image_indices(9) == [0, 2, 4, 6, 8]
    assert CorruptionPlan(("fog",), max_images=1).image_indices(7) == [0]
    assert CorruptionPlan(("fog",)).image_indices(4) == [0, 1, 2, 3]  # 0: all
    assert CorruptionPlan(("fog",), max_images=9).image_indices(4) == [0, 1, 2, 3]


class _RedIsClassOne(torch.nn.Module):
    """Two-class logits from the red channel; counts its calls and raises KeyboardInterrupt after ``stop_after``."""

    def __init__(self, scale: float = 1.0, stop_after: int | None = None):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor([scale]))
        self.calls, self.stop_after = 0, stop_after

    def forward(self, x):
        self.calls += 1
        if self.stop_after is not None and self.calls > self.stop_after:
            raise KeyboardInterrupt
        return torch.cat([-x[:, :1], x[:, :1]], 1) * self.scale


def _red_images(n=3):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (32, 40, 3), dtype=np.uint8) for _ in range(n)]
    return [{"image": im, "mask": (im[..., 0] > 128).astype(np.int64)} for im in images]


@needs_package
def test_a_stopped_sweep_resumes_from_its_checkpoint(tmp_path):
    data, plan = _red_images(), CorruptionPlan(("gaussian_noise", "contrast"), (1, 3))  # 5 cells x 3 images
    runner = lambda model: {"m": Runner(model, HALF, 2)}  # noqa: E731
    whole = corruption_sweep(runner(_RedIsClassOne()), data, 3, plan, progress=False, bootstrap=100)
    ckpt = tmp_path / "sweep.npz"
    with pytest.raises(KeyboardInterrupt):  # stopped in the third cell: the first two are saved
        corruption_sweep(runner(_RedIsClassOne(stop_after=7)), data, 3, plan, progress=False, checkpoint=ckpt)
    with np.load(ckpt) as z:
        assert int(z["done"]) == 2
    model = _RedIsClassOne()
    resumed = corruption_sweep(runner(model), data, 3, plan, progress=False, checkpoint=ckpt, resume=True,
                               bootstrap=100)  # fmt: skip
    assert model.calls == 9  # cells 2..4 only
    assert resumed == whole and not ckpt.exists()  # removed once the sweep ends
    lo, hi = whole["models"]["m"]["mean_miou_interval"]
    assert lo <= whole["models"]["m"]["mean_miou"] <= hi and whole["bootstrap"] == 100


@needs_package
def test_resume_refuses_a_checkpoint_of_another_sweep(tmp_path):
    data, plan = _red_images(), CorruptionPlan(("contrast",), (1, 2))
    ckpt = tmp_path / "sweep.npz"
    with pytest.raises(KeyboardInterrupt):
        corruption_sweep({"m": Runner(_RedIsClassOne(stop_after=4), HALF, 2)}, data, 3, plan,
                         progress=False, checkpoint=ckpt)  # fmt: skip
    other = {"m": Runner(_RedIsClassOne(scale=2.0), HALF, 2)}  # other weights
    with pytest.raises(UserError, match="other models, weights"):
        corruption_sweep(other, data, 3, plan, progress=False, checkpoint=ckpt, resume=True)
    ckpt.write_bytes(b"not an npz")
    with pytest.raises(UserError, match="not a readable corruption checkpoint"):
        corruption_sweep(other, data, 3, plan, progress=False, checkpoint=ckpt, resume=True)


def test_intervals_of_identical_images_have_no_width_and_contain_the_estimates():
    plan = CorruptionPlan(("a", "b"), (1, 2))
    rng = np.random.default_rng(0)
    one = rng.integers(0, 50, (5, 1, 3, 3))  # 5 cells (clean, a1, a2, b1, b2) of one image
    same = np.repeat(one, 4, axis=1)  # four identical images: every resample is the same
    t, iv = robustness_table(same.sum(1), plan), robustness_intervals(same, plan, 200)
    assert iv["mean_miou_interval"] == pytest.approx([t["mean_miou"]] * 2)
    assert iv["relative_miou_interval"] == pytest.approx([t["relative_miou"]] * 2)
    assert iv["clean_miou_interval"] == pytest.approx([t["clean_miou"]] * 2)
    varied = rng.integers(0, 50, (5, 30, 3, 3))
    t, iv = robustness_table(varied.sum(1), plan), robustness_intervals(varied, plan, 500)
    for name in ("clean_miou", "mean_miou", "relative_miou"):
        lo, hi = iv[f"{name}_interval"]
        assert lo < hi and lo <= t[name] <= hi, name
    for c in ("a", "b"):
        lo, hi = iv["mean_interval"][c]
        assert lo <= t["mean"][c] <= hi


def test_intervals_recompute_each_cell_from_the_resampled_sums():
    plan = CorruptionPlan(("a",), (1,))
    perfect, wrong = np.diag([10, 10]), np.array([[0, 10], [10, 0]])
    # image 0 perfect in both cells, image 1 all wrong when corrupted: mean mIoU over resamples of {0, 1}
    per_image = np.stack([np.stack([perfect, perfect]), np.stack([perfect, wrong])])  # (K=2, N=2, 2, 2)
    iv = robustness_intervals(per_image, plan, 2000)
    # a resample of image 0 twice scores 1.0, image 1 twice 0.0, one of each 1/3 (IoU (10/30) per class)
    lo, hi = iv["mean_miou_interval"]
    assert lo == pytest.approx(0.0) and hi == pytest.approx(1.0)
    assert iv["clean_miou_interval"] == pytest.approx([1.0, 1.0])


def test_paired_comparisons_of_a_model_with_itself_are_zero_and_a_broken_copy_loses():
    plan = CorruptionPlan(("a", "b"), (1, 2))
    rng = np.random.default_rng(1)
    good = rng.integers(0, 50, (5, 12, 3, 3)) + np.eye(3, dtype=np.int64) * 200  # mostly right
    broken = good.copy()
    broken[1:] = good[1:] * (1 - np.eye(3, dtype=np.int64))  # every corrupted cell without a correct pixel
    (same,) = robustness_comparisons({"x": good, "y": good.copy()}, plan, 300)
    assert same["mean_miou_difference"] == {"estimate": 0.0, "low": 0.0, "high": 0.0}
    assert not same["significant"] and not same["relative_significant"]
    (pair,) = robustness_comparisons({"broken": broken, "good": good}, plan, 300)
    assert (pair["a"], pair["b"]) == ("good", "broken")  # the better mean corrupted mIoU first
    d = pair["mean_miou_difference"]
    # broken scores 0 when corrupted
    assert d["estimate"] == pytest.approx(robustness_table(good.sum(1), plan)["mean_miou"])
    assert 0 < d["low"] <= d["estimate"] <= d["high"] and pair["significant"] and pair["relative_significant"]
    assert pair["statement"].startswith("good vs broken under corruption: mIoU +")
    assert robustness_comparisons({"x": good}, plan, 100) == []
