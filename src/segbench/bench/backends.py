"""Inference backends: the same network run in several ways, each behind one callable.

``prepare(model, backend, example)`` returns a :class:`Predictor`: call it with a float32 ``(N, 3, H, W)``
input and it returns float32 logits ``(N, C, H, W)`` as a ``torch.Tensor`` on the predictor's device.
Benchmarks time it, evaluation scores it, so every backend's speed and accuracy come from the same code.

==================== =========================================================================================
backend              what runs
==================== =========================================================================================
``eager``            the PyTorch module as given, fp32, under ``torch.inference_mode``
``channels_last``    a copy of the module with weights and input in NHWC memory format (``torch.channels_last``)
``bf16``             ``torch.autocast`` to bfloat16, on a channels_last copy (CPU with AVX-512 BF16 or AMX, or
                     a CUDA GPU with bf16); logits are returned as float32
``compile``          ``torch.compile(module)`` (default mode, Inductor); compiled on the example, the time
                     stated in ``notes``
``onnxruntime``      exported to ONNX (:func:`segbench.export.export_onnx`: dynamic N/H/W), run by ONNX Runtime
``onnxruntime_int8`` the ONNX model statically quantised to int8 (:func:`segbench.export.quantize_int8`: QDQ,
                     per-channel weights) with ranges calibrated on ``calibration``, run by ONNX Runtime on CPU
``openvino``         the ONNX model compiled by OpenVINO for its CPU plugin, fp32 inference precision
``openvino_bf16``    the same with bf16 inference precision (CPU with AVX-512 BF16 or AMX)
``openvino_int8``    the int8 ONNX model of ``onnxruntime_int8`` (same quantisation and calibration), run by
                     OpenVINO's CPU plugin
``compile_bf16``,    the runtimes' own compilers and quantisers (:mod:`segbench.bench.native`): torch.compile with
``compile_int8``,    freezing under bf16 autocast; PT2E int8 with the X86 Inductor quantiser under torch.compile;
``openvino_nncf_int8`` the ONNX export quantised by NNCF (``nncf.quantize``) for OpenVINO
==================== =========================================================================================

The caller's weights and memory layout are never changed (backends that change them work on a copy); eager and
compile put the module in eval mode on ``device``. CPU threads: the torch backends use torch's setting at call time;
ONNX Runtime and OpenVINO take ``torch.get_num_threads()`` when the predictor is prepared.

A backend that cannot run here raises :class:`BackendUnavailable` (a :class:`segbench.errors.UserError`,
one line naming the pip extra or the missing hardware feature).
"""

from __future__ import annotations

import copy
import difflib
import shutil
import sys
import tempfile
import time
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segbench.bench.native import NATIVE_BACKENDS, native_predictor, nncf_quantize
from segbench.errors import BackendUnavailable, UserError, require
from segbench.export import describe_int8, export_onnx, onnx_session, quantize_int8
from segbench.export.onnx import INPUT_NAME, OUTPUT_NAME

__all__ = [
    "ALL_BACKENDS",
    "BACKENDS",
    "TORCH_BACKENDS",
    "BackendUnavailable",
    "Predictor",
    "check_backend",
    "cpu_supports_bf16",
    "prepare",
]

TORCH_BACKENDS = ("eager", "channels_last", "bf16", "compile", "compile_bf16", "compile_int8")
"""The backends that run PyTorch itself (on its CUDA stream); the others run in ONNX Runtime or OpenVINO."""

BACKENDS: tuple[str, ...] = (
    "eager",
    "channels_last",
    "bf16",
    "compile",
    "onnxruntime",
    "onnxruntime_int8",
    "openvino",
    "openvino_bf16",
    "openvino_int8",
)
ALL_BACKENDS: tuple[str, ...] = BACKENDS + NATIVE_BACKENDS
"""Every backend ``prepare`` runs: :data:`BACKENDS` and the native compilers and quantisers
(:data:`segbench.bench.native.NATIVE_BACKENDS`)."""


def check_backend(name: str) -> str:
    """Return ``name`` if it is a known backend.

    Raises:
        UserError: unknown name; the message suggests close names and lists all.
    """
    if name in ALL_BACKENDS:
        return name
    close = difflib.get_close_matches(name, ALL_BACKENDS, n=2, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UserError(f"--backend {name!r}: unknown backend; {hint}choose from {', '.join(ALL_BACKENDS)}")


def cpu_supports_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX-BF16).

    Args:
        cpuinfo: text of ``/proc/cpuinfo`` (default: read it on Linux; elsewhere oneDNN is asked,
            ``torch.ops.mkldnn._is_mkldnn_bf16_supported``).
    """
    if cpuinfo is None and sys.platform.startswith("linux"):
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = None
    if cpuinfo is not None:
        for line in cpuinfo.splitlines():
            if line.startswith("flags"):
                return bool(set(line.split(":", 1)[1].split()) & {"avx512_bf16", "amx_bf16"})
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class Predictor(nn.Module):
    """A prepared model: ``predictor(x)`` maps float32 ``(N, 3, H, W)`` to float32 logits ``(N, C, H, W)``.

    It is an ``nn.Module`` so that code written for modules (``.eval()``, ``.to(device)``, evaluation loops)
    accepts it; ``.to()`` does not move an ONNX Runtime or OpenVINO model (they stay where prepared).

    Attributes:
        backend: one of :data:`ALL_BACKENDS`.
        device: the device inputs are expected on and logits are returned on.
        notes: one line saying what was done (precision, memory format, export time, calibration, threads).
        onnx_path: the ONNX file run (ONNX Runtime and OpenVINO backends), else None.
    """

    def __init__(self, backend: str, device: str, notes: str = "") -> None:
        super().__init__()
        self.backend = backend
        self.device = str(device)
        self.notes = notes
        self.onnx_path: Path | None = None
        self.training = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def train(self, mode: bool = True) -> Predictor:
        """Predictors run inference only: they and the network inside stay in eval mode whatever ``mode`` is
        (code that restores a module's mode, like a benchmark's ``model.train(was_training)``, cannot switch
        batch normalisation to batch statistics)."""
        return super().train(False)

    def extra_repr(self) -> str:
        return f"backend={self.backend!r}, device={self.device!r}, notes={self.notes!r}"


class _TorchPredictor(Predictor):
    def __init__(
        self,
        module: nn.Module,
        backend: str,
        device: str,
        notes: str,
        *,
        channels_last: bool = False,
        autocast: torch.dtype | None = None,
    ) -> None:
        super().__init__(backend, device, notes)
        self.module = module
        self.channels_last = channels_last
        self.autocast = autocast
        self._device_type = torch.device(device).type
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.autocast is not None:
                with torch.autocast(self._device_type, dtype=self.autocast):
                    logits = self.module(x)
            else:
                logits = self.module(x)
            return logits.float()


class _OnnxRuntimePredictor(Predictor):
    def __init__(self, session, backend: str, device: str, notes: str, num_classes: int, keep) -> None:
        super().__init__(backend, device, notes)
        self.session = session
        self.num_classes = num_classes
        self._keep = keep  # the temporary folder of the ONNX file lives as long as the predictor
        self._cuda = torch.device(device).type == "cuda"

    def forward(self, x: torch.Tensor) -> torch.Tensor:

        if not self._cuda:
            array = x.detach().to("cpu", torch.float32).contiguous().numpy()
            return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0])
        # CUDA: bind torch's buffers, no copies through host memory.
        x = x.detach().to(self.device, torch.float32).contiguous()
        n, _, h, w = x.shape
        out = torch.empty((n, self.num_classes, h, w), device=x.device, dtype=torch.float32)
        index = x.device.index or 0
        binding = self.session.io_binding()
        binding.bind_input(INPUT_NAME, "cuda", index, np.float32, list(x.shape), x.data_ptr())
        binding.bind_output(OUTPUT_NAME, "cuda", index, np.float32, list(out.shape), out.data_ptr())
        torch.cuda.current_stream(x.device).synchronize()  # x is written before ONNX Runtime reads it
        self.session.run_with_iobinding(binding)
        return out


class _OpenVINOPredictor(Predictor):
    """Compiles one static-shape OpenVINO model per input shape (OpenVINO's CPU plugin is fastest on static
    shapes); the first call at a new shape pays the compile time."""

    def __init__(self, core, ov_model, config: dict, notes: str, keep, backend: str = "openvino") -> None:
        super().__init__(backend, "cpu", notes)
        self._core, self._model, self._config, self._keep = core, ov_model, config, keep
        self._requests: dict[tuple[int, ...], object] = {}

    def _request(self, shape: tuple[int, ...]):
        request = self._requests.get(shape)
        if request is None:
            model = self._model.clone()
            model.reshape({model.input(0).get_any_name(): list(shape)})
            request = self._core.compile_model(model, "CPU", self._config).create_infer_request()
            if len(self._requests) >= 8:  # a bounded cache: sweeps over sizes do not grow without end
                self._requests.pop(next(iter(self._requests)))
            self._requests[shape] = request
        return request

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        array = x.detach().to("cpu", torch.float32).contiguous().numpy()
        request = self._request(tuple(array.shape))
        result = request.infer({0: array})  # returns copies (share_outputs=False)
        return torch.from_numpy(np.asarray(result[0]))


# --------------------------------------------------------------------------- helpers


def _check_device(backend: str, device: str) -> str:
    device = str(device)
    try:
        kind = torch.device(device).type
    except RuntimeError:
        kind = device
    if kind not in ("cpu", "cuda"):
        raise BackendUnavailable(f"backend {backend}: device {device!r} is not supported (cpu or cuda)")
    if (backend == "onnxruntime_int8" or backend.startswith("openvino")) and kind != "cpu":
        raise BackendUnavailable(f"backend {backend} runs on the CPU only here; use --device cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"backend {backend} on {device}: CUDA is not available on this machine")
    return device


def _check_compiler(backend: str, kind: str) -> None:
    if kind == "cpu" and not any(shutil.which(cc) for cc in ("g++", "c++", "clang++")):
        raise BackendUnavailable(f"backend {backend} on CPU needs a C++ compiler (g++ or clang++) for Inductor")


def _num_classes(model: nn.Module, example: torch.Tensor) -> int:
    with torch.inference_mode():
        return int(model(example[:1]).shape[1])


# ONNX files exported in this process, by model: ONNX Runtime, its int8 variant and OpenVINO share one export
# of the same weights (a compare of three ONNX backends exports once). The fingerprint (storage address and
# in-place version counter of every tensor) changes when the weights do, so a modified model is re-exported.
_EXPORTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fingerprint(model: nn.Module) -> tuple:
    return tuple((name, t.data_ptr(), t._version, tuple(t.shape)) for name, t in model.state_dict().items())


def _export(model: nn.Module, example: torch.Tensor, onnx_file: str | Path | None):
    """An ONNX file of ``model``: the given one, one exported earlier in this process from the same weights, or
    a fresh export into a temporary folder. Returns ``(path, folder to keep alive or None, how)``."""

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


# --------------------------------------------------------------------------- prepare


def prepare(
    model: nn.Module,
    backend: str,
    example: torch.Tensor,
    device: str = "cpu",
    calibration: list[torch.Tensor] | None = None,
    *,
    onnx_file: str | Path | None = None,
) -> Predictor:
    """Make ``model`` ready to run with ``backend`` on ``device``.

    Args:
        model: network mapping ``(N, 3, H, W)`` to logits ``(N, C, H, W)``. Its weights and layout stay as they
            are (copies are made where a backend changes them); eager and compile put it in eval mode on ``device``.
        backend: one of :data:`ALL_BACKENDS`.
        example: a float32 input ``(N, 3, H, W)``: traced for ONNX, compiled on for ``compile``.
        device: ``"cpu"`` or ``"cuda[:i]"``.
        calibration: preprocessed float32 inputs ``(N, 3, H, W)`` for the int8 backends (see
            :func:`segbench.export.sample_calibration`); without them the example alone calibrates (stated in ``notes``).
        onnx_file: an ONNX file already exported from this model (skips the export for the ONNX backends). A model
            that is an ONNX file (:class:`segbench.external.files.OnnxModule`) runs itself: its ``for_backend``
            gives ONNX Runtime (eager, onnxruntime) or OpenVINO (openvino, openvino_bf16).

    Returns:
        A :class:`Predictor` with ``backend`` and ``notes`` set.

    Raises:
        UserError: unknown backend.
        BackendUnavailable: missing package (``pip install 'segbench[onnx]'`` or ``'segbench[openvino]'``),
            no CUDA, a CPU without bf16 support, a CPU-only backend asked for on CUDA, or no C++ compiler
            for ``compile`` on CPU.
        ExportError: the ONNX export or the int8 quantisation failed.
    """

    check_backend(backend)
    device = _check_device(backend, device)
    kind = torch.device(device).type
    if backend in ("onnxruntime", "onnxruntime_int8"):
        require("onnxruntime", "onnx", f"backend {backend}")
    if backend.startswith("openvino"):
        require("openvino", "openvino", f"backend {backend}")
    if backend == "openvino_nncf_int8":
        require("nncf", "nncf", f"backend {backend}")
    if backend.endswith("bf16") and kind == "cpu" and not cpu_supports_bf16():
        raise BackendUnavailable(
            f"backend {backend} on CPU needs AVX-512 BF16 or AMX (cpuinfo flag avx512_bf16 or amx_bf16); "
            "this CPU has neither"
        )

    for_backend = getattr(model, "for_backend", None)  # a model that is a file (segbench.external.files.OnnxModule)
    if for_backend is not None:
        runner = for_backend(backend, device)  # BackendUnavailable for the backends the file cannot run with
        return _TorchPredictor(runner, backend, device, runner.runs_as)
    if backend in ("compile_bf16", "compile_int8"):
        _check_compiler(backend, kind)
        return native_predictor(model, backend, example, device, calibration, _TorchPredictor)
    if backend in TORCH_BACKENDS:
        return _torch_predictor(model, backend, example, device)
    return _exported_predictor(model, backend, example, device, calibration, onnx_file)


def _torch_predictor(model: nn.Module, backend: str, example: torch.Tensor, device: str) -> Predictor:
    """The predictor of one of :data:`TORCH_BACKENDS`."""
    kind = torch.device(device).type
    net = model
    if backend in ("channels_last", "bf16"):
        net = copy.deepcopy(model).to(device).eval().to(memory_format=torch.channels_last)
    else:
        net.to(device).eval()
    if backend == "eager":
        return _TorchPredictor(net, backend, device, "PyTorch eager, fp32")
    if backend == "channels_last":
        return _TorchPredictor(net, backend, device, "PyTorch eager, fp32, channels_last (NHWC)", channels_last=True)
    if backend == "bf16":
        if kind == "cuda" and not torch.cuda.is_bf16_supported():
            raise BackendUnavailable(f"backend bf16: {torch.cuda.get_device_name(device)} has no bf16 support")
        return _TorchPredictor(
            net,
            backend,
            device,
            "torch.autocast bfloat16, channels_last; logits cast to fp32",
            channels_last=True,
            autocast=torch.bfloat16,
        )
    _check_compiler(backend, kind)
    compiled = torch.compile(net)
    predictor = _TorchPredictor(compiled, backend, device, "")
    t0 = time.perf_counter()
    predictor(example.to(device))
    predictor.notes = (
        f"torch.compile (default mode, Inductor), fp32; compiled in "
        f"{time.perf_counter() - t0:.1f} s on input {list(example.shape)}"
    )
    return predictor


def _exported_predictor(model, backend, example, device, calibration, onnx_file) -> Predictor:
    """The predictor of an ONNX Runtime or OpenVINO backend, on an ONNX export of ``model`` (int8 quantised for
    the ``_int8`` backends)."""
    threads = torch.get_num_threads()
    example = example.detach().float()
    path, keep, how = _export(model, example, onnx_file)
    precision = "fp32"
    if backend in ("onnxruntime_int8", "openvino_int8"):
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
    if backend.startswith("openvino"):
        ov = require("openvino", "openvino", f"backend {backend}")
        hint = "f32"
        if backend == "openvino_bf16":
            hint, precision = "bf16", "bf16 inference precision"
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        version = ov.get_version().split("-")[0]
        if backend == "openvino_nncf_int8":
            ov_model, precision = nncf_quantize(core, path, calibration or [example])
        else:
            ov_model = core.read_model(str(path))
        notes = f"OpenVINO {version} CPU, {precision}, {threads} threads, ONNX {how}"
        predictor = _OpenVINOPredictor(core, ov_model, config, notes, keep, backend)
        predictor.onnx_path = path
        return predictor

    notes = f"ONNX Runtime, {precision}, {threads} threads, ONNX {how}"
    session = onnx_session(path, threads=threads, device=device)
    num_classes = session.get_outputs()[0].shape[1]
    if not isinstance(num_classes, int):  # a symbolic class dimension: ask the model
        num_classes = _num_classes(model, example.to(next((p.device for p in model.parameters()), "cpu")))
    predictor = _OnnxRuntimePredictor(session, backend, device, notes, num_classes, keep)
    predictor.onnx_path = path
    return predictor
