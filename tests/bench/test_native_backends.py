"""The runtimes' own compilers and quantisers (segbench.bench.native) against eager PyTorch on a small network.

Tolerances (stated, not tuned to pass): ``compile_bf16`` within 5 % of the logits' range (as the ``bf16``
backend); the int8 backends (calibrated on 4 synthetic inputs) agree with eager on at least 90 % of the pixels
of new synthetic inputs and are not the fp32 model. The compile backends are marked slow (Inductor compiles C++).
"""

from __future__ import annotations

import pytest
import torch

from segbench.bench import backends
from segbench.bench.backends import ALL_BACKENDS, BACKENDS, NATIVE_BACKENDS, BackendUnavailable, check_backend, prepare
from segbench.bench.peak import backend_precision
from segbench.models import build_model


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("fast_scnn", num_classes=3).train()
    with torch.no_grad():
        for _ in range(3):  # batch-norm statistics away from (0, 1)
            model(torch.randn(2, 3, 64, 96) * 2 + 0.5)
    return model.eval()


def _inputs(n: int, seed: int, shape=(1, 3, 64, 96)) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen) * 2 + 0.5 for _ in range(n)]


def _agreement(predictor, net, inputs) -> float:
    same = total = 0
    for x in inputs:
        with torch.inference_mode():
            ref = net(x)
        out = predictor(x)
        assert out.dtype == torch.float32 and out.shape == ref.shape
        assert (out - ref).abs().max() > 0  # quantised, not the fp32 model
        same += int((out.argmax(1) == ref.argmax(1)).sum())
        total += ref[:, 0].numel()
    return same / total


def test_native_backends_are_known_with_their_precision():
    assert set(NATIVE_BACKENDS) == {"compile_bf16", "compile_int8", "openvino_nncf_int8"}
    assert ALL_BACKENDS == BACKENDS + NATIVE_BACKENDS and check_backend("openvino_nncf_int8")
    assert [backend_precision(b) for b in NATIVE_BACKENDS] == ["bf16", "int8", "int8"]
    assert backend_precision("eager") == "fp32" and backend_precision("openvino_bf16") == "bf16"


def test_openvino_nncf_int8_close_to_eager(net):
    pytest.importorskip("openvino", reason="needs the openvino extra")
    pytest.importorskip("onnxscript", reason="needs the openvino extra")
    pytest.importorskip("nncf", reason="needs the nncf extra (pip install -e '.[nncf]')")
    predictor = prepare(net, "openvino_nncf_int8", _inputs(1, 1)[0], calibration=_inputs(4, 3))
    assert predictor.backend == "openvino_nncf_int8" and "NNCF" in predictor.notes and "4 calibration" in predictor.notes
    assert _agreement(predictor, net, _inputs(3, 4)) >= 0.90


def test_nncf_missing_names_the_extra(net, monkeypatch):
    import importlib

    real = importlib.import_module

    def without_nncf(name, *args, **kwargs):
        if name == "nncf":
            raise ImportError("no nncf")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without_nncf)
    with pytest.raises(BackendUnavailable, match=r"segbench\[nncf\]"):
        prepare(net, "openvino_nncf_int8", _inputs(1, 1)[0])


@pytest.mark.slow
def test_compile_bf16_close_to_eager(net):
    if not backends.cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16 (avx512_bf16 / amx_bf16)")
    x = _inputs(1, 1, (1, 3, 32, 48))[0]
    predictor = prepare(net, "compile_bf16", x)
    assert "freezing" in predictor.notes and "compiled in" in predictor.notes
    with torch.inference_mode():
        ref = net(x)
    out = predictor(x)
    assert out.dtype == torch.float32 and (out - ref).abs().max() <= 0.05 * (ref.max() - ref.min())


@pytest.mark.slow
def test_compile_int8_close_to_eager(net):
    pytest.importorskip("torchao", reason="needs the pt2e extra (pip install -e '.[pt2e]')")
    x = _inputs(1, 1, (1, 3, 32, 48))[0]
    try:
        predictor = prepare(net, "compile_int8", x, calibration=_inputs(4, 3, (1, 3, 32, 48)))
    except BackendUnavailable as exc:  # an Inductor lowering missing in this torch / torchao pair
        pytest.skip(str(exc))
    assert "PT2E" in predictor.notes
    assert _agreement(predictor, net, _inputs(3, 4, (1, 3, 32, 48))) >= 0.90
