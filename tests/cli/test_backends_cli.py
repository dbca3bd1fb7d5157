"""``--backend`` on ``segbench evaluate``, ``predict`` and ``compare``: the same answers as eager PyTorch where the
backend is exact, one row per (model, backend) in compare with its accuracy and agreement beside its speed, and
one-line errors for unknown or unavailable backends. Tiny CamVid (conftest) and the fast_scnn checkpoint."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest
from PIL import Image

from segbench.cli import main


def _evaluate(ckpt, root, capsys, *extra) -> dict:
    code = main(["evaluate", str(ckpt), "--data", str(root), "--json", "--quiet", *extra])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_channels_last_equals_eager(fast_scnn_ckpt, camvid_root, capsys):
    eager = _evaluate(fast_scnn_ckpt, camvid_root, capsys)
    nhwc = _evaluate(fast_scnn_ckpt, camvid_root, capsys, "--backend", "channels_last")
    assert eager["backend"] == "eager" and nhwc["backend"] == "channels_last"
    assert "channels_last" in nhwc["backend_notes"]
    assert nhwc["miou"] == pytest.approx(eager["miou"], abs=1e-9)
    assert nhwc["confusion"] == eager["confusion"]


def test_unknown_backend_is_one_line(fast_scnn_ckpt, camvid_root, capsys):
    assert main(["evaluate", str(fast_scnn_ckpt), "--data", str(camvid_root), "--backend", "onnx_runtime"]) == 2
    err = capsys.readouterr().err
    assert "did you mean onnxruntime" in err and len(err.strip().splitlines()) == 1


def test_unavailable_backend_names_the_extra(fast_scnn_ckpt, camvid_root, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert main(["evaluate", str(fast_scnn_ckpt), "--data", str(camvid_root), "--backend", "openvino", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'segbench[openvino]'" in err and len(err.strip().splitlines()) == 1


def test_calibration_needs_int8(fast_scnn_ckpt, camvid_root, capsys):
    code = main(["evaluate", str(fast_scnn_ckpt), "--data", str(camvid_root), "--calibration", str(camvid_root)])
    assert code == 2 and "only with an int8 --backend" in capsys.readouterr().err


def test_predict_channels_last_writes_eager_labels(fast_scnn_ckpt, camvid_root, tmp_path, capsys):
    images = str(camvid_root / "val")
    assert main(["predict", str(fast_scnn_ckpt), images, "--output", str(tmp_path / "a"), "--quiet"]) == 0
    code = main(
        [
            "predict",
            str(fast_scnn_ckpt),
            images,
            "--output",
            str(tmp_path / "b"),
            "--quiet",
            "--backend",
            "channels_last",
        ]
    )
    assert code == 0
    labels = sorted((tmp_path / "a").glob("*_label.png"))
    assert labels
    for a in labels:
        b = tmp_path / "b" / a.name
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    summary = json.loads(next((tmp_path / "b").glob("*_classes.json")).read_text())
    assert summary["backend"] == "channels_last"


def test_compare_one_row_per_model_and_backend(fast_scnn_ckpt, camvid_root, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "report"
    code = main(
        [
            "compare",
            str(fast_scnn_ckpt),
            "--data",
            str(camvid_root),
            "--output",
            str(out),
            "--quiet",
            "--min-time",
            "0.05",
            "--backend",
            "eager",
            "onnxruntime",
            "--in-process",
        ]
    )
    assert code == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["backend"] for r in rows] == ["eager", "onnxruntime"]
    assert all(not r.get("error") for r in rows), [r.get("error") for r in rows]
    eager = rows[0]
    for r in rows[1:]:  # an exact backend: same mIoU, predictions that agree with eager's
        assert r["miou"] == pytest.approx(eager["miou"], abs=1e-3)
        assert r["agreement_miou"] >= 0.99 and r["pixel_agreement"] >= 0.999
        assert r["agreement_reference"] == "eager"
        assert r["latency_ms_p50"] > 0 and r["backend_notes"]
    assert "agreement_miou" not in eager or eager["agreement_miou"] is None
    report = (out / "report.md").read_text()
    assert "Agreement mIoU (%)" in report and "(onnxruntime)" in report
    with open(out / "results.csv") as f:
        csv_rows = list(csv.DictReader(f))
    assert [r["backend"] for r in csv_rows] == ["eager", "onnxruntime"]
    assert "(onnxruntime)" in capsys.readouterr().out


def test_compare_records_an_unavailable_backend_and_goes_on(fast_scnn_ckpt, camvid_root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    out = tmp_path / "report"
    code = main(
        [
            "compare",
            str(fast_scnn_ckpt),
            "--data",
            str(camvid_root),
            "--output",
            str(out),
            "--quiet",
            "--min-time",
            "0.05",
            "--backend",
            "openvino",
            "eager",
        ]
    )
    assert code == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["backend"] for r in rows] == ["openvino", "eager"]
    assert "segbench[openvino]" in rows[0]["error"]
    assert rows[1]["miou"] is not None and not rows[1].get("error")


@pytest.mark.parametrize("command", ["evaluate", "predict", "compare"])
def test_help_lists_every_backend(command, capsys):
    from segbench.bench.backends import BACKENDS

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(b in text for b in BACKENDS)
