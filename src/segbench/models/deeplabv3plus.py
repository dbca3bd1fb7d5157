"""DeepLabv3+ on dilated ResNet-50/101, MobileNetV2, MobileNetV3-Large and the modified aligned Xception-65:
segbench's own implementation.

References:
    DeepLabv3+: Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable Convolution for
    Semantic Image Segmentation", arXiv 1802.02611 (https://arxiv.org/abs/1802.02611).
    MobileNetV2: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", arXiv 1801.04381.
    MobileNetV3: Howard et al., "Searching for MobileNetV3", arXiv 1905.02244.

DeepLabv3+ adds a light decoder to DeepLabv3: ASPP runs on the last encoder map (output stride 16 by
default), its output is upsampled to the stride-4 low-level features, which are first projected to 48
channels so they do not outweigh the 256 semantic channels; the concatenation is refined by two 3x3 convs
(depthwise separable by default) and classified at stride 4. :class:`SegmentationModel` upsamples the logits
x4 to the input size.

Module names (permanent once weights exist)::

    encoder.{conv1,bn1,layer1..layer4}.*      # ResNet: torchvision's names
    encoder.features.{0..17}.*                # MobileNetV2: torchvision's names (features.18 dropped)
    encoder.features.{0..16}.*                # MobileNetV3-Large: torchvision's names
    encoder.{stem,entry_flow,middle_flow,exit_flow}.*   # Xception-65 (segbench.models.encoders.xception)
    decoder.aspp.branches.{0..3}.*            # 1x1 and atrous branches (ConvBNAct, or separable)
    decoder.aspp.branches.4.conv.{0,1}.*      # image pooling
    decoder.aspp.project.{0,1}.*
    decoder.low_level.{0,1}.*                 # 1x1 Conv-BN-ReLU to 48 channels
    decoder.refine.{0,1}.*                    # two 3x3 Conv-BN-ReLU (or separable: .{0,1}.{0,1}.*)
    classifier.*                              # final 1x1 conv
    aux_head.conv.{0,1}.*, aux_head.classifier.*   # ResNets and MobileNetV3 with aux_loss=True

Shape:
    input ``(N, 3, H, W)``, ImageNet-normalised, any H and W; the decoder works at stride 4 on the encoder's
    first map and its last map at the output stride (8 or 16); logits ``(N, num_classes, H, W)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segbench.errors import UserError
from segbench.models.base import SegmentationModel
from segbench.models.deeplabv3 import ASPP
from segbench.models.encoders import check_output_stride, get_encoder
from segbench.models.fcn import FCNHead
from segbench.models.layers import ConvBNAct, SeparableConv
from segbench.models.pretrained import zoo_camvid

__all__ = [
    "DeepLabV3PlusDecoder",
    "SeparableASPP",
    "deeplabv3plus_mobilenet_v2",
    "deeplabv3plus_mobilenet_v3_large",
    "deeplabv3plus_resnet50",
    "deeplabv3plus_resnet101",
    "deeplabv3plus_xception65",
]


class SeparableASPP(ASPP):
    """:class:`~segbench.models.deeplabv3.ASPP` with its 3x3 atrous branches depthwise separable.

    Reference: Chen et al., arXiv 1802.02611, section 3.1.

    Args:
        in_ch: input channels.
        out_ch: channels of each branch and of the output.
        rates: dilation rates of the separable 3x3 branches.

    Shape:
        ``(N, in_ch, h, w)`` -> ``(N, out_ch, h, w)``.
    """

    def __init__(self, in_ch: int, out_ch: int = 256, rates: Sequence[int] = (6, 12, 18)) -> None:
        super().__init__(in_ch, out_ch, rates)
        for i, rate in enumerate(self.rates, start=1):
            self.branches[i] = SeparableConv(in_ch, out_ch, 3, dilation=rate)


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabv3+'s decoder less its final 1x1 classifier.

    ASPP on the last map; the first (stride 4) map projected by a 1x1 Conv-BN-ReLU to ``low_level_channels``;
    ASPP's output bilinearly upsampled to the low-level map's size and concatenated with it; two 3x3
    Conv-BN-ReLU (depthwise separable when ``separable``) with ``channels`` channels.

    Reference: Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic Image
    Segmentation", arXiv 1802.02611 (https://arxiv.org/abs/1802.02611), section 3.1 and figure 2.

    Args:
        in_ch: channels of the encoder's last map.
        low_ch: channels of the encoder's first (stride 4) map.
        rates: ASPP's atrous rates.
        channels: ASPP and refinement channels.
        low_level_channels: channels of the projected low-level features.
        separable: depthwise separable refinement convs.
        separable_aspp: depthwise separable ASPP atrous branches.

    Shape:
        input: the encoder's list of maps, ``features[0]`` ``(N, low_ch, H/4, W/4)`` and ``features[-1]``
        ``(N, in_ch, H/s, W/s)``; output ``(N, channels, H/4, W/4)``.
    """

    def __init__(
        self,
        in_ch: int,
        low_ch: int,
        rates: Sequence[int],
        channels: int = 256,
        low_level_channels: int = 48,
        separable: bool = True,
        separable_aspp: bool = False,
    ) -> None:
        super().__init__()
        self.aspp = (SeparableASPP if separable_aspp else ASPP)(in_ch, channels, rates)
        self.low_level = ConvBNAct(low_ch, low_level_channels, 1)
        block = SeparableConv if separable else ConvBNAct
        self.refine = nn.Sequential(block(channels + low_level_channels, channels, 3), block(channels, channels, 3))
        self.out_channels = channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        low = self.low_level(features[0])
        high = F.interpolate(self.aspp(features[-1]), size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(torch.cat([high, low], dim=1))


# ----------------------------------------------------------------------------------------------------------
# builders


def _rates(output_stride: int) -> tuple[int, int, int]:
    return (12, 24, 36) if output_stride == 8 else (6, 12, 18)


def _model(
    encoder: nn.Module,
    num_classes: int,
    output_stride: int,
    separable: bool,
    separable_aspp: bool,
    aux_head: nn.Module | None,
    aux_index: int = -1,
) -> SegmentationModel:
    decoder = DeepLabV3PlusDecoder(
        encoder.out_channels[-1],
        encoder.out_channels[0],
        _rates(output_stride),
        separable=separable,
        separable_aspp=separable_aspp,
    )
    classifier = nn.Conv2d(decoder.out_channels, num_classes, 1)
    return SegmentationModel(encoder, decoder, classifier, aux_head, aux_index=aux_index)


def _resnet(
    depth: int,
    num_classes: int,
    aux_loss: bool,
    output_stride: int,
    separable: bool,
    separable_aspp: bool,
    weights_backbone: str | None,
) -> SegmentationModel:
    check_output_stride(output_stride, (8, 16), f"deeplabv3plus_resnet{depth}")
    encoder = get_encoder(
        f"resnet{depth}", output_stride=output_stride, weights_backbone=weights_backbone,
        out_indices=(0, 2, 3) if aux_loss else (0, 3),
    )
    aux = FCNHead(encoder.out_channels[2], num_classes) if aux_loss else None
    return _model(encoder, num_classes, output_stride, separable, separable_aspp, aux, aux_index=2)


_RESNET_DOC = """DeepLabv3+ on a dilated ResNet-{depth}.

    Reference: Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable Convolution for
    Semantic Image Segmentation", arXiv 1802.02611 (https://arxiv.org/abs/1802.02611).

    Args:
        num_classes: output classes.
        aux_loss: add the auxiliary FCN head on ``layer3`` (``aux_head``), used with ``with_aux=True``.
        output_stride: 16 (``layer4`` dilated, ASPP rates 6/12/18; the paper's training setting) or 8
            (``layer3`` and ``layer4`` dilated, rates 12/24/36).
        separable: the decoder's two 3x3 refinement convs depthwise separable (the paper's choice).
        separable_aspp: ASPP's three 3x3 atrous branches depthwise separable.
        weights_backbone: ``None`` for random initialisation, ``"imagenet"`` for torchvision's
            ``ResNet{depth}_Weights.IMAGENET1K_V1`` in ``encoder`` (inputs ImageNet-normalised).

    Returns:
        A :class:`SegmentationModel`: ``encoder`` ResNet-{depth}; ``decoder`` ASPP (256 channels) on
        ``layer4``, ``layer1`` projected to 48 channels, two 3x3 convs (256); ``classifier`` 1x1 conv 256 ->
        classes at stride 4.

    Shape:
        input ``(N, 3, H, W)``, any H and W; encoder features at strides 4, 8, 16, 16 (output stride 16) or
        4, 8, 8, 8 (8); decoder output at stride 4; logits ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``output_stride`` not 8/16; ``weights_backbone`` not None/"imagenet"; ImageNet weights
            absent and not downloadable (the message says where to place the file) or not fitting.
    """


def deeplabv3plus_resnet50(
    *,
    num_classes: int = 21,
    aux_loss: bool = False,
    output_stride: int = 16,
    separable: bool = True,
    separable_aspp: bool = False,
    weights_backbone: str | None = None,
) -> SegmentationModel:
    return _resnet(50, num_classes, aux_loss, output_stride, separable, separable_aspp, weights_backbone)


def deeplabv3plus_resnet101(
    *,
    num_classes: int = 21,
    aux_loss: bool = False,
    output_stride: int = 16,
    separable: bool = True,
    separable_aspp: bool = False,
    weights_backbone: str | None = None,
) -> SegmentationModel:
    return _resnet(101, num_classes, aux_loss, output_stride, separable, separable_aspp, weights_backbone)


deeplabv3plus_resnet50.__doc__ = _RESNET_DOC.format(depth=50)
deeplabv3plus_resnet101.__doc__ = _RESNET_DOC.format(depth=101)


def deeplabv3plus_mobilenet_v2(
    *,
    num_classes: int = 21,
    aux_loss: bool = False,
    output_stride: int = 16,
    separable: bool = True,
    separable_aspp: bool = False,
    weights_backbone: str | None = None,
) -> SegmentationModel:
    """DeepLabv3+ on a dilated MobileNetV2 (its 320-channel last block; the 1280 1x1 conv dropped).

    Reference: Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable Convolution for
    Semantic Image Segmentation", arXiv 1802.02611 (https://arxiv.org/abs/1802.02611); MobileNetV2:
    Sandler et al., arXiv 1801.04381.

    Args:
        num_classes: output classes.
        aux_loss: must be False: this network has no auxiliary head.
        output_stride: 16 (the last stride-2 block dilated, ASPP rates 6/12/18) or 8 (the last two,
            rates 12/24/36).
        separable: the decoder's two 3x3 refinement convs depthwise separable (the paper's choice).
        separable_aspp: ASPP's three 3x3 atrous branches depthwise separable.
        weights_backbone: ``None`` for random initialisation, ``"imagenet"`` for torchvision's
            ``MobileNet_V2_Weights.IMAGENET1K_V1`` in ``encoder`` (inputs ImageNet-normalised).

    Returns:
        A :class:`SegmentationModel`: ``encoder`` :class:`~segbench.models.encoders.mobilenet_v2.MobileNetV2Encoder`; ``decoder`` ASPP (256
        channels) on the 320-channel map, the 24-channel stride-4 map projected to 48 channels, two 3x3
        convs (256); ``classifier`` 1x1 conv 256 -> classes at stride 4.

    Shape:
        input ``(N, 3, H, W)``, any H and W; encoder features at strides 4 and ``output_stride``; decoder
        output at stride 4; logits ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``aux_loss=True``; ``output_stride`` not 8/16; ``weights_backbone`` not None/"imagenet";
            ImageNet weights absent and not downloadable (the message says where to place the file) or not
            fitting.
    """
    check_output_stride(output_stride, (8, 16), "deeplabv3plus_mobilenet_v2")
    if aux_loss:
        raise UserError("deeplabv3plus_mobilenet_v2 has no auxiliary head; use aux_loss=False")
    encoder = get_encoder("mobilenet_v2", output_stride=output_stride, weights_backbone=weights_backbone)
    return _model(encoder, num_classes, output_stride, separable, separable_aspp, None)


def deeplabv3plus_mobilenet_v3_large(
    *,
    num_classes: int = 21,
    aux_loss: bool = False,
    output_stride: int = 16,
    separable: bool = True,
    separable_aspp: bool = False,
    weights_backbone: str | None = None,
) -> SegmentationModel:
    """DeepLabv3+ on a dilated MobileNetV3-Large (its 960-channel last map; low-level features at stride 4).

    Reference: Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable Convolution for
    Semantic Image Segmentation", arXiv 1802.02611 (https://arxiv.org/abs/1802.02611); MobileNetV3:
    Howard et al., arXiv 1905.02244.

    Args:
        num_classes: output classes.
        aux_loss: add the auxiliary FCN head (40 -> 10 -> classes) on the 40-channel stride-8 map
            (``aux_head``), as torchvision's DeepLabv3 on this encoder; used with ``with_aux=True``.
        output_stride: 16 (the last three bottlenecks dilated, ASPP rates 6/12/18) or 8 (from the first
            stride-16 bottleneck on, rates 12/24/36).
        separable: the decoder's two 3x3 refinement convs depthwise separable (the paper's choice).
        separable_aspp: ASPP's three 3x3 atrous branches depthwise separable.
        weights_backbone: ``None`` for random initialisation, ``"imagenet"`` for torchvision's
            ``MobileNet_V3_Large_Weights.IMAGENET1K_V1`` in ``encoder`` (inputs ImageNet-normalised).

    Returns:
        A :class:`SegmentationModel`: ``encoder`` :class:`~segbench.models.encoders.mobilenet_v3.MobileNetV3LargeEncoder`;
        ``decoder`` ASPP (256 channels) on the 960-channel map, the 24-channel stride-4 map projected to 48
        channels, two 3x3 convs (256); ``classifier`` 1x1 conv 256 -> classes at stride 4. Parameters at 21
        classes (measured, tested): 10,586,933 (encoder 2,971,952; ASPP's three 3x3 branches on 960
        channels hold 6,635,520); with ``aux_loss`` 10,590,784; with ``separable_aspp`` 4,720,373; with
        ``separable=False`` 11,727,653.

    Shape:
        input ``(N, 3, H, W)``, any H and W; encoder features at strides 4, 8 and ``output_stride``; decoder
        output at stride 4; logits ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``output_stride`` not 8/16; ``weights_backbone`` not None/"imagenet"; ImageNet weights
            absent and not downloadable (the message says where to place the file) or not fitting.
    """
    check_output_stride(output_stride, (8, 16), "deeplabv3plus_mobilenet_v3_large")
    encoder = get_encoder("mobilenet_v3_large", output_stride=output_stride, weights_backbone=weights_backbone)
    aux = FCNHead(encoder.out_channels[1], num_classes) if aux_loss else None
    return _model(encoder, num_classes, output_stride, separable, separable_aspp, aux, aux_index=1)


def deeplabv3plus_xception65(
    *,
    num_classes: int = 21,
    aux_loss: bool = False,
    output_stride: int = 16,
    separable: bool = True,
    separable_aspp: bool = True,
    weights_backbone: str | None = None,
) -> SegmentationModel:
    """DeepLabv3+ on the paper's modified aligned Xception-65 (:class:`~segbench.models.encoders.xception.XceptionEncoder`).

    Reference: Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable Convolution for
    Semantic Image Segmentation", arXiv 1802.02611 (https://arxiv.org/abs/1802.02611), sections 3.2-3.3.

    Args:
        num_classes: output classes.
        aux_loss: must be False: this network has no auxiliary head.
        output_stride: 16 (the exit flow dilated, ASPP rates 6/12/18; the paper's training setting) or 8 (the
            middle and exit flows dilated, rates 12/24/36).
        separable: the decoder's two 3x3 refinement convs depthwise separable.
        separable_aspp: ASPP's three 3x3 atrous branches depthwise separable. Both default to True: the
            paper's Xception model applies separable convs to ASPP and decoder (its table 5, "SC").
        weights_backbone: must be None: torchvision ships no ImageNet weights for this Xception, so the
            network starts from random initialisation.

    Returns:
        A :class:`SegmentationModel`: ``encoder`` Xception-65 (2048-channel last map); ``decoder`` ASPP (256
        channels) on it, the 256-channel stride-4 map (the entry flow's second block, after its second
        separable conv) projected to 48 channels, two 3x3 convs (256); ``classifier`` 1x1 conv 256 -> classes
        at stride 4. Parameters at 21 classes (measured, tested): 41,055,413 (encoder 37,867,312); with
        ``separable_aspp=False`` 53,570,741.

    Shape:
        input ``(N, 3, H, W)``, any H and W; encoder features at strides 4 and ``output_stride``; decoder
        output at stride 4; logits ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``aux_loss=True``; ``output_stride`` not 8/16; ``weights_backbone`` not None (``"imagenet"``
            included: no such weights exist in torchvision).
    """
    check_output_stride(output_stride, (8, 16), "deeplabv3plus_xception65")
    if aux_loss:
        raise UserError("deeplabv3plus_xception65 has no auxiliary head; use aux_loss=False")
    if weights_backbone == "imagenet":
        raise UserError(
            "deeplabv3plus_xception65: torchvision has no ImageNet weights for the aligned Xception-65; "
            "use weights_backbone=None (random initialisation)"
        )
    if weights_backbone is not None:
        raise UserError(f"deeplabv3plus_xception65: weights_backbone must be None, got {weights_backbone!r}")
    encoder = get_encoder("xception65", output_stride=output_stride)
    return _model(encoder, num_classes, output_stride, separable, separable_aspp, None)


#: Trained weights of the networks of this module.
WEIGHTS = (zoo_camvid("deeplabv3plus_mobilenet_v3_large", 10_584_363, "classifier.weight"),)
