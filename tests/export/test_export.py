"""ONNX export: the exact exportable adaptive pooling, ``segbench export --format onnx`` (checked against PyTorch
before the file is written, numbers in metadata_props), and the check catching graphs that kept the traced size.

Uses the fast_scnn CamVid-classes checkpoint of conftest (random weights) and the CamVid val sample shipped with
segbench. One export with the default (dynamo) exporter; the other CLI runs use the quicker TorchScript exporter.
"""

from __future__ import annotations

import json

import pytest
import torch

from segbench.classes import CAMVID
from segbench.cli import main
from segbench.export import check_onnx, read_metadata
from segbench.models import load_model


@pytest.fixture(scope="module")
def exported(fast_scnn_ckpt, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path_factory.mktemp("export") / "fast_scnn.onnx"
    code = main(["export", str(fast_scnn_ckpt), "--format", "onnx", "--output", str(out), "--max-images", "3"])
    assert code == 0
    return out


def test_export_onnx_writes_checked_model_with_metadata(exported, capsys):
    meta = read_metadata(exported)
    assert json.loads(meta["classes"]) == list(CAMVID.names)
    assert json.loads(meta["mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert meta["precision"] == "fp32" and int(meta["opset"]) >= 17
    assert float(meta["max_abs_diff"]) <= 1e-3
    # The sample's labels are CamVid's, so mIoU is measured for both and they agree.
    assert abs(float(meta["miou"]) - float(meta["miou_pytorch"])) <= 0.0005
    assert not list(exported.parent.glob(".*"))  # no temporary files left behind
    assert exported.stat().st_mode & 0o044  # readable like any file, not mkstemp's 0600


def test_exported_model_runs_at_new_sizes(exported, fast_scnn_ckpt):
    from segbench.export import onnx_session

    model = load_model(str(fast_scnn_ckpt)).model.eval()
    session = onnx_session(exported, threads=1)
    x = torch.randn(3, 3, 50, 75)
    out = torch.from_numpy(session.run(["logits"], {"input": x.numpy()})[0])
    with torch.inference_mode():
        assert (out - model(x)).abs().max() <= 1e-3


def test_export_refuses_to_overwrite(exported, fast_scnn_ckpt, capsys):
    before = exported.read_bytes()
    assert main(["export", str(fast_scnn_ckpt), "--format", "onnx", "--output", str(exported)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert exported.read_bytes() == before


def test_check_catches_another_models_logits(exported):
    from segbench.models import build_model

    torch.manual_seed(5)
    other = build_model("fast_scnn", num_classes=CAMVID.num_classes).eval()
    images = [(torch.randn(1, 3, 48, 64), None)]
    check = check_onnx(exported, other, images, CAMVID.num_classes)
    assert not check.passed and "logits difference" in check.reason


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_check_catches_a_graph_that_kept_the_traced_size(tmp_path):
    pytest.importorskip("onnxruntime")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1)).eval()
    path = tmp_path / "static.onnx"
    with torch.no_grad():  # TorchScript exporter without dynamic axes: a fixed 1 x 3 x 16 x 16 input
        torch.onnx.export(
            net,
            (torch.randn(1, 3, 16, 16),),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            opset_version=17,
        )
    images = [(torch.randn(1, 3, 16, 16), None)]
    check = check_onnx(path, net, images, 4)
    assert check.max_abs_diff <= 1e-5  # right at the traced size ...
    assert not check.passed and "fails" in check.reason  # ... but not at another one
    assert check.dynamic_shape["shape"] == [2, 3, 97, 131]


def test_failed_check_writes_nothing(fast_scnn_ckpt, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "m.onnx"
    code = main(
        [
            "export",
            str(fast_scnn_ckpt),
            "--format",
            "onnx",
            "--output",
            str(out),
            "--exporter",
            "torchscript",
            "--atol",
            "1e-12",  # above 0 (segbench.options) and far below any float difference
            "--max-images",
            "1",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "not written" in err and "logits difference" in err
    assert list(tmp_path.iterdir()) == []


def test_int8_export_states_its_mIoU_drop(fast_scnn_ckpt, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "m8.onnx"
    # Random weights: accept any drop; the test checks that it is measured and stored.
    code = main(
        [
            "export",
            str(fast_scnn_ckpt),
            "--format",
            "onnx",
            "--int8",
            "--output",
            str(out),
            "--exporter",
            "torchscript",
            "--max-images",
            "2",
            "--max-miou-drop",
            "100",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "int8:" in printed and "mIoU drop" in printed
    meta = read_metadata(out)
    assert meta["precision"] == "int8"
    assert float(meta["miou_drop_points"]) == pytest.approx(
        (float(meta["miou_pytorch"]) - float(meta["miou"])) * 100, abs=1e-6
    )
    assert float(meta["max_abs_diff"]) > 0


def test_onnx_options_need_format_onnx(fast_scnn_ckpt, tmp_path, capsys):
    code = main(["export", str(fast_scnn_ckpt), "--output", str(tmp_path / "m.safetensors"), "--int8"])
    assert code == 2 and "--int8: only with --format onnx" in capsys.readouterr().err


def test_output_must_end_in_onnx(fast_scnn_ckpt, tmp_path, capsys):
    code = main(["export", str(fast_scnn_ckpt), "--format", "onnx", "--output", str(tmp_path / "m.bin")])
    assert code == 2 and "ending in .onnx" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_int8_falls_back_to_minmax_when_percentile_cannot_bin(tmp_path):
    pytest.importorskip("onnxruntime")
    from segbench.export import ExportError, quantize_int8

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1)).eval()
    with torch.no_grad():  # first activation spans a few float steps around 0.5: no 2048 finite-sized bins
        net[0].weight.fill_(3e-8)
        net[0].bias.fill_(0.5)
    src = tmp_path / "tiny.onnx"
    torch.onnx.export(net, (torch.randn(1, 3, 16, 16),), str(src), dynamo=False, input_names=["input"],
                      output_names=["logits"], opset_version=17)  # fmt: skip
    calibration = [torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(i)) for i in range(2)]
    with pytest.raises(ExportError, match="Too many bins"):
        quantize_int8(src, tmp_path / "a.onnx", calibration, fallback=False)
    assert quantize_int8(src, tmp_path / "b.onnx", calibration) == "minmax"
    assert (tmp_path / "b.onnx").is_file()
