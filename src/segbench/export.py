"""Export to ONNX, int8 static quantisation, and the check that an exported model still segments correctly.

An exported model is declared good only after its outputs were compared with PyTorch's:

1. :func:`export_onnx` traces the network with ``torch.onnx.export`` (the ``torch.export``-based exporter,
   ``dynamo=True``, opset 18 by default; the deprecated TorchScript exporter, opset 17, on request) with
   dynamic batch, height and width, so one file serves any ``(N, 3, H, W)``.
2. :func:`check_onnx` runs PyTorch and ONNX Runtime on the same images (by default the CamVid val sample
   shipped with segbench) and reports the maximum absolute difference of the logits, the mIoU of both
   (against the labels when the model predicts the data's classes, else the ONNX predictions scored
   against PyTorch's), and it runs one more input whose batch, height and width differ from the traced
   example, which catches graphs that silently kept a traced size.
3. :func:`quantize_int8` writes an int8 model (ONNX Runtime static quantisation: QDQ format,
   per-channel int8 weights, uint8 activations, ranges calibrated on given images); the same check then
   states its mIoU drop.

Why the check matters, measured here (torch 2.15, onnxscript 0.7.2): the ``torch.export``-based exporter
turns ``adaptive_avg_pool2d`` with more than one output bin (Fast-SCNN's pyramid pooling) into a gather
whose window length is fixed to the traced size; the file loads and runs at the traced size, but at
65 x 97 it fails and at other sizes it returns wrong numbers without an error. :func:`export_onnx` therefore
traces with :func:`adaptive_avg_pool2d_exportable`, an exact rewrite with two matrix products.

All functions raise :class:`segbench.errors.UserError` (one line) for a missing package, and
:class:`ExportError` when the export or its check fails.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from segbench.errors import BackendUnavailable, UserError, first_line, require

__all__ = [
    "sample_calibration",
    "DEFAULT_OPSET",
    "EXPORTERS",
    "ExportCheck",
    "ExportError",
    "adaptive_avg_pool2d_exportable",
    "check_images",
    "check_onnx",
    "describe_int8",
    "export_checked",
    "export_onnx",
    "onnx_session",
    "quantize_int8",
    "read_metadata",
    "write_metadata",
]

EXPORTERS = ("dynamo", "torchscript")
DEFAULT_OPSET = {"dynamo": 18, "torchscript": 17}
INPUT_NAME, OUTPUT_NAME = "input", "logits"


class ExportError(UserError):
    """The export failed, or the exported model does not reproduce PyTorch's outputs."""


# --------------------------------------------------------------------------- exportable adaptive pooling


def _bin_matrix(length: int | torch.SymInt, bins: int, like: torch.Tensor) -> torch.Tensor:
    """``(bins, length)`` averaging matrix of adaptive pooling along one axis: row ``i`` averages the
    positions ``floor(i * L / bins) <= p < ceil((i + 1) * L / bins)``, PyTorch's window rule."""
    i = torch.arange(bins, device=like.device)
    start = (i * length) // bins
    end = ((i + 1) * length + bins - 1) // bins
    pos = torch.arange(length, device=like.device)
    inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
    return inside.to(like.dtype) / (end - start).to(like.dtype)[:, None]


def adaptive_avg_pool2d_exportable(x: torch.Tensor, output_size) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` written as two matrix products, so that it exports to ONNX with dynamic
    height and width (equal to PyTorch's within float rounding, tested).

    Args:
        x: ``(N, C, H, W)`` or ``(C, H, W)`` tensor.
        output_size: ``int`` or ``(bins_h, bins_w)``; ``None`` entries keep that input size.

    Returns:
        ``(N, C, bins_h, bins_w)`` tensor (or ``(C, bins_h, bins_w)``).
    """
    if isinstance(output_size, int):
        output_size = (output_size, output_size)
    height, width = x.shape[-2:]
    bins_h = height if output_size[0] is None else int(output_size[0])
    bins_w = width if output_size[1] is None else int(output_size[1])
    rows = _bin_matrix(height, bins_h, x)  # (bins_h, H)
    cols = _bin_matrix(width, bins_w, x)  # (bins_w, W)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


@contextlib.contextmanager
def _exportable_pooling() -> Iterator[None]:
    """While tracing: ``F.adaptive_avg_pool2d`` (also used by ``nn.AdaptiveAvgPool2d``) with more than one
    output bin goes through :func:`adaptive_avg_pool2d_exportable`; global pooling (1 x 1) is unchanged."""
    original = F.adaptive_avg_pool2d

    def pooled(x, output_size):
        size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        if size == (1, 1):
            return original(x, output_size)
        return adaptive_avg_pool2d_exportable(x, output_size)

    F.adaptive_avg_pool2d = pooled
    try:
        yield
    finally:
        F.adaptive_avg_pool2d = original


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
    net = model
    if any(p.device.type != "cpu" for p in model.parameters()):
        import copy

        net = copy.deepcopy(model).cpu()
    was_training = net.training
    net.eval()
    x = (example if example is not None else torch.randn(1, 3, 64, 96)).detach().float().cpu()
    try:
        with _exportable_pooling(), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
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
    except Exception as exc:  # noqa: BLE001 - every exporter failure becomes one line
        raise ExportError(f"ONNX export ({exporter}, opset {opset}) failed: {first_line(exc)}") from None
    finally:
        net.train(was_training)
    return path


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


# --------------------------------------------------------------------------- int8


class _Calibration:
    """ONNX Runtime ``CalibrationDataReader``: yields one ``{input: array}`` per calibration tensor."""

    def __init__(self, tensors: Sequence[torch.Tensor]):
        self._arrays = [t.detach().float().cpu().numpy() for t in tensors]
        self._index = 0

    def get_next(self):
        if self._index >= len(self._arrays):
            return None
        self._index += 1
        return {INPUT_NAME: self._arrays[self._index - 1]}

    def rewind(self):
        self._index = 0


def quantize_int8(
    src: str | Path,
    dst: str | Path,
    calibration: Sequence[torch.Tensor],
    *,
    per_channel: bool = True,
    method: str = "percentile",
    fallback: bool = True,
) -> str:
    """Static int8 quantisation of an ONNX model with ONNX Runtime (``quantize_static``).

    QDQ format (QuantizeLinear/DequantizeLinear pairs that ONNX Runtime fuses into int8 kernels), int8
    weights (per output channel with ``per_channel``), uint8 activations whose ranges are calibrated by
    running ``calibration`` through the fp32 model.

    Percentile ranges are the default because they kept accuracy where MinMax did not: CamVid val mIoU of
    lraspp_mobilenet_v3_large.camvid (101 images), calibrated on 16 CamVid train images, was 53.88 in fp32;
    in int8 with per-channel weights and uint8 activations 52.60 with MinMax, 53.74 with Percentile (99.999),
    52.60 with Entropy; 52.60 with int8 activations and MinMax; 52.92 with per-tensor weights and MinMax
    (measured by ``benchmarks/int8_calibration.py``, onnxruntime 1.31.1).

    Args:
        src: fp32 ONNX file from :func:`export_onnx`.
        dst: int8 ONNX file to write.
        calibration: preprocessed float32 inputs ``(N, 3, H, W)`` (sizes may differ), e.g. a few images of
            the target domain.
        per_channel: one scale per output channel of each weight (else one per tensor).
        method: activation range estimate, ``"minmax"``, ``"percentile"`` (99.999th) or ``"entropy"``.
        fallback: when a histogram method fails (ONNX Runtime's histogram cannot bin an activation whose
            calibrated range is degenerate, seen with random weights), quantise with MinMax ranges instead.

    Returns:
        The range method used (``method``, or ``"minmax"`` after a fallback).

    Raises:
        UserError: onnxruntime missing, no calibration input, unknown method.
        ExportError: the quantiser failed.
    """
    require("onnxruntime", "onnx", "int8 quantisation")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    if method not in methods:
        raise UserError(f"calibration method {method!r}: expected one of {', '.join(methods)}")
    if not calibration:
        raise UserError("int8 quantisation needs at least one calibration image")
    attempts = [method] + (["minmax"] if fallback and method != "minmax" else [])
    failures = []
    for attempt in attempts:
        logging.disable(logging.WARNING)  # "consider pre-processing" advice, once per call
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the histogram methods print their progress
                quantize_static(
                    str(src),
                    str(dst),
                    _Calibration(calibration),
                    quant_format=QuantFormat.QDQ,
                    per_channel=per_channel,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=methods[attempt],
                )
            return attempt
        except Exception as exc:  # noqa: BLE001 - reported below, after the fallback
            failures.append(f"{attempt}: {first_line(exc)}")
        finally:
            logging.disable(logging.NOTSET)
    raise ExportError(f"int8 quantisation of {src} failed ({'; '.join(failures)})")


def describe_int8(method: str = "percentile") -> str:
    """One line naming the int8 settings of :func:`quantize_int8`."""
    ranges = {"minmax": "MinMax", "percentile": "Percentile (99.999)", "entropy": "Entropy"}[method]
    return f"QDQ, per-channel int8 weights, uint8 activations, {ranges} ranges"


# --------------------------------------------------------------------------- metadata


def write_metadata(path: str | Path, values: dict) -> None:
    """Set ``metadata_props`` of an ONNX file in place (values stored as strings; lists/dicts as JSON)."""
    import json

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


# --------------------------------------------------------------------------- check


@dataclass
class ExportCheck:
    """Outcome of :func:`check_onnx`. mIoU values are fractions (0..1).

    Attributes:
        images: images compared.
        max_abs_diff: largest ``|logits_onnx - logits_torch|`` over all images and the extra input.
        miou_torch: mIoU of PyTorch's predictions against the labels (None without labels).
        miou_onnx: mIoU of the ONNX model's predictions against the labels (None without labels).
        miou_agreement: mIoU of the ONNX predictions scored against PyTorch's predictions (1.0 = same).
        pixel_agreement: fraction of pixels where both predict the same class.
        dynamic_shape: the extra input ``[N, 3, H, W]`` (not the traced size) and its max difference.
        passed: whether the thresholds held.
        reason: why it failed ("" when passed).
    """

    images: int
    max_abs_diff: float
    miou_torch: float | None
    miou_onnx: float | None
    miou_agreement: float
    pixel_agreement: float
    dynamic_shape: dict = field(default_factory=dict)
    passed: bool = False
    reason: str = ""

    @property
    def miou_drop(self) -> float:
        """mIoU points lost (x 100): against labels when there are labels, else ``1 - miou_agreement``."""
        if self.miou_torch is not None and self.miou_onnx is not None:
            return (self.miou_torch - self.miou_onnx) * 100
        return (1.0 - self.miou_agreement) * 100

    def to_dict(self) -> dict:
        return {**asdict(self), "miou_drop_points": self.miou_drop}


def _run_onnx(session, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.detach().float().cpu().numpy()})[0])


def check_onnx(
    path: str | Path,
    model: nn.Module,
    images: Sequence[tuple[torch.Tensor, torch.Tensor | None]],
    num_classes: int,
    *,
    max_abs_diff: float | None = 1e-3,
    max_miou_drop: float = 0.05,
    dynamic_shape: tuple[int, int, int, int] | None = (2, 3, 97, 131),
    threads: int | None = None,
) -> ExportCheck:
    """Compare an ONNX file with the PyTorch model it came from, on CPU.

    Args:
        path: the ONNX file.
        model: the PyTorch network (run in eval mode on CPU under ``torch.inference_mode``; a copy when it is
            on another device; its mode is restored).
        images: ``(x, target)`` pairs: ``x`` preprocessed ``(1, 3, H, W)`` float32, ``target`` ``(H, W)``
            int64 class indices with 255 = ignore index, or None.
        num_classes: classes the model predicts.
        max_abs_diff: largest allowed logits difference (None: not a criterion, e.g. int8).
        max_miou_drop: largest allowed mIoU drop in points (x 100), see :attr:`ExportCheck.miou_drop`.
        dynamic_shape: ``(N, 3, H, W)`` of one extra random input (a size unlike the traced one) compared
            as well; None to skip.
        threads: ONNX Runtime intra-op threads.

    Returns:
        :class:`ExportCheck` (``passed`` False with a ``reason`` when a threshold is exceeded; no raise).

    Raises:
        UserError: no images, or onnxruntime missing.
    """

    if not images:
        raise UserError("the export check needs at least one image")
    session = onnx_session(path, threads=threads)
    net = model
    if any(p.device.type != "cpu" for p in model.parameters()):
        import copy

        net = copy.deepcopy(model).cpu()
    was_training = net.training
    net.eval()
    try:
        return _compare(session, net, images, num_classes, max_abs_diff, max_miou_drop, dynamic_shape)
    finally:
        net.train(was_training)


def _compare(session, net, images, num_classes, max_abs_diff, max_miou_drop, dynamic_shape) -> ExportCheck:
    from segbench.metrics import ConfusionMatrix

    labelled = all(t is not None for _, t in images)
    cm_torch = ConfusionMatrix(num_classes) if labelled else None
    cm_onnx = ConfusionMatrix(num_classes) if labelled else None
    cm_agree = ConfusionMatrix(num_classes)
    diff, same, total = 0.0, 0, 0
    with torch.inference_mode():
        for x, target in images:
            ref = net(x.float().cpu())
            try:
                out = _run_onnx(session, x)
            except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors become the check's reason
                return ExportCheck(
                    len(images),
                    math.inf,
                    None,
                    None,
                    0.0,
                    0.0,
                    passed=False,
                    reason=f"ONNX Runtime fails on input {list(x.shape)}: {first_line(exc)}",
                )
            if out.shape != ref.shape:
                return ExportCheck(
                    len(images),
                    math.inf,
                    None,
                    None,
                    0.0,
                    0.0,
                    passed=False,
                    reason=f"output shape {list(out.shape)} != PyTorch's {list(ref.shape)}",
                )
            diff = max(diff, float((out - ref).abs().max()))
            p_ref, p_out = ref.argmax(1), out.argmax(1)
            cm_agree.update(p_out, p_ref)
            same += int((p_ref == p_out).sum())
            total += p_ref.numel()
            if labelled:
                tgt = torch.as_tensor(target).reshape(p_ref.shape).long()
                cm_torch.update(p_ref, tgt)
                cm_onnx.update(p_out, tgt)
        dyn: dict = {}
        if dynamic_shape is not None:
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(tuple(dynamic_shape), generator=gen)
            ref = net(x)
            try:
                out = _run_onnx(session, x)
                dyn_diff = float((out - ref).abs().max()) if out.shape == ref.shape else math.inf
                dyn = {"shape": list(dynamic_shape), "max_abs_diff": dyn_diff}
            except Exception as exc:  # noqa: BLE001 - a graph that kept the traced size fails here
                dyn = {"shape": list(dynamic_shape), "max_abs_diff": math.inf, "error": first_line(exc)}
    check = ExportCheck(
        images=len(images),
        max_abs_diff=diff,
        miou_torch=cm_torch.compute().miou if labelled else None,
        miou_onnx=cm_onnx.compute().miou if labelled else None,
        miou_agreement=cm_agree.compute().miou,
        pixel_agreement=same / max(total, 1),
        dynamic_shape=dyn,
    )
    reasons = []
    if max_abs_diff is not None and not diff <= max_abs_diff:
        reasons.append(f"max |logits difference| {diff:.3g} > {max_abs_diff:g}")
    if dyn and "error" in dyn:
        reasons.append(f"input {dyn['shape']} fails: {dyn['error']}")
    elif dyn and max_abs_diff is not None and not dyn["max_abs_diff"] <= max_abs_diff:
        reasons.append(f"at input {dyn['shape']} max |logits difference| {dyn['max_abs_diff']:.3g} > {max_abs_diff:g}")
    if not check.miou_drop <= max_miou_drop:
        reasons.append(f"mIoU drop {check.miou_drop:.2f} points > {max_miou_drop:g}")
    check.passed = not reasons
    check.reason = "; ".join(reasons)
    return check


def temporary_path(target: Path, suffix: str = ".onnx") -> Path:
    """A fresh file name next to ``target`` (same file system, so ``os.replace`` onto it is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(name)


def check_images(
    data: str | Path | None, split: str, mean, std, class_names: Sequence[str], limit: int = 8
) -> tuple[list[tuple[torch.Tensor, torch.Tensor | None]], str]:
    """Images for :func:`check_onnx`: ``(x (1, 3, H, W), target (H, W) | None)`` pairs and a description.

    Targets are kept only when the data's classes equal the model's (``class_names``).

    Args:
        data: a dataset folder or a folder of images; None for the CamVid val sample shipped with segbench.
        split: split of a dataset folder.
        limit: at most this many images (0: all).

    Raises:
        UserError: bad folder, or no readable image.
    """
    from segbench.data.datasets import open_dataset
    from segbench.data.transforms import preprocess

    if data is None:
        from segbench.data.datasets import sample_dir

        data = sample_dir()
        what = "the CamVid val sample shipped with segbench"
    else:
        what = str(data)
    dataset = open_dataset(data, split)
    labelled = dataset.labelled and list(dataset.class_set.names) == list(class_names)
    pairs = []
    for i in range(len(dataset)):
        if limit and len(pairs) >= limit:
            break
        item = dataset[i]
        if "error" in item:
            continue
        target = torch.from_numpy(item["mask"]).long() if labelled else None
        pairs.append((preprocess(item["image"], mean, std), target))
    if not pairs:
        raise UserError(f"{what}: no readable image to check the export on")
    return pairs, f"{len(pairs)} images of {what}" + ("" if labelled else " (no labels of the model's classes)")


def export_checked(
    model: nn.Module,
    info,
    output: str | Path,
    *,
    int8: bool = False,
    data: str | Path | None = None,
    split: str = "val",
    max_images: int = 8,
    calibration: str | Path | None = None,
    exporter: str = "dynamo",
    opset: int | None = None,
    atol: float = 1e-3,
    max_miou_drop: float | None = None,
    overwrite: bool = False,
    log=print,
) -> dict:
    """Export ``model`` to ONNX, check it against PyTorch, and only then write ``output`` (atomically).

    Steps: :func:`export_onnx` (dynamic N/H/W) into a temporary file next to ``output``; :func:`check_onnx`
    on ``max_images`` images of ``data`` (default: the shipped CamVid val sample) with ``atol`` and a mIoU
    drop of at most ``max_miou_drop`` points (default 0.05); with ``int8``, :func:`quantize_int8` calibrated
    on the images of ``calibration`` (default: the shipped sample) and the same check without ``atol`` and with
    ``max_miou_drop`` (default 0.5 points). The check's numbers go into the file's ``metadata_props``
    (``classes``, ``palette``, ``mean``, ``std``, ``max_abs_diff``, ``miou``, ...) before it is moved onto
    ``output``.

    Args:
        model: the PyTorch network.
        info: its :class:`segbench.models.ModelInfo` (classes, mean, std, provenance).
        output: the ``.onnx`` file to write.
        log: called with each line of the report (``print`` by default).

    Returns:
        ``{"output": str, "precision": "fp32" | "int8", "fp32": check dict, "int8": check dict | None, ...}``.

    Raises:
        UserError: ``output`` exists without ``overwrite``; bad data/calibration folder; missing packages.
        ExportError: the export failed or a check did not pass (nothing is written then).
    """
    output = Path(output)
    if output.exists() and not overwrite:
        raise UserError(f"{output}: exists; pass --overwrite to replace it")
    if output.suffix.lower() != ".onnx":
        raise UserError(f"--output {output}: expected a file name ending in .onnx")
    images, described = check_images(data, split, info.mean, info.std, info.class_names, max_images)
    model = model.eval()
    drop_fp32 = 0.05 if max_miou_drop is None or int8 else max_miou_drop
    tmp_fp32 = temporary_path(output)
    tmp_int8 = temporary_path(output, ".int8.onnx") if int8 else None
    try:
        t0 = time.perf_counter()
        export_onnx(model, tmp_fp32, exporter=exporter, opset=opset)
        log(
            f"exported {info.name} with the {exporter} exporter (opset {opset or DEFAULT_OPSET[exporter]}, "
            f"dynamic batch/height/width) in {time.perf_counter() - t0:.1f} s"
        )
        log(f"checking against PyTorch on {described}, plus one random input of another size:")
        fp32 = check_onnx(tmp_fp32, model, images, info.num_classes, max_abs_diff=atol, max_miou_drop=drop_fp32)
        log("  fp32: " + _describe(fp32))
        if not fp32.passed:
            raise ExportError(f"{output}: not written, the ONNX model does not reproduce PyTorch: {fp32.reason}")
        final, checked, q = tmp_fp32, fp32, None
        if int8:
            drop_int8 = 0.5 if max_miou_drop is None else max_miou_drop
            calib = sample_calibration(info.mean, info.std, folder=calibration)
            t0 = time.perf_counter()
            used = quantize_int8(tmp_fp32, tmp_int8, calib)
            where = calibration or "the shipped CamVid val sample"
            log(
                f"quantised to int8 ({describe_int8(used)} from "
                f"{len(calib)} images of {where}) in {time.perf_counter() - t0:.1f} s"
            )
            if calibration is None and data is None:
                log(
                    "  note: calibrated on the same sample images it is checked on; pass --calibration DIR "
                    "(other images of the same domain) for an unbiased check"
                )
            q = check_onnx(tmp_int8, model, images, info.num_classes, max_abs_diff=None, max_miou_drop=drop_int8)
            log("  int8: " + _describe(q))
            if not q.passed:
                raise ExportError(
                    f"{output}: not written, the int8 model loses too much: {q.reason} "
                    "(raise --max-miou-drop to accept it)"
                )
            final, checked = tmp_int8, q
        meta = {
            "segbench_model": info.name,
            "arch": info.arch,
            "weights": str(info.weights),
            "classes": list(info.class_names),
            "palette": [list(c) for c in info.palette],
            "mean": list(info.mean),
            "std": list(info.std),
            "input": "input: float32 (N, 3, H, W), RGB scaled to 0..1 then (x - mean) / std",
            "output": "logits: float32 (N, num_classes, H, W)",
            "precision": "int8" if int8 else "fp32",
            "int8_settings": describe_int8(used) if int8 else "",
            "exporter": exporter,
            "opset": opset or DEFAULT_OPSET[exporter],
            "torch": torch.__version__,
            "check_images": described,
            "max_abs_diff": checked.max_abs_diff,
            "max_abs_diff_fp32": fp32.max_abs_diff,
            "miou": checked.miou_onnx,
            "miou_pytorch": checked.miou_torch,
            "miou_agreement": checked.miou_agreement,
            "miou_drop_points": checked.miou_drop,
        }
        write_metadata(final, meta)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(final, 0o666 & ~umask)  # mkstemp made it private; give it a normal file's permissions
        os.replace(final, output)
    finally:
        for tmp in (tmp_fp32, tmp_int8):
            if tmp is not None:
                for leftover in (tmp, tmp.with_name(tmp.name + ".data")):  # exporters may write weights beside
                    leftover.unlink(missing_ok=True)
    size_mb = output.stat().st_size / 1e6
    log(
        f"wrote {output} ({size_mb:.2f} MB, {'int8' if int8 else 'fp32'}); the check's numbers are in its metadata_props"
    )
    return {
        "output": str(output),
        "precision": meta["precision"],
        "size_mb": size_mb,
        "fp32": fp32.to_dict(),
        "int8": q.to_dict() if q is not None else None,
        "metadata": meta,
    }


def _describe(check: ExportCheck) -> str:
    parts = [f"max |logits difference| {check.max_abs_diff:.2e}"]
    if check.dynamic_shape:
        parts.append(f"at {'x'.join(map(str, check.dynamic_shape['shape']))} {check.dynamic_shape['max_abs_diff']:.2e}")
    if check.miou_torch is not None:
        parts.append(f"mIoU PyTorch {check.miou_torch * 100:.2f} / ONNX {check.miou_onnx * 100:.2f}")
    parts.append(
        f"agreement with PyTorch: mIoU {check.miou_agreement * 100:.2f}, pixels {check.pixel_agreement * 100:.2f} %"
    )
    parts.append(f"mIoU drop {check.miou_drop:.2f} points")
    return ", ".join(parts) + (" -> ok" if check.passed else f" -> FAILED ({check.reason})")


def sample_calibration(mean, std, *, folder: str | Path | None = None, limit: int = 8) -> list[torch.Tensor]:
    """Preprocessed images for int8 calibration: ``(1, 3, H, W)`` float32 tensors, one per image.

    Args:
        mean, std: the model's input normalisation.
        folder: a folder (or dataset folder) of images; default the CamVid val sample shipped with segbench.
        limit: at most this many images (the first, sorted by name).

    Raises:
        UserError: no readable image in ``folder``.
    """
    from segbench.data.datasets import images as image_dataset
    from segbench.data.datasets import open_dataset, sample_dir
    from segbench.data.transforms import preprocess

    if folder is None:
        dataset = open_dataset(sample_dir(), "val")
    else:
        dataset = image_dataset([folder])
    tensors = []
    for i in range(len(dataset)):
        if len(tensors) >= limit:
            break
        item = dataset[i]
        if "error" not in item:
            tensors.append(preprocess(item["image"], mean, std))
    if not tensors:
        raise UserError(f"{folder or 'the shipped sample'}: no readable image for int8 calibration")
    return tensors
