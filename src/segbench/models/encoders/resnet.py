"""ResNet-18/34/50/101 as a segmentation encoder: torchvision's ResNet without ``avgpool`` and ``fc``,
dilated to an output stride.

Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", arXiv 1512.03385
(https://arxiv.org/abs/1512.03385); dilation as in Chen et al., arXiv 1706.05587.

Module names are torchvision's (``conv1``, ``bn1``, ``layer1`` ... ``layer4``), so ImageNet weights load
unchanged (less ``fc.*``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn

from segbench.errors import UserError
from segbench.models.encoders.dilation import check_output_stride, stride_dilation
from segbench.models.pretrained import ImagenetWeights, drop_prefixes

__all__ = ["IMAGENET", "ResNetEncoder"]

_BUILDERS = {
    18: (torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1, (64, 128, 256, 512)),
    34: (torchvision.models.resnet34, torchvision.models.ResNet34_Weights.IMAGENET1K_V1, (64, 128, 256, 512)),
    50: (torchvision.models.resnet50, torchvision.models.ResNet50_Weights.IMAGENET1K_V1, (256, 512, 1024, 2048)),
    101: (torchvision.models.resnet101, torchvision.models.ResNet101_Weights.IMAGENET1K_V1, (256, 512, 1024, 2048)),
}

#: ImageNet weights by depth (torchvision's ``IMAGENET1K_V1``; the 1000-class ``fc`` dropped).
IMAGENET = {
    depth: ImagenetWeights(weights, drop_prefixes("fc."), f"resnet{depth}")
    for depth, (_, weights, _) in _BUILDERS.items()
}


class ResNetEncoder(nn.Module):
    """torchvision's ResNet without ``avgpool`` and ``fc``, its last stages dilated instead of strided.

    Args:
        depth: 18, 34, 50 or 101.
        output_stride: 8 (``layer3`` and ``layer4`` dilated), 16 (``layer4`` dilated) or 32 (no dilation).
            ResNet-18/34 (basic blocks, which torchvision does not dilate) take 32 only.
        out_indices: which of the four stage maps (``layer1`` .. ``layer4``) are returned; the others are
            ``None`` in the list, so each map is freed as soon as the next stage has used it (FCN and
            DeepLabv3 need only ``layer4``, and ``layer3`` for the auxiliary head).
        with_stem: put the stride-2 map after ``conv1``/``bn1``/``relu`` first in the list (U-Net's skip).

    Shape:
        input ``(N, 3, H, W)``; output a list of four maps ``(N, C_i, ceil(H / s_i), ceil(W / s_i))`` (to
        within rounding) after ``layer1`` .. ``layer4`` (``None`` where not in ``out_indices``), with
        ``C_i`` = :attr:`out_channels` (``(256, 512, 1024, 2048)`` for ResNet-50/101, ``(64, 128, 256, 512)``
        for 18/34) and ``s_i`` = :attr:`reductions`, e.g. ``(4, 8, 8, 8)`` at output stride 8. With
        ``with_stem`` the stem's ``(N, 64, H/2, W/2)`` map comes first (channels 64, reduction 2).

    Raises:
        UserError: ``depth`` not 18/34/50/101, or ``output_stride`` not 8/16/32 (32 for 18/34).
    """

    def __init__(
        self,
        depth: int = 50,
        output_stride: int = 32,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        with_stem: bool = False,
    ) -> None:
        super().__init__()
        if depth not in _BUILDERS:
            raise UserError(f"ResNet depth must be 18, 34, 50 or 101, got {depth!r}")
        build, _, channels = _BUILDERS[depth]
        check_output_stride(output_stride, (32,) if depth < 50 else (8, 16, 32))
        # layer2..layer4 are strided; the stem and max pooling bring the stride to 4 before them
        replace = [stride == 1 for stride, _ in stride_dilation((2, 2, 2), output_stride, start_stride=4)]
        net = build(weights=None, replace_stride_with_dilation=replace if any(replace) else None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.output_stride = output_stride
        self.with_stem = with_stem
        stem = ((64,), (2,)) if with_stem else ((), ())
        self.out_channels = (*stem[0], *channels)
        self.reductions = (*stem[1], 4, 8, min(16, output_stride), output_stride)
        self.out_indices = frozenset(out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        x = self.relu(self.bn1(self.conv1(x)))
        features: list[torch.Tensor | None] = [x] if self.with_stem else []
        x = self.maxpool(x)
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            features.append(x if i in self.out_indices else None)
        return features
