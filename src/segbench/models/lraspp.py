"""LR-ASPP (Lite Reduced Atrous Spatial Pyramid Pooling) on MobileNetV3-Large: segbench's own implementation.

Reference: Howard et al., "Searching for MobileNetV3", arXiv 1905.02244 (https://arxiv.org/abs/1905.02244),
section 6.4 and figure 10.

The head follows the paper's figure 10 as torchvision implements it (``torchvision.models.segmentation.lraspp``),
so torchvision's checkpoints load after one key renaming
(:func:`segbench.models.convert.convert_torchvision_lraspp_state`) and give the same outputs:

- ``encoder``: :class:`~segbench.models.encoders.mobilenet_v3.MobileNetV3LargeEncoder`, output stride 16 (its last three
  bottlenecks dilated) or 8.
- ``decoder``: on the last map (960 channels) a 1x1 Conv-BN-ReLU to 128 channels, multiplied by a gate
  (global average pooling, 1x1 conv, sigmoid; torchvision's global pooling in place of the paper's 49 x 49
  pooling with stride (16, 20)); bilinearly upsampled to the stride-8 map (40 channels) and concatenated with
  it (``[high, low]``, 168 channels).
- ``classifier``: a 1x1 conv on each part (``high_classifier`` on the 128 gated channels, ``low_classifier``
  on the 40 low-level ones), summed. This equals one 1x1 conv on the concatenation; it is kept as two so the
  parameter names are torchvision's.

Module names (permanent once weights exist)::

    encoder.features.{0..16}.*                 # MobileNetV3-Large, torchvision's names
    decoder.cbr.{0,1}.*                        # 1x1 conv 960 -> 128, BN (ReLU at .2)
    decoder.scale.1.*                          # the gate's 1x1 conv (pooling at .0, sigmoid at .2)
    classifier.low_classifier.*, classifier.high_classifier.*

Shape:
    input ``(N, 3, H, W)``, ImageNet-normalised, any H and W; decoder output ``(N, 168, H/8, W/8)``; logits
    ``(N, num_classes, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import segmentation as tvseg

from segbench.errors import UserError
from segbench.models.base import SegmentationModel
from segbench.models.convert import convert_torchvision_lraspp_state
from segbench.models.encoders import check_output_stride, get_encoder
from segbench.models.layers import AdaptiveAvgPool2d, ConvBNAct
from segbench.models.pretrained import torchvision_coco_voc, zoo_camvid

__all__ = ["LRASPPClassifier", "LRASPPDecoder", "lraspp_mobilenet_v3_large"]


class LRASPPDecoder(nn.Module):
    """LR-ASPP's feature path: the gated 1x1 branch on the last map, upsampled and concatenated with the
    stride-8 map.

    Reference: Howard et al., arXiv 1905.02244, section 6.4 and figure 10.

    Args:
        low_ch: channels of the stride-8 map (``features[1]``).
        high_ch: channels of the last map (``features[-1]``).
        channels: channels of the gated branch.

    Shape:
        input: the encoder's list of maps, ``features[1]`` ``(N, low_ch, h8, w8)`` and ``features[-1]``
        ``(N, high_ch, h, w)``; output ``(N, channels + low_ch, h8, w8)`` (gated branch first).
    """

    def __init__(self, low_ch: int, high_ch: int, channels: int = 128) -> None:
        super().__init__()
        self.cbr = ConvBNAct(high_ch, channels, 1)
        self.scale = nn.Sequential(AdaptiveAvgPool2d(1), nn.Conv2d(high_ch, channels, 1, bias=False), nn.Sigmoid())
        self.channels = channels
        self.out_channels = channels + low_ch

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        low, high = features[1], features[-1]
        x = self.cbr(high) * self.scale(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([x, low], dim=1)


class LRASPPClassifier(nn.Module):
    """LR-ASPP's two 1x1 classifiers, summed: ``high_classifier`` on the first ``high_ch`` channels,
    ``low_classifier`` on the rest.

    Args:
        high_ch: channels of the gated branch.
        low_ch: channels of the low-level map.
        num_classes: output classes.

    Shape:
        ``(N, high_ch + low_ch, h, w)`` -> ``(N, num_classes, h, w)`` logits.
    """

    def __init__(self, high_ch: int, low_ch: int, num_classes: int) -> None:
        super().__init__()
        self.high_ch = high_ch
        self.low_classifier = nn.Conv2d(low_ch, num_classes, 1)
        self.high_classifier = nn.Conv2d(high_ch, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.low_classifier(x[:, self.high_ch :]) + self.high_classifier(x[:, : self.high_ch])


def lraspp_mobilenet_v3_large(
    *, num_classes: int = 21, aux_loss: bool = False, output_stride: int = 16, weights_backbone: str | None = None
) -> SegmentationModel:
    """LR-ASPP on MobileNetV3-Large (torchvision's layout; its ``coco_voc`` weights load converted).

    Reference: Howard et al., "Searching for MobileNetV3", arXiv 1905.02244 (https://arxiv.org/abs/1905.02244),
    section 6.4.

    Args:
        num_classes: output classes.
        aux_loss: must be False: LR-ASPP has no auxiliary head.
        output_stride: 16 (the last three bottlenecks dilated; the paper's and torchvision's setting) or 8.
        weights_backbone: ``None`` for random initialisation, ``"imagenet"`` for torchvision's
            ``MobileNet_V3_Large_Weights.IMAGENET1K_V1`` in ``encoder`` (inputs ImageNet-normalised).

    Returns:
        A :class:`SegmentationModel`: ``encoder`` MobileNetV3-Large; ``decoder`` :class:`LRASPPDecoder` (128
        gated channels and the 40-channel stride-8 map); ``classifier`` :class:`LRASPPClassifier`. 3,221,538
        parameters at 21 classes (torchvision's published ``num_params``; tested).

    Shape:
        input ``(N, 3, H, W)``, any H and W; encoder features at strides 4, 8 and ``output_stride``; decoder
        output at stride 8; logits ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``aux_loss=True``; ``output_stride`` not 8/16; ``weights_backbone`` not None/"imagenet";
            ImageNet weights absent and not downloadable (the message says where to place the file) or not
            fitting.
    """
    if aux_loss:
        raise UserError("lraspp_mobilenet_v3_large has no auxiliary head; use aux_loss=False")
    check_output_stride(output_stride, (8, 16), "lraspp_mobilenet_v3_large")
    encoder = get_encoder("mobilenet_v3_large", output_stride=output_stride, weights_backbone=weights_backbone)
    decoder = LRASPPDecoder(encoder.out_channels[1], encoder.out_channels[-1])
    classifier = LRASPPClassifier(decoder.channels, encoder.out_channels[1], num_classes)
    return SegmentationModel(encoder, decoder, classifier)


#: Trained weights of the network of this module.
WEIGHTS = (
    torchvision_coco_voc(
        "lraspp_mobilenet_v3_large",
        tvseg.LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
        convert_torchvision_lraspp_state,
        "classifier.low_classifier.weight",
        aux=False,
    ),
    zoo_camvid("lraspp_mobilenet_v3_large", 3_219_838, "classifier.low_classifier.weight"),
)
