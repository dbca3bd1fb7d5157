"""The checked export behind ``segbench export``.

An exported model is declared good only after its outputs were compared with PyTorch's
(:func:`check_onnx`, in :mod:`segbench.export.verify`, by default on the CamVid val sample shipped with
segbench). :func:`export_checked` exports, checks, optionally quantises to int8 and checks again, and writes
the file only when every check passed.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from segbench.errors import UserError
from segbench.files import write_failure
from segbench.export.onnx import DEFAULT_OPSET, ExportError, export_onnx, write_metadata
from segbench.export.quantize import describe_int8, quantize_int8, sample_calibration
from segbench.export.verify import ExportCheck, check_images, check_onnx

__all__ = ["ExportCheck", "check_images", "check_onnx", "export_checked", "temporary_path"]


def temporary_path(target: Path, suffix: str = ".onnx") -> Path:
    """A fresh file name next to ``target`` (same file system, so ``os.replace`` onto it is atomic)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    return Path(name)


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
    (``classes``, ``palette``, the keys of :meth:`segbench.preprocessing.Preprocessing.to_dict` (``mean``,
    ``std``, ...), ``max_abs_diff``, ``miou``, ...) before it is moved onto ``output``.

    Args:
        model: the PyTorch network.
        info: its :class:`segbench.models.ModelInfo` (classes, preprocessing, provenance).
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
    images, described = check_images(data, split, info.preprocessing, info.class_names, max_images)
    model = model.eval()
    drop_fp32 = 0.05 if max_miou_drop is None or int8 else max_miou_drop
    tmp_fp32 = temporary_path(output)
    tmp_int8 = temporary_path(output, ".int8.onnx") if int8 else None
    opset = opset or DEFAULT_OPSET[exporter]
    try:
        t0 = time.perf_counter()
        export_onnx(model, tmp_fp32, exporter=exporter, opset=opset)
        log(
            f"exported {info.name} with the {exporter} exporter (opset {opset}, "
            f"dynamic batch/height/width) in {time.perf_counter() - t0:.1f} s"
        )
        log(f"checking against PyTorch on {described}, plus one random input of another size:")
        fp32 = check_onnx(tmp_fp32, model, images, info.num_classes, max_abs_diff=atol, max_miou_drop=drop_fp32)
        log("  fp32: " + _describe(fp32))
        if not fp32.passed:
            raise ExportError(f"{output}: not written, the ONNX model does not reproduce PyTorch: {fp32.reason}")
        final, checked, q, settings = tmp_fp32, fp32, None, ""
        if int8:
            drop_int8 = 0.5 if max_miou_drop is None else max_miou_drop
            q, settings = _int8_checked(model, info, tmp_fp32, tmp_int8, images, output, calibration, data,
                                        drop_int8, log)  # fmt: skip
            final, checked = tmp_int8, q
        meta = _metadata(info, checked, fp32, settings, exporter, opset, described)
        write_metadata(final, meta)
        _publish(final, output)
    except Exception as exc:
        failure = write_failure(output, exc, "the ONNX file")
        if failure is None:
            raise
        raise failure from None
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


def _int8_checked(model, info, src: Path, dst: Path, images, output: Path, calibration, data, max_miou_drop,
                  log) -> tuple[ExportCheck, str]:  # fmt: skip
    """Quantise ``src`` into ``dst`` and check it; returns the check and the int8 settings in one line.

    Raises:
        ExportError: the quantiser failed, or the int8 model loses more than ``max_miou_drop`` points.
    """
    calib = sample_calibration(info.preprocessing, folder=calibration)
    t0 = time.perf_counter()
    settings = describe_int8(quantize_int8(src, dst, calib))
    where = calibration or "the shipped CamVid val sample"
    log(f"quantised to int8 ({settings} from {len(calib)} images of {where}) in {time.perf_counter() - t0:.1f} s")
    if calibration is None and data is None:
        log(
            "  note: calibrated on the same sample images it is checked on; pass --calibration DIR "
            "(other images of the same domain) for an unbiased check"
        )
    q = check_onnx(dst, model, images, info.num_classes, max_abs_diff=None, max_miou_drop=max_miou_drop)
    log("  int8: " + _describe(q))
    if not q.passed:
        raise ExportError(
            f"{output}: not written, the int8 model loses too much: {q.reason} (raise --max-miou-drop to accept it)"
        )
    return q, settings


def _metadata(info, checked: ExportCheck, fp32: ExportCheck, int8_settings: str, exporter: str, opset: int,
              described: str) -> dict:  # fmt: skip
    """The ``metadata_props`` of a checked export: what the model is, how to feed it, and the check's numbers."""
    return {
        "segbench_model": info.name,
        "arch": info.arch,
        "weights": str(info.weights),
        "classes": list(info.class_names),
        "palette": [list(c) for c in info.palette],
        **info.preprocessing.to_dict(),
        "input": "input: float32 (N, 3, H, W), " + info.preprocessing.describe(),
        "output": "logits: float32 (N, num_classes, H, W)",
        "precision": "int8" if int8_settings else "fp32",
        "int8_settings": int8_settings,
        "exporter": exporter,
        "opset": opset,
        "torch": torch.__version__,
        "check_images": described,
        "max_abs_diff": checked.max_abs_diff,
        "max_abs_diff_fp32": fp32.max_abs_diff,
        "miou": checked.miou_onnx,
        "miou_pytorch": checked.miou_torch,
        "miou_agreement": checked.miou_agreement,
        "miou_drop_points": checked.miou_drop,
    }


def _publish(final: Path, output: Path) -> None:
    """Move the checked temporary file onto ``output`` with a normal file's permissions (mkstemp's are private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(final, 0o666 & ~umask)
    os.replace(final, output)


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
