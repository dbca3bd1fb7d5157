"""How each backend's predictor is built: the builders the backend registry (:mod:`segbench.bench.backends`)
names, and the ONNX export they share. A builder is called as ``build(backend, model, example, device,
calibration, onnx_file)`` with the device checked and the packages present, and returns a
:class:`segbench.bench.predictors.Predictor`; it reads only the backend's facts (``name``, ``precision``,
``runtime``, ``quantiser``), so this module does not import the registry."""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
import weakref
from pathlib import Path

from segbench.errors import BackendUnavailable, UserError, require

__all__ = ["compile_fp32", "compile_native", "exported", "torch_eager"]


def _check_compiler(backend, device: str) -> None:
    if str(device).split(":")[0] == "cpu" and not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        raise BackendUnavailable(f"backend {backend.name} on CPU needs a C++ compiler (g++ or clang++) for Inductor")


def _num_classes(model, example) -> int:
    import torch

    with torch.inference_mode():
        return int(model(example[:1]).shape[1])


# ONNX files exported in this process, by model: ONNX Runtime, its int8 variant and OpenVINO share one export
# of the same weights (a compare of three ONNX backends exports once). The fingerprint (storage address and
# in-place version counter of every tensor) changes when the weights do, so a modified model is re-exported.
_EXPORTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fingerprint(model) -> tuple:
    return tuple((name, t.data_ptr(), t._version, tuple(t.shape)) for name, t in model.state_dict().items())


def _export(model, example, onnx_file: str | Path | None):
    """An ONNX file of ``model``: the given one, one exported earlier in this process from the same weights, or
    a fresh export into a temporary folder. Returns ``(path, folder to keep alive or None, how)``."""
    from segbench.export import export_onnx

    if onnx_file is not None:
        if not Path(onnx_file).is_file():
            raise UserError(f"{onnx_file}: ONNX file not found")
        return Path(onnx_file), None, "given ONNX file"
    fingerprint = _fingerprint(model)
    cached = _EXPORTS.get(model)
    if cached is not None and cached[0] == fingerprint and cached[1].is_file():
        return cached[1], cached[2], "exported earlier in this process from the same weights"
    keep = tempfile.TemporaryDirectory(prefix="segbench-onnx-")
    t0 = time.perf_counter()
    path = export_onnx(model, Path(keep.name) / "model.onnx", example.detach().cpu())
    _EXPORTS[model] = (fingerprint, path, keep)
    return path, keep, f"exported in {time.perf_counter() - t0:.1f} s"


def torch_eager(b, model, example, device, calibration, onnx_file, *, notes: str, channels_last: bool = False,
           autocast: bool = False):  # fmt: skip
    """PyTorch eager: the model as given, or a channels_last copy; under bf16 autocast with ``autocast``."""
    import torch

    from segbench.bench.predictors import TorchPredictor

    if channels_last:
        net = copy.deepcopy(model).to(device).eval().to(memory_format=torch.channels_last)
    else:
        net = model.to(device).eval()
    if autocast and torch.device(device).type == "cuda" and not torch.cuda.is_bf16_supported():
        raise BackendUnavailable(f"backend {b.name}: {torch.cuda.get_device_name(device)} has no bf16 support")
    return TorchPredictor(net, b.name, device, notes, channels_last=channels_last,
                          autocast=torch.bfloat16 if autocast else None)  # fmt: skip


def compile_fp32(b, model, example, device, calibration, onnx_file):
    """``torch.compile`` (default mode, Inductor), compiled on ``example``."""
    import torch

    from segbench.bench.predictors import TorchPredictor

    net = model.to(device).eval()
    _check_compiler(b, device)
    predictor = TorchPredictor(torch.compile(net), b.name, device, "")
    t0 = time.perf_counter()
    predictor(example.to(device))
    predictor.notes = (
        f"torch.compile (default mode, Inductor), fp32; compiled in "
        f"{time.perf_counter() - t0:.1f} s on input {list(example.shape)}"
    )
    return predictor


def compile_native(b, model, example, device, calibration, onnx_file):
    """The native torch.compile backends (:mod:`segbench.bench.native`): freezing under bf16 autocast, or PT2E
    int8 with the X86 Inductor quantiser."""
    from segbench.bench import native
    from segbench.bench.predictors import TorchPredictor

    _check_compiler(b, device)
    if b.quantiser == "pt2e":
        return native.compile_int8_predictor(model, example, calibration, TorchPredictor, b.name)
    return native.compile_bf16_predictor(model, example, device, TorchPredictor, b.name)


def exported(b, model, example, device, calibration, onnx_file):
    """An ONNX export of ``model`` (quantised to int8 by :func:`segbench.export.quantize_int8` when the backend's
    quantiser is ``onnxruntime``), run by ONNX Runtime or OpenVINO."""
    import torch

    from segbench.bench.predictors import OnnxRuntimePredictor, OpenVINOPredictor
    from segbench.export import describe_int8, onnx_session, quantize_int8

    threads = torch.get_num_threads()
    example = example.detach().float()
    path, keep, how = _export(model, example, onnx_file)
    precision = "fp32"
    if b.quantiser == "onnxruntime":
        keep = (keep, tempfile.TemporaryDirectory(prefix="segbench-onnx-int8-"))
        int8_path = Path(keep[1].name) / "model.int8.onnx"
        inputs = calibration or [example]
        t0 = time.perf_counter()
        used = quantize_int8(path, int8_path, inputs)
        what = f"{len(inputs)} calibration inputs" if calibration else "the example input only (no calibration given)"
        precision = (
            f"int8 static quantisation ({describe_int8(used)} from {what}"
            f"{'' if used == 'percentile' else ', Percentile ranges failed'}; {time.perf_counter() - t0:.1f} s)"
        )
        path = int8_path
    if b.runtime == "openvino":
        from segbench.bench.native import nncf_quantize

        ov = require("openvino", "openvino", f"backend {b.name}")
        hint = "f32"
        if b.precision == "bf16":
            hint, precision = "bf16", "bf16 inference precision"
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        version = ov.get_version().split("-")[0]
        if b.quantiser == "nncf":
            ov_model, precision = nncf_quantize(core, path, calibration or [example])
        else:
            ov_model = core.read_model(str(path))
        notes = f"OpenVINO {version} CPU, {precision}, {threads} threads, ONNX {how}"
        predictor = OpenVINOPredictor(core, ov_model, config, notes, keep, b.name)
        predictor.onnx_path = path
        return predictor

    notes = f"ONNX Runtime, {precision}, {threads} threads, ONNX {how}"
    session = onnx_session(path, threads=threads, device=device)
    num_classes = session.get_outputs()[0].shape[1]
    if not isinstance(num_classes, int):  # a symbolic class dimension: ask the model
        num_classes = _num_classes(model, example.to(next((p.device for p in model.parameters()), "cpu")))
    predictor = OnnxRuntimePredictor(session, b.name, device, notes, num_classes, keep)
    predictor.onnx_path = path
    return predictor
