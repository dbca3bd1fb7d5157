"""Backends that use each runtime's own compiler or post-training quantiser, calibrated on sample images.

======================== ===================================================================================
backend                  what runs
======================== ===================================================================================
``compile_bf16``         ``torch.compile`` with Inductor's ``freezing`` (weights folded into constants, convolutions
                         and linears pre-packed for oneDNN, which runs them on AMX-BF16 where the CPU has it) under
                         ``torch.autocast`` bfloat16, on a channels_last copy; logits returned as float32
``compile_int8``         PyTorch 2 Export quantisation: ``torch.export``, ``prepare_pt2e`` with torchao's
                         ``X86InductorQuantizer`` (its default static config: per-channel int8 weights, uint8
                         activations from histogram observers), calibrated on ``calibration``, ``convert_pt2e``,
                         then ``torch.compile`` with ``freezing`` (Inductor lowers the Q/DQ patterns to oneDNN int8
                         kernels); static input shape
``openvino_nncf_int8``   the fp32 ONNX export read by OpenVINO and quantised by NNCF (``nncf.quantize``, OpenVINO's
                         own post-training quantiser: preset PERFORMANCE, fast bias correction) on ``calibration``,
                         run by OpenVINO's CPU plugin
======================== ===================================================================================

Sources: the PT2E X86 Inductor flow follows PyTorch's tutorial "PyTorch 2 Export Quantization with X86 Backend
through Inductor"; NNCF's post-training quantisation API is ``nncf.quantize(model, nncf.Dataset(...))``.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from segbench.errors import BackendUnavailable, first_line, require

__all__ = ["NATIVE_BACKENDS", "native_predictor", "nncf_quantize"]

NATIVE_BACKENDS = ("compile_bf16", "compile_int8", "openvino_nncf_int8")


def _compile_bf16(model: nn.Module, example: torch.Tensor, device: str, make):
    net = copy.deepcopy(model).to(device).eval().to(memory_format=torch.channels_last)
    compiled = torch.compile(net, options={"freezing": True})
    predictor = make(compiled, "compile_bf16", device, "", channels_last=True, autocast=torch.bfloat16)
    t0 = time.perf_counter()
    predictor(example.to(device))
    predictor.notes = (f"torch.compile (Inductor, freezing) under autocast bfloat16, channels_last; compiled in "
                       f"{time.perf_counter() - t0:.1f} s on input {list(example.shape)}")  # fmt: skip
    return predictor


def _compile_int8(model: nn.Module, example: torch.Tensor, calibration: list[torch.Tensor], device: str, make):
    require("torchao", "pt2e", "backend compile_int8")
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if device != "cpu":
        raise BackendUnavailable("backend compile_int8 runs on the CPU only (X86 Inductor quantiser); use --device cpu")
    t0 = time.perf_counter()
    net = copy.deepcopy(model).eval()
    with torch.no_grad():
        exported = torch.export.export(net, (example,)).module()
        quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(exported, quantizer)
        for x in calibration:  # observers keep bounded statistics (histograms, min/max), one image at a time
            prepared(x if x.shape == example.shape else torch.nn.functional.interpolate(
                x, size=example.shape[-2:], mode="bilinear", align_corners=False))  # fmt: skip
        converted = allow_exported_model_train_eval(convert_pt2e(prepared))  # predictors call .eval()
    quantised_s = time.perf_counter() - t0
    predictor = make(torch.compile(converted, options={"freezing": True}), "compile_int8", device, "")
    t0 = time.perf_counter()
    try:
        predictor(example)
    except Exception as exc:  # noqa: BLE001 - an Inductor lowering this torch/torchao pair lacks
        raise BackendUnavailable(
            f"backend compile_int8: torch.compile of the PT2E int8 graph failed with torch {torch.__version__}: "
            f"{first_line(exc)[:200]}"
        ) from None
    predictor.notes = (f"PT2E int8 (X86InductorQuantizer default static config, {len(calibration)} calibration "
                       f"inputs, {quantised_s:.1f} s) + torch.compile freezing, compiled in "
                       f"{time.perf_counter() - t0:.1f} s on input {list(example.shape)}")  # fmt: skip
    return predictor


def nncf_quantize(core, onnx_path, calibration: list[torch.Tensor]):
    """The OpenVINO model of ``onnx_path`` quantised to int8 by NNCF on ``calibration`` (``(N, 3, H, W)`` float32
    inputs, streamed one at a time), and a note saying how.

    Raises:
        BackendUnavailable: nncf is not installed (``pip install 'segbench[nncf]'``).
    """
    nncf = require("nncf", "nncf", "backend openvino_nncf_int8")
    t0 = time.perf_counter()
    dataset = nncf.Dataset(calibration, lambda x: x.detach().float().cpu().numpy())
    quantized = nncf.quantize(core.read_model(str(onnx_path)), dataset, subset_size=len(calibration),
                              preset=nncf.QuantizationPreset.PERFORMANCE)  # fmt: skip
    return quantized, (f"int8 by NNCF {nncf.__version__} (nncf.quantize, preset PERFORMANCE, {len(calibration)} "
                       f"calibration inputs, {time.perf_counter() - t0:.1f} s)")  # fmt: skip


def native_predictor(model: nn.Module, backend: str, example: torch.Tensor, device: str,
                     calibration: list[torch.Tensor] | None, make):  # fmt: skip
    """The predictor of ``compile_bf16`` or ``compile_int8`` (``openvino_nncf_int8`` is made by
    :mod:`segbench.bench.backends` with :func:`nncf_quantize`).

    Args:
        model: the eager network, ``(N, 3, H, W)`` -> logits ``(N, C, H, W)``; not changed (copies are made).
        backend: ``compile_bf16`` or ``compile_int8``.
        example: float32 input ``(N, 3, H, W)`` compiled (and, for ``compile_int8``, exported) on.
        device: ``"cpu"`` (``compile_bf16`` also ``"cuda"``).
        calibration: float32 inputs ``(N, 3, H, W)`` for ``compile_int8``; None: the example alone.
        make: the torch predictor class of :mod:`segbench.bench.backends` (module, backend, device, notes, ...).

    Raises:
        BackendUnavailable: torchao missing (``pip install 'segbench[pt2e]'``), ``compile_int8`` on CUDA, or an
            Inductor lowering that fails with this torch version.
    """
    if backend == "compile_bf16":
        return _compile_bf16(model, example, device, make)
    inputs = list(calibration or [example])
    return _compile_int8(model, example.detach().float().cpu(), [x.cpu() for x in inputs], device, make)
