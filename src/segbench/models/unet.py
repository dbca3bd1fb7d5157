"""U-Net: the classic network, and U-Nets on ResNet-18/34 encoders.

Reference: Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
arXiv 1505.04597 (https://arxiv.org/abs/1505.04597).

``unet`` follows the paper's layout (64-128-256-512-1024 channels, two 3x3 convolutions per block, 2x2 max
pooling down, 2x2 stride-2 transposed convolutions up that halve the channels, skip concatenation, a 1x1
convolution to the classes) with two changes that every modern use makes: BatchNorm after each convolution,
and padding 1, so that a block keeps its input's size and the logits come out at the input's size.

Any H x W works. Max pooling uses ``ceil_mode=True`` (a last odd row or column is pooled on its own instead of
dropped), so no map shrinks to zero and an upsampled map is never smaller than its skip; where it is one row
or column larger (odd sizes) the extra bottom row / right column is cropped. Both maps start at the same
top-left pixel, so the crop keeps them aligned. (A smaller map, which this layout does not produce, would be
zero-padded at the bottom/right.)

``unet_resnet18`` / ``unet_resnet34`` replace the encoder with torchvision's ResNet
(:class:`~segbench.models.encoders.resnet.ResNetEncoder` with its stem map; ImageNet weights optional) and
use a light decoder: per stage, bilinear upsampling to the skip's size, concatenation and two
3x3 Conv-BN-ReLU; a last stage upsamples x2 to full resolution without a skip.

Shape:
    ``unet``: input ``(N, 3, H, W)``; encoder features ``(N, 64|128|256|512|1024, H/s, W/s)`` at strides
    ``s = 1, 2, 4, 8, 16``; decoder output ``(N, 64, H, W)``; logits ``(N, num_classes, H, W)``.

    ``unet_resnet18/34``: encoder features ``(N, 64|64|128|256|512, H/s, W/s)`` at strides
    ``s = 2, 4, 8, 16, 32``; decoder output ``(N, 16, H', W')`` with ``H' = 2 * ceil(H / 2)``; logits
    ``(N, num_classes, H, W)`` (the model's final resize removes the extra row/column of odd sizes).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from segbench.errors import UserError
from segbench.models.base import SegmentationModel, match_size
from segbench.models.encoders import get_encoder
from segbench.models.layers import ConvBNAct
from segbench.models.pretrained import zoo_camvid

__all__ = ["unet", "unet_resnet18", "unet_resnet34"]


# ----------------------------------------------------------------------------------------------------------
# building blocks


class DoubleConv(nn.Sequential):
    """Two 3x3 Conv-BN-ReLU (padding 1): the U-Net block."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(ConvBNAct(in_ch, out_ch, 3), ConvBNAct(out_ch, out_ch, 3))


class UNetEncoder(nn.Module):
    """The contracting path: a double conv at full resolution, then four (2x2 max pool, double conv) stages.

    Args:
        channels: channels per stage, full resolution first.
    """

    def __init__(self, channels: tuple[int, ...] = (64, 128, 256, 512, 1024)) -> None:
        super().__init__()
        self.out_channels = tuple(channels)
        self.reductions = tuple(2**i for i in range(len(channels)))
        stages: list[nn.Module] = [DoubleConv(3, channels[0])]
        for c_in, c_out in itertools.pairwise(channels):
            stages.append(nn.Sequential(nn.MaxPool2d(2, 2, ceil_mode=True), DoubleConv(c_in, c_out)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class UNetUp(nn.Module):
    """2x2 stride-2 transposed convolution halving the channels, size match, concatenation, double conv."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, in_ch // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_ch // 2 + out_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, match_size(self.up(x), skip)], dim=1))


class UNetDecoder(nn.Module):
    """The expanding path: one :class:`UNetUp` per encoder stage below the first; output at full resolution."""

    def __init__(self, channels: tuple[int, ...] = (64, 128, 256, 512, 1024)) -> None:
        super().__init__()
        self.stages = nn.ModuleList(UNetUp(c_in, c_out) for c_in, c_out in zip(channels[:0:-1], channels[-2::-1]))
        self.out_channels = channels[0]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for stage, skip in zip(self.stages, features[-2::-1]):
            x = stage(x, skip)
        return x


class DecoderBlock(nn.Module):
    """Bilinear upsampling (to the skip's size, or x2 without a skip), concatenation, two 3x3 Conv-BN-ReLU."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = DoubleConv(in_ch + skip_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is None:
            return self.conv(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class ResNetUNetDecoder(nn.Module):
    """Four skip stages (strides 32 -> 16 -> 8 -> 4 -> 2) and a last x2 stage to full resolution.

    Args:
        encoder_channels: the encoder's ``out_channels``, high resolution first.
        channels: output channels of the five stages.
    """

    def __init__(
        self, encoder_channels: tuple[int, ...] = (64, 64, 128, 256, 512), channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    ) -> None:
        super().__init__()
        skips = list(encoder_channels[-2::-1]) + [0]  # 256, 128, 64, 64, then none
        ins = [encoder_channels[-1], *channels[:-1]]
        self.stages = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, channels))
        self.out_channels = channels[-1]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        skips = [*features[-2::-1], None]
        for stage, skip in zip(self.stages, skips):
            x = stage(x, skip)
        return x


# ----------------------------------------------------------------------------------------------------------
# builders


def _no_aux(name: str, aux_loss: bool) -> None:
    if aux_loss:
        raise UserError(f"{name} has no auxiliary head; use aux_loss=False")


def unet(*, num_classes: int = 21, aux_loss: bool = False) -> SegmentationModel:
    """The classic U-Net (64-128-256-512-1024 channels, BatchNorm, padding 1), randomly initialised.

    Reference: Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    arXiv 1505.04597 (https://arxiv.org/abs/1505.04597).

    Args:
        num_classes: output classes.
        aux_loss: must be False; U-Net has no auxiliary head.

    Returns:
        A :class:`SegmentationModel` (``encoder``, ``decoder``, ``classifier`` = 1x1 conv 64 -> classes).

    Shape:
        input ``(N, 3, H, W)``, any H and W; encoder features at strides 1, 2, 4, 8, 16; logits
        ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``aux_loss=True`` (there is no auxiliary head).
    """
    _no_aux("unet", aux_loss)
    channels = (64, 128, 256, 512, 1024)
    return SegmentationModel(UNetEncoder(channels), UNetDecoder(channels), nn.Conv2d(channels[0], num_classes, 1))


def _unet_resnet(depth: int, num_classes: int, aux_loss: bool, weights_backbone: str | None) -> SegmentationModel:
    _no_aux(f"unet_resnet{depth}", aux_loss)
    encoder = get_encoder(f"resnet{depth}", weights_backbone=weights_backbone, with_stem=True)
    decoder = ResNetUNetDecoder(encoder.out_channels)
    return SegmentationModel(encoder, decoder, nn.Conv2d(decoder.out_channels, num_classes, 1))


_RESNET_DOC = """U-Net with a ResNet-{depth} encoder (torchvision's, optionally ImageNet-pretrained).

    Reference: Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    arXiv 1505.04597; He et al., "Deep Residual Learning for Image Recognition", arXiv 1512.03385.

    Args:
        num_classes: output classes.
        aux_loss: must be False; there is no auxiliary head.
        weights_backbone: ``None`` for random initialisation, ``"imagenet"`` for torchvision's
            ``ResNet{depth}_Weights.IMAGENET1K_V1`` in ``encoder`` (inputs ImageNet-normalised).

    Returns:
        A :class:`SegmentationModel`; decoder stages of 256, 128, 64, 32, 16 channels; 1x1 classifier.

    Shape:
        input ``(N, 3, H, W)``, any H and W; encoder features at strides 2, 4, 8, 16, 32; logits
        ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``aux_loss=True`` (there is no auxiliary head).
        UserError: ``weights_backbone`` not None/"imagenet"; ImageNet weights absent and not downloadable
            (the message says where to place ``{file}``) or not fitting.
    """


def unet_resnet18(*, num_classes: int = 21, aux_loss: bool = False, weights_backbone: str | None = None) -> SegmentationModel:
    return _unet_resnet(18, num_classes, aux_loss, weights_backbone)


def unet_resnet34(*, num_classes: int = 21, aux_loss: bool = False, weights_backbone: str | None = None) -> SegmentationModel:
    return _unet_resnet(34, num_classes, aux_loss, weights_backbone)


unet_resnet18.__doc__ = _RESNET_DOC.format(depth=18, file="resnet18-f37072fd.pth")
unet_resnet34.__doc__ = _RESNET_DOC.format(depth=34, file="resnet34-b627a593.pth")


#: Trained weights of the networks of this module.
WEIGHTS = (zoo_camvid("unet_resnet18", 14_328_251, "classifier.weight"),)
