"""Sliding-window inference: window positions, Gaussian window weights, and the two ways to sum windows.

A window of ``(h, w)`` pixels moves over the image by ``stride``; each window is normalised and run on
its own (batch 1), windows that overhang a small image are padded with 0 (the mean colour after
normalisation) and their logits cropped back, and overlapping logits are averaged per pixel, optionally
weighted by a Gaussian centred on each window (nnU-Net's sliding-window inference: Isensee et al., "nnU-Net:
a self-configuring method for deep learning-based biomedical image segmentation", arXiv 1809.10486).

:func:`slide_logits` holds the ``(1, C, H, W)`` logits of the whole image; :func:`slide_label_streaming`
finishes the label map one row of windows at a time and holds ``(1, C, window height, W)``. Both use the
same windows, order of summation and arithmetic, so their labels agree.

Shapes: images ``(H, W, 3)`` uint8 RGB; logits ``(1, C, H, W)`` on ``device``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from segbench.data.transforms import preprocess
from segbench.preprocessing import Preprocessing

GAUSSIAN_SIGMA_SCALE = 1 / 8
"""Standard deviation of the Gaussian window weights as a fraction of the window side (nnU-Net's value)."""

_GAUSSIAN_CACHE: dict[tuple, torch.Tensor] = {}


def window_positions(size: int, window: int, stride: int) -> list[int]:
    """Start offsets along one axis of length ``size`` for windows of ``window`` pixels every ``stride``.

    The last window is shifted to end at the border, so every pixel is covered and no window leaves the
    image; when ``size <= window`` there is one window at 0 (the image is padded to it).
    """
    if size <= window:
        return [0]
    starts = list(range(0, size - window, stride))
    starts.append(size - window)
    return starts


def gaussian_weights(window: tuple[int, int], device: str | torch.device = "cpu") -> torch.Tensor:
    """Gaussian importance weights ``(1, 1, h, w)`` float32 for one window: peak 1 at the centre, standard
    deviation :data:`GAUSSIAN_SIGMA_SCALE` times the window side per axis (nnU-Net, arXiv 1809.10486)."""
    key = (tuple(window), str(device))
    if key not in _GAUSSIAN_CACHE:
        axes = []
        for n in window:
            x = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
            sigma = max(n * GAUSSIAN_SIGMA_SCALE, 1e-3)
            axes.append(torch.exp(-0.5 * (x / sigma) ** 2))
        w = (axes[0][:, None] * axes[1][None, :]).float()
        _GAUSSIAN_CACHE[key] = (w / w.max()).view(1, 1, *window).to(device)
    return _GAUSSIAN_CACHE[key]


def _check_stride(window: tuple[int, int], stride: tuple[int, int]) -> None:
    (wh, ww), (sh, sw) = window, stride
    if sh > wh or sw > ww or min(wh, ww, sh, sw) < 1:
        raise ValueError(f"stride {stride} must be positive and at most the window {window}")


def _window_logits(model: nn.Module, image: np.ndarray, y: int, x: int, window: tuple[int, int],
                   preprocessing: Preprocessing, device) -> torch.Tensor:  # fmt: skip
    """Logits ``(1, C, ch, cw)`` of the window at ``(y, x)``, cropped to the part inside the image."""
    wh, ww = window
    crop = image[y : y + wh, x : x + ww]
    ch, cw = crop.shape[:2]
    t = preprocess(crop, preprocessing, device)
    if (ch, cw) != (wh, ww):
        t = F.pad(t, (0, ww - cw, 0, wh - ch))  # 0 = the mean colour after normalisation
    return model(t)[:, :, :ch, :cw]


def _add_window(acc: torch.Tensor, weight: torch.Tensor, logits: torch.Tensor, g: torch.Tensor | None, row: int,
                x: int) -> None:  # fmt: skip
    """Add ``logits`` ``(1, C, ch, cw)`` (times ``g``, or 1) into ``acc`` and the weight into ``weight`` at rows
    ``row:row + ch`` and columns ``x:x + cw``."""
    ch, cw = logits.shape[2:]
    if g is not None:
        gw = g[:, :, :ch, :cw]
        acc[:, :, row : row + ch, x : x + cw] += logits * gw
        weight[:, :, row : row + ch, x : x + cw] += gw
    else:
        acc[:, :, row : row + ch, x : x + cw] += logits
        weight[:, :, row : row + ch, x : x + cw] += 1


@torch.inference_mode()
def slide_logits(
    model: nn.Module,
    image: np.ndarray,
    preprocessing: Preprocessing,
    window: tuple[int, int],
    stride: tuple[int, int],
    gaussian: bool = False,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Sliding-window logits ``(1, C, H, W)`` for one ``(H, W, 3)`` uint8 RGB image.

    Each window is normalised and run on its own (batch 1), so the whole image is never held as float;
    windows that overhang a small image are padded with 0 (the mean colour) and cropped back. Overlapping
    logits are averaged per pixel, weighted by :func:`gaussian_weights` when ``gaussian``.

    Args:
        window: ``(h, w)`` pixels.
        stride: ``(h, w)`` pixels, at most ``window``.

    Raises:
        ValueError: the stride exceeds the window.
    """
    _check_stride(window, stride)
    (wh, ww), (sh, sw) = window, stride
    H, W = image.shape[:2]
    acc: torch.Tensor | None = None
    weight = torch.zeros(1, 1, H, W, device=device)
    g = gaussian_weights((wh, ww), device) if gaussian else None
    for y in window_positions(H, wh, sh):
        for x in window_positions(W, ww, sw):
            logits = _window_logits(model, image, y, x, window, preprocessing, device)
            if acc is None:
                acc = torch.zeros(1, logits.shape[1], H, W, device=device, dtype=logits.dtype)
            _add_window(acc, weight, logits, g, y, x)
    assert acc is not None
    return acc.div_(weight)


def _label_and_confidence(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1, C, h, W)`` logits -> label ``(h, W)`` and max softmax ``(h, W)`` = 1 / sum_c exp(l_c - max_c l)."""
    top, label = logits.max(1)
    conf = 1.0 / (logits - top.unsqueeze(1)).exp_().sum(1)
    return label[0], conf[0]


def _shift_band(acc: torch.Tensor, weight: torch.Tensor, base: int, y: int, rows_end: int, W: int, device):
    """The band of rows ``[y, rows_end)``: the rows of the old band ``[base, ...)`` from ``y`` on, zeros below."""
    keep = base + acc.shape[2] - y
    new_acc = torch.zeros(1, acc.shape[1], rows_end - y, W, device=device, dtype=acc.dtype)
    new_w = torch.zeros(1, 1, rows_end - y, W, device=device)
    if keep > 0:
        new_acc[:, :, :keep] = acc[:, :, y - base :]
        new_w[:, :, :keep] = weight[:, :, y - base :]
    return new_acc, new_w


@torch.inference_mode()
def slide_label_streaming(
    model: nn.Module, image: np.ndarray, preprocessing: Preprocessing, window, stride, gaussian: bool, device
) -> tuple[np.ndarray, np.ndarray]:
    """Sliding-window label map ``(H, W)`` (uint8 up to 255 classes, else int32) and confidence ``(H, W)``
    float32, finishing the output one row of windows at a time.

    The logits of a row of windows are summed into a band of ``window height`` rows; once the next row
    of windows starts below a pixel row, no later window covers it, so its label and confidence are
    final and the band moves on. Memory: one window's forward pass plus ``(C, window height, W)`` float32,
    instead of ``(C, H, W)``. Same windows, order of summation and arithmetic as :func:`slide_logits`.

    Raises:
        ValueError: the stride exceeds the window.
    """
    _check_stride(window, stride)
    (wh, ww), (sh, sw) = window, stride
    H, W = image.shape[:2]
    ys, xs = window_positions(H, wh, sh), window_positions(W, ww, sw)
    g = gaussian_weights((wh, ww), device) if gaussian else None
    label: np.ndarray | None = None
    conf = np.empty((H, W), np.float32)
    acc: torch.Tensor | None = None  # rows [base, base + acc height) of the summed logits
    weight: torch.Tensor | None = None
    base = 0
    for k, y in enumerate(ys):
        rows_end = min(y + wh, H)
        if acc is not None:  # drop finished rows, add zero rows below
            acc, weight = _shift_band(acc, weight, base, y, rows_end, W, device)
        base = y
        for x in xs:
            logits = _window_logits(model, image, y, x, window, preprocessing, device)
            if acc is None:
                acc = torch.zeros(1, logits.shape[1], rows_end - y, W, device=device, dtype=logits.dtype)
                weight = torch.zeros(1, 1, rows_end - y, W, device=device)
                label = np.empty((H, W), np.uint8 if logits.shape[1] <= 255 else np.int32)
            _add_window(acc, weight, logits, g, 0, x)
        done = (ys[k + 1] if k + 1 < len(ys) else H) - y  # rows no later window touches
        lab, cf = _label_and_confidence(acc[:, :, :done] / weight[:, :, :done])
        label[y : y + done] = lab.cpu().numpy()
        conf[y : y + done] = cf.cpu().numpy()
    return label, conf
