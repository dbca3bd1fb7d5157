"""The input specification object (segbench.preprocessing.Preprocessing): normalisation, dict round trip,
Hugging Face processor configs and the one-line errors naming the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from segbench.data.transforms import preprocess
from segbench.errors import UserError
from segbench.models import load_model
from segbench.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, as_preprocessing

ODD = Preprocessing(mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.125), value_range=255.0, channel_order="BGR",
                    resize="shorter_side", size=(320,), size_divisor=32, interpolation="bicubic")  # fmt: skip


def test_defaults_are_imagenets_normalisation_of_rgb_in_0_1():
    pre = Preprocessing()
    assert pre.mean == IMAGENET_MEAN and pre.std == IMAGENET_STD and pre.value_range == 1.0
    assert pre.channel_order == "RGB" and pre.resize == "none" and pre.size == () and pre.size_divisor == 0


def test_to_dict_from_dict_round_trip_also_through_json_text():
    d = ODD.to_dict()
    assert Preprocessing.from_dict(d) == ODD
    assert Preprocessing.from_dict(json.loads(json.dumps(d))) == ODD
    # ONNX metadata_props hold strings: lists and numbers as JSON text
    as_text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in d.items()}
    assert Preprocessing.from_dict({**as_text, "classes": '["a"]'}) == ODD
    # keys the metadata lacks come from the default given
    assert Preprocessing.from_dict({"mean": [0.5, 0.5, 0.5]}, default=ODD) == Preprocessing(
        **{**ODD.__dict__, "mean": (0.5, 0.5, 0.5)})


def test_normalize_scales_normalises_and_orders_channels():
    images = torch.tensor([51, 102, 204], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    x = Preprocessing((0.1, 0.2, 0.3), (0.5, 0.5, 0.5)).normalize(images)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 2, 2)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([0.2, 0.4, 1.0]))
    bgr = Preprocessing((0.1, 0.2, 0.3), (0.5, 0.5, 0.5), channel_order="BGR").normalize(images)
    torch.testing.assert_close(bgr[0, :, 0, 0], torch.tensor([1.0, 0.4, 0.2]))
    raw = Preprocessing((0, 0, 0), (1, 1, 1), value_range=255).normalize(images)  # plain 0..255 pixels
    torch.testing.assert_close(raw[0, :, 0, 0], torch.tensor([51.0, 102.0, 204.0]))
    floats = Preprocessing((0.1, 0.2, 0.3), (0.5, 0.5, 0.5)).normalize(images.float() / 255)
    torch.testing.assert_close(floats, x)


@pytest.mark.parametrize("config", [
    {"image_mean": [0.5, 0.4, 0.3], "image_std": [0.2, 0.25, 0.3]},  # defaults: rescale by 1/255, normalise
    {"do_rescale": False, "image_mean": [123.675, 116.28, 103.53], "image_std": [58.395, 57.12, 57.375]},
    {"do_rescale": True, "rescale_factor": 1 / 127.5, "image_mean": [1.0, 1.0, 1.0], "image_std": [1.0, 1.0, 1.0]},
    {"do_normalize": False},  # rescaled to 0..1 only
    {"do_normalize": False, "do_rescale": False},  # raw 0..255
])  # fmt: skip
def test_from_hf_gives_the_processors_input_exactly(config):
    pre = Preprocessing.from_hf(config)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    v = torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).double()
    factor = config.get("rescale_factor", 1 / 255) if config.get("do_rescale", True) else 1.0
    expected = v * factor
    if config.get("do_normalize", True):
        m, s = (torch.tensor(config[k], dtype=torch.float64).view(1, 3, 1, 1) for k in ("image_mean", "image_std"))
        expected = (expected - m) / s
    torch.testing.assert_close(preprocess(image, pre).double(), expected, rtol=1e-5, atol=1e-4)


def test_from_hf_reads_the_resize_rule_divisor_and_interpolation():
    pre = Preprocessing.from_hf({"size": {"height": 512, "width": 1024}, "size_divisor": 32, "resample": 3})
    assert (pre.resize, pre.size, pre.size_divisor, pre.interpolation) == ("fixed", (512, 1024), 32, "bicubic")
    assert pre.target_size(100, 300) == (512, 1024)
    short = Preprocessing.from_hf({"size": {"shortest_edge": 384}, "size_divisibility": 16})
    assert (short.resize, short.size, short.size_divisor) == ("shorter_side", (384,), 16)
    assert short.target_size(200, 300) == (384, 576)
    assert Preprocessing.from_hf({"size": 512, "image_processor_type": "Mask2FormerImageProcessor"}).resize == (
        "shorter_side")
    assert Preprocessing.from_hf({"size": 512}).size == (512, 512)
    assert Preprocessing.from_hf({"size": 512, "do_resize": False}).resize == "none"
    assert Preprocessing.from_hf({}) == Preprocessing()  # a processor's defaults: ImageNet's, RGB in 0..1


@pytest.mark.parametrize("fields, message", [
    ({"std": (0.2, 0.0, 0.2)}, "std [0.2, 0.0, 0.2]: expected 3 positive numbers"),
    ({"std": (0.2, -1.0, 0.2)}, "std"),
    ({"mean": (0.5, 1.5, 0.5)}, "mean [0.5, 1.5, 0.5]: expected 3 numbers in 0..1"),
    ({"mean": (0.5, 0.5)}, "mean must be 3 numbers (R G B), got 2"),
    ({"mean": ("a", 1, 2)}, "mean must be 3 numbers"),
    ({"channel_order": "RGBA"}, "channel_order 'RGBA': expected one of RGB, BGR"),
    ({"resize": "fixed", "size": (512,)}, "size [512]: resize 'fixed' takes [H, W]"),
    ({"resize": "crop"}, "resize 'crop': expected one of none, shorter_side, fixed"),
    ({"size_divisor": -1}, "size_divisor -1: expected an integer >= 0"),
    ({"value_range": 0}, "value_range 0: expected a positive number"),
    ({"interpolation": "lanczos"}, "interpolation 'lanczos'"),
])  # fmt: skip
def test_a_bad_field_is_one_line_naming_it(fields, message):
    with pytest.raises(UserError, match="^preprocessing: ") as err:
        Preprocessing(**fields)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_errors_from_files_name_the_file_and_key():
    with pytest.raises(UserError, match=r"^model\.onnx: std \[0\.1, 0\.0, 0\.1\]: expected 3 positive"):
        Preprocessing.from_dict({"std": "[0.1, 0.0, 0.1]"}, "model.onnx")
    with pytest.raises(UserError, match=r"^model\.onnx: metadata 'mean' is not JSON"):
        Preprocessing.from_dict({"mean": "0.5 0.5 0.5"}, "model.onnx")
    with pytest.raises(UserError, match=r"^cfg\.json: image_std must be 3 numbers \(R G B\), got 2"):
        Preprocessing.from_hf({"image_mean": [0.5] * 3, "image_std": [0.5] * 2}, "cfg.json")
    with pytest.raises(UserError, match=r"^cfg\.json: mean \[.*\]: expected 3 numbers in 0\.\.1"):
        Preprocessing.from_hf({"image_mean": [300.0] * 3, "image_std": [1.0] * 3, "do_rescale": False}, "cfg.json")


def test_as_preprocessing_converts_a_mean_and_std_at_the_old_apis():
    assert as_preprocessing(ODD) is ODD
    assert as_preprocessing((0.1, 0.2, 0.3), (0.5, 0.5, 0.5)) == Preprocessing((0.1, 0.2, 0.3), (0.5, 0.5, 0.5))
    with pytest.raises(TypeError, match="std"):
        as_preprocessing(ODD, "cpu")
    with pytest.raises(TypeError):
        as_preprocessing((0.1, 0.2, 0.3))


def test_weights_carry_their_preprocessing():
    info = load_model("fast_scnn.camvid").info
    assert info.preprocessing == Preprocessing() and (info.mean, info.std) == (IMAGENET_MEAN, IMAGENET_STD)
