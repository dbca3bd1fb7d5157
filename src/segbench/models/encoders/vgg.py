"""VGG-16 as FCN's encoder: the 13 convolutions in torchvision's ``vgg16().features`` layout, then the fully
connected layers made convolutional (fc6 a 7x7 conv to 4096 channels, padding 3; fc7 a 1x1 conv).

Reference: Simonyan, Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
arXiv 1409.1556; as FCN's encoder: Long, Shelhamer, Darrell, arXiv 1411.4038 (section 3.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from segbench.models.convert import vgg16_imagenet_to_encoder
from segbench.models.pretrained import ImagenetWeights

__all__ = ["IMAGENET", "VGG16Encoder"]

#: torchvision's ``VGG16_Weights.IMAGENET1K_V1``: conv layers by name, ``classifier.0`` reshaped into fc6,
#: ``classifier.3`` into fc7, the 1000-class ``classifier.6`` dropped.
IMAGENET = ImagenetWeights(torchvision.models.VGG16_Weights.IMAGENET1K_V1, vgg16_imagenet_to_encoder, "vgg16")

# VGG-16 configuration "D": channels of the 3x3 convolutions, "M" for 2x2 max pooling.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG16Encoder(nn.Module):
    """VGG-16 convolutions (torchvision layout, ceil-mode pooling) + fc6 (7x7 conv) + fc7 (1x1 conv).

    Returns ``[input, pool3 (256, stride 8), pool4 (512, stride 16), fc7 (4096, stride 32)]``; the input is
    there only so that FCN's decoder knows the size to crop to.

    Args:
        dropout: dropout after fc6 and after fc7.

    Shape:
        input ``(N, 3, H, W)``; output ``(N, 3, H, W)``, ``(N, 256, H/8, W/8)``, ``(N, 512, H/16, W/16)``,
        ``(N, 4096, H/32, W/32)`` (sizes rounded up: ceil-mode pooling).
    """

    out_channels = (3, 256, 512, 4096)
    reductions = (1, 8, 16, 32)

    def __init__(self, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in _VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(in_ch, v, 3, padding=1), nn.ReLU(inplace=True)]
                in_ch = v
        self.features = nn.Sequential(*layers)
        self.fc6 = nn.Conv2d(512, 4096, 7, padding=3)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.drop6 = nn.Dropout(dropout)
        self.drop7 = nn.Dropout(dropout)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        # indices in `features` after which pool3 and pool4 come out (torchvision's vgg16 layout)
        pools = [i for i, m in enumerate(self.features) if isinstance(m, nn.MaxPool2d)]
        self._pool3, self._pool4 = pools[2], pools[3]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [x]
        h = x
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in (self._pool3, self._pool4):
                out.append(h)
        h = self.drop6(F.relu(self.fc6(h)))
        h = self.drop7(F.relu(self.fc7(h)))
        out.append(h)
        return out
