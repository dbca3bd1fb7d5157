"""Tiny networks, model files and their fixtures for the tests of segbench.external, made in temporary folders.

Not a conftest.py: a second module named conftest would shadow tests/conftest.py for `from conftest import`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from segbench.classes import CAMVID


class TinyNet(nn.Module):
    """Two convolutions: ``(N, 3, H, W)`` -> logits ``(N, num_classes, H, W)``; with ``stride`` 2 the logits come
    out at half the input size (as many published networks return them)."""

    def __init__(self, num_classes: int = 11, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3, stride=stride, padding=1)
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


class NHWC(nn.Module):
    """A network taking and returning channels-last tensors, as some deployment exports do."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def tiny_net(num_classes: int = 11, stride: int = 1, seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(num_classes, stride).eval()


def export_plain_onnx(net: nn.Module, path: Path, example: torch.Tensor, dynamic: bool = True) -> Path:
    """An ONNX file without segbench's metadata (the TorchScript-based exporter: fast)."""
    axes = {0: "n", 1: "h", 2: "w"} if example.shape[-1] == 3 else {0: "n", 2: "h", 3: "w"}
    torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=17, input_names=["pixels"],
                      output_names=["out"], dynamic_axes={"pixels": axes, "out": axes} if dynamic else None)
    return path


CAMVID_META = {"classes": list(CAMVID.names), "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


@pytest.fixture(name="torchscript_file")
def torchscript_file_fixture(tmp_path) -> Path:
    """A TorchScript archive of an 11-class TinyNet with segbench.json metadata (CamVid classes)."""
    path = tmp_path / "tiny_ts.pt"
    torch.jit.save(torch.jit.script(tiny_net()), str(path), _extra_files={"segbench.json": json.dumps(CAMVID_META)})
    return path


@pytest.fixture(name="pt2_file")
def pt2_file_fixture(tmp_path) -> Path:
    """A torch.export program of an 11-class TinyNet with logits at half size, dynamic H and W, with metadata."""
    net = tiny_net(stride=2)
    dims = {0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    program = torch.export.export(net, (torch.randn(1, 3, 32, 48),), dynamic_shapes=(dims,))
    path = tmp_path / "tiny.pt2"
    torch.export.save(program, str(path), extra_files={"segbench.json": json.dumps(CAMVID_META)})
    return path
