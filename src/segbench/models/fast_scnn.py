"""Fast-SCNN, a real-time network for high-resolution images.

Reference: Poudel, Liwicki, Cipolla, "Fast-SCNN: Fast Semantic Segmentation Network", arXiv 1902.04502
(https://arxiv.org/abs/1902.04502), Table 1.

Learning to downsample (conv 32, depthwise separable conv 48 and 64, each stride 2) gives 1/8-resolution features; the
global feature extractor (inverted-residual bottlenecks, expansion 6: 64 x3 stride 2, 96 x3 stride 2,
128 x3 stride 1, then pyramid pooling to 128) gives 1/32-resolution features; feature fusion adds the two
at 1/8; the classifier is two depthwise separable convs 128 and a 1x1 convolution to the classes.

Parameters at 19 classes: 1,137,795 (no auxiliary heads), of which 23,680 are BatchNorm scales and
shifts; the 1,114,115 others are within 1% of the paper's 1.11 M, which appears to leave BatchNorm out.

Shape:
    input ``(N, 3, H, W)``; encoder features ``[(N, 64, H/8, W/8), (N, 128, H/32, W/32)]``;
    logits ``(N, num_classes, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from segbench.models.base import SegmentationModel
from segbench.models.layers import ConvBNAct, InvertedResidual, SeparableConv, adaptive_avg_pool2d
from segbench.models.pretrained import zoo_camvid


class PyramidPooling(nn.Module):
    """Average-pool to bins 1, 2, 3, 6; 1x1 conv each to in/4 channels; upsample; concat; 1x1 conv to out."""

    def __init__(self, in_ch: int, out_ch: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.bins = bins
        self.stages = nn.ModuleList(ConvBNAct(in_ch, in_ch // 4, 1) for _ in bins)
        self.project = ConvBNAct(in_ch + len(bins) * (in_ch // 4), out_ch, 1)

    def forward(self, x):
        size = x.shape[-2:]
        pooled = [
            F.interpolate(stage(adaptive_avg_pool2d(x, b)), size=size, mode="bilinear", align_corners=False)
            for b, stage in zip(self.bins, self.stages)
        ]
        return self.project(torch.cat([x, *pooled], dim=1))


def _stack(in_ch: int, out_ch: int, n: int, stride: int) -> list[nn.Module]:
    return [InvertedResidual(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1) for i in range(n)]


class FastSCNNEncoder(nn.Module):
    """Learning to downsample + global feature extractor; returns ``[1/8 features (64), 1/32 features (128)]``."""

    out_channels = (64, 128)
    reductions = (8, 32)

    def __init__(self) -> None:
        super().__init__()
        self.downsample = nn.Sequential(
            ConvBNAct(3, 32, 3, 2), SeparableConv(32, 48, stride=2), SeparableConv(48, 64, stride=2)
        )
        self.global_features = nn.Sequential(
            *_stack(64, 64, 3, 2), *_stack(64, 96, 3, 2), *_stack(96, 128, 3, 1), PyramidPooling(128, 128)
        )

    def forward(self, x):
        high = self.downsample(x)
        return [high, self.global_features(high)]


class FeatureFusion(nn.Module):
    """Upsample the 1/32 branch x4, depthwise 3x3 (dilation 4) + 1x1; 1x1 on the 1/8 branch; add; ReLU."""

    def __init__(self, high_ch: int = 64, low_ch: int = 128, out_ch: int = 128) -> None:
        super().__init__()
        self.low = SeparableConv(low_ch, out_ch, 3, dilation=4, pointwise_act=None)
        self.high = ConvBNAct(high_ch, out_ch, 1, act=None)

    def forward(self, features):
        high, low = features
        low = F.interpolate(low, size=high.shape[-2:], mode="bilinear", align_corners=False)
        return F.relu(self.high(high) + self.low(low))


class FastSCNNClassifier(nn.Sequential):
    """Two depthwise separable convs 128 -> dropout -> 1x1 conv to ``num_classes``."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__(
            SeparableConv(in_ch, in_ch), SeparableConv(in_ch, in_ch), nn.Dropout(dropout), nn.Conv2d(in_ch, num_classes, 1)
        )


def fast_scnn(*, num_classes: int = 19, aux_loss: bool = False) -> SegmentationModel:
    """Fast-SCNN (arXiv 1902.04502).

    Args:
        num_classes: output classes.
        aux_loss: add an auxiliary FCN-style head on the 1/32 global features (training only).

    Returns:
        A :class:`SegmentationModel`: ``(N, 3, H, W)`` -> ``(N, num_classes, H, W)`` logits.
    """
    aux = None
    if aux_loss:
        aux = nn.Sequential(ConvBNAct(128, 32, 3), nn.Dropout(0.1), nn.Conv2d(32, num_classes, 1))
    return SegmentationModel(FastSCNNEncoder(), FeatureFusion(), FastSCNNClassifier(128, num_classes), aux_head=aux)


#: Trained weights of the network of this module.
WEIGHTS = (zoo_camvid("fast_scnn", 1_136_763, "classifier.3.weight"),)
