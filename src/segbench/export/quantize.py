"""Static int8 quantisation of an exported ONNX model with ONNX Runtime, and its calibration images.

:func:`quantize_int8` writes QDQ int8 (per-channel int8 weights, uint8 activations, ranges calibrated on
given images); :func:`sample_calibration` gives such images (by default the CamVid val sample shipped with
segbench); :func:`describe_int8` names the settings in one line.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from segbench.errors import UserError, first_line, require
from segbench.export.onnx import INPUT_NAME, ExportError
from segbench.preprocessing import Preprocessing

__all__ = ["CalibrationReader", "describe_int8", "quantize_int8", "sample_calibration"]


class CalibrationReader:
    """ONNX Runtime ``CalibrationDataReader``: yields one ``{input: array}`` per calibration tensor, converting
    each to numpy only when it is read (no second copy of the calibration set).

    ``__len__`` and ``set_range`` let ONNX Runtime's strided calibration (``CalibStridedMinMax``) run one
    image at a time: the activations of one image are reduced into the range statistics (min/max, or the
    merged histograms of Percentile and Entropy) and dropped before the next image runs, so calibration
    memory does not grow with the number of images.

    Args:
        tensors: preprocessed float32 inputs ``(N, 3, H, W)`` (sizes may differ).
    """

    def __init__(self, tensors: Sequence[torch.Tensor]):
        self._tensors = list(tensors)
        self._index, self._end = 0, len(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._index, self._end = start_index, min(end_index, len(self._tensors))

    def get_next(self):
        if self._index >= self._end:
            return None
        self._index += 1
        return {INPUT_NAME: self._tensors[self._index - 1].detach().float().cpu().numpy()}

    def rewind(self):
        self._index, self._end = 0, len(self._tensors)


STREAMING_OPTIONS = {"CalibStridedMinMax": 1}
"""ONNX Runtime ``quantize_static`` extra options that calibrate one image at a time (bounded memory); its
``CalibMaxIntermediateOutputs`` is not used: in onnxruntime 1.32 it drops the outputs without reducing them."""


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
    running ``calibration`` through the fp32 model, one image at a time (:class:`CalibrationReader`,
    :data:`STREAMING_OPTIONS`): the memory of calibration is that of one image's activations whatever the
    number of images. Histograms (Percentile, Entropy) are merged image by image, re-binned when an image
    widens the range, so the ranges can differ slightly from one histogram of all images at once.

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
                    CalibrationReader(calibration),
                    quant_format=QuantFormat.QDQ,
                    per_channel=per_channel,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=methods[attempt],
                    extra_options=dict(STREAMING_OPTIONS),
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


def sample_calibration(
    preprocessing: Preprocessing, *, folder: str | Path | None = None, limit: int = 8
) -> list[torch.Tensor]:
    """Preprocessed images for int8 calibration: ``(1, 3, H, W)`` float32 tensors, one per image.

    Args:
        preprocessing: what the model expects of its input (:class:`segbench.preprocessing.Preprocessing`).
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
            tensors.append(preprocess(item["image"], preprocessing))
    if not tensors:
        raise UserError(f"{folder or 'the shipped sample'}: no readable image for int8 calibration")
    return tensors
