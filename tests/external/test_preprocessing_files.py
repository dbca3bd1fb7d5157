"""A model file's Preprocessing: written into an exported ONNX file's metadata_props and read back whole, and a
TorchScript file's segbench.json normalisation and channel order reaching its predictions (through
``segbench predict``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from external_nets import tiny_net
from PIL import Image
from torch import nn

from segbench.classes import CAMVID, default_palette
from segbench.engine.inference import predict_label
from segbench.external import load_any
from segbench.models import ModelInfo
from segbench.preprocessing import Preprocessing


class SignOfFirstChannel(nn.Module):
    """Two classes: 0 where the network's first input channel is positive, 1 where it is negative; so the
    prediction on a constant image depends on the mean, std and channel order it was normalised with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x[:, :1], -x[:, :1]], 1)


def test_an_exported_onnx_files_metadata_gives_back_the_same_preprocessing(tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX tests need the onnx extra: pip install -e '.[onnx]'")
    from segbench.export import export_checked, read_metadata

    pre = Preprocessing(mean=(0.3, 0.4, 0.5), std=(0.2, 0.3, 0.4), channel_order="BGR", size_divisor=16)
    n = len(CAMVID.names)
    info = ModelInfo("tiny", "tiny.pt", n, list(CAMVID.names), default_palette(n), preprocessing=pre)
    path = tmp_path / "tiny.onnx"
    export_checked(tiny_net(), info, path, exporter="torchscript", max_images=1, log=lambda line: None)
    meta = read_metadata(path)
    assert all(isinstance(v, str) for v in meta.values())  # metadata_props hold text
    assert json.loads(meta["mean"]) == [0.3, 0.4, 0.5] and meta["channel_order"] == "BGR"
    loaded = load_any(str(path))
    assert loaded.info.preprocessing == pre and loaded.info.missing == ""


def _torchscript(path, meta: dict | None):
    extra = {"segbench.json": json.dumps(meta)} if meta is not None else {}
    torch.jit.save(torch.jit.script(SignOfFirstChannel()), str(path), _extra_files=extra)
    return path


@pytest.mark.parametrize("meta, expected", [
    (None, 0),  # ImageNet's mean 0.485 is under the red 0.502: positive
    ({"classes": ["pos", "neg"], "mean": [0.6, 0.6, 0.6], "std": [0.5, 0.5, 0.5]}, 1),  # 0.502 - 0.6 < 0
    ({"classes": ["pos", "neg"], "mean": [0.4, 0.4, 0.4], "std": [0.5, 0.5, 0.5]}, 0),
    ({"classes": ["pos", "neg"], "mean": [0.4] * 3, "std": [0.5] * 3, "channel_order": "BGR"}, 1),  # blue 0.2
])  # fmt: skip
def test_segbench_json_preprocessing_reaches_the_predictions(tmp_path, cli, meta, expected):
    model = _torchscript(tmp_path / "sign.pt", meta)
    image = np.zeros((12, 16, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 128, 128, 51  # red 0.502, blue 0.2
    loaded = load_any(str(model))
    if meta is not None:
        assert loaded.info.preprocessing == Preprocessing.from_dict(meta)
    label, _ = predict_label(loaded.model, image, loaded.info.preprocessing)
    assert (label == expected).all()
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(image).save(photos / "flat.png")
    rc, out, err = cli("predict", model, photos, "--output", tmp_path / "out", "--quiet")
    assert rc == 0, err
    written = np.asarray(Image.open(tmp_path / "out" / "flat_label.png"))
    assert written.shape == (12, 16) and (written == expected).all()


class SawSize(nn.Module):
    """Two classes: 1 everywhere when the network's input is ``h x w``, else 0; so the prediction says which size
    the loader ran it at."""

    def __init__(self, h: int, w: int) -> None:
        super().__init__()
        self.h, self.w = h, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hit = float(x.shape[-2] == self.h and x.shape[-1] == self.w)
        ones = torch.ones_like(x[:, :1])
        return torch.cat([ones * (1.0 - hit), ones * hit], 1)


@pytest.mark.parametrize("meta, seen", [
    ({"resize": "fixed", "size": [16, 16]}, (16, 16)),
    ({"resize": "shorter_side", "size": [24]}, (24, 40)),  # 12 x 20 -> shorter side 24, aspect kept
    ({"size_divisor": 32}, (32, 32)),  # padded at the bottom and right
    ({"resize": "fixed", "size": [20, 28], "size_divisor": 8}, (24, 32)),
    ({}, (12, 20)),  # no rule: the image's own size
])  # fmt: skip
def test_a_torchscript_files_resize_rule_sets_the_size_the_network_sees(tmp_path, meta, seen):
    path = tmp_path / "size.pt"
    extra = {"segbench.json": json.dumps({"classes": ["other", "seen"], **meta})}
    torch.jit.save(torch.jit.script(SawSize(*seen)), str(path), _extra_files=extra)
    loaded = load_any(str(path))
    assert loaded.info.preprocessing == Preprocessing.from_dict(meta)
    assert bool(loaded.info.notes) == bool(meta)  # a rule is said in the report's notes
    with torch.no_grad():
        logits = loaded.model(torch.zeros(1, 3, 12, 20))
    assert logits.shape == (1, 2, 12, 20) and (logits.argmax(1) == 1).all()


def test_padding_is_cropped_off_the_logits_at_their_own_scale():
    pre = Preprocessing(size_divisor=16)

    def half(x):  # logits at half the input's size, a ramp along the width
        ramp = torch.arange(x.shape[-1] // 2, dtype=torch.float32).expand(1, 1, x.shape[-2] // 2, -1)
        return torch.cat([ramp, -ramp], 1)

    out = pre.run_resized(half, torch.zeros(1, 3, 20, 24))  # padded to 32 x 32, logits 16 x 16, kept 10 x 12
    expected = F.interpolate(half(torch.zeros(1, 3, 32, 32))[..., :10, :12], size=(20, 24), mode="bilinear",
                             align_corners=False)  # fmt: skip
    assert out.shape == (1, 2, 20, 24) and torch.allclose(out, expected)


def test_an_onnx_files_resize_rule_sets_the_size_onnx_runtime_sees(tmp_path):
    pytest.importorskip("onnxruntime", reason="ONNX tests need the onnx extra: pip install -e '.[onnx]'")
    from external_nets import export_plain_onnx

    from segbench.export import write_metadata

    path = export_plain_onnx(tiny_net(num_classes=2), tmp_path / "tiny.onnx", torch.zeros(1, 3, 16, 16))
    write_metadata(path, {"classes": json.dumps(["a", "b"]), "resize": "fixed", "size": "[16, 24]",
                          "size_divisor": "32"})  # fmt: skip
    loaded = load_any(str(path))
    shapes = []
    run = loaded.model._run
    loaded.model._run = lambda array: shapes.append(array.shape) or run(array)
    with torch.no_grad():
        logits = loaded.model(torch.zeros(1, 3, 30, 50))
    assert shapes == [(1, 3, 32, 32)] and logits.shape == (1, 2, 30, 50)
