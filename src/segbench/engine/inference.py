"""Inference on real-world images: whole-image or sliding-window, with optional test-time augmentation (TTA).

One entry point, :func:`predict_probs`, turns one ``(H, W, 3)`` uint8 RGB image of any size into softmax
probabilities ``(1, C, H, W)``. How is set by an :class:`InferenceConfig`:

- ``mode="whole"``: one forward pass over the whole image (what :func:`segbench.engine.evaluate.predict_logits`
  does), unless that is predicted to exceed the memory budget: then it slides (:func:`choose_mode`), so
  the network's memory stays within ``memory_budget_mib`` whatever the image size.
- ``mode="slide"``: a sliding window of ``window = (h, w)`` pixels moves over the image by ``stride``; the
  logits of overlapping windows are averaged per pixel (optionally weighted by a Gaussian centred on each
  window, which down-weights window borders, where a network sees the least context). Images smaller than
  the window are padded (with the mean colour, 0 after normalisation) and the logits cropped back. The
  last window of a row or column is shifted to end at the image border, so windows never leave the image
  except where the image is smaller than the window. :func:`predict_probs` holds the ``(C, H, W)`` float32
  logits of the whole image and an ``(H, W)`` weight map besides one window's forward pass;
  :func:`predict_label` (label map and confidence only, what ``segbench predict`` writes) finishes the
  output one row of windows at a time and holds ``(C, window height, W)`` instead.
- ``mode="auto"``: sliding window when the image is much larger than the model's training size or when
  whole-image inference is predicted to exceed a memory budget; whole image otherwise. The rule is given
  in :func:`choose_mode`.

TTA: the image is resized by each factor in ``scales`` (bilinear, Pillow) and, with ``flip``, also mirrored
left-right; each variant is run in the mode chosen for its size, its logits are mirrored back, resized
to ``(H, W)`` (bilinear) and turned into softmax probabilities; the probabilities of all variants are
averaged. Sliding windows average logits within one variant; TTA averages probabilities across variants.
Multi-scale inputs and flipping as in DeepLab (Chen et al., "DeepLab: Semantic Image Segmentation with Deep
Convolutional Nets, Atrous Convolution, and Fully Connected CRFs", arXiv 1606.00915; "Rethinking Atrous
Convolution for Semantic Image Segmentation", arXiv 1706.05587, which uses scales 0.5 to 1.75 and
left-right flips at test time).

Gaussian weighting follows nnU-Net's sliding-window inference (Isensee et al., "nnU-Net: a self-configuring
method for deep learning-based biomedical image segmentation", arXiv 1809.10486): a Gaussian with a standard
deviation of 1/8 of the window side (the value in nnU-Net's code) per axis, peak 1.

The windows themselves (positions, Gaussian weights, summing) are in :mod:`segbench.engine.sliding`.

Shape conventions: images ``(H, W, 3)`` uint8 RGB; logits and probabilities ``(1, C, H, W)`` float32 on
``device``.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from segbench.data.transforms import preprocess
from segbench.engine.inference_config import DEFAULT_WINDOW, MODES, InferenceConfig, training_size
from segbench.engine.sliding import (
    GAUSSIAN_SIGMA_SCALE,
    gaussian_weights,
    slide_label_streaming,
    slide_logits,
    window_positions,
)
from segbench.errors import UserError
from segbench.preprocessing import Preprocessing

__all__ = [
    "DEFAULT_WINDOW",
    "GAUSSIAN_SIGMA_SCALE",
    "MODES",
    "InferenceConfig",
    "check_scales",
    "choose_mode",
    "estimate_whole_memory_mib",
    "gaussian_weights",
    "predict_label",
    "predict_probs",
    "slide_logits",
    "training_size",
    "whole_logits",
    "window_positions",
]

@torch.inference_mode()
def whole_logits(
    model: nn.Module, image: np.ndarray, preprocessing: Preprocessing, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Logits ``(1, C, H, W)`` of one forward pass over the whole ``(H, W, 3)`` uint8 image."""
    return model(preprocess(image, preprocessing, device))


# Measured peak MiB of one window-sized forward, per model, device and window (see estimate_whole_memory_mib).
_PROBE_CACHE: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def _probe_peak_mib(model: nn.Module, window: tuple[int, int], device: str | torch.device) -> float:
    from segbench.engine.memory import peak_memory_mib

    per_model = _PROBE_CACHE.setdefault(model, {})
    key = (str(device), tuple(window))
    if key not in per_model:
        # no warm-up forward: the first call's one-time set-up is counted in, which errs on the safe side
        per_model[key] = float(peak_memory_mib(model, (1, 3, *window), device=device, warmup=False)["memory_mib"])
    return per_model[key]


def estimate_whole_memory_mib(
    model: nn.Module, image_size: tuple[int, int], window: tuple[int, int], device: str | torch.device = "cpu"
) -> float:
    """Predicted peak memory (MiB) of whole-image inference on an image of ``image_size = (H, W)``.

    The peak of one forward pass at the window size is measured once per model, device and window with
    :func:`segbench.engine.memory.peak_memory_mib` (CPU: peak RSS increase; CUDA: peak allocated), without a
    warm-up forward (the one-time set-up of a first call counts in: an overestimate, never an underestimate)
    and scaled linearly by the pixel count, since activations and logits grow with it.
    """
    probe = _probe_peak_mib(model, window, device)
    return probe * (image_size[0] * image_size[1]) / (window[0] * window[1])


def choose_mode(
    model: nn.Module, image_size: tuple[int, int], cfg: InferenceConfig, device: str | torch.device = "cpu"
) -> str:
    """``"whole"`` or ``"slide"`` for an image of ``image_size = (H, W)`` under ``cfg``.

    ``slide`` slides. ``auto`` slides when the image height exceeds ``cfg.auto_size_ratio`` times the window
    height, or its width that many times the window width (the window being the model's training size when
    known). ``whole`` and ``auto`` both slide when ``cfg.memory_budget_mib > 0``, the image has more pixels
    than the window and :func:`estimate_whole_memory_mib` exceeds the budget: the memory bound holds for
    every mode but an explicit ``slide`` with a huge window (``memory_budget_mib=0`` lifts it). Otherwise
    the whole image is run. The memory rule is only evaluated when the size rule does not already slide.
    """
    if cfg.mode == "slide":
        return "slide"
    (h, w), (wh, ww) = image_size, cfg.resolved_window()
    if cfg.mode == "auto" and (h > cfg.auto_size_ratio * wh or w > cfg.auto_size_ratio * ww):
        return "slide"
    if (
        cfg.memory_budget_mib > 0
        and h * w > wh * ww  # not larger than one window: sliding would not need less
        and estimate_whole_memory_mib(model, (h, w), (wh, ww), device) > cfg.memory_budget_mib
    ):
        return "slide"
    return "whole"


MIN_SCALED_SIDE = 8
"""Smallest side in pixels that a TTA scale may shrink an image to: the smallest output stride of segbench's
networks (8, dilated DeepLab and FCN), below which even their finest feature map is a single pixel."""


def check_scales(scales: tuple[float, ...], image_size: tuple[int, int]) -> None:
    """Refuse TTA scales that shrink an image of ``image_size = (H, W)`` to a side under
    :data:`MIN_SCALED_SIDE` pixels (an image already that small is segmented at its size as it is).

    Raises:
        UserError: naming ``--tta-scales``, the scale, the size it gives and the smallest usable scale.
    """
    side = min(image_size)
    if side < MIN_SCALED_SIDE:
        return
    for s in scales:
        if round(side * s) < MIN_SCALED_SIDE:
            h, w = (max(1, round(n * s)) for n in image_size)
            smallest = math.ceil(MIN_SCALED_SIDE / side * 100) / 100
            raise UserError(
                f"--tta-scales {s:g}: shrinks a {image_size[0]} x {image_size[1]} image to {h} x {w} px, under the "
                f"{MIN_SCALED_SIDE} px a side needs (the networks' smallest output stride); the smallest usable "
                f"scale for this input is {smallest:g}"
            )


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # PIL: (W, H)
    if size == (w, h):
        return image
    return np.array(Image.fromarray(image).resize(size, Image.BILINEAR))


def _softmax_(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1, in place (the logits of a 12-megapixel photo are hundreds of MiB)."""
    logits.sub_(logits.amax(1, keepdim=True)).exp_()
    return logits.div_(logits.sum(1, keepdim=True))


def _logits_for(model, image, preprocessing: Preprocessing, cfg: InferenceConfig, device) -> torch.Tensor:
    mode = choose_mode(model, image.shape[:2], cfg, device)
    if mode == "slide":
        window, stride = cfg.resolved_window(), cfg.resolved_stride()
        return slide_logits(model, image, preprocessing, window, stride, cfg.gaussian, device)
    return whole_logits(model, image, preprocessing, device)


@torch.inference_mode()
def predict_probs(
    model: nn.Module,
    image: np.ndarray,
    preprocessing: Preprocessing,
    cfg: InferenceConfig | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Softmax probabilities ``(1, C, H, W)`` float32 for one ``(H, W, 3)`` uint8 RGB image.

    With the default config this is the softmax of whole-image logits
    (:func:`segbench.engine.evaluate.predict_logits`). With TTA, the probabilities of every scale and flip
    are averaged; within one of them, sliding windows average logits.

    Args:
        model: a segmentation network ``(N, 3, H, W) -> (N, C, H, W)`` logits, in eval mode on ``device``.
        image: ``(H, W, 3)`` uint8 RGB, any size from 1 x 1.
        preprocessing: what the model expects of its input (:class:`segbench.preprocessing.Preprocessing`).
        cfg: how to run (default: whole image, no TTA); call :meth:`InferenceConfig.for_model` first to use
            the model's training size as the window.
        device: where the model runs and the result lives.

    Returns:
        ``(1, C, H, W)`` float32 probabilities (each pixel sums to 1) on ``device``. Memory besides the
        forward passes: one ``(C, H, W)`` float32 buffer (softmax is taken in place), plus with TTA the
        variant being added and its logits at the variant's scale, plus an ``(H, W)`` weight map when
        sliding.

    Raises:
        ValueError: the image is not ``(H, W, 3)`` with H, W >= 1, or a stride exceeds the window.
        UserError: a TTA scale shrinks the image below a usable size (:func:`check_scales`).
    """
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"image must be (H, W, 3) uint8 with H, W >= 1, got shape {image.shape}")
    cfg = cfg or InferenceConfig()
    H, W = image.shape[:2]
    check_scales(cfg.scales, (H, W))
    acc: torch.Tensor | None = None
    n = 0
    for scale in cfg.scales:
        scaled = _resize(image, scale)
        for flip in (False, True) if cfg.flip else (False,):
            x = scaled[:, ::-1].copy() if flip else scaled  # a copy: 1-pixel-wide views keep negative strides
            logits = _logits_for(model, x, preprocessing, cfg, device)
            if flip:
                logits = logits.flip(3)
            if logits.shape[2:] != (H, W):
                logits = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)
            probs = _softmax_(logits.float() if logits.dtype != torch.float32 else logits)
            acc = probs if acc is None else acc.add_(probs)
            n += 1
            del logits, probs
    assert acc is not None
    return acc.div_(n) if n > 1 else acc


@torch.inference_mode()
def predict_label(
    model: nn.Module,
    image: np.ndarray,
    preprocessing: Preprocessing,
    cfg: InferenceConfig | None = None,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Label map and confidence (max softmax probability) for one ``(H, W, 3)`` uint8 RGB image.

    The same labels as ``predict_probs(...).argmax(1)`` and confidences as ``predict_probs(...).max(1)``.
    When the image is segmented by sliding windows without TTA, the output is finished one row of windows
    at a time, so the ``(C, H, W)`` probabilities of a large photo are never held: peak memory is one
    window's forward pass, ``(C, window height, W)`` float32 logits, the image and the two outputs.

    Args:
        model, image, preprocessing, cfg, device: as for :func:`predict_probs`.

    Returns:
        ``(label, confidence)``: ``(H, W)`` class indices (uint8 up to 255 classes, else int32) and
        ``(H, W)`` float32 in (0, 1].

    Raises:
        ValueError: as :func:`predict_probs`.
    """
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"image must be (H, W, 3) uint8 with H, W >= 1, got shape {image.shape}")
    cfg = cfg or InferenceConfig()
    if not cfg.tta and choose_mode(model, image.shape[:2], cfg, device) == "slide":
        return slide_label_streaming(
            model, image, preprocessing, cfg.resolved_window(), cfg.resolved_stride(), cfg.gaussian, device
        )
    probs = predict_probs(model, image, preprocessing, cfg, device)
    conf, label = probs.max(1)
    label = label[0].cpu().numpy()
    return label.astype(np.uint8 if probs.shape[1] <= 255 else np.int32), conf[0].cpu().numpy()
