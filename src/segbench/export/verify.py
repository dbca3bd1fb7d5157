"""The comparison of an exported ONNX model with the PyTorch model it came from (:func:`check_onnx`, its
outcome :class:`ExportCheck`) and the images it runs on (:func:`check_images`).

:func:`check_onnx` runs PyTorch and ONNX Runtime on the same images and reports the maximum absolute difference
of the logits, the mIoU of both (against the labels when the model predicts the data's classes, else the ONNX
predictions scored against PyTorch's), and it runs one more input whose batch, height and width differ from
the traced example, which catches graphs that silently kept a traced size. The checked export that uses it is
:func:`segbench.export.check.export_checked`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from segbench.errors import UserError, first_line
from segbench.export.onnx import cpu_module, onnx_session, run_onnx
from segbench.preprocessing import Preprocessing

__all__ = ["ExportCheck", "check_images", "check_onnx"]


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


def check_images(
    data: str | Path | None, split: str, preprocessing: Preprocessing, class_names: Sequence[str], limit: int = 8
) -> tuple[list[tuple[torch.Tensor, torch.Tensor | None]], str]:
    """Images for :func:`check_onnx`: ``(x (1, 3, H, W), target (H, W) | None)`` pairs and a description.

    Targets are kept only when the data's classes equal the model's (``class_names``).

    Args:
        data: a dataset folder or a folder of images; None for the CamVid val sample shipped with segbench.
        split: split of a dataset folder.
        preprocessing: what the model expects of its input (:class:`segbench.preprocessing.Preprocessing`).
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
        pairs.append((preprocess(item["image"], preprocessing), target))
    if not pairs:
        raise UserError(f"{what}: no readable image to check the export on")
    return pairs, f"{len(pairs)} images of {what}" + ("" if labelled else " (no labels of the model's classes)")
