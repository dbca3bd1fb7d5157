"""FCN and DeepLabv3 on dilated ResNet-50/101, and DeepLabv3 on MobileNetV3-Large: segbench's own implementation.

References:
    DeepLabv3: Chen, Papandreou, Schroff, Adam, "Rethinking Atrous Convolution for Semantic Image
    Segmentation", arXiv 1706.05587 (https://arxiv.org/abs/1706.05587).
    FCN: Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation", arXiv 1411.4038
    (https://arxiv.org/abs/1411.4038).
    ResNet: He et al., "Deep Residual Learning for Image Recognition", arXiv 1512.03385.
    MobileNetV3: Howard et al., "Searching for MobileNetV3", arXiv 1905.02244.

The networks follow torchvision's layout layer for layer (``torchvision.models.segmentation``), so that its
official checkpoints load after one key conversion (:func:`convert_torchvision_state`) and give the same
outputs:

- ``encoder``: torchvision's ResNet without ``avgpool``/``fc``, its last stages dilated instead of strided
  (output stride 8 by default, as torchvision; 16 optional).
- DeepLabv3 ``decoder``: ASPP (a 1x1 branch, three 3x3 atrous branches, image pooling; concatenated and
  projected to 256 channels, dropout 0.5) and a 3x3 conv 256 + BN + ReLU; ``classifier``: 1x1 conv.
- FCN ``decoder``: 3x3 conv to ``in/4`` channels + BN + ReLU + dropout 0.1; ``classifier``: 1x1 conv.
- ``aux_head`` (``aux_loss=True``): the FCN head on ``layer3`` (1024 channels).
- ``deeplabv3_mobilenet_v3_large``: ``encoder`` :class:`~segbench.models.mobilenet_v3.MobileNetV3LargeEncoder`
  (output stride 16, as torchvision's; 8 optional), ASPP on its 960-channel map with torchvision's rates
  12/24/36 at output stride 16 (24/48/72 at 8), the auxiliary FCN head on the 40-channel stride-8 map.

Module names (permanent once weights exist)::

    encoder.{conv1,bn1,layer1..layer4}.*         # ResNet
    encoder.features.{0..16}.*                # MobileNetV3-Large
    decoder.aspp.branches.{0..3}.{0,1}.*      # 1x1 and atrous ConvBNReLU
    decoder.aspp.branches.4.conv.{0,1}.*      # image pooling
    decoder.aspp.project.{0,1}.*
    decoder.conv.{0,1}.*                      # DeepLabv3's 3x3 conv, or FCN's conv block
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
import torchvision
from torch import nn

from segbench.errors import UserError
from segbench.models.base import SegmentationModel
from segbench.models.layers import ConvBNReLU
from segbench.models.mobilenet_v3 import mobilenet_v3_large_encoder
from segbench.models.unet import check_weights_backbone, imagenet_state_dict, load_backbone_state

__all__ = [
    "ASPP",
    "DeepLabV3Decoder",
    "FCNDecoder",
    "FCNHead",
    "ResNetEncoder",
    "convert_torchvision_mobilenet_v3_state",
    "convert_torchvision_state",
    "deeplabv3_mobilenet_v3_large",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "fcn_resnet50",
    "fcn_resnet101",
]

_DILATION = {8: [False, True, True], 16: [False, False, True], 32: [False, False, False]}


class ResNetEncoder(nn.Module):
    """torchvision's ResNet-50/101 without ``avgpool`` and ``fc``, dilated to an output stride.

    Module names are torchvision's (``conv1``, ``bn1``, ``layer1`` ... ``layer4``), so ImageNet weights load
    unchanged (less ``fc.*``).

    Reference: He et al., "Deep Residual Learning for Image Recognition", arXiv 1512.03385; dilation as in
    Chen et al., arXiv 1706.05587.

    Args:
        depth: 50 or 101.
        output_stride: 8 (``layer3`` and ``layer4`` dilated), 16 (``layer4`` dilated) or 32 (no dilation).
        out_indices: which of the four maps are returned; the others are ``None`` in the list, so each map
            is freed as soon as the next stage has used it (FCN and DeepLabv3 need only ``layer4``, and
            ``layer3`` for the auxiliary head: less peak memory, and as fast as torchvision's
            ``IntermediateLayerGetter``).

    Shape:
        input ``(N, 3, H, W)``; output a list of four maps ``(N, C_i, ceil(H / s_i), ceil(W / s_i))`` (to
        within rounding) after ``layer1`` .. ``layer4`` (``None`` where not in ``out_indices``), with
        ``C_i`` = :attr:`out_channels` = ``(256, 512, 1024, 2048)`` and ``s_i`` = :attr:`reductions`,
        e.g. ``(4, 8, 8, 8)`` at output stride 8.

    Raises:
        UserError: ``depth`` not 50/101 or ``output_stride`` not 8/16/32.
    """

    def __init__(self, depth: int = 50, output_stride: int = 8, out_indices: Sequence[int] = (0, 1, 2, 3)) -> None:
        super().__init__()
        builders = {50: torchvision.models.resnet50, 101: torchvision.models.resnet101}
        if depth not in builders:
            raise UserError(f"ResNet depth must be 50 or 101, got {depth!r}")
        if output_stride not in _DILATION:
            raise UserError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
        net = builders[depth](weights=None, replace_stride_with_dilation=_DILATION[output_stride])
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.output_stride = output_stride
        self.out_channels = (256, 512, 1024, 2048)
        self.reductions = (4, 8, min(16, output_stride), output_stride)
        self.out_indices = frozenset(out_indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        features: list[torch.Tensor | None] = []
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            features.append(x if i in self.out_indices else None)
        return features


class ASPPPooling(nn.Module):
    """ASPP's image-level branch: global average pooling, 1x1 Conv-BN-ReLU, bilinear upsampling back.

    Shape:
        ``(N, in_ch, h, w)`` -> ``(N, out_ch, h, w)``.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvBNReLU(in_ch, out_ch, 1)

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
        branches: list[nn.Module] = [ConvBNReLU(in_ch, out_ch, 1)]
        branches += [ConvBNReLU(in_ch, out_ch, 3, dilation=r) for r in self.rates]
        branches.append(ASPPPooling(in_ch, out_ch))
        self.branches = nn.ModuleList(branches)
        self.project = ConvBNReLU(len(branches) * out_ch, out_ch, 1)
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
        self.conv = ConvBNReLU(channels, channels, 3)
        self.out_channels = channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.conv(self.aspp(features[-1]))


class FCNDecoder(nn.Module):
    """FCN's head (torchvision's ``FCNHead``) less its last 1x1 conv: 3x3 Conv-BN-ReLU to ``in/4``, dropout 0.1.

    Args:
        in_ch: channels of the encoder's last feature map.

    Shape:
        input: the encoder's list of maps (the last one used, ``(N, in_ch, h, w)``); output ``(N, in_ch // 4, h, w)``.
    """

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.out_channels = in_ch // 4
        self.conv = ConvBNReLU(in_ch, self.out_channels, 3)
        self.dropout = nn.Dropout(0.1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.dropout(self.conv(features[-1]))


class FCNHead(nn.Module):
    """The FCN head as one module on one feature map (used as the auxiliary head on ``layer3``).

    Args:
        in_ch: input channels.
        num_classes: output classes.

    Shape:
        ``(N, in_ch, h, w)`` -> ``(N, num_classes, h, w)`` logits.
    """

    def __init__(self, in_ch: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_ch, in_ch // 4, 3)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Conv2d(in_ch // 4, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.conv(x)))


# ----------------------------------------------------------------------------------------------------------
# builders

_IMAGENET = {
    50: torchvision.models.ResNet50_Weights.IMAGENET1K_V1,
    101: torchvision.models.ResNet101_Weights.IMAGENET1K_V1,
}


def _check_output_stride(name: str, output_stride: int) -> None:
    if output_stride not in (8, 16):
        raise UserError(f"{name}: output_stride must be 8 or 16, got {output_stride!r}")


def _encoder(
    depth: int, output_stride: int, weights_backbone: str | None, out_indices: Sequence[int] = (0, 1, 2, 3)
) -> ResNetEncoder:
    check_weights_backbone(weights_backbone)
    state = imagenet_state_dict(_IMAGENET[depth]) if weights_backbone == "imagenet" else None  # fail before building
    encoder = ResNetEncoder(depth, output_stride, out_indices)
    if state is not None:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        load_backbone_state(encoder, state, f"resnet{depth} ImageNet weights")
    return encoder


def _aux(encoder: ResNetEncoder, num_classes: int, aux_loss: bool) -> FCNHead | None:
    return FCNHead(encoder.out_channels[2], num_classes) if aux_loss else None


def _fcn(
    depth: int, num_classes: int, aux_loss: bool, output_stride: int, weights_backbone: str | None
) -> SegmentationModel:
    _check_output_stride(f"fcn_resnet{depth}", output_stride)
    encoder = _encoder(depth, output_stride, weights_backbone, out_indices=(2, 3) if aux_loss else (3,))
    decoder = FCNDecoder(encoder.out_channels[-1])
    classifier = nn.Conv2d(decoder.out_channels, num_classes, 1)
    return SegmentationModel(encoder, decoder, classifier, _aux(encoder, num_classes, aux_loss), aux_index=2)


def _deeplabv3(
    depth: int, num_classes: int, aux_loss: bool, output_stride: int, weights_backbone: str | None
) -> SegmentationModel:
    _check_output_stride(f"deeplabv3_resnet{depth}", output_stride)
    encoder = _encoder(depth, output_stride, weights_backbone, out_indices=(2, 3) if aux_loss else (3,))
    rates = (12, 24, 36) if output_stride == 8 else (6, 12, 18)
    decoder = DeepLabV3Decoder(encoder.out_channels[-1], rates)
    classifier = nn.Conv2d(decoder.out_channels, num_classes, 1)
    return SegmentationModel(encoder, decoder, classifier, _aux(encoder, num_classes, aux_loss), aux_index=2)


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


def fcn_resnet50(
    *, num_classes: int = 21, aux_loss: bool = False, output_stride: int = 8, weights_backbone: str | None = None
) -> SegmentationModel:
    return _fcn(50, num_classes, aux_loss, output_stride, weights_backbone)


def fcn_resnet101(
    *, num_classes: int = 21, aux_loss: bool = False, output_stride: int = 8, weights_backbone: str | None = None
) -> SegmentationModel:
    return _fcn(101, num_classes, aux_loss, output_stride, weights_backbone)


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
    _check_output_stride("deeplabv3_mobilenet_v3_large", output_stride)
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
    encoder = mobilenet_v3_large_encoder(output_stride, weights_backbone)
    decoder = DeepLabV3Decoder(encoder.out_channels[-1], atrous_rates)
    classifier = nn.Conv2d(decoder.out_channels, num_classes, 1)
    aux = FCNHead(encoder.out_channels[1], num_classes) if aux_loss else None
    return SegmentationModel(encoder, decoder, classifier, aux, aux_index=1)


fcn_resnet50.__doc__ = _FCN_DOC.format(depth=50)
fcn_resnet101.__doc__ = _FCN_DOC.format(depth=101)
deeplabv3_resnet50.__doc__ = _DEEPLAB_DOC.format(depth=50)
deeplabv3_resnet101.__doc__ = _DEEPLAB_DOC.format(depth=101)

# ----------------------------------------------------------------------------------------------------------
# torchvision checkpoints

# (torchvision prefix, segbench prefix); the longest matching prefix wins.
_AUX_RULES = [
    ("aux_classifier.0.", "aux_head.conv.0."),
    ("aux_classifier.1.", "aux_head.conv.1."),
    ("aux_classifier.4.", "aux_head.classifier."),
]
_DEEPLAB_RULES = [
    *[(f"classifier.0.convs.{i}.", f"decoder.aspp.branches.{i}.") for i in range(4)],
    ("classifier.0.convs.4.1.", "decoder.aspp.branches.4.conv.0."),
    ("classifier.0.convs.4.2.", "decoder.aspp.branches.4.conv.1."),
    ("classifier.0.project.", "decoder.aspp.project."),
    ("classifier.1.", "decoder.conv.0."),
    ("classifier.2.", "decoder.conv.1."),
    ("classifier.4.", "classifier."),
]
_FCN_RULES = [
    ("classifier.0.", "decoder.conv.0."),
    ("classifier.1.", "decoder.conv.1."),
    ("classifier.4.", "classifier."),
]


def is_torchvision_state(state: dict) -> bool:
    """Whether ``state`` has torchvision's layout (``backbone.*``) rather than segbench's (``encoder.*``)."""
    return any(k.startswith("backbone.") for k in state)


def convert_torchvision_state(
    state: dict[str, torch.Tensor], encoder_prefix: str = "encoder."
) -> dict[str, torch.Tensor]:
    """Rename a torchvision FCN / DeepLabv3 state_dict to segbench's module names.

    ``backbone.*`` -> ``encoder_prefix`` + ``*``; ``classifier.*`` -> ``decoder.*`` and ``classifier.*`` (DeepLabv3's ASPP
    is recognised by ``classifier.0.convs.*``, otherwise the FCN head is assumed); ``aux_classifier.*`` ->
    ``aux_head.*``. Tensors are passed on unchanged; a key no rule covers is kept under its own name, so
    that a strict load reports it.

    Args:
        state: the state_dict of ``torchvision.models.segmentation.{fcn,deeplabv3}_resnet{50,101}`` or
            ``deeplabv3_mobilenet_v3_large``.
        encoder_prefix: ``"encoder."`` for the ResNets, ``"encoder.features."`` for MobileNetV3-Large
            (:func:`convert_torchvision_mobilenet_v3_state`).

    Returns:
        A new state_dict that loads strictly into the segbench builder of the same name.
    """
    deeplab = any(k.startswith("classifier.0.convs.") for k in state)
    rules = [("backbone.", encoder_prefix), *_AUX_RULES]
    rules = sorted(rules + (_DEEPLAB_RULES if deeplab else _FCN_RULES), key=lambda r: -len(r[0]))
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new in rules:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


def convert_torchvision_mobilenet_v3_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision ``deeplabv3_mobilenet_v3_large`` state_dict to segbench's module names
    (``backbone.N.*`` -> ``encoder.features.N.*``, the heads as in :func:`convert_torchvision_state`)."""
    return convert_torchvision_state(state, encoder_prefix="encoder.features.")
