"""MobileNetV2 as a segmentation encoder (DeepLabv3+'s variant): torchvision's ``features`` without the final
1x1 conv to 1280 channels, dilated to an output stride.

Reference: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", arXiv 1801.04381
(https://arxiv.org/abs/1801.04381); dilation as in Chen et al., arXiv 1802.02611.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from segbench.models.encoders.dilation import stride_dilation
from segbench.models.pretrained import ImagenetWeights

__all__ = ["IMAGENET", "MobileNetV2Encoder"]


def _features_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith("features.") and not k.startswith("features.18.")}


#: torchvision's ``MobileNet_V2_Weights.IMAGENET1K_V1``, less ``features.18.*`` and ``classifier.*``.
IMAGENET = ImagenetWeights(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1, _features_only, "mobilenet_v2")


class MobileNetV2Encoder(nn.Module):
    """torchvision's MobileNetV2 ``features`` without the final 1x1 conv to 1280, dilated to an output stride.

    Returns the stride-4 map (after ``features[:4]``, 24 channels) and the last inverted-residual block's
    map (``features[:-1]``, 320 channels). The 1280-channel 1x1 conv (``features.18``) is dropped: as in
    the DeepLabv3+ paper's MobileNetV2 variant, ASPP reads the 320-channel map, which saves that conv's
    410 k parameters and ASPP's cost on 1280 input channels.

    For output stride 16 or 8, the depthwise conv of each block that would exceed it gets stride 1 instead
    of 2, and from then on blocks use dilation (2, then 4 at output stride 8); the block that lost its stride
    keeps the rate before it (:func:`~segbench.models.encoders.dilation.stride_dilation`). Padding equals
    dilation, so sizes are kept.

    Module names are torchvision's (``features.0`` ... ``features.17``), so ImageNet weights load unchanged
    (less ``features.18.*`` and ``classifier.*``).

    Args:
        output_stride: 8, 16 or 32 (no dilation).

    Shape:
        input ``(N, 3, H, W)``; output a list of two maps ``(N, 24, ceil(H / 4), ceil(W / 4))`` and
        ``(N, 320, ceil(H / s), ceil(W / s))`` (to within rounding), :attr:`out_channels` ``(24, 320)`` and
        :attr:`reductions` ``(4, s)`` with ``s = output_stride``.

    Raises:
        UserError: ``output_stride`` not 8/16/32.
    """

    LOW_LEVEL_END = 4  # features[:4] ends at stride 4

    def __init__(self, output_stride: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(*torchvision.models.mobilenet_v2(weights=None).features[:-1])
        depthwise = [
            next(m for m in block.modules() if isinstance(m, nn.Conv2d) and m.groups > 1) for block in self.features[1:]
        ]
        plan = stride_dilation([dw.stride[0] for dw in depthwise], output_stride)  # features[0]: the stride-2 stem
        for block, dw, (stride, rate) in zip(self.features[1:], depthwise, plan):
            if stride != dw.stride[0]:
                dw.stride = (stride, stride)
                block.stride = stride
            dw.dilation = (rate, rate)
            dw.padding = (rate, rate)
        self.output_stride = output_stride
        self.out_channels = (24, 320)
        self.reductions = (4, output_stride)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        for block in self.features[: self.LOW_LEVEL_END]:
            x = block(x)
        low = x
        for block in self.features[self.LOW_LEVEL_END :]:
            x = block(x)
        return [low, x]
