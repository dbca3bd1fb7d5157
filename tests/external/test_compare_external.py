"""External models in ``compare``: an ONNX file exported by segbench and the same model as a tag give the same
mIoU in one report; every external model gets the whole report; bad specs stop with one line and exit code 2."""

from __future__ import annotations

import pytest
import torch
from external_nets import torchscript_file_fixture  # noqa: F401 (the fixture torchscript_file)

from segbench.cli import main
from segbench.compare import compare
from segbench.external import ModelInputs

pytest.importorskip("onnxruntime", reason="ONNX tests need the onnx extra: pip install -e '.[onnx]'")

FAST = {"isolate": False, "min_time_s": 0.01, "progress": False, "grid_images": 2}


def _export(spec: str, path, data=None, split="val"):
    """``segbench export SPEC --format onnx`` as the API does it (TorchScript exporter: quick)."""
    from segbench.export import export_checked
    from segbench.models import load_model

    loaded = load_model(spec)
    export_checked(loaded.model, loaded.info, path, exporter="torchscript", max_images=2, data=data, split=split,
                   log=lambda line: None)  # fmt: skip
    return path


def _rows(result) -> dict:
    return {r["model"]: r for r in result["rows"]}


def test_segbench_onnx_export_and_its_checkpoint_give_the_same_miou(fast_scnn_ckpt, camvid_root, tmp_path):
    onnx_file = _export(str(fast_scnn_ckpt), tmp_path / "fast_scnn.onnx", data=camvid_root)
    out = tmp_path / "report"
    result = compare([str(onnx_file), str(fast_scnn_ckpt)], camvid_root, out, input_size=(48, 64), **FAST)
    rows = list(result["rows"])
    assert [r.get("error") for r in rows] == [None, None]
    assert rows[0]["model"] == "fast_scnn.onnx" and rows[0]["miou"] is not None
    assert rows[0]["miou"] == pytest.approx(rows[1]["miou"], abs=1e-6)
    assert rows[0]["iou"] == pytest.approx(rows[1]["iou"], abs=1e-6)
    report = (out / "report.md").read_text()
    assert "fast_scnn.onnx" in report and "GFLOPs: not countable" in report


@pytest.mark.slow
def test_shipped_tag_and_its_onnx_export_on_the_shipped_sample(tmp_path):
    from segbench.data.datasets import sample_dir

    onnx_file = _export("fast_scnn.camvid", tmp_path / "fast_scnn.camvid.onnx")
    result = compare([str(onnx_file), "fast_scnn.camvid"], sample_dir(), tmp_path / "report", max_images=4,
                     input_size=(96, 128), **FAST)  # fmt: skip
    rows = _rows(result)
    assert rows["fast_scnn.camvid.onnx"]["miou"] == pytest.approx(rows["fast_scnn.camvid"]["miou"], abs=1e-6)


def test_every_external_model_gets_the_whole_report(tmp_path, camvid_root, torchscript_file, monkeypatch):
    from external_nets import export_plain_onnx, tiny_net

    onnx_file = export_plain_onnx(tiny_net(), tmp_path / "nometa.onnx", torch.randn(1, 3, 16, 16))
    (tmp_path / "mymod.py").write_text("from external_nets import tiny_net\n\ndef build():\n    return tiny_net(seed=1)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = tmp_path / "camvid.txt"
    names.write_text("\n".join(["Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
                                "Pedestrian", "Bicyclist"]) + "\n")  # fmt: skip
    out = tmp_path / "report"
    result = compare([str(onnx_file), str(torchscript_file), "py:mymod:build"], camvid_root, out,
                     input_size=(48, 64), inputs=ModelInputs(classes=names), **FAST)  # fmt: skip
    rows = _rows(result)
    assert set(rows) == {"nometa.onnx", "tiny_ts.pt", "py:mymod:build"}
    for name, row in rows.items():
        assert row.get("error") is None, name
        assert row["miou"] is not None and row["latency_ms_p50"] > 0 and row["size_mb"] > 0, name
        assert row["memory_mib"] is not None and row["params"] > 0, name
    assert rows["nometa.onnx"]["gflops"] is None and rows["tiny_ts.pt"]["gflops"] > 0
    assert any("no mean, std in its metadata" in n for n in rows["nometa.onnx"]["model_notes"])
    from PIL import Image

    with Image.open(out / "grid.png") as grid:  # image, labels and the three models' masks side by side
        assert grid.size[0] >= 5 * 64
    report = (out / "report.md").read_text()
    assert "**Model notes**" in report and "nometa.onnx: " in report


def test_a_model_of_other_classes_is_mapped_in_the_report(tmp_path, camvid_root):
    from external_nets import export_plain_onnx, tiny_net

    from segbench.classes import CITYSCAPES
    from segbench.export import write_metadata

    onnx_file = export_plain_onnx(tiny_net(num_classes=19), tmp_path / "city.onnx", torch.randn(1, 3, 16, 16))
    write_metadata(onnx_file, {"classes": list(CITYSCAPES.names), "mean": [0.5] * 3, "std": [0.25] * 3})
    out = tmp_path / "report"
    row = compare([str(onnx_file)], camvid_root, out, input_size=(48, 64), **FAST)["rows"][0]
    assert row.get("error") is None and row["miou"] is not None and set(row["iou"]) == {
        "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"}
    assert row["class_mapping"].startswith("classes matched by class name: road -> Road")
    assert "**Class mapping**" in (out / "report.md").read_text()


@pytest.mark.parametrize("spec, message", [
    ("gone.onnx", "gone.onnx: no such ONNX file"),
    ("bad.onnx", "bad.onnx: cannot read ONNX file"),
    ("py:nomodule", "expected py:package.module:function"),
    ("smp:Unet", "expected smp:ARCH:ENCODER"),
    ("hf:", "expected hf:FOLDER"),
])  # fmt: skip
def test_bad_specs_exit_2_with_one_line(spec, message, tmp_path, camvid_root, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.onnx").write_bytes(b"garbage")
    for argv in (["evaluate", spec, "--data", camvid_root], ["predict", spec, camvid_root / "val"],
                 ["compare", spec, "--data", camvid_root, "--output", tmp_path / "r"]):  # fmt: skip
        rc = main([str(a) for a in argv])
        _, err = capsys.readouterr()
        lines = err.strip().splitlines()
        if argv[0] == "compare" and spec == "bad.onnx":
            # the file exists and is readable: its load error becomes the model's row, and with no model
            # evaluated the comparison exits 2 (one line naming the first error)
            assert rc == 2 and "no model could be evaluated" in err and "Traceback" not in err, err
            continue
        assert rc == 2 and len(lines) == 1 and message in lines[0] and "Traceback" not in err, (argv, err)
