"""ONNX, TorchScript and torch.export files as models: metadata or --classes/--mean/--std, layouts, sizes,
backends, benchmark rows, and one-line errors for bad files."""

from __future__ import annotations

import zipfile

import pytest
import torch
import torch.nn.functional as F
from external_nets import (  # noqa: F401 (the fixtures pt2_file and torchscript_file)
    CAMVID_META,
    NHWC,
    export_plain_onnx,
    pt2_file_fixture,
    tiny_net,
    torchscript_file_fixture,
)

from segbench.classes import CAMVID
from segbench.errors import BackendUnavailable, UserError
from segbench.external import ModelInputs, external_kind, load_any
from segbench.models.pretrained import IMAGENET_MEAN

pytest.importorskip("onnxruntime", reason="ONNX tests need the onnx extra: pip install -e '.[onnx]'")


@pytest.fixture
def plain_onnx(tmp_path):
    net = tiny_net(num_classes=5)
    return net, export_plain_onnx(net, tmp_path / "plain.onnx", torch.randn(1, 3, 16, 16))


def test_onnx_without_metadata_says_what_is_missing_and_runs_at_any_size(plain_onnx):
    net, path = plain_onnx
    loaded = load_any(str(path))
    info = loaded.info
    assert external_kind(str(path)) == "onnx" and info.kind == "onnx" and info.name == "plain.onnx"
    assert info.num_classes == 5 and info.class_names == ["0", "1", "2", "3", "4"] and info.mean == IMAGENET_MEAN
    assert "no class names, mean, std in its metadata" in info.missing
    assert "--classes FILE --mean R G B --std R G B" in info.missing and "\n" not in info.missing
    x = torch.randn(2, 3, 21, 30)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), net(x), atol=1e-4)


def test_onnx_classes_mean_std_given_by_the_user(plain_onnx, tmp_path):
    _, path = plain_onnx
    names = tmp_path / "classes.txt"
    names.write_text("road\ncar\nsky\ntree\nperson\n")
    info = load_any(str(path), inputs=ModelInputs(names, (0.5, 0.4, 0.3), (0.2, 0.2, 0.2))).info
    assert info.class_names == ["road", "car", "sky", "tree", "person"] and info.missing == ""
    assert info.mean == (0.5, 0.4, 0.3) and info.std == (0.2, 0.2, 0.2)
    names.write_text("road\ncar\n")
    with pytest.raises(UserError, match="predicts 5 classes but 2 class names are given"):
        load_any(str(path), inputs=ModelInputs(names))


def test_onnx_metadata_as_segbench_writes_it(plain_onnx):
    from segbench.export import write_metadata

    _, path = plain_onnx
    palette = [[i, 2 * i, 3 * i] for i in range(5)]
    write_metadata(path, {"classes": ["a", "b", "c", "d", "e"], "palette": palette, "mean": [0.1, 0.2, 0.3],
                          "std": [0.4, 0.5, 0.6]})  # fmt: skip
    info = load_any(str(path)).info
    assert info.class_names == ["a", "b", "c", "d", "e"] and info.missing == ""
    assert info.palette == [tuple(c) for c in palette] and info.std == (0.4, 0.5, 0.6)


def test_onnx_channels_last_input_of_fixed_size(tmp_path):
    net = tiny_net(num_classes=3)
    path = export_plain_onnx(NHWC(net), tmp_path / "nhwc.onnx", torch.randn(1, 32, 40, 3), dynamic=False)
    model = load_any(str(path)).model
    assert model.layout == "NHWC" and model.fixed_size == (32, 40)
    x = torch.randn(1, 3, 20, 24)
    with torch.no_grad():
        expected = F.interpolate(net(F.interpolate(x, size=(32, 40), mode="bilinear")), size=(20, 24), mode="bilinear")
        assert torch.allclose(model(x), expected, atol=1e-4)


def test_torchscript_archive_with_metadata(torchscript_file, tmp_path):
    loaded = load_any(str(torchscript_file))
    assert loaded.info.kind == "torchscript" and loaded.info.class_names == list(CAMVID.names)
    assert loaded.info.mean == tuple(CAMVID_META["mean"]) and loaded.info.missing == ""
    x = torch.randn(1, 3, 33, 47)
    with torch.no_grad():
        assert torch.allclose(loaded.model(x), tiny_net()(x), atol=1e-5)
    # a segbench training checkpoint with the same suffix is still a checkpoint
    from segbench.models import build_model

    ckpt = tmp_path / "ckpt.pt"
    torch.save({"model": build_model("fast_scnn", num_classes=11).state_dict(), "meta": {"arch": "fast_scnn"}}, ckpt)
    assert external_kind(str(ckpt)) is None
    assert load_any(str(ckpt)).info.arch == "fast_scnn"


def test_torch_export_program_upsampled_to_the_input(pt2_file):
    loaded = load_any(str(pt2_file))
    assert loaded.info.kind == "torch.export" and loaded.info.num_classes == 11
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        out = loaded.model(x)
        expected = F.interpolate(tiny_net(stride=2)(x), size=(40, 56), mode="bilinear", align_corners=False)
    assert out.shape == (1, 11, 40, 56) and torch.allclose(out, expected, atol=1e-5)


def test_bad_files_give_one_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(UserError, match="bad.onnx: cannot read ONNX file"):
        load_any(str(bad))
    with pytest.raises(UserError, match="gone.onnx: no such ONNX file"):
        load_any(str(tmp_path / "gone.onnx"))
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(UserError, match="folder.onnx: is a folder, not a model file \\(ONNX\\)"):
        load_any(str(tmp_path / "folder.onnx"))
    (tmp_path / "bad.pt2").write_bytes(b"\x00" * 10)
    with pytest.raises(UserError, match="bad.pt2: cannot read torch.export file"):
        load_any(str(tmp_path / "bad.pt2"))
    fake = tmp_path / "fake.pt"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("fake/code/__torch__.py", "garbage")
    with pytest.raises(UserError, match="fake.pt: cannot read TorchScript file"):
        load_any(str(fake))
    ts = tmp_path / "badmeta.pt"
    torch.jit.save(torch.jit.script(tiny_net()), str(ts), _extra_files={"segbench.json": "{not json"})
    with pytest.raises(UserError, match="badmeta.pt: its segbench.json is not JSON"):
        load_any(str(ts))


def test_onnx_file_runs_itself_in_the_onnx_backends(plain_onnx):
    from segbench.bench.backends import prepare

    net, path = plain_onnx
    model = load_any(str(path)).model
    x = torch.randn(1, 3, 24, 24)
    runner = prepare(model, "onnxruntime", x)
    assert "ONNX Runtime" in runner.notes and "plain.onnx (the file itself)" in runner.notes
    assert torch.allclose(runner(x), net(x).detach(), atol=1e-4)
    assert "ONNX Runtime" in prepare(model, "eager", x).notes
    for backend in ("channels_last", "onnxruntime_int8"):
        with pytest.raises(BackendUnavailable, match="plain.onnx is an ONNX file"):
            prepare(model, backend, x)
    pytest.importorskip("openvino", reason="OpenVINO backend: pip install -e '.[openvino]'")
    runner = prepare(model, "openvino", x)
    assert runner.notes.startswith("OpenVINO") and torch.allclose(runner(x), net(x).detach(), atol=1e-3)


def test_benchmark_row_of_an_onnx_file(plain_onnx):
    from segbench.bench.runner import run_case

    net, path = plain_onnx
    row = run_case({"model": str(path), "input_size": [24, 32], "latency": {"min_time_s": 0.01, "budget_s": 0.05,
                    "warmup_s": 0}, "e2e": False})  # fmt: skip
    assert row["error"] is None and row["latency_ms_p50"] > 0 and row["memory_mib"] is not None
    assert row["params"] == sum(p.numel() for p in net.parameters())
    assert row["size_mb"] == pytest.approx(path.stat().st_size / 1e6)
    assert row["gflops"] is None and any("GFLOPs: not countable" in n for n in row["model_notes"])
    assert row["train_error"] == "an ONNX file has no PyTorch training step"


def test_torchscript_benchmark_counts_flops(torchscript_file):
    from segbench.bench.runner import benchmark_model

    row = benchmark_model(load_any(str(torchscript_file)).model, input_size=(16, 16), min_time_s=0.01, warmup_s=0)
    assert row["error"] is None and row["params"] == sum(p.numel() for p in tiny_net().parameters())
    # two convolutions at 16 x 16: (8 * 3 * 9 + 11 * 8) multiply-adds per pixel
    assert row["gmacs"] == pytest.approx(16 * 16 * (8 * 27 + 11 * 8) / 1e9)


