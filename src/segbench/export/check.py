"""The check that an exported model still segments correctly, and the checked export behind ``segbench export``.

An exported model is declared good only after its outputs were compared with PyTorch's:
:func:`check_onnx` runs PyTorch and ONNX Runtime on the same images (by default the CamVid val sample
shipped with segbench) and reports the maximum absolute difference of the logits, the mIoU of both
(against the labels when the model predicts the data's classes, else the ONNX predictions scored against
PyTorch's), and it runs one more input whose batch, height and width differ from the traced example, which
catches graphs that silently kept a traced size. :func:`export_checked` exports, checks, optionally
quantises to int8 and checks again, and writes the file only when every check passed.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from segbench.errors import UserError, first_line
from segbench.files import write_failure
from segbench.export.onnx import (
    DEFAULT_OPSET,
    ExportError,
    cpu_module,
    export_onnx,
    onnx_session,
    run_onnx,
    write_metadata,
)
from segbench.export.quantize import describe_int8, quantize_int8, sample_calibration

__all__ = ["ExportCheck", "check_images", "check_onnx", "export_checked", "temporary_path"]


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
    net = cpu_module(model)
    was_training = net.training
    net.eval()
    try:
        return _compare(session, net, images, num_classes, max_abs_diff, max_miou_drop, dynamic_shape)
    finally:
        net.train(was_training)


def _failed(images: int, reason: str) -> ExportCheck:
    """A failed check that has no numbers (ONNX Runtime raised, or the output has another shape)."""
    return ExportCheck(images, math.inf, None, None, 0.0, 0.0, passed=False, reason=reason)


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
                out = run_onnx(session, x)
            except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors become the check's reason
                return _failed(len(images), f"ONNX Runtime fails on input {list(x.shape)}: {first_line(exc)}")
            if out.shape != ref.shape:
                return _failed(len(images), f"output shape {list(out.shape)} != PyTorch's {list(ref.shape)}")
            diff = max(diff, float((out - ref).abs().max()))
            p_ref, p_out = ref.argmax(1), out.argmax(1)
            cm_agree.update(p_out, p_ref)
            same += int((p_ref == p_out).sum())
            total += p_ref.numel()
            if labelled:
                tgt = torch.as_tensor(target).reshape(p_ref.shape).long()
                cm_torch.update(p_ref, tgt)
                cm_onnx.update(p_out, tgt)
        dyn = _dynamic_shape_check(session, net, dynamic_shape) if dynamic_shape is not None else {}
    check = ExportCheck(
        images=len(images),
        max_abs_diff=diff,
        miou_torch=cm_torch.compute().miou if labelled else None,
        miou_onnx=cm_onnx.compute().miou if labelled else None,
        miou_agreement=cm_agree.compute().miou,
        pixel_agreement=same / max(total, 1),
        dynamic_shape=dyn,
    )
    reasons = _reasons(check, max_abs_diff, max_miou_drop)
    check.passed = not reasons
    check.reason = "; ".join(reasons)
    return check


def _dynamic_shape_check(session, net: nn.Module, shape: tuple[int, int, int, int]) -> dict:
    """``{"shape", "max_abs_diff"[, "error"]}`` of one random input of ``shape`` (a graph that kept the
    traced size fails here or differs)."""
    x = torch.randn(tuple(shape), generator=torch.Generator().manual_seed(0))
    ref = net(x)
    try:
        out = run_onnx(session, x)
    except Exception as exc:  # noqa: BLE001 - reported as the check's reason
        return {"shape": list(shape), "max_abs_diff": math.inf, "error": first_line(exc)}
    return {
        "shape": list(shape),
        "max_abs_diff": float((out - ref).abs().max()) if out.shape == ref.shape else math.inf,
    }


def _reasons(check: ExportCheck, max_abs_diff: float | None, max_miou_drop: float) -> list[str]:
    """Why ``check`` fails its thresholds (empty when it passes)."""
    reasons, dyn = [], check.dynamic_shape
    if max_abs_diff is not None and not check.max_abs_diff <= max_abs_diff:
        reasons.append(f"max |logits difference| {check.max_abs_diff:.3g} > {max_abs_diff:g}")
    if dyn and "error" in dyn:
        reasons.append(f"input {dyn['shape']} fails: {dyn['error']}")
    elif dyn and max_abs_diff is not None and not dyn["max_abs_diff"] <= max_abs_diff:
        reasons.append(f"at input {dyn['shape']} max |logits difference| {dyn['max_abs_diff']:.3g} > {max_abs_diff:g}")
    if not check.miou_drop <= max_miou_drop:
        reasons.append(f"mIoU drop {check.miou_drop:.2f} points > {max_miou_drop:g}")
    return reasons


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
    calib = sample_calibration(info.mean, info.std, folder=calibration)
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
        "mean": list(info.mean),
        "std": list(info.std),
        "input": "input: float32 (N, 3, H, W), RGB scaled to 0..1 then (x - mean) / std",
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
