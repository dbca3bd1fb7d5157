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

__all__ = ["compile_bf16_predictor", "compile_int8_predictor", "nncf_quantize"]


def compile_bf16_predictor(model: nn.Module, example: torch.Tensor, device: str, make, name: str):
    """``torch.compile`` with freezing under bf16 autocast, on a channels_last copy of ``model``, compiled on
    ``example`` (float32 ``(N, 3, H, W)``); ``make`` is :class:`segbench.bench.predictors.TorchPredictor` and ``name``
    the backend's name."""
    net = copy.deepcopy(model).to(device).eval().to(memory_format=torch.channels_last)
    compiled = torch.compile(net, options={"freezing": True})
    predictor = make(compiled, name, device, "", channels_last=True, autocast=torch.bfloat16)
    t0 = time.perf_counter()
    predictor(example.to(device))
    predictor.notes = (f"torch.compile (Inductor, freezing) under autocast bfloat16, channels_last; compiled in "
                       f"{time.perf_counter() - t0:.1f} s on input {list(example.shape)}")  # fmt: skip
    return predictor


def compile_int8_predictor(model: nn.Module, example: torch.Tensor, calibration: list[torch.Tensor] | None, make,
                           name: str):  # fmt: skip
    """PT2E int8 of ``model`` (X86 Inductor quantiser, calibrated on ``calibration``: float32 ``(N, 3, H, W)``
    inputs, None: ``example`` alone) under ``torch.compile`` with freezing, on the CPU; ``make`` is
    :class:`segbench.bench.predictors.TorchPredictor` and ``name`` the backend's name.

    Raises:
        BackendUnavailable: torchao missing (``pip install 'segbench[pt2e]'``), or an Inductor lowering that fails
            with this torch version.
    """
    require("torchao", "pt2e", f"backend {name}")
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example = example.detach().float().cpu()
    calibration = [x.cpu() for x in (calibration or [example])]
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
    predictor = make(torch.compile(converted, options={"freezing": True}), name, "cpu", "")
    t0 = time.perf_counter()
    try:
        predictor(example)
    except Exception as exc:  # noqa: BLE001 - an Inductor lowering this torch/torchao pair lacks
        raise BackendUnavailable(
            f"backend {name}: torch.compile of the PT2E int8 graph failed with torch {torch.__version__}: "
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
    nncf = require("nncf", "nncf", "NNCF quantisation")
    t0 = time.perf_counter()
    dataset = nncf.Dataset(calibration, lambda x: x.detach().float().cpu().numpy())
    quantized = nncf.quantize(core.read_model(str(onnx_path)), dataset, subset_size=len(calibration),
                              preset=nncf.QuantizationPreset.PERFORMANCE)  # fmt: skip
    return quantized, (f"int8 by NNCF {nncf.__version__} (nncf.quantize, preset PERFORMANCE, {len(calibration)} "
                       f"calibration inputs, {time.perf_counter() - t0:.1f} s)")  # fmt: skip
