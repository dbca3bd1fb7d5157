"""MobileNetV3-Large as a segmentation encoder: segbench's own implementation, dilated to an output stride.

Reference: Howard et al., "Searching for MobileNetV3", arXiv 1905.02244 (https://arxiv.org/abs/1905.02244),
table 1 (MobileNetV3-Large) and section 5 (the bottleneck with squeeze-and-excite and h-swish).

The layers follow the paper's table 1 and torchvision's module layout (``features.0`` the stem,
``features.1`` .. ``features.15`` the bottlenecks, ``features.16`` the 1x1 conv to 960 channels; inside a
bottleneck ``block.{i}`` = expand 1x1, depthwise k x k, squeeze-and-excite ``fc1``/``fc2``, project 1x1), so
torchvision's ImageNet weights load unchanged (less ``classifier.*``) and its segmentation checkpoints after
renaming ``backbone.`` to ``encoder.features.``. Batch norm uses ``eps=0.001, momentum=0.01`` as torchvision's
MobileNetV3.

Shape:
    input ``(N, 3, H, W)``, ImageNet-normalised; output a list of three maps: ``(N, 24, H/4, W/4)`` (after
    ``features.3``), ``(N, 40, H/8, W/8)`` (after ``features.4``, the first stride-8 block, where torchvision's
    LR-ASPP and auxiliary head read) and ``(N, 960, H/s, W/s)`` (after ``features.16``) with ``s`` the output
    stride; sizes rounded up (``ceil``) at each stride-2 layer.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
import torchvision
from torch import nn

from segbench.models.encoders.dilation import stride_dilation
from segbench.models.layers import ConvBNAct
from segbench.models.pretrained import ImagenetWeights

__all__ = ["IMAGENET", "MobileNetV3Block", "MobileNetV3LargeEncoder", "SqueezeExcite"]

_BN_EPS, _BN_MOMENTUM = 0.001, 0.01


def round_channels(channels: float, divisor: int = 8) -> int:
    """Round ``channels`` to the nearest multiple of ``divisor``, never below ``divisor`` nor under 90%.

    The rule of the MobileNet reference implementations (TensorFlow's and torchvision's ``_make_divisible``),
    used here for the squeeze-and-excite widths.
    """
    rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * channels else rounded


# segbench.models.layers.ConvBNAct with MobileNetV3's batch norm (eps 0.001, momentum 0.01), as torchvision's
_conv_bn_act = partial(ConvBNAct, bn_eps=_BN_EPS, bn_momentum=_BN_MOMENTUM)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite as in MobileNetV3: global average pool, 1x1 conv + ReLU, 1x1 conv + hard sigmoid,
    channel-wise scaling of the input.

    Reference: Howard et al., arXiv 1905.02244, section 5.3 (squeeze to a quarter of the expansion channels;
    rounded to a multiple of 8 as the reference implementations do); Hu et al., "Squeeze-and-Excitation
    Networks", arXiv 1709.01507.

    Shape:
        ``(N, C, H, W)`` -> ``(N, C, H, W)``.
    """

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        s = nn.functional.hardsigmoid(self.fc2(nn.functional.relu(self.fc1(s))))
        return x * s


#: torchvision's ``MobileNet_V3_Large_Weights.IMAGENET1K_V1`` (the weights its segmentation models start
#: from), less ``classifier.*``.
IMAGENET = ImagenetWeights(
    torchvision.models.MobileNet_V3_Large_Weights.IMAGENET1K_V1,
    lambda state: {k: v for k, v in state.items() if k.startswith("features.")},
    "mobilenet_v3_large",
)


class _Layer(NamedTuple):
    """One row of the paper's table 1: a bottleneck."""

    kernel: int
    expansion: int  # channels of the expansion layer
    out: int
    se: bool
    act: str  # "RE" (ReLU) or "HS" (h-swish)
    stride: int


# MobileNetV3-Large, arXiv 1905.02244 table 1 (input of the first bottleneck: the 16-channel stem)
LARGE_LAYERS = (
    _Layer(3, 16, 16, False, "RE", 1),
    _Layer(3, 64, 24, False, "RE", 2),
    _Layer(3, 72, 24, False, "RE", 1),
    _Layer(5, 72, 40, True, "RE", 2),
    _Layer(5, 120, 40, True, "RE", 1),
    _Layer(5, 120, 40, True, "RE", 1),
    _Layer(3, 240, 80, False, "HS", 2),
    _Layer(3, 200, 80, False, "HS", 1),
    _Layer(3, 184, 80, False, "HS", 1),
    _Layer(3, 184, 80, False, "HS", 1),
    _Layer(3, 480, 112, True, "HS", 1),
    _Layer(3, 672, 112, True, "HS", 1),
    _Layer(5, 672, 160, True, "HS", 2),
    _Layer(5, 960, 160, True, "HS", 1),
    _Layer(5, 960, 160, True, "HS", 1),
)


class MobileNetV3Block(nn.Module):
    """MobileNetV3 bottleneck: 1x1 expansion (skipped when it would not widen), k x k depthwise (strided or
    dilated), optional squeeze-and-excite, 1x1 linear projection; a residual sum when the shapes match.

    Reference: Howard et al., "Searching for MobileNetV3", arXiv 1905.02244, section 5 and figure 4.

    Args:
        in_ch: input channels.
        layer: the table row (kernel, expansion channels, output channels, SE, activation, stride).
        stride: the depthwise conv's stride (1 where dilation replaces it).
        dilation: the depthwise conv's dilation.

    Shape:
        ``(N, in_ch, H, W)`` -> ``(N, layer.out, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(self, in_ch: int, layer: _Layer, stride: int, dilation: int = 1) -> None:
        super().__init__()
        act = nn.Hardswish if layer.act == "HS" else nn.ReLU
        hidden = layer.expansion
        layers: list[nn.Module] = []
        if hidden != in_ch:
            layers.append(_conv_bn_act(in_ch, hidden, 1, act=act))
        layers.append(_conv_bn_act(hidden, hidden, layer.kernel, stride, dilation, groups=hidden, act=act))
        if layer.se:
            layers.append(SqueezeExcite(hidden, round_channels(hidden / 4)))
        layers.append(_conv_bn_act(hidden, layer.out, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_ch == layer.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV3LargeEncoder(nn.Module):
    """MobileNetV3-Large (with its last 1x1 conv to 960 channels, without pooling and classifier), dilated.

    For output stride 16 or 8, each bottleneck whose stride would exceed it gets stride 1 instead of 2, and
    from that bottleneck on (itself included: ``dilate_first=True`` of
    :func:`~segbench.models.encoders.dilation.stride_dilation`) the depthwise convs are dilated by the stride
    given up (2, then 4 at output stride 8). This is torchvision's ``mobilenet_v3_large(dilated=True)`` at output stride 16 (the last three
    bottlenecks at rate 2), so its checkpoints give the same outputs.

    Reference: Howard et al., "Searching for MobileNetV3", arXiv 1905.02244 (table 1; section 6.4 applies
    atrous convolution to the last block for segmentation); dilation as in Chen et al., arXiv 1706.05587.

    Args:
        output_stride: 8, 16 or 32 (no dilation).

    Shape:
        input ``(N, 3, H, W)``; output a list of three maps ``(N, 24, H/4, W/4)``, ``(N, 40, H/8, W/8)`` and
        ``(N, 960, H/s, W/s)`` (sizes rounded up) with :attr:`out_channels` ``(24, 40, 960)`` and
        :attr:`reductions` ``(4, 8, s)``, ``s = output_stride``.

    Raises:
        UserError: ``output_stride`` not 8/16/32.
    """

    LOW_END = 4  # features[:4] ends at stride 4 (24 channels)
    MID_END = 5  # features[:5] ends at stride 8 (40 channels), after the first stride-8 bottleneck

    def __init__(self, output_stride: int = 16) -> None:
        super().__init__()
        plan = stride_dilation([layer.stride for layer in LARGE_LAYERS], output_stride, dilate_first=True)
        layers: list[nn.Module] = [_conv_bn_act(3, 16, 3, stride=2, act=nn.Hardswish)]
        in_ch = 16
        for layer, (stride, rate) in zip(LARGE_LAYERS, plan):
            layers.append(MobileNetV3Block(in_ch, layer, stride, rate))
            in_ch = layer.out
        layers.append(_conv_bn_act(in_ch, 6 * in_ch, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        for m in self.modules():  # as the reference implementations: He init (fan out), zero biases
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.output_stride = output_stride
        self.out_channels = (24, 40, 6 * in_ch)
        self.reductions = (4, 8, output_stride)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i + 1 in (self.LOW_END, self.MID_END):
                out.append(x)
        out.append(x)
        return out
