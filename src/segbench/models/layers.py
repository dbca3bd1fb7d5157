"""Small building blocks shared by the architectures."""

from __future__ import annotations

from torch import nn


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias) -> BatchNorm2d -> ReLU (``relu=False`` drops the ReLU)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        relu: bool = True,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DSConv(nn.Sequential):
    """Depthwise separable convolution: depthwise 3x3 -> BN -> ReLU -> pointwise 1x1 -> BN -> ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__(
            ConvBNReLU(in_ch, in_ch, 3, stride, groups=in_ch),
            ConvBNReLU(in_ch, out_ch, 1),
        )


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck: 1x1 expand -> 3x3 depthwise -> 1x1 linear projection, residual when shapes match.

    Reference: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", arXiv 1801.04381.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int = 6) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.use_residual = stride == 1 and in_ch == out_ch
        self.block = nn.Sequential(
            ConvBNReLU(in_ch, hidden, 1),
            ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
            ConvBNReLU(hidden, out_ch, 1, relu=False),
        )

    def forward(self, x):
        out = self.block(x)
        return x + out if self.use_residual else out
