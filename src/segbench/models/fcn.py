"""FCN: FCN-32s, FCN-16s and FCN-8s on VGG-16 (the paper's networks), and FCN on dilated ResNet-50/101
(torchvision's layout, whose ``coco_voc`` weights load converted).

Reference: Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation",
arXiv 1411.4038 (https://arxiv.org/abs/1411.4038).

FCN on ResNet (``fcn_resnet50/101``): ``encoder`` :class:`~segbench.models.encoders.resnet.ResNetEncoder`
(output stride 8 by default, as torchvision's; 16 optional); ``decoder`` :class:`FCNResNetDecoder` (3x3 conv
to ``in/4`` channels + BN + ReLU + dropout 0.1, torchvision's ``FCNHead`` less its last conv); ``classifier``
1x1 conv; ``aux_head`` (``aux_loss=True``) :class:`FCNHead` on ``layer3``. Module names::

    encoder.{conv1,bn1,layer1..layer4}.*, decoder.conv.{0,1}.*, classifier.*,
    aux_head.conv.{0,1}.*, aux_head.classifier.*

FCN on VGG-16 (``fcn{32,16,8}s_vgg16``), module names in brackets:

- ``encoder`` (:class:`~segbench.models.encoders.vgg.VGG16Encoder`): VGG-16's 13 convolutions in
  torchvision's ``vgg16().features`` layout (``encoder.features.*``, so ImageNet weights load by name), then VGG's fully connected layers made convolutional: fc6 as a 7x7
  convolution to 4096 channels (``encoder.fc6``) and fc7 as a 1x1 convolution (``encoder.fc7``), each followed
  by ReLU and dropout 0.5. It returns ``[input, pool3, pool4, fc7]``; the input is there only so the decoder
  knows the size to crop to.
- ``decoder``: 1x1 score layers to the classes on fc7 (``score_fr``), pool4 (``score_pool4``, 16s and 8s) and
  pool3 (``score_pool3``, 8s); 2x learnable transposed convolutions (kernel 4, stride 2, padding 1, no bias;
  ``upscore2``, ``upscore_pool4``) initialised to exact bilinear upsampling; fusion by summation; a final
  fixed bilinear upsampling to the input size. FCN classifies before it upsamples, so the score layers live
  in the decoder and ``classifier`` is the identity.

Changes from the paper, so that any H x W works without the paper's 100-pixel input padding and its crop
offsets:

- fc6 has padding 3 (the paper: padding 0 and a 100-pixel zero border around the input). Each map then has
  the same grid as the input: the cell ``i`` of a stride-``s`` map is centred on input pixel
  ``s * i + (s - 1) / 2``, which is what bilinear interpolation with ``align_corners=False`` assumes.
- Max pooling uses ``ceil_mode=True`` (as Caffe, in which FCN was written, does), so no map shrinks to zero
  and a stride-``s`` map has ``ceil(H / s)`` rows. A 2x-upsampled map is then never smaller than the skip it
  is added to; its extra bottom row / right column (odd sizes) is cropped. Both maps start at the same
  top-left pixel, so the crop keeps them aligned.
- The final x32 / x16 / x8 upsampling is a parameter-free bilinear interpolation by exactly that factor,
  followed by a crop to ``(H, W)``, instead of a transposed convolution fixed to bilinear weights (the
  paper's released models do not learn it: learning rate 0). Interpolating straight to ``(H, W)`` would
  stretch the grid when H or W is not a multiple of the stride.
- Score layers are initialised to zero, as in the paper; the 2x upsamplings to bilinear interpolation.

Shape:
    input ``(N, 3, H, W)`` (ImageNet-normalised when the backbone is pretrained), any H and W; VGG encoder
    features ``(N, 256, H/8, W/8)``, ``(N, 512, H/16, W/16)``, ``(N, 4096, H/32, W/32)`` (sizes rounded up);
    ResNet encoder features at strides 4, 8, 8, 8 (output stride 8) or 4, 8, 16, 16 (16); logits
    ``(N, num_classes, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tvseg

from segbench.errors import UserError
from segbench.models.base import SegmentationModel, match_size
from segbench.models.convert import convert_torchvision_state
from segbench.models.encoders import check_output_stride, get_encoder
from segbench.models.layers import ConvBNAct
from segbench.models.pretrained import torchvision_coco_voc

__all__ = [
    "FCNHead",
    "FCNResNetDecoder",
    "FCNSkipDecoder",
    "bilinear_kernel",
    "fcn8s_vgg16",
    "fcn16s_vgg16",
    "fcn32s_vgg16",
    "fcn_resnet50",
    "fcn_resnet101",
]

def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Transposed-convolution weights ``(channels, channels, k, k)`` for bilinear upsampling by ``(k + 1) // 2``.

    Each channel is upsampled on its own (zero weights across channels). With ``k = 4``, stride 2 and
    padding 1 the result equals ``F.interpolate(scale_factor=2, mode="bilinear", align_corners=False)``
    except on the one-pixel border (where interpolation repeats the edge and the convolution sees zeros).
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    taps = 1 - (torch.arange(kernel_size, dtype=torch.float64) - center).abs() / factor
    kernel = (taps[:, None] * taps[None, :]).float()
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    idx = torch.arange(channels)
    weight[idx, idx] = kernel
    return weight


class FCNSkipDecoder(nn.Module):
    """FCN-32s/16s/8s's decoder: score layers, 2x learnable upsampling with skip fusion, final bilinear
    upsampling and crop.

    Args:
        num_classes: output classes.
        output_stride: 32 (FCN-32s), 16 (FCN-16s, + pool4) or 8 (FCN-8s, + pool4 and pool3).
        encoder_channels: the encoder's ``out_channels``.
    """

    def __init__(self, num_classes: int, output_stride: int, encoder_channels: tuple[int, ...] = (3, 256, 512, 4096)) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        self.output_stride = output_stride
        _, c3, c4, c7 = encoder_channels
        self.score_fr = nn.Conv2d(c7, num_classes, 1)
        self.upscore2 = self.score_pool4 = self.upscore_pool4 = self.score_pool3 = None
        if output_stride <= 16:
            self.upscore2 = self._up2(num_classes)
            self.score_pool4 = nn.Conv2d(c4, num_classes, 1)
        if output_stride == 8:
            self.upscore_pool4 = self._up2(num_classes)
            self.score_pool3 = nn.Conv2d(c3, num_classes, 1)
        for m in (self.score_fr, self.score_pool4, self.score_pool3):
            if m is not None:
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _up2(channels: int) -> nn.ConvTranspose2d:
        up = nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1, bias=False)
        with torch.no_grad():
            up.weight.copy_(bilinear_kernel(channels, 4))
        return up

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x, pool3, pool4, fc7 = features
        score = self.score_fr(fc7)
        if self.score_pool4 is not None:
            score = match_size(self.upscore2(score), pool4) + self.score_pool4(pool4)
        if self.score_pool3 is not None:
            score = match_size(self.upscore_pool4(score), pool3) + self.score_pool3(pool3)
        score = F.interpolate(score, scale_factor=float(self.output_stride), mode="bilinear", align_corners=False)
        return match_size(score, x)


class FCNResNetDecoder(nn.Module):
    """FCN's head (torchvision's ``FCNHead``) less its last 1x1 conv: 3x3 Conv-BN-ReLU to ``in/4``, dropout 0.1.

    Args:
        in_ch: channels of the encoder's last feature map.

    Shape:
        input: the encoder's list of maps (the last one used, ``(N, in_ch, h, w)``); output ``(N, in_ch // 4, h, w)``.
    """

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.out_channels = in_ch // 4
        self.conv = ConvBNAct(in_ch, self.out_channels, 3)
        self.dropout = nn.Dropout(0.1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.dropout(self.conv(features[-1]))


class FCNHead(nn.Module):
    """The FCN head as one module on one feature map (the auxiliary head of the ResNet and MobileNetV3
    networks: FCN, DeepLabv3, DeepLabv3+).

    Args:
        in_ch: input channels.
        num_classes: output classes.

    Shape:
        ``(N, in_ch, h, w)`` -> ``(N, num_classes, h, w)`` logits.
    """

    def __init__(self, in_ch: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNAct(in_ch, in_ch // 4, 3)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Conv2d(in_ch // 4, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.conv(x)))


def _fcn(
    depth: int, num_classes: int, aux_loss: bool, output_stride: int, weights_backbone: str | None
) -> SegmentationModel:
    check_output_stride(output_stride, (8, 16), f"fcn_resnet{depth}")
    encoder = get_encoder(
        f"resnet{depth}", output_stride=output_stride, weights_backbone=weights_backbone,
        out_indices=(2, 3) if aux_loss else (3,),
    )
    decoder = FCNResNetDecoder(encoder.out_channels[-1])
    classifier = nn.Conv2d(decoder.out_channels, num_classes, 1)
    aux = FCNHead(encoder.out_channels[2], num_classes) if aux_loss else None
    return SegmentationModel(encoder, decoder, classifier, aux, aux_index=2)


_FCN_DOC = """FCN on a dilated ResNet-{depth} (torchvision's layout; its ``coco_voc`` weights load converted).

    Reference: Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation",
    arXiv 1411.4038 (https://arxiv.org/abs/1411.4038); dilated backbone as in Chen et al., arXiv 1706.05587.

    Args:
        num_classes: output classes.
        aux_loss: add the auxiliary FCN head on ``layer3`` (``aux_head``), used with ``with_aux=True``.
        output_stride: 8 (``layer3`` and ``layer4`` dilated; torchvision's setting) or 16 (``layer4`` dilated).
        weights_backbone: ``None`` for random initialisation, ``"imagenet"`` for torchvision's
            ``ResNet{depth}_Weights.IMAGENET1K_V1`` in ``encoder`` (inputs ImageNet-normalised).

    Returns:
        A :class:`SegmentationModel`: ``encoder`` ResNet-{depth}; ``decoder`` 3x3 Conv-BN-ReLU 2048 -> 512 and
        dropout 0.1; ``classifier`` 1x1 conv 512 -> classes.

    Shape:
        input ``(N, 3, H, W)``, any H and W; encoder features at strides 4, 8, 8, 8 (output stride 8) or
        4, 8, 16, 16 (16); logits ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``output_stride`` not 8/16; ``weights_backbone`` not None/"imagenet"; ImageNet weights
            absent and not downloadable (the message says where to place the file) or not fitting.
    """


def fcn_resnet50(
    *, num_classes: int = 21, aux_loss: bool = False, output_stride: int = 8, weights_backbone: str | None = None
) -> SegmentationModel:
    return _fcn(50, num_classes, aux_loss, output_stride, weights_backbone)


def fcn_resnet101(
    *, num_classes: int = 21, aux_loss: bool = False, output_stride: int = 8, weights_backbone: str | None = None
) -> SegmentationModel:
    return _fcn(101, num_classes, aux_loss, output_stride, weights_backbone)


fcn_resnet50.__doc__ = _FCN_DOC.format(depth=50)
fcn_resnet101.__doc__ = _FCN_DOC.format(depth=101)


def _fcn_vgg16(output_stride: int, num_classes: int, aux_loss: bool, weights_backbone: str | None) -> SegmentationModel:
    if aux_loss:
        raise UserError(f"fcn{output_stride}s_vgg16 has no auxiliary head; use aux_loss=False")
    encoder = get_encoder("vgg16", weights_backbone=weights_backbone)
    decoder = FCNSkipDecoder(num_classes, output_stride, encoder.out_channels)
    return SegmentationModel(encoder, decoder, nn.Identity())


_VGG_DOC = """FCN-{stride}s: FCN on VGG-16 {skips}: {fused}stride-{stride} scores upsampled x{stride}.

    Reference: Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation",
    arXiv 1411.4038 (https://arxiv.org/abs/1411.4038). The module docstring lists the changes that let any
    input size work (fc6 padding 3 instead of a 100-pixel input border, ceil-mode pooling, aligned crops).

    Args:
        num_classes: output classes.
        aux_loss: must be False; FCN has no auxiliary head.
        weights_backbone: ``None`` for random initialisation, ``"imagenet"`` for torchvision's
            ``VGG16_Weights.IMAGENET1K_V1`` in ``encoder`` (conv layers by name, ``classifier.0`` reshaped
            into fc6, ``classifier.3`` into fc7); inputs are then expected ImageNet-normalised.

    Returns:
        A :class:`SegmentationModel`: ``encoder`` VGG-16 + fc6/fc7, ``decoder`` {decoder}, ``classifier``
        the identity.

    Shape:
        input ``(N, 3, H, W)``, any H and W; class scores at stride {stride} upsampled x{stride} and cropped
        to logits ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``aux_loss=True`` (there is no auxiliary head).
        UserError: ``weights_backbone`` neither None nor "imagenet"; ImageNet weights absent and not
            downloadable (the message says where to place ``vgg16-397923af.pth``), or not fitting.
    """


def fcn32s_vgg16(*, num_classes: int = 21, aux_loss: bool = False, weights_backbone: str | None = None) -> SegmentationModel:
    return _fcn_vgg16(32, num_classes, aux_loss, weights_backbone)


def fcn16s_vgg16(*, num_classes: int = 21, aux_loss: bool = False, weights_backbone: str | None = None) -> SegmentationModel:
    return _fcn_vgg16(16, num_classes, aux_loss, weights_backbone)


def fcn8s_vgg16(*, num_classes: int = 21, aux_loss: bool = False, weights_backbone: str | None = None) -> SegmentationModel:
    return _fcn_vgg16(8, num_classes, aux_loss, weights_backbone)


fcn32s_vgg16.__doc__ = _VGG_DOC.format(stride=32, skips="with no skip", fused="", decoder="scoring fc7 only")
fcn16s_vgg16.__doc__ = _VGG_DOC.format(
    stride=16, skips="with a pool4 skip", fused="fused ", decoder="fusing fc7 and pool4 scores"
)
fcn8s_vgg16.__doc__ = _VGG_DOC.format(
    stride=8, skips="with pool4 and pool3 skips", fused="fused ", decoder="fusing fc7, pool4 and pool3 scores"
)


#: Trained weights of the networks of this module.
WEIGHTS = tuple(
    torchvision_coco_voc(f"fcn_resnet{depth}", weights, convert_torchvision_state, "classifier.weight", aux=True)
    for depth, weights in (
        (50, tvseg.FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1),
        (101, tvseg.FCN_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1),
    )
)
