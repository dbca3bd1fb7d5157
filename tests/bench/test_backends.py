"""Backends: each one's logits against eager PyTorch on a small network (Fast-SCNN, 3 classes, random weights with
non-trivial batch-norm statistics), and the one-line messages when a backend cannot run.

Tolerances (stated, not tuned to pass): fp32 backends within 1e-4 of eager's logits (about 1e-3 of their
range); bf16 within 5 % of the logits' range; int8 (calibrated on 4 synthetic inputs) agreeing with eager on at
least 90 % of the pixels of new synthetic inputs. ``compile`` is marked slow (Inductor compiles C++ on CPU).
"""

from __future__ import annotations

import sys

import pytest
import torch

from segbench.bench import backends, builders, units
from segbench.bench.backends import BACKENDS, BackendUnavailable, Predictor, prepare
from segbench.errors import UserError
from segbench.models import build_model

FP32_ATOL = 1e-4


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("fast_scnn", num_classes=3).train()
    with torch.no_grad():
        for _ in range(3):  # batch-norm statistics away from (0, 1), so eval outputs depend on them
            model(torch.randn(2, 3, 64, 96) * 2 + 0.5)
    return model.eval()


def _inputs(n: int, shape=(1, 3, 64, 96), seed: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen) * 2 + 0.5 for _ in range(n)]


@pytest.fixture(scope="module")
def example() -> torch.Tensor:
    return _inputs(1)[0]


@pytest.fixture(scope="module")
def other() -> torch.Tensor:
    """Another batch, height and width than the example: the predictors must not keep the traced size."""
    return _inputs(1, (2, 3, 65, 97), seed=2)[0]


def _eager(net, x) -> torch.Tensor:
    with torch.inference_mode():
        return net(x)


@pytest.fixture(scope="module")
def ort_predictor(net, example):
    """The one ONNX export of this file (``prepare`` caches it for the other ONNX backends of the same model)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    return prepare(net, "onnxruntime", example)


def test_backend_names_are_the_agreed_interface():
    agreed = ("eager", "channels_last", "bf16", "compile", "onnxruntime", "onnxruntime_int8", "openvino")
    assert BACKENDS[: len(agreed)] == agreed  # the interface agreed with the benchmark runner, then additions
    assert set(BACKENDS[len(agreed) :]) == {"openvino_bf16", "openvino_int8"}
    assert issubclass(BackendUnavailable, UserError)


def test_unknown_backend_suggests_close_names(net, example):
    with pytest.raises(UserError, match="did you mean onnxruntime"):
        prepare(net, "onnxruntim", example)


@pytest.mark.parametrize("backend", ["eager", "channels_last"])
def test_torch_fp32_backends_equal_eager(net, example, other, backend):
    predictor = prepare(net, backend, example)
    assert isinstance(predictor, Predictor) and predictor.backend == backend and predictor.notes
    for x in (example, other):
        out = predictor(x)
        assert out.dtype == torch.float32 and out.shape == (x.shape[0], 3, *x.shape[2:])
        assert (out - _eager(net, x)).abs().max() <= FP32_ATOL


@pytest.mark.parametrize("backend", ["eager", "channels_last"])
def test_predictors_stay_in_eval_mode(net, example, backend):
    predictor = prepare(net, backend, example)
    assert not predictor.training
    predictor.train(True)  # e.g. a benchmark restoring "the mode it found" (modules are created in train mode)
    assert not any(m.training for m in predictor.modules())
    assert (predictor(example) - _eager(net, example)).abs().max() <= FP32_ATOL  # BN still uses running stats
    net.eval()


def test_channels_last_works_on_a_copy(net, example):
    predictor = prepare(net, "channels_last", example)
    conv = next(m for m in predictor.module.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    original = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1)
    assert original.weight.is_contiguous()  # the caller's model keeps its layout


def test_bf16_close_to_eager_and_returns_fp32(net, example, other):
    if not backends.cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16 (avx512_bf16 / amx_bf16)")
    predictor = prepare(net, "bf16", example)
    for x in (example, other):
        ref, out = _eager(net, x), predictor(x)
        assert out.dtype == torch.float32 and out.shape == ref.shape
        assert (out - ref).abs().max() <= 0.05 * (ref.max() - ref.min())


def test_bf16_named_on_a_cpu_without_it_runs_and_says_it_is_emulated(net, example, monkeypatch):
    monkeypatch.setattr(units, "machine_flags", lambda: {"avx2", "fma", "avx512f", "avx512_vnni"})  # Ice Lake
    predictor = prepare(net, "bf16", example)
    assert predictor.notes.endswith("; bf16: emulated on this CPU (no amx_bf16/avx512_bf16)")
    assert predictor(example).shape == _eager(net, example).shape
    monkeypatch.setattr(units, "machine_flags", lambda: {"avx2", "fma", "avx512f", "avx512_bf16"})
    assert "emulated" not in prepare(net, "bf16", example).notes


def test_cpu_bf16_detection_reads_the_flags():
    assert backends.cpu_supports_bf16("processor: 0\nflags\t: fpu sse avx512f avx512_bf16 avx512_vnni\n")
    assert backends.cpu_supports_bf16("flags\t: fpu sse amx_tile amx_bf16\n")
    assert not backends.cpu_supports_bf16("flags\t: fpu sse avx2 avx512f\n")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_is_one_clear_line(net, example):
    with pytest.raises(BackendUnavailable, match="CUDA is not available"):
        prepare(net, "eager", example, device="cuda")


@pytest.mark.parametrize("backend", ["onnxruntime_int8", "openvino", "openvino_bf16", "openvino_int8"])
def test_cpu_only_backends_refuse_cuda(net, example, backend):
    with pytest.raises(BackendUnavailable, match="runs on the CPU only"):
        prepare(net, backend, example, device="cuda")


@pytest.mark.parametrize(
    ("backend", "module", "extra"),
    [
        ("onnxruntime", "onnxruntime", "onnx"),
        ("onnxruntime_int8", "onnxruntime", "onnx"),
        ("openvino", "openvino", "openvino"),
        ("openvino_int8", "openvino", "openvino"),
    ],
)
def test_missing_package_names_the_pip_extra(net, example, monkeypatch, backend, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(BackendUnavailable, match=rf"pip install 'segbench\[{extra}\]'") as info:
        prepare(net, backend, example)
    assert "\n" not in str(info.value)


def test_onnxruntime_equals_eager_at_any_size(net, example, other, ort_predictor):
    assert ort_predictor.onnx_path.is_file() and "exported in" in ort_predictor.notes
    for x in (example, other):
        out = ort_predictor(x)
        assert out.dtype == torch.float32 and out.shape == (x.shape[0], 3, *x.shape[2:])
        assert (out - _eager(net, x)).abs().max() <= FP32_ATOL


def test_export_cache_follows_the_weights(net):
    import copy

    other = copy.deepcopy(net)
    before = builders._fingerprint(other)
    assert builders._fingerprint(other) == before
    with torch.no_grad():
        next(other.parameters()).add_(1.0)  # an in-place change of the weights: the cached export is stale
    assert builders._fingerprint(other) != before


def test_onnxruntime_int8_agrees_with_eager(net, example, ort_predictor):
    calibration = _inputs(4, seed=3)
    predictor = prepare(net, "onnxruntime_int8", example, calibration=calibration, onnx_file=ort_predictor.onnx_path)
    assert "int8" in predictor.notes and "4 calibration inputs" in predictor.notes
    import onnx

    ops = {node.op_type for node in onnx.load(str(predictor.onnx_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really quantised
    same = total = 0
    worst = 0.0
    for x in _inputs(3, seed=4):
        ref, out = _eager(net, x), predictor(x)
        assert out.dtype == torch.float32 and out.shape == ref.shape
        same += int((out.argmax(1) == ref.argmax(1)).sum())
        total += ref[:, 0].numel()
        worst = max(worst, float((out - ref).abs().max() / (ref.max() - ref.min())))
    assert same / total >= 0.90
    assert worst > 0  # not the fp32 model by mistake


def test_openvino_equals_eager_at_any_size(net, example, other, ort_predictor):
    pytest.importorskip("openvino")
    predictor = prepare(net, "openvino", example)
    assert "OpenVINO" in predictor.notes and "exported earlier in this process" in predictor.notes
    for x in (example, other, example):  # back to the first shape: the per-shape cache
        assert (predictor(x) - _eager(net, x)).abs().max() <= FP32_ATOL


@pytest.mark.slow
def test_compile_equals_eager(net):
    x = _inputs(1, (1, 3, 32, 48))[0]
    predictor = prepare(net, "compile", x)
    assert "compiled in" in predictor.notes
    assert (predictor(x) - _eager(net, x)).abs().max() <= FP32_ATOL


def test_openvino_bf16_close_to_eager(net, example, other, ort_predictor):
    pytest.importorskip("openvino")
    if not backends.cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16 (avx512_bf16 / amx_bf16)")
    predictor = prepare(net, "openvino_bf16", example)
    assert predictor.backend == "openvino_bf16" and "bf16" in predictor.notes
    for x in (example, other):
        ref = _eager(net, x)
        assert (predictor(x) - ref).abs().max() <= 0.05 * (ref.max() - ref.min())


def test_openvino_int8_runs_the_int8_model(net, example, ort_predictor):
    pytest.importorskip("openvino")
    predictor = prepare(net, "openvino_int8", example, calibration=_inputs(4, seed=3))
    assert predictor.backend == "openvino_int8" and "int8 static quantisation" in predictor.notes
    same = total = 0
    for x in _inputs(3, seed=4):
        ref, out = _eager(net, x), predictor(x)
        assert out.dtype == torch.float32 and out.shape == ref.shape
        same += int((out.argmax(1) == ref.argmax(1)).sum())
        total += ref[:, 0].numel()
        assert (out - ref).abs().max() > 0  # quantised, not the fp32 model
    assert same / total >= 0.90
