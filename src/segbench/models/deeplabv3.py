"""DeepLabv3 on dilated ResNet-50/101 and on MobileNetV3-Large: segbench's own implementation.

References:
    DeepLabv3: Chen, Papandreou, Schroff, Adam, "Rethinking Atrous Convolution for Semantic Image
    Segmentation", arXiv 1706.05587 (https://arxiv.org/abs/1706.05587).
    ResNet: He et al., "Deep Residual Learning for Image Recognition", arXiv 1512.03385.
    MobileNetV3: Howard et al., "Searching for MobileNetV3", arXiv 1905.02244.

The networks follow torchvision's layout layer for layer (``torchvision.models.segmentation``), so that its
official checkpoints load after one key conversion (:func:`segbench.models.convert.convert_torchvision_state`)
and give the same outputs (FCN on the same encoders: :mod:`segbench.models.fcn`):

- ``encoder``: torchvision's ResNet without ``avgpool``/``fc``, its last stages dilated instead of strided
  (output stride 8 by default, as torchvision; 16 optional).
- DeepLabv3 ``decoder``: ASPP (a 1x1 branch, three 3x3 atrous branches, image pooling; concatenated and
  projected to 256 channels, dropout 0.5) and a 3x3 conv 256 + BN + ReLU; ``classifier``: 1x1 conv.
- ``aux_head`` (``aux_loss=True``): the FCN head on ``layer3`` (1024 channels).
- ``deeplabv3_mobilenet_v3_large``: ``encoder`` :class:`~segbench.models.encoders.mobilenet_v3.MobileNetV3LargeEncoder`
  (output stride 16, as torchvision's; 8 optional), ASPP on its 960-channel map with torchvision's rates
  12/24/36 at output stride 16 (24/48/72 at 8), the auxiliary FCN head on the 40-channel stride-8 map.

Module names (permanent once weights exist)::

    encoder.{conv1,bn1,layer1..layer4}.*         # ResNet
    encoder.features.{0..16}.*                # MobileNetV3-Large
    decoder.aspp.branches.{0..3}.{0,1}.*      # 1x1 and atrous ConvBNAct
    decoder.aspp.branches.4.conv.{0,1}.*      # image pooling
    decoder.aspp.project.{0,1}.*
    decoder.conv.{0,1}.*                      # DeepLabv3's 3x3 conv
    classifier.*                              # final 1x1 conv
    aux_head.conv.{0,1}.*, aux_head.classifier.*

Shape:
    input ``(N, 3, H, W)``, ImageNet-normalised, any H and W; encoder features ``(N, 256|512|1024|2048, H/s,
    W/s)`` at strides ``s = 4, 8, 8, 8`` (output stride 8) or ``4, 8, 16, 16`` (16); logits
    ``(N, num_classes, H, W)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tvseg

from segbench.errors import UserError
from segbench.models.base import SegmentationModel
from segbench.models.convert import convert_torchvision_mobilenet_v3_state, convert_torchvision_state
from segbench.models.encoders import check_output_stride, get_encoder
from segbench.models.fcn import FCNHead
from segbench.models.layers import AdaptiveAvgPool2d, ConvBNAct
from segbench.models.pretrained import torchvision_coco_voc, zoo_camvid

__all__ = [
    "ASPP",
    "DeepLabV3Decoder",
    "deeplabv3_mobilenet_v3_large",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
]


class ASPPPooling(nn.Module):
    """ASPP's image-level branch: global average pooling, 1x1 Conv-BN-ReLU, bilinear upsampling back.

    Shape:
        ``(N, in_ch, h, w)`` -> ``(N, out_ch, h, w)``.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.pool = AdaptiveAvgPool2d(1)
        self.conv = ConvBNAct(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(self.pool(x))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling as in DeepLabv3 (with BatchNorm and image pooling).

    Five parallel branches on the same input: a 1x1 Conv-BN-ReLU, one 3x3 atrous Conv-BN-ReLU per rate, and
    image pooling; concatenated, projected by a 1x1 Conv-BN-ReLU, then dropout 0.5.

    Reference: Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation", arXiv 1706.05587,
    section 3.3.

    Args:
        in_ch: input channels.
        out_ch: channels of each branch and of the output.
        rates: dilation rates of the 3x3 branches; the paper's ``(6, 12, 18)`` at output stride 16, doubled
            ``(12, 24, 36)`` at 8.

    Shape:
        ``(N, in_ch, h, w)`` -> ``(N, out_ch, h, w)``.
    """

    def __init__(self, in_ch: int, out_ch: int = 256, rates: Sequence[int] = (12, 24, 36)) -> None:
        super().__init__()
        self.rates = tuple(int(r) for r in rates)
        branches: list[nn.Module] = [ConvBNAct(in_ch, out_ch, 1)]
        branches += [ConvBNAct(in_ch, out_ch, 3, dilation=r) for r in self.rates]
        branches.append(ASPPPooling(in_ch, out_ch))
        self.branches = nn.ModuleList(branches)
        self.project = ConvBNAct(len(branches) * out_ch, out_ch, 1)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.project(torch.cat([b(x) for b in self.branches], dim=1)))


class DeepLabV3Decoder(nn.Module):
    """DeepLabv3's head less its last 1x1 conv: ASPP on the last feature map, then 3x3 Conv-BN-ReLU.

    Args:
        in_ch: channels of the encoder's last feature map.
        rates: ASPP's atrous rates.
        channels: ASPP and output channels.

    Shape:
        input: the encoder's list of maps (the last one used, ``(N, in_ch, h, w)``); output ``(N, channels, h, w)``.
    """

    def __init__(self, in_ch: int, rates: Sequence[int], channels: int = 256) -> None:
        super().__init__()
        self.aspp = ASPP(in_ch, channels, rates)
        self.conv = ConvBNAct(channels, channels, 3)
        self.out_channels = channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.conv(self.aspp(features[-1]))


# ----------------------------------------------------------------------------------------------------------
# builders

def _deeplabv3(
    depth: int, num_classes: int, aux_loss: bool, output_stride: int, weights_backbone: str | None
) -> SegmentationModel:
    check_output_stride(output_stride, (8, 16), f"deeplabv3_resnet{depth}")
    encoder = get_encoder(
        f"resnet{depth}", output_stride=output_stride, weights_backbone=weights_backbone,
        out_indices=(2, 3) if aux_loss else (3,),
    )
    rates = (12, 24, 36) if output_stride == 8 else (6, 12, 18)
    decoder = DeepLabV3Decoder(encoder.out_channels[-1], rates)
    classifier = nn.Conv2d(decoder.out_channels, num_classes, 1)
    aux = FCNHead(encoder.out_channels[2], num_classes) if aux_loss else None
    return SegmentationModel(encoder, decoder, classifier, aux, aux_index=2)


_DEEPLAB_DOC = """DeepLabv3 on a dilated ResNet-{depth} (torchvision's layout; its ``coco_voc`` weights load converted).

    Reference: Chen, Papandreou, Schroff, Adam, "Rethinking Atrous Convolution for Semantic Image
    Segmentation", arXiv 1706.05587 (https://arxiv.org/abs/1706.05587).

    Args:
        num_classes: output classes.
        aux_loss: add the auxiliary FCN head on ``layer3`` (``aux_head``), used with ``with_aux=True``.
        output_stride: 8 (``layer3`` and ``layer4`` dilated, ASPP rates 12/24/36; torchvision's setting) or
            16 (``layer4`` dilated, rates 6/12/18).
        weights_backbone: ``None`` for random initialisation, ``"imagenet"`` for torchvision's
            ``ResNet{depth}_Weights.IMAGENET1K_V1`` in ``encoder`` (inputs ImageNet-normalised).

    Returns:
        A :class:`SegmentationModel`: ``encoder`` ResNet-{depth}; ``decoder`` ASPP (256 channels) and a 3x3
        Conv-BN-ReLU; ``classifier`` 1x1 conv 256 -> classes.

    Shape:
        input ``(N, 3, H, W)``, any H and W; encoder features at strides 4, 8, 8, 8 (output stride 8) or
        4, 8, 16, 16 (16); logits ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``output_stride`` not 8/16; ``weights_backbone`` not None/"imagenet"; ImageNet weights
            absent and not downloadable (the message says where to place the file) or not fitting.
    """


def deeplabv3_resnet50(
    *, num_classes: int = 21, aux_loss: bool = False, output_stride: int = 8, weights_backbone: str | None = None
) -> SegmentationModel:
    return _deeplabv3(50, num_classes, aux_loss, output_stride, weights_backbone)


def deeplabv3_resnet101(
    *, num_classes: int = 21, aux_loss: bool = False, output_stride: int = 8, weights_backbone: str | None = None
) -> SegmentationModel:
    return _deeplabv3(101, num_classes, aux_loss, output_stride, weights_backbone)


def deeplabv3_mobilenet_v3_large(
    *,
    num_classes: int = 21,
    aux_loss: bool = False,
    output_stride: int = 16,
    atrous_rates: Sequence[int] | None = None,
    weights_backbone: str | None = None,
) -> SegmentationModel:
    """DeepLabv3 on a dilated MobileNetV3-Large (torchvision's layout; its ``coco_voc`` weights load converted).

    Reference: Chen, Papandreou, Schroff, Adam, "Rethinking Atrous Convolution for Semantic Image
    Segmentation", arXiv 1706.05587 (https://arxiv.org/abs/1706.05587); MobileNetV3: Howard et al.,
    arXiv 1905.02244.

    Args:
        num_classes: output classes.
        aux_loss: add the auxiliary FCN head (40 -> 10 -> classes) on the 40-channel stride-8 map
            (``aux_head``, ``features[1]``), used with ``with_aux=True``.
        output_stride: 16 (the last three bottlenecks dilated; torchvision's setting) or 8 (from the first
            stride-16 bottleneck on).
        atrous_rates: ASPP's three rates. Default: torchvision's ``(12, 24, 36)`` at output stride 16, which its
            ``coco_voc`` weights were trained with (the paper's ResNet setting is ``(6, 12, 18)`` at 16), doubled
            to ``(24, 48, 72)`` at output stride 8.
        weights_backbone: ``None`` for random initialisation, ``"imagenet"`` for torchvision's
            ``MobileNet_V3_Large_Weights.IMAGENET1K_V1`` in ``encoder`` (inputs ImageNet-normalised).

    Returns:
        A :class:`SegmentationModel`: ``encoder`` MobileNetV3-Large (960-channel last map); ``decoder`` ASPP
        (256 channels) and a 3x3 Conv-BN-ReLU; ``classifier`` 1x1 conv 256 -> classes. 11,029,328 parameters at
        21 classes with the auxiliary head (torchvision's published ``num_params``; tested), 11,025,477 without.

    Shape:
        input ``(N, 3, H, W)``, any H and W; encoder features at strides 4, 8 and ``output_stride``; logits
        ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``output_stride`` not 8/16; ``atrous_rates`` not three positive integers;
            ``weights_backbone`` not None/"imagenet"; ImageNet weights absent and not downloadable (the
            message says where to place the file) or not fitting.
    """
    check_output_stride(output_stride, (8, 16), "deeplabv3_mobilenet_v3_large")
    if atrous_rates is None:
        atrous_rates = tuple(r * 16 // output_stride for r in (12, 24, 36))
    elif (
        isinstance(atrous_rates, (str, bytes))
        or len(atrous_rates) != 3
        or not all(isinstance(r, int) and not isinstance(r, bool) and r > 0 for r in atrous_rates)
    ):
        raise UserError(
            f"deeplabv3_mobilenet_v3_large: atrous_rates must be three positive integers, got {atrous_rates!r}"
        )
    encoder = get_encoder("mobilenet_v3_large", output_stride=output_stride, weights_backbone=weights_backbone)
    decoder = DeepLabV3Decoder(encoder.out_channels[-1], atrous_rates)
    classifier = nn.Conv2d(decoder.out_channels, num_classes, 1)
    aux = FCNHead(encoder.out_channels[1], num_classes) if aux_loss else None
    return SegmentationModel(encoder, decoder, classifier, aux, aux_index=1)


deeplabv3_resnet50.__doc__ = _DEEPLAB_DOC.format(depth=50)
deeplabv3_resnet101.__doc__ = _DEEPLAB_DOC.format(depth=101)


#: Trained weights of the networks of this module.
WEIGHTS = (
    *(
        torchvision_coco_voc(f"deeplabv3_resnet{depth}", weights, convert_torchvision_state, "classifier.weight", aux=True)
        for depth, weights in (
            (50, tvseg.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1),
            (101, tvseg.DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1),
        )
    ),
    torchvision_coco_voc(
        "deeplabv3_mobilenet_v3_large",
        tvseg.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
        convert_torchvision_mobilenet_v3_state,
        "classifier.weight",
        aux=True,
    ),
    zoo_camvid("deeplabv3_mobilenet_v3_large", 11_022_907, "classifier.weight"),
)
