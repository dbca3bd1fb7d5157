"""Label-map checks and square-window counts shared by the boundary metrics.

Windows are squares of ``(2r + 1) x (2r + 1)`` pixels centred on a pixel, clipped to the image, so
"within ``r`` pixels" means chessboard distance ``max(|dy|, |dx|) <= r``, as an ``r``-fold erosion
with a 3 x 3 kernel. Window counts come from integral images (summed-area tables), so they cost the
same for any radius, and the radius may differ from pixel to pixel.
"""

from __future__ import annotations

import torch

from segbench.errors import UserError

__all__ = ["check_labels", "contour", "integral", "window_sum"]


def check_labels(pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int):
    """Check a batch of predicted and true label maps and return them as ``(N, H, W)`` int64.

    Args:
        pred: Predicted class indices ``(N, H, W)`` or ``(H, W)``, integer dtype, in ``[0, C)``.
        target: True class indices, same shape; values in ``[0, C)`` or ``ignore_index``.
        num_classes: ``C`` (>= 1).
        ignore_index: Target value excluded from the counts.

    Returns:
        ``(pred, target)``, each int64 ``(N, H, W)`` on ``target``'s device.

    Raises:
        UserError: ``num_classes`` < 1, shapes differ or are not 2-D/3-D, a dtype is not integer, or a
            value is out of range.
    """
    if num_classes < 1:
        raise UserError(f"num_classes must be >= 1, got {num_classes}")
    if pred.shape != target.shape or pred.ndim not in (2, 3):
        raise UserError(f"pred and target must both be (N, H, W) or (H, W), got {tuple(pred.shape)} and "
                        f"{tuple(target.shape)}")  # fmt: skip
    for name, t in (("pred", pred), ("target", target)):
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise UserError(f"{name} must hold integer class indices, got dtype {t.dtype}")
    pred = pred.to(device=target.device, dtype=torch.int64).reshape(-1, *pred.shape[-2:])
    target = target.to(torch.int64).reshape(pred.shape)
    bad_target = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bool(bad_target.any()):
        values = torch.unique(target[bad_target]).tolist()[:20]
        raise UserError(f"target holds values outside [0, {num_classes}) that are not ignore_index="
                        f"{ignore_index}: {values}")  # fmt: skip
    if bool(((pred < 0) | (pred >= num_classes)).any()):
        raise UserError(f"pred holds values outside [0, {num_classes})")
    return pred, target


def integral(x: torch.Tensor) -> torch.Tensor:
    """Summed-area table of ``x`` ``(..., H, W)``: ``(..., H + 1, W + 1)`` with a zero first row and column,
    ``S[..., y, x] = x[..., :y, :x].sum()``; int32 (int64 for images of 2 ** 31 pixels or more)."""
    h, w = x.shape[-2:]
    dtype = torch.int32 if h * w < 2**31 else torch.int64  # a window sum never exceeds H * W
    s = torch.zeros((*x.shape[:-2], h + 1, w + 1), dtype=dtype, device=x.device)
    s[..., 1:, 1:] = x.to(dtype).contiguous().cumsum(-1, dtype=dtype).cumsum(-2, dtype=dtype)
    return s


def window_sum(table: torch.Tensor, radius: torch.Tensor | int, channel: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over the square window of radius ``radius`` around each pixel, clipped to the image.

    Args:
        table: Summed-area table ``(N, H + 1, W + 1)`` from :func:`integral`, or ``(N, K, H + 1, W + 1)``
            with ``channel`` choosing one of the ``K`` tables per pixel.
        radius: int >= 0, or an int64 tensor ``(N, H, W)`` of per-pixel radii.
        channel: int64 ``(N, H, W)`` index into the ``K`` tables; None for a 3-D ``table``.

    Returns:
        Tensor ``(N, H, W)`` of the table's dtype.
    """
    if channel is None:
        table = table.unsqueeze(1)
        channel = torch.zeros(1, dtype=torch.int64, device=table.device)
    n, k, h1, w1 = table.shape
    h, w = h1 - 1, w1 - 1
    dev = table.device
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    y0, y1 = (ys - radius).clamp(0, h), (ys + radius + 1).clamp(0, h)
    x0, x1 = (xs - radius).clamp(0, w), (xs + radius + 1).clamp(0, w)
    base = (torch.arange(n, device=dev).view(n, 1, 1) * k + channel) * (h1 * w1)
    flat = table.reshape(-1)

    def at(y, x):
        return flat[(base + y * w1 + x).expand(n, h, w)]

    return at(y1, x1) - at(y0, x1) - at(y1, x0) + at(y0, x0)


def contour(labels: torch.Tensor) -> torch.Tensor:
    """Pixels with an 8-neighbour of another value, or on the image border.

    For the mask of any value ``v`` of ``labels`` (an ignore value included), ``(labels == v) &
    (window_sum(integral(contour(labels)), r - 1) > 0)`` is the set of the mask's pixels within ``r``
    pixels of a pixel that is not ``v`` or of the outside of the image: a pixel's nearest other value
    at distance ``k`` makes the pixel before it on the straight chessboard path a contour pixel at
    distance ``k - 1``, and a contour pixel at distance ``k - 1`` has another value beside it.

    Args:
        labels: Integer label maps ``(N, H, W)``.

    Returns:
        bool tensor ``(N, H, W)``.
    """
    padded = torch.nn.functional.pad(labels.unsqueeze(1).to(torch.int64) + 1, (1, 1, 1, 1), value=0).squeeze(1)
    h, w = labels.shape[-2:]
    out = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            if (dy, dx) != (1, 1):
                out |= padded[:, dy : dy + h, dx : dx + w] != padded[:, 1 : h + 1, 1 : w + 1]
    return out
