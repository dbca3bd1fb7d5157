"""Model files segbench did not write as weights: ONNX (``.onnx``), TorchScript (``.pt``/``.pth`` archives of
``torch.jit.save``) and ``torch.export`` programs (``.pt2``).

Each becomes an ``nn.Module`` mapping ``(N, 3, H, W)`` to logits ``(N, C, H, W)`` at the input size, so every
part of segbench (evaluation, sliding windows, TTA, benchmarks) runs it unchanged.

- ONNX runs in ONNX Runtime (:class:`OnnxModule`); ``--backend openvino`` compiles the same file with OpenVINO
  (the backends find it through the module's ``onnx_file``). The input layout is read from the file's input
  shape (``(N, 3, H, W)`` or ``(N, H, W, 3)``; metadata ``layout`` = ``NCHW`` or ``NHWC`` overrides it); an input
  of fixed height and width is resized to it, and logits smaller than the input are upsampled bilinearly.
- What a file can execute (the trust rule: nothing from a file someone else made runs code unless the user says
  so with ``--trust-remote-code``, :data:`TRUST_FLAG`):

  - ONNX: operators of the ONNX standard (and any registered in ONNX Runtime), run by ONNX Runtime; no Python.
  - TorchScript: ``torch.jit.load`` reads the archive with TorchScript's own unpickler (no Python imports, no
    ``pickle``) and runs its code in TorchScript's interpreter, which can call any operator registered in torch
    (tensor maths; no Python function, no ``import``). It is loaded as it is.
  - ``torch.export``: torch would unpickle parts of the archive with ``weights_only=False`` and evaluate its
    symbolic sizes with ``sympy.sympify`` (Python ``eval``), and its graph may name any ``torch.*`` function.
    So the file is read once into memory and checked before torch sees it
    (:func:`segbench.external.pt2.load_exported_program`); a file that fails the check is refused in one line
    unless ``--trust-remote-code`` is given.
"""

from __future__ import annotations

import copy
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segbench.errors import BackendUnavailable, UserError, first_line, require
from segbench.export import onnx_session, read_metadata
from segbench.external.inputs import METADATA_FILE, ModelInputs, resolve_info
from segbench.preprocessing import Preprocessing, Resized

__all__ = ["OnnxModule", "is_torchscript", "load_onnx", "load_torchscript"]

FLOPS_NOT_COUNTED = "GFLOPs: not countable ({}: torch's FlopCounterMode counts PyTorch operators only)"


def _check_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a model file ({what})")
    if not path.is_file():
        raise UserError(f"{path}: no such {what} file")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what} file ({exc.strerror or exc})") from None


class OnnxModule(nn.Module):
    """An ONNX file run by ONNX Runtime, as a module: float32 ``(N, 3, H, W)`` in, logits ``(N, C, H, W)`` out.

    Attributes:
        onnx_file: the file (the ONNX backends run it instead of exporting the module).
        runs_as: one line saying what runs it, for the report.
        layout: ``NCHW`` or ``NHWC`` of the file's input (and output).
        fixed_size: ``(H, W)`` when the file's input has a fixed size, else None.
        preprocessing: the resize and size-divisor rule the forward runs the file under
            (:meth:`~segbench.preprocessing.Preprocessing.run_resized`; the metadata's, set by :func:`load_onnx`).
    """

    def __init__(self, path: Path, session, layout: str, fixed_size: tuple[int, int] | None) -> None:
        super().__init__()
        self.onnx_file = path
        self.session = session
        self.layout = layout
        self.fixed_size = fixed_size
        self.preprocessing = Preprocessing()
        self.input_name = session.get_inputs()[0].name
        self.output_name = session.get_outputs()[0].name
        ort = require("onnxruntime", "onnx", "ONNX Runtime")
        self.runs_as = f"ONNX Runtime {ort.__version__} on {path.name} (the file itself), {layout} input"
        self._run = lambda array: self.session.run([self.output_name], {self.input_name: array})[0]

    def for_runtime(self, runtime: str, precision: str = "fp32", device: str = "cpu") -> OnnxModule:
        """This file run by ``runtime``: itself (ONNX Runtime) for ``onnxruntime``, OpenVINO's CPU plugin at
        ``precision`` (``fp32`` or ``bf16`` inference precision) for ``openvino``. Which backend runs a file with
        which runtime is the backend registry's fact (:attr:`segbench.bench.backends.Backend.onnx_file_runtime`).

        Raises:
            BackendUnavailable: another runtime or precision, OpenVINO missing, or OpenVINO asked for on CUDA.
        """
        if runtime == "onnxruntime" and precision == "fp32":
            return self
        if runtime != "openvino" or precision not in ("fp32", "bf16"):
            raise BackendUnavailable(f"{self.onnx_file.name}: an ONNX file runs with ONNX Runtime (fp32) or OpenVINO "
                                     f"(fp32, bf16), not {runtime} {precision}")  # fmt: skip
        if not str(device).startswith("cpu"):
            raise BackendUnavailable(f"{self.onnx_file.name}: OpenVINO runs on the CPU only here; use --device cpu")
        ov = require("openvino", "openvino", f"OpenVINO on {self.onnx_file.name}")
        hint = "bf16" if precision == "bf16" else "f32"
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "INFERENCE_PRECISION_HINT": hint,
                  "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(self.onnx_file)), "CPU", config)
        clone = copy.copy(self)
        clone._run = lambda array: np.asarray(compiled({0: array})[0])
        clone.runs_as = (f"OpenVINO {ov.get_version().split('-')[0]} CPU, {hint}, on {self.onnx_file.name} "
                         f"(the file itself), {self.layout} input")  # fmt: skip
        return clone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.preprocessing.run_resized(self._forward, x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        inp = x.detach().float()
        if self.fixed_size is not None and size != self.fixed_size:
            inp = F.interpolate(inp, size=self.fixed_size, mode="bilinear", align_corners=False)
        if self.layout == "NHWC":
            inp = inp.permute(0, 2, 3, 1)
        out = self._run(inp.cpu().contiguous().numpy())
        logits = torch.from_numpy(out)
        if logits.ndim != 4:
            raise UserError(f"{self.onnx_file}: output {self.output_name!r} has shape {tuple(logits.shape)}; "
                            "expected logits (N, C, H, W)")  # fmt: skip
        if self.layout == "NHWC":
            logits = logits.permute(0, 3, 1, 2)
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits.to(x.device)

    def size_measures(self) -> dict:
        """Parameters (elements of the file's initializers) and the file's size in MB (10**6 bytes)."""
        onnx = require("onnx", "onnx", "ONNX model size")
        graph = onnx.load(str(self.onnx_file), load_external_data=False).graph
        params = 0
        for init in graph.initializer:
            count = 1
            for d in init.dims:
                count *= int(d)
            params += count
        return {"params": params, "size_mb": self.onnx_file.stat().st_size / 1e6, "size_mb_fp16": None}


def _layout(path: Path, session, meta: dict) -> tuple[str, tuple[int, int] | None]:
    """``(layout, fixed (H, W) or None)`` of the file's first input."""
    shape = list(session.get_inputs()[0].shape)
    if len(shape) != 4:
        raise UserError(f"{path}: input {session.get_inputs()[0].name!r} has shape {shape}; expected 4 dimensions "
                        "(N, 3, H, W) or (N, H, W, 3)")  # fmt: skip
    layout = str(meta.get("layout", "")).upper() or ("NHWC" if shape[3] == 3 and shape[1] != 3 else "NCHW")
    if layout not in ("NCHW", "NHWC"):
        raise UserError(f"{path}: metadata layout {meta['layout']!r}: expected NCHW or NHWC")
    h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    fixed = (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None
    return layout, fixed


def _onnx_classes(session, module: OnnxModule, layout: str, fixed) -> int:
    """Output channels: from the output shape when it is fixed, else from one small forward."""
    shape = list(session.get_outputs()[0].shape)
    if len(shape) == 4:
        c = shape[1] if layout == "NCHW" else shape[3]
        if isinstance(c, int) and c > 0:
            return c
    with torch.no_grad():
        return int(module(torch.zeros(1, 3, *(fixed or (64, 64)))).shape[1])


def load_onnx(path: str | Path, inputs: ModelInputs | None = None, device: str = "cpu"):
    """An ONNX file as :class:`OnnxModule` with its :class:`ExternalInfo`.

    Raises:
        UserError: missing, unreadable or invalid file; onnxruntime missing; an input that is not an image.
    """
    path = Path(path)
    _check_file(path, "ONNX")
    try:
        meta = read_metadata(path)
        session = onnx_session(path, device=device)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnx and onnxruntime raise many types for a bad file
        raise UserError(f"{path}: cannot read ONNX file ({first_line(exc)})") from None
    layout, fixed = _layout(path, session, meta)
    module = OnnxModule(path, session, layout, fixed)
    try:
        num_classes = _onnx_classes(session, module, layout, fixed)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: the model does not run on a (1, 3, H, W) image ({first_line(exc)})") from None
    info = resolve_info(label=path.name, kind="onnx", source=str(path), num_classes=num_classes, meta=meta,
                        inputs=inputs)  # fmt: skip
    module.preprocessing = info.preprocessing
    info.notes.append(FLOPS_NOT_COUNTED.format("an ONNX Runtime model"))
    if fixed is not None:
        info.notes.append(f"{path.name} takes a fixed {fixed[0]} x {fixed[1]} input: images are resized to it and "
                          "the logits back")  # fmt: skip
    return module, info


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``: a zip with a ``code/`` folder)."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n or n.endswith("constants.pkl") for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _extra_meta(text, path: Path) -> dict:
    if not text:
        return {}
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: its {METADATA_FILE} is not JSON") from None
    return meta if isinstance(meta, dict) else {}


def _num_classes(module: nn.Module, path: Path) -> int:
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, 3, 64, 64))
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: the model does not run on a (1, 3, 64, 64) image ({first_line(exc)})") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 4:
        raise UserError(f"{path}: the model returns {type(out).__name__}, not logits (N, C, H, W)")
    return int(out.shape[1])


def load_torchscript(path: str | Path, inputs: ModelInputs | None = None):
    """A TorchScript archive as a module with its :class:`ExternalInfo` (metadata from ``segbench.json``).

    Raises:
        UserError: missing, unreadable or corrupt file, or a model that does not map an image to logits.
    """
    path = Path(path)
    _check_file(path, "TorchScript")
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():  # torch 2.10+ calls torch.jit.load deprecated: a user's file, not theirs
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path}: cannot read TorchScript file ({first_line(exc)})") from None
    module.eval()
    meta = _extra_meta(extra[METADATA_FILE], path)
    info = resolve_info(label=path.name, kind="torchscript", source=str(path), num_classes=_num_classes(module, path),
                        meta=meta, inputs=inputs)  # fmt: skip
    return Resized(module, info.preprocessing), info
