"""The output-stride rule of every dilated encoder, written once: which blocks give up their stride, and
the dilation of each block.

Reference: Chen, Papandreou, Schroff, Adam, "Rethinking Atrous Convolution for Semantic Image
Segmentation", arXiv 1706.05587, section 3.1 (atrous convolution to set the output stride).
"""

from __future__ import annotations

from collections.abc import Sequence

from segbench.errors import UserError

__all__ = ["OUTPUT_STRIDES", "check_output_stride", "stride_dilation"]

OUTPUT_STRIDES = (8, 16, 32)


def check_output_stride(output_stride: int, allowed: Sequence[int] = OUTPUT_STRIDES, name: str = "") -> None:
    """Raise :class:`UserError` unless ``output_stride`` is one of ``allowed``.

    Args:
        output_stride: the requested output stride.
        allowed: the accepted values.
        name: the network's name, put before the message when given.
    """
    if output_stride not in allowed:
        *head, last = [str(s) for s in allowed]
        values = f"{', '.join(head)} or {last}" if head else last
        raise UserError(f"{name + ': ' if name else ''}output_stride must be {values}, got {output_stride!r}")


def stride_dilation(
    strides: Sequence[int], output_stride: int, *, start_stride: int = 2, dilate_first: bool = False
) -> list[tuple[int, int]]:
    """``(stride, dilation)`` for each block of an encoder so that its output stride is ``output_stride``.

    Blocks are walked in order, with the stride reached so far starting at ``start_stride`` (the stem's).
    A strided block that would take the stride beyond ``output_stride`` gets stride 1 instead, and the
    dilation rate is multiplied by the stride it gave up (2, then 4 at output stride 8); every later block
    is dilated by that rate.

    The one difference between the networks is the block that gives up its stride:

    - ``dilate_first=False`` (MobileNetV2, Xception-65, ResNet): that block keeps the rate before it and
      dilation starts with the next block, as DeepLab's reference code and torchvision's
      ``replace_stride_with_dilation`` for ResNets do.
    - ``dilate_first=True`` (MobileNetV3-Large): that block is itself dilated by the new rate, as
      torchvision's ``mobilenet_v3_large(dilated=True)``, whose checkpoints depend on it.

    Args:
        strides: each block's stride without dilation (1 or 2).
        output_stride: 8, 16 or 32 (32: nothing dilated for a network of total stride 32).
        start_stride: the stride before the first block.
        dilate_first: whether the block that gives up its stride is dilated too (see above).

    Returns:
        One ``(stride, dilation)`` per block.

    Raises:
        UserError: ``output_stride`` not 8/16/32.

    Example:
        ``stride_dilation([2, 1, 2, 1], 8, start_stride=4)`` is ``[(2, 1), (1, 1), (1, 1), (1, 2)]``: the
        second strided block gives up its stride and keeps rate 1, the block after it has rate 2; with
        ``dilate_first=True`` it is ``[(2, 1), (1, 1), (1, 2), (1, 2)]``.
    """
    check_output_stride(output_stride)
    total, rate, out = start_stride, 1, []
    for stride in strides:
        before = rate
        if stride > 1 and total * stride > output_stride:
            rate *= stride
            stride = 1
        else:
            total *= stride
        out.append((stride, rate if dilate_first else before))
    return out
