"""``py:package.module:function`` and ``smp:ARCH:ENCODER[:CLASSES]`` specs."""

from __future__ import annotations

import sys

import pytest
import torch

from segbench.errors import UserError
from segbench.external import ModelInputs, check_spec, load_any

MODULE = '''
import torch
from torch import nn


class Net(nn.Module):
    segbench_meta = {"classes": ["road", "car", "person"], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


def build():
    return Net()


def not_a_module():
    return 42


def broken():
    raise RuntimeError("no weights here")
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "mynets").mkdir()
    (tmp_path / "mynets" / "__init__.py").write_text("")
    (tmp_path / "mynets" / "seg.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield "mynets.seg"
    for name in [m for m in sys.modules if m.startswith("mynets")]:
        del sys.modules[name]


def test_py_spec_builds_the_users_network(user_module):
    loaded = load_any(f"py:{user_module}:build")
    info = loaded.info
    assert info.kind == "py" and info.name == "py:mynets.seg:build"
    assert info.class_names == ["road", "car", "person"] and info.mean == (0.5, 0.5, 0.5) and info.missing == ""
    out = loaded.model(torch.randn(1, 3, 33, 47))
    assert out.shape == (1, 3, 33, 47)  # half-size logits resized to the input


def test_py_spec_errors_are_one_line(user_module):
    for spec, message in [
        ("py:mynets.seg", "expected py:package.module:function"),
        ("py:mynets/seg:build", "expected py:package.module:function"),
        ("py:mynets.nothere:build", "cannot import 'mynets.nothere'"),
        (f"py:{user_module}:nothere", "has no function 'nothere'"),
        (f"py:{user_module}:not_a_module", "returned int, not a torch.nn.Module"),
        (f"py:{user_module}:broken", "broken() failed (RuntimeError: no weights here)"),
    ]:
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_any(spec)
    with pytest.raises(UserError, match="expected py:package.module:function"):
        check_spec("py::build")


smp = pytest.importorskip("segmentation_models_pytorch", reason="smp: specs need pip install -e '.[smp]'")


def test_smp_random_weights_any_input_size(tmp_path):
    loaded = load_any("smp:Unet:resnet18:4", weights="none")
    assert loaded.info.kind == "smp" and loaded.info.num_classes == 4 and loaded.info.weights == "none"
    assert any("multiple of 32" in n for n in loaded.info.notes)
    with torch.no_grad():
        assert loaded.model(torch.randn(1, 3, 65, 97)).shape == (1, 4, 65, 97)
    # local weights: the same network saved and loaded again gives the same logits
    path = tmp_path / "unet.pt"
    torch.save(loaded.model.net.state_dict(), path)
    names = tmp_path / "classes.yaml"
    names.write_text("names: [a, b, c, d]\n")
    again = load_any("smp:unet:resnet18", weights=str(path), inputs=ModelInputs(names))
    assert again.info.class_names == ["a", "b", "c", "d"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(again.model(x), loaded.model(x), atol=1e-5)


def test_smp_errors_are_one_line():
    for spec, weights, message in [
        ("smp:Unet", "none", "expected smp:ARCH:ENCODER"),
        ("smp:Nonet:resnet18:2", "none", "unknown smp architecture 'Nonet'"),
        ("smp:Unet:resnet18:2", None, "which weights?"),
        ("smp:Unet:resnet18", "none", "how many classes?"),
        ("smp:Unet:resnet18:x", "none", "CLASSES must be a positive number"),
        ("smp:Unet:nosuchencoder:2", "none", "cannot build it"),
    ]:
        with pytest.raises(UserError, match=message):
            load_any(spec, weights=weights)
