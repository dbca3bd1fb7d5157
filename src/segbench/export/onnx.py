"""ONNX export with dynamic batch, height and width, the ONNX Runtime session, and ``metadata_props``.

:func:`export_onnx` traces the network with ``torch.onnx.export`` (the ``torch.export``-based exporter,
``dynamo=True``, opset 18 by default; the deprecated TorchScript exporter, opset 17, on request), so one
file serves any ``(N, 3, H, W)``.

The ``torch.export``-based exporter (measured with torch 2.15, onnxscript 0.7.2) turns
``F.adaptive_avg_pool2d`` with more than one output bin (Fast-SCNN's pyramid pooling) into a gather whose
window length is fixed to the traced size; the file loads and runs at the traced size, but at 65 x 97 it
fails and at other sizes it returns wrong numbers without an error. segbench's networks therefore pool
with :func:`segbench.models.layers.adaptive_avg_pool2d`, which computes the same values as two matrix
products while exporting.
"""

from __future__ import annotations

import contextlib
import copy
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from segbench.errors import BackendUnavailable, UserError, first_line, require

__all__ = [
    "DEFAULT_OPSET",
    "EXPORTERS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "ExportError",
    "cpu_module",
    "export_onnx",
    "onnx_session",
    "read_metadata",
    "run_onnx",
    "write_metadata",
]

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = {"dynamo": 18, "torchscript": 17}
INPUT_NAME, OUTPUT_NAME = "input", "logits"


class ExportError(UserError):
    """The export failed, or the exported model does not reproduce PyTorch's outputs."""


# --------------------------------------------------------------------------- export


def export_onnx(
    model: nn.Module,
    path: str | Path,
    example: torch.Tensor | None = None,
    *,
    exporter: str = "dynamo",
    opset: int | None = None,
) -> Path:
    """Write ``model`` as an ONNX file with dynamic batch, height and width.

    The input is named ``input`` ``(N, 3, H, W)`` float32, the output ``logits`` ``(N, C, H, W)`` float32.
    The model is traced in eval mode on a CPU copy (the caller's module is not modified).

    Args:
        model: network whose ``forward(x)`` returns logits.
        path: the ``.onnx`` file to write (overwritten; callers write to a temporary name first).
        example: input used for tracing (default ``(1, 3, 64, 96)`` random).
        exporter: ``"dynamo"`` (``torch.onnx.export(dynamo=True)``, the default since torch 2.9) or
            ``"torchscript"`` (the deprecated tracer).
        opset: ONNX opset (default 18 for dynamo, 17 for torchscript; at least 17).

    Returns:
        ``path``.

    Raises:
        UserError: unknown exporter, opset below 17, or ``onnx`` / ``onnxscript`` missing.
        ExportError: the exporter failed (the message holds its first line).
    """
    if exporter not in EXPORTERS:
        raise UserError(f"--exporter {exporter!r}: expected one of {', '.join(EXPORTERS)}")
    opset = DEFAULT_OPSET[exporter] if opset is None else int(opset)
    if opset < 17:
        raise UserError(f"--opset {opset}: segbench exports with opset 17 or newer")
    require("onnx", "onnx", "ONNX export")
    if exporter == "dynamo":
        require("onnxscript", "onnx", "ONNX export (torch.onnx dynamo exporter)")
    path = Path(path)
    net = cpu_module(model)
    was_training = net.training
    net.eval()
    x = (example if example is not None else torch.randn(1, 3, 64, 96)).detach().float().cpu()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            _trace(net, x, path, exporter, opset)
    except Exception as exc:  # noqa: BLE001 - every exporter failure becomes one line
        raise ExportError(f"ONNX export ({exporter}, opset {opset}) failed: {first_line(exc)}") from None
    finally:
        net.train(was_training)
    return path


def _trace(net: nn.Module, x: torch.Tensor, path: Path, exporter: str, opset: int) -> None:
    """One ``torch.onnx.export`` call of ``net`` on ``x`` with dynamic batch, height and width."""
    if exporter == "dynamo":
        dims = {0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
        with contextlib.redirect_stdout(None):  # the exporter prints its progress
            torch.onnx.export(
                net,
                (x,),
                str(path),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=(dims,),
                optimize=True,
                verbose=False,
                external_data=False,  # one self-contained file (weights inside)
            )
    else:
        axes = {0: "batch", 2: "height", 3: "width"}
        torch.onnx.export(
            net,
            (x,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
        )


def cpu_module(model: nn.Module) -> nn.Module:
    """``model`` itself when all its parameters are on the CPU, else a CPU copy (the caller's is untouched)."""
    if any(p.device.type != "cpu" for p in model.parameters()):
        return copy.deepcopy(model).cpu()
    return model


def onnx_session(path: str | Path, *, threads: int | None = None, device: str = "cpu"):
    """An ONNX Runtime ``InferenceSession`` for ``path``.

    Args:
        threads: intra-op threads (default ``torch.get_num_threads()``); inter-op threads are 1.
        device: ``"cpu"`` (CPUExecutionProvider) or ``"cuda[:i]"`` (CUDAExecutionProvider, from the
            ``onnxruntime-gpu`` package).

    Raises:
        UserError: onnxruntime missing, or CUDA asked for without the CUDA execution provider.
    """
    ort = require("onnxruntime", "onnx", "ONNX Runtime inference")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no constant-folding chatter
    providers: list = ["CPUExecutionProvider"]
    if str(device).startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise BackendUnavailable(
                "ONNX Runtime on CUDA needs the CUDA execution provider: pip install onnxruntime-gpu "
                "(instead of onnxruntime)"
            )
        index = torch.device(device).index or 0
        providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ort.InferenceSession(str(path), options, providers=providers)


# --------------------------------------------------------------------------- metadata


def write_metadata(path: str | Path, values: dict) -> None:
    """Set ``metadata_props`` of an ONNX file in place (values stored as strings; lists/dicts as JSON)."""
    onnx = require("onnx", "onnx", "ONNX metadata")
    model = onnx.load(str(path))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if key in existing:
            existing[key].value = text
        else:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, text
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file as a dict of strings."""
    onnx = require("onnx", "onnx", "ONNX metadata")
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def run_onnx(session, x: torch.Tensor) -> torch.Tensor:
    """Logits ``(N, C, H, W)`` of an :func:`onnx_session` for a float32 input ``(N, 3, H, W)``."""
    return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.detach().float().cpu().numpy()})[0])
