"""A model file's Preprocessing: written into an exported ONNX file's metadata_props and read back whole, and a
TorchScript file's segbench.json normalisation and channel order reaching its predictions (through
``segbench predict``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
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
