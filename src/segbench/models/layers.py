"""Small building blocks shared by the encoders and the architectures."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> activation; ``act=None`` leaves the activation out.

    Module names: ``0`` the conv, ``1`` the batch norm, ``2`` the activation (when there is one).

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel_size: the conv's kernel size.
        stride: the conv's stride.
        dilation: the conv's dilation; padding is ``dilation * (kernel_size - 1) // 2``.
        groups: the conv's groups (``in_ch`` for a depthwise conv).
        act: an activation class built with ``inplace=True`` (``nn.ReLU``, ``nn.Hardswish``), or None.
        bn_eps: the batch norm's epsilon.
        bn_momentum: the batch norm's momentum.

    Shape:
        ``(N, in_ch, H, W)`` -> ``(N, out_ch, ceil(H / stride), ceil(W / stride))``; stride 1 keeps the size.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch, eps=bn_eps, momentum=bn_momentum),
        ]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class SeparableConv(nn.Sequential):
    """Depthwise separable convolution: depthwise k x k (strided or dilated) Conv-BN-act, pointwise 1x1 Conv-BN-act.

    Module names: ``0`` the depthwise :class:`ConvBNAct`, ``1`` the pointwise one.

    Reference: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
    Applications", arXiv 1704.04861; atrous form as in Chen et al., arXiv 1802.02611, section 3.1.

    Args:
        in_ch: input channels (also the depthwise conv's groups).
        out_ch: output channels.
        kernel_size: the depthwise kernel size.
        stride: the depthwise conv's stride.
        dilation: the depthwise conv's dilation (padding keeps the size at stride 1).
        act: activation after each of the two convs (None for none).
        pointwise_act: activation after the pointwise conv only; defaults to ``act``.

    Shape:
        ``(N, in_ch, H, W)`` -> ``(N, out_ch, ceil(H / stride), ceil(W / stride))``.
    """

    _SAME = object()

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        act: type[nn.Module] | None = nn.ReLU,
        pointwise_act: type[nn.Module] | None | object = _SAME,
    ) -> None:
        pw_act = act if pointwise_act is self._SAME else pointwise_act
        super().__init__(
            ConvBNAct(in_ch, in_ch, kernel_size, stride, dilation, groups=in_ch, act=act),
            ConvBNAct(in_ch, out_ch, 1, act=pw_act),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: 1x1 expand -> 3x3 depthwise -> 1x1 linear projection, residual when shapes match.

    Reference: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", arXiv 1801.04381.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        stride: the depthwise conv's stride.
        expansion: hidden channels as a multiple of ``in_ch``.

    Shape:
        ``(N, in_ch, H, W)`` -> ``(N, out_ch, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int = 6) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.use_residual = stride == 1 and in_ch == out_ch
        self.block = nn.Sequential(
            ConvBNAct(in_ch, hidden, 1),
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
            ConvBNAct(hidden, out_ch, 1, act=None),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


def _pool_matrix(in_size: int, out_size: int, like: torch.Tensor) -> torch.Tensor:
    """``(out_size, in_size)`` averaging weights of adaptive pooling along one axis: row ``i`` averages the
    input cells ``floor(i * in / out)`` to ``ceil((i + 1) * in / out) - 1``, as ``F.adaptive_avg_pool2d``."""
    i = torch.arange(out_size, device=like.device)
    start = (i * in_size) // out_size
    end = ((i + 1) * in_size + out_size - 1) // out_size
    j = torch.arange(in_size, device=like.device)
    inside = (j[None, :] >= start[:, None]) & (j[None, :] < end[:, None])
    return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)


def _is_exporting() -> bool:
    compiler = getattr(torch, "compiler", None)
    exporting = getattr(compiler, "is_exporting", None)
    return bool(torch.onnx.is_in_onnx_export() or (exporting is not None and exporting()))


def adaptive_avg_pool2d(x: torch.Tensor, output_size: int | tuple[int, int]) -> torch.Tensor:
    """``F.adaptive_avg_pool2d`` that an ONNX export can trace for any input size.

    Eager calls use ``F.adaptive_avg_pool2d``. While exporting (``torch.onnx.is_in_onnx_export()`` or
    ``torch.compiler.is_exporting()``), pooling to more than one bin is computed as two matrix products with
    the per-axis bin matrices (:func:`_pool_matrix`), which give the same values and export with dynamic
    height and width; global pooling (1 x 1), which exports as it is, always uses ``F.adaptive_avg_pool2d``.

    Args:
        x: ``(N, C, H, W)`` input.
        output_size: bins per axis, one int for both or ``(h, w)``.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, h, w)``.
    """
    size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if size == (1, 1) or not _is_exporting():
        return F.adaptive_avg_pool2d(x, size)
    rows = _pool_matrix(x.shape[-2], size[0], x)
    cols = _pool_matrix(x.shape[-1], size[1], x)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


class AdaptiveAvgPool2d(nn.Module):
    """Module form of :func:`adaptive_avg_pool2d` (no parameters; a drop-in for ``nn.AdaptiveAvgPool2d``).

    Args:
        output_size: bins per axis, one int for both or ``(h, w)``.
    """

    def __init__(self, output_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return adaptive_avg_pool2d(x, self.output_size)
