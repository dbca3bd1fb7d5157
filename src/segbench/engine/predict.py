"""Label maps for a set of images, written as files: what ``segbench predict`` does, as a library function.

For each image ``STEM``: ``STEM_label.png`` (the palette-coloured label map), ``STEM_overlay.png`` (the
label map blended over the image), optionally ``STEM_confidence.png`` (the maximum softmax probability per
pixel, 0..255 = 0..1) and ``STEM_classes.json`` (settings, mean confidence, the fraction of pixels of each
class). Undecodable images are skipped and listed; the others go on.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from segbench.classes import colorize
from segbench.data.io import label_image, save_png, write_bytes_atomic
from segbench.engine.crf import CRFConfig, dense_crf
from segbench.engine.inference import InferenceConfig, predict_label, predict_probs
from segbench.files import WriteError, write_skipped

OUTPUT_KINDS = ("label.png", "overlay.png", "confidence.png", "classes.json")


@dataclass
class PredictResult:
    """``done``: images segmented; ``already_done``: images whose outputs all existed (``skip_existing``);
    ``skipped``: ``{"file", "reason"}`` of each image that could not be read or whose outputs could not be
    written (a full disk, a read-only folder); ``skipped_file``: the full list of them in the output folder
    (``skipped.txt``; None when nothing was skipped or the list could not be written)."""

    done: int = 0
    already_done: int = 0
    skipped: list[dict] = field(default_factory=list)
    skipped_file: Path | None = None


def output_paths(out: Path, stems: list[str], confidence: bool) -> list[dict[str, Path]]:
    """For each stem, ``{kind: out / f"{stem}_{kind}"}`` over :data:`OUTPUT_KINDS` (without
    ``confidence.png`` unless ``confidence``)."""
    kinds = [k for k in OUTPUT_KINDS if confidence or k != "confidence.png"]
    return [{k: out / f"{stem}_{k}" for k in kinds} for stem in stems]


def segment(runner, image: np.ndarray, info, inference: InferenceConfig, crf: CRFConfig | None,
            device) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Label map ``(H, W)`` int64 and confidence ``(H, W)`` float32 (max softmax probability) of one
    ``(H, W, 3)`` uint8 image. Without ``crf``, large images are finished band by band (bounded memory)
    when sliding without TTA."""
    if crf is None:
        return predict_label(runner, image, info.preprocessing, inference, device)
    probs = predict_probs(runner, image, info.preprocessing, inference, device)
    probs = torch.from_numpy(dense_crf(image, probs, crf)).unsqueeze(0)
    conf, mask = (t[0].cpu().numpy() for t in probs.max(1))
    return mask, conf


def class_fractions(mask: np.ndarray, class_names: list[str]) -> tuple[np.ndarray, dict[str, float]]:
    """Pixel counts per class and ``{name: fraction of the pixels}`` of a label map."""
    present = np.bincount(mask.ravel(), minlength=len(class_names))
    return present, {name: float(present[c]) / mask.size for c, name in enumerate(class_names)}


def write_outputs(paths: dict[str, Path], item: dict, mask: np.ndarray, conf: np.ndarray, info, summary: dict,
                  alpha: float) -> np.ndarray:  # fmt: skip
    """Write the files of ``paths`` for one image; ``summary`` (settings) goes into ``classes.json``.

    Returns:
        The pixel count of each class.
    """
    save_png(paths["label.png"], label_image(mask, info.palette))
    overlay = Image.fromarray(colorize(mask, info.palette))
    save_png(paths["overlay.png"], Image.blend(Image.fromarray(item["image"]), overlay, alpha))
    if "confidence.png" in paths:
        save_png(paths["confidence.png"], Image.fromarray(np.clip(conf * 255 + 0.5, 0, 255).astype(np.uint8)))
    present, fractions = class_fractions(mask, list(info.class_names))
    record = {
        "image": item["path"], "model": info.name, "backend": summary["backend"],
        "height": int(mask.shape[0]), "width": int(mask.shape[1]),
        "inference": summary["inference"], "crf": summary["crf"],
        "mean_confidence": float(conf.mean()), "class_fractions": fractions,
    }  # fmt: skip
    write_bytes_atomic(paths["classes.json"], (json.dumps(record, indent=2) + "\n").encode())
    return present


def predict_images(runner, dataset, info, out: Path, targets: list[dict[str, Path]], *, inference: InferenceConfig,
                   crf: CRFConfig | None = None, device="cpu", alpha: float = 0.5, backend: str = "eager",
                   skip_existing: bool = False,
                   on_image: Callable[[dict, dict[str, Path], list[str]], None] | None = None) -> PredictResult:  # fmt: skip
    """Segment every image of ``dataset`` (``dataset[i]`` is ``{"image", "path"}`` or ``{"error", "path"}``)
    and write the files ``targets[i]`` (from :func:`output_paths`) into the folder ``out``.

    Args:
        runner: the model in eval mode on ``device``, or a backend predictor.
        info: the model's ``ModelInfo`` (preprocessing, palette, class names).
        alpha: mask opacity in the overlay (0..1).
        backend: the backend name recorded in ``classes.json``.
        skip_existing: leave out images whose output files all exist (finishing an interrupted batch).
        on_image: called after each image with the item, its paths and its three most frequent classes.

    Returns:
        The number of images written and the skipped ones (``skipped.txt`` in the output folder lists them).
    """
    result = PredictResult()
    summary = {"backend": backend, "inference": inference.to_dict(), "crf": crf.to_dict() if crf else None}
    for i, paths in enumerate(targets):
        if skip_existing and all(p.exists() for p in paths.values()):
            result.already_done += 1
            continue
        item = dataset[i]
        if "error" in item:
            result.skipped.append({"file": item["path"], "reason": item["error"]})
            continue
        mask, conf = segment(runner, item["image"], info, inference, crf, device)
        try:
            present = write_outputs(paths, item, mask, conf, info, summary, alpha)
        except (OSError, WriteError) as exc:  # a full disk or a folder gone read-only: keep no half set of files
            for written in paths.values():
                written.unlink(missing_ok=True)
            reason = exc.reason if isinstance(exc, WriteError) else exc.strerror or exc
            result.skipped.append({"file": item["path"], "reason": f"cannot write its outputs ({reason})"})
            continue
        result.done += 1
        if on_image is not None:
            on_image(item, paths, [info.class_names[c] for c in np.argsort(-present)[:3] if present[c]])
    with contextlib.suppress(OSError):  # on a full disk the summary is still printed by the caller
        result.skipped_file = write_skipped(out, result.skipped)
    return result
