"""Inference backends: the same network run in several ways, each behind one callable; the registry of them.

This module is the one place that knows a backend. Each is one :class:`Backend` entry (its name, the precision its
matrix products run in, its runtime and devices, the pip extra it needs, its quantiser and so whether it needs
calibration data, how its predictor is built); everything else (the CLI's choices and help, ``--backend best``,
the peak a backend is read against, compare, benchmark workers) asks :func:`get_backend`, :func:`registered` or
:func:`backend_names`, never a backend's spelling. Adding a backend is one :func:`register` call below (with its
row in the table), and its test. The module imports no torch at import time (the CLI builds its help from it);
the builders (:mod:`segbench.bench.builders`) import what they run. Which precision this CPU computes natively
is :mod:`segbench.bench.units`' table.

``prepare(model, backend, example)`` returns a :class:`Predictor`: call it with a float32 ``(N, 3, H, W)``
input and it returns float32 logits ``(N, C, H, W)`` as a ``torch.Tensor`` on the predictor's device.
Benchmarks time it, evaluation scores it, so every backend's speed and accuracy come from the same code.

==================== =========================================================================================
backend              what runs
==================== =========================================================================================
``eager``            the PyTorch module as given, fp32, under ``torch.inference_mode``
``channels_last``    a copy of the module with weights and input in NHWC memory format (``torch.channels_last``)
``bf16``             ``torch.autocast`` to bfloat16, on a channels_last copy (native on a CPU with AVX-512 BF16 or
                     AMX, or a CUDA GPU with bf16); logits are returned as float32
``compile``          ``torch.compile(module)`` (default mode, Inductor); compiled on the example, the time
                     stated in ``notes``
``onnxruntime``      exported to ONNX (:func:`segbench.export.export_onnx`: dynamic N/H/W), run by ONNX Runtime
``onnxruntime_int8`` the ONNX model statically quantised to int8 (:func:`segbench.export.quantize_int8`: QDQ,
                     per-channel weights) with ranges calibrated on ``calibration``, run by ONNX Runtime on CPU
``openvino``         the ONNX model compiled by OpenVINO for its CPU plugin, fp32 inference precision
``openvino_bf16``    the same with bf16 inference precision (native on a CPU with AVX-512 BF16 or AMX)
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
one line naming the pip extra or the missing device). One whose precision this CPU only emulates
(:data:`segbench.bench.units.UNITS`: bf16 without ``amx_bf16``/``avx512_bf16``, int8 without VNNI or AMX) runs
when named, its ``notes`` ending with why it is not native; ``--backend best`` leaves it out.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from segbench.bench import units
from segbench.bench.units import (computes_natively, cpu_supports_bf16, cpu_supports_int8, machine_flags,
                                  not_native_reason)
from segbench.bench.builders import compile_fp32, compile_native, exported, torch_eager
from segbench.errors import BackendUnavailable, UserError, require

__all__ = [
    "ALL_BACKENDS",
    "BACKENDS",
    "NATIVE_BACKENDS",
    "TORCH_BACKENDS",
    "Backend",
    "BackendUnavailable",
    "Predictor",
    "backend_names",
    "calibration_for",
    "check_backend",
    "computes_natively",
    "cpu_supports_bf16",
    "cpu_supports_int8",
    "get_backend",
    "machine_flags",
    "not_native_reason",
    "prepare",
    "register",
    "registered",
]

PRECISIONS = ("fp32", "bf16", "int8")
"""The precisions a backend's matrix products run in (``tf32``: fp32 on CUDA, see :meth:`Backend.precision_on`)."""
RUNTIMES = {"torch": "PyTorch", "onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
EXPORTER_MODULES = ("onnxscript",)
"""Modules the ONNX export of a PyTorch model needs (the backends whose runtime is not torch run an export)."""


@dataclass(frozen=True)
class Backend:
    """One backend, as facts.

    Attributes:
        name: what ``--backend`` takes.
        precision: what its matrix products run in: ``fp32``, ``bf16`` or ``int8``.
        runtime: ``torch``, ``onnxruntime`` or ``openvino``.
        devices: device kinds it runs on (``cpu``, ``cuda``).
        summary: one line saying what runs.
        build: ``build(backend, model, example, device, calibration, onnx_file) -> Predictor`` (device checked,
            packages present); ``example`` is a float32 ``(N, 3, H, W)`` input of the size it is prepared for.
        extra: the pip extra installing its packages (None: none needed).
        modules: the modules it imports when prepared (from ``extra``).
        quantiser: the post-training quantiser calibrated on sample images (``onnxruntime``, ``nncf``, ``pt2e``),
            None for a backend that does not quantise.
        onnx_file_runtime: the runtime that runs a model given as an ONNX file under this backend's name (None: such
            a model cannot run with it).
        own_toolchain: it uses a runtime's own compiler or post-training quantiser (:mod:`segbench.bench.native`).

    A backend whose precision this CPU does not compute natively (:meth:`native`) still runs when it is named,
    its notes saying so, but ``--backend best`` and the default backend lists leave it out
    (:func:`segbench.bench.select.native_candidates`).
    """

    name: str
    precision: str
    runtime: str
    devices: tuple[str, ...]
    summary: str
    build: Callable = field(repr=False, compare=False)
    extra: str | None = None
    modules: tuple[str, ...] = ()
    quantiser: str | None = None
    onnx_file_runtime: str | None = None
    own_toolchain: bool = False

    @property
    def needs_calibration(self) -> bool:
        """Whether it is calibrated on sample images (it quantises)."""
        return self.quantiser is not None

    @property
    def install_hint(self) -> str:
        """``pip install 'segbench[EXTRA]'``, or ``""`` for a backend that needs no extra."""
        return f"pip install 'segbench[{self.extra}]'" if self.extra else ""

    @property
    def exports_onnx(self) -> bool:
        """Whether a PyTorch model is exported to ONNX to run it."""
        return self.runtime != "torch"

    def native(self, device: str = "cpu", flags=None) -> bool:
        """Whether this machine (or a CPU with the cpuinfo ``flags``) computes :attr:`precision` natively on
        ``device`` (:func:`segbench.bench.units.computes_natively`)."""
        return units.computes_natively(self.precision, device, flags)

    def not_native_reason(self, device: str = "cpu", flags=None) -> str | None:
        """Why :attr:`precision` is not native here, one line (:func:`segbench.bench.units.not_native_reason`);
        None where it is."""
        return units.not_native_reason(self.precision, device, flags)

    def precision_on(self, device: str = "cpu") -> str:
        """The precision its matrix products run in on ``device``: :attr:`precision`, except ``tf32`` for an fp32
        backend on CUDA when ``torch.backends.cudnn.allow_tf32`` lets cuDNN use it."""
        if self.precision == "fp32" and str(device).split(":")[0] == "cuda":
            import torch

            if torch.backends.cudnn.allow_tf32:
                return "tf32"
        return self.precision


_REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Add ``backend`` to the registry (the order of registration is the order of every listing).

    Raises:
        ValueError: the name is taken, or a fact is not one of the known values.
    """
    if backend.name in _REGISTRY:
        raise ValueError(f"backend {backend.name!r} is already registered")
    if backend.precision not in PRECISIONS or backend.runtime not in RUNTIMES:
        raise ValueError(f"backend {backend.name!r}: precision {backend.precision!r} or runtime {backend.runtime!r}")
    if not backend.devices or not set(backend.devices) <= {"cpu", "cuda"}:
        raise ValueError(f"backend {backend.name!r}: devices {backend.devices!r}")
    if bool(backend.modules) != bool(backend.extra):
        raise ValueError(f"backend {backend.name!r}: modules and extra go together")
    _REGISTRY[backend.name] = backend
    return backend


def registered(**facts) -> tuple[Backend, ...]:
    """Every registered backend whose attributes equal ``facts`` (e.g. ``needs_calibration=True``), in order."""
    return tuple(b for b in _REGISTRY.values() if all(getattr(b, k) == v for k, v in facts.items()))


def backend_names(**facts) -> tuple[str, ...]:
    """The names of :func:`registered` backends with ``facts``."""
    return tuple(b.name for b in registered(**facts))


def get_backend(name: str) -> Backend:
    """The registered backend called ``name``.

    Raises:
        UserError: unknown name; the message suggests close names and lists all.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        names = backend_names()
        close = difflib.get_close_matches(str(name), names, n=2, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UserError(f"--backend {name!r}: unknown backend; {hint}choose from {', '.join(names)}") from None


def check_backend(name: str) -> str:
    """Return ``name`` if it is a known backend.

    Raises:
        UserError: unknown name; the message suggests close names and lists all.
    """
    return get_backend(name).name


def calibration_for(backend: str, preprocessing, folder: str | Path | None = None):
    """The calibration inputs ``backend`` needs: :func:`segbench.export.sample_calibration` of ``folder`` (None:
    the shipped CamVid sample) with the model's ``preprocessing``, ``(1, 3, H, W)`` float32 tensors; None for a
    backend that needs none.

    Raises:
        UserError: unknown backend, or no readable image in ``folder``.
    """
    if not get_backend(backend).needs_calibration:
        return None
    from segbench.export import sample_calibration

    return sample_calibration(preprocessing, folder=folder)


def __getattr__(name: str):
    if name == "Predictor":  # the predictor classes import torch; this module does not at import time
        from segbench.bench.predictors import Predictor

        return Predictor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- helpers


def _check_device(backend: Backend, device: str) -> str:
    import torch

    device = str(device)
    try:
        kind = torch.device(device).type
    except RuntimeError:
        kind = device
    if kind not in ("cpu", "cuda"):
        raise BackendUnavailable(f"backend {backend.name}: device {device!r} is not supported (cpu or cuda)")
    if kind not in backend.devices:
        raise BackendUnavailable(f"backend {backend.name} runs on the CPU only here; use --device cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"backend {backend.name} on {device}: CUDA is not available on this machine")
    return device


# --------------------------------------------------------------------------- prepare


def prepare(
    model,
    backend: str,
    example,
    device: str = "cpu",
    calibration: list | None = None,
    *,
    onnx_file: str | Path | None = None,
):
    """Make ``model`` ready to run with ``backend`` on ``device``.

    Args:
        model: network mapping ``(N, 3, H, W)`` to logits ``(N, C, H, W)``. Its weights and layout stay as they
            are (copies are made where a backend changes them); eager and compile put it in eval mode on ``device``.
        backend: one of :func:`backend_names`.
        example: a float32 input ``(N, 3, H, W)``: traced for ONNX, compiled on for ``compile``.
        device: ``"cpu"`` or ``"cuda[:i]"``.
        calibration: preprocessed float32 inputs ``(N, 3, H, W)`` for the backends that need calibration (see
            :func:`calibration_for`); without them the example alone calibrates (stated in ``notes``).
        onnx_file: an ONNX file already exported from this model (skips the export for the ONNX backends). A model
            that is an ONNX file (:class:`segbench.external.files.OnnxModule`) runs itself, with the runtime of the
            backend's :attr:`Backend.onnx_file_runtime`.

    Returns:
        A :class:`segbench.bench.predictors.Predictor` with ``backend`` and ``notes`` set.

    Raises:
        UserError: unknown backend.
        BackendUnavailable: missing package (the backend's :attr:`Backend.install_hint`), no CUDA, a CPU-only
            backend asked for on CUDA, or no C++ compiler for ``compile`` on CPU.
        ExportError: the ONNX export or the int8 quantisation failed.
    """
    b = get_backend(backend)
    device = _check_device(b, device)
    for module in b.modules:
        require(module, b.extra, f"backend {b.name}")
    for_runtime = getattr(model, "for_runtime", None)  # a model that is a file (segbench.external.files.OnnxModule)
    if for_runtime is not None:
        predictor = _file_predictor(model, for_runtime, b, device)
    else:
        predictor = b.build(b, model, example, device, calibration, onnx_file)
    reason = b.not_native_reason(device)
    if reason:  # asked for by name: it runs, and says it is emulated
        predictor.notes = f"{predictor.notes}; {reason}" if predictor.notes else reason
    return predictor


def _file_predictor(model, for_runtime, b: Backend, device: str):
    """The predictor of a model that is an ONNX file, run by the runtime ``b`` names for files."""
    from segbench.bench.predictors import TorchPredictor

    if b.onnx_file_runtime is None:
        runs = {rt: [x.name for x in registered(onnx_file_runtime=rt)] for rt in RUNTIMES}
        ways = ", ".join(f"{' or '.join(names)} ({RUNTIMES[rt]})" for rt, names in runs.items() if names)
        raise BackendUnavailable(f"backend {b.name}: {Path(model.onnx_file).name} is an ONNX file; it runs with {ways}")
    runner = for_runtime(b.onnx_file_runtime, b.precision, device)
    return TorchPredictor(runner, b.name, device, runner.runs_as)


# --------------------------------------------------------------------------- the registry

_ANY = ("cpu", "cuda")
_CPU = ("cpu",)
_ORT = {"extra": "onnx", "modules": ("onnxruntime",)}
_OV = {"extra": "openvino", "modules": ("openvino",)}

register(Backend("eager", "fp32", "torch", _ANY, "the PyTorch module as given, fp32, under torch.inference_mode",
                 partial(torch_eager, notes="PyTorch eager, fp32"), onnx_file_runtime="onnxruntime"))
register(Backend("channels_last", "fp32", "torch", _ANY, "a copy of the module with weights and input in NHWC",
                 partial(torch_eager, notes="PyTorch eager, fp32, channels_last (NHWC)", channels_last=True)))
register(Backend("bf16", "bf16", "torch", _ANY, "torch.autocast to bfloat16 on a channels_last copy",
                 partial(torch_eager, notes="torch.autocast bfloat16, channels_last; logits cast to fp32",
                          channels_last=True, autocast=True)))
register(Backend("compile", "fp32", "torch", _ANY, "torch.compile (default mode, Inductor)", compile_fp32))
register(Backend("onnxruntime", "fp32", "onnxruntime", _ANY, "the ONNX export run by ONNX Runtime", exported, **_ORT,
                 onnx_file_runtime="onnxruntime"))
register(Backend("onnxruntime_int8", "int8", "onnxruntime", _CPU, "the ONNX export quantised to int8 (QDQ), run by "
                 "ONNX Runtime", exported, **_ORT, quantiser="onnxruntime"))
register(Backend("openvino", "fp32", "openvino", _CPU, "the ONNX export compiled by OpenVINO's CPU plugin, fp32",
                 exported, **_OV, onnx_file_runtime="openvino"))
register(Backend("openvino_bf16", "bf16", "openvino", _CPU, "the same with bf16 inference precision", exported,
                 **_OV, onnx_file_runtime="openvino"))
register(Backend("openvino_int8", "int8", "openvino", _CPU, "the int8 ONNX model of onnxruntime_int8 run by OpenVINO",
                 exported, **_OV, quantiser="onnxruntime"))
register(Backend("compile_bf16", "bf16", "torch", _ANY, "torch.compile with freezing under bf16 autocast",
                 compile_native, own_toolchain=True))
register(Backend("compile_int8", "int8", "torch", _CPU, "PT2E int8 (X86 Inductor quantiser) under torch.compile",
                 compile_native, extra="pt2e", modules=("torchao",), quantiser="pt2e", own_toolchain=True))
register(Backend("openvino_nncf_int8", "int8", "openvino", _CPU, "the ONNX export quantised by NNCF for OpenVINO",
                 exported, extra="nncf", modules=("openvino", "nncf"), quantiser="nncf", own_toolchain=True))

ALL_BACKENDS: tuple[str, ...] = backend_names()
"""Every registered backend, in order."""
BACKENDS: tuple[str, ...] = backend_names(own_toolchain=False)
"""The backends segbench prepares itself (export, quantise, run); the others are :data:`NATIVE_BACKENDS`."""
NATIVE_BACKENDS: tuple[str, ...] = backend_names(own_toolchain=True)
"""The backends that use the runtimes' own compilers and quantisers (:mod:`segbench.bench.native`)."""
TORCH_BACKENDS: tuple[str, ...] = backend_names(runtime="torch")
"""The backends that run PyTorch itself (on its CUDA stream); the others run in ONNX Runtime or OpenVINO."""
