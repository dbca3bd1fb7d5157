"""torchvision's MobileNetV3 segmentation networks, wrapped so that ``forward`` returns a logits tensor.

The wrapper keeps torchvision's module names (``backbone.*``, ``classifier.*``, ``aux_classifier.*``) so
torchvision's official checkpoints load unchanged. FCN and DeepLabv3 on ResNet-50/101 are segbench's own
(:mod:`segbench.models.deeplabv3`); their torchvision checkpoints, listed here in ``TORCHVISION_WEIGHTS`` with
the others, load through :func:`segbench.models.deeplabv3.convert_torchvision_state`.

References:
    DeepLabv3: Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation", arXiv 1706.05587.
    LR-ASPP / MobileNetV3: Howard et al., "Searching for MobileNetV3", arXiv 1905.02244.

Shape:
    input ``(N, 3, H, W)``, ImageNet-normalised; output ``(N, num_classes, H, W)`` logits.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torchvision.models import segmentation as tvseg

from segbench.errors import UserError
from segbench.models.base import upsample_to


class TorchvisionSegmentation(nn.Module):
    """A torchvision segmentation network with tensor outputs.

    Args:
        net: a torchvision ``FCN``, ``DeepLabV3`` or ``LRASPP`` instance; its modules are adopted.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.backbone = net.backbone
        self.classifier = net.classifier
        self.aux_classifier = getattr(net, "aux_classifier", None)
        self._lraspp = isinstance(net, tvseg.LRASPP)

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        size = x.shape[-2:]
        features = self.backbone(x)
        head_in = features if self._lraspp else features["out"]
        logits = upsample_to(self.classifier(head_in), size)
        if not with_aux:
            return logits
        aux = None
        if self.aux_classifier is not None:
            aux = upsample_to(self.aux_classifier(features["aux"]), size)
        return logits, aux


def _wrap(fn: Callable[..., nn.Module], num_classes: int, aux_loss: bool) -> TorchvisionSegmentation:
    kwargs = {"weights": None, "weights_backbone": None, "num_classes": num_classes}
    if fn is not tvseg.lraspp_mobilenet_v3_large:
        kwargs["aux_loss"] = aux_loss
    elif aux_loss:
        raise UserError("lraspp_mobilenet_v3_large has no auxiliary head; use aux_loss=False")
    return TorchvisionSegmentation(fn(**kwargs))


def deeplabv3_mobilenet_v3_large(*, num_classes: int = 21, aux_loss: bool = False) -> TorchvisionSegmentation:
    """DeepLabv3 on MobileNetV3-Large (output stride 16), torchvision's implementation (arXiv 1706.05587)."""
    return _wrap(tvseg.deeplabv3_mobilenet_v3_large, num_classes, aux_loss)


def lraspp_mobilenet_v3_large(*, num_classes: int = 21, aux_loss: bool = False) -> TorchvisionSegmentation:
    """LR-ASPP on MobileNetV3-Large, torchvision's implementation (arXiv 1905.02244). No auxiliary head."""
    return _wrap(tvseg.lraspp_mobilenet_v3_large, num_classes, aux_loss)


# torchvision weight enums for the COCO-with-VOC-labels checkpoints (the ``coco_voc`` tag), by segbench model
# name; the four ResNet ones are in torchvision's layout and converted on loading (see weights.py).
TORCHVISION_WEIGHTS = {
    "fcn_resnet50": tvseg.FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1,
    "fcn_resnet101": tvseg.FCN_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1,
    "deeplabv3_resnet50": tvseg.DeepLabV3_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1,
    "deeplabv3_resnet101": tvseg.DeepLabV3_ResNet101_Weights.COCO_WITH_VOC_LABELS_V1,
    "deeplabv3_mobilenet_v3_large": tvseg.DeepLabV3_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
    "lraspp_mobilenet_v3_large": tvseg.LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1,
}
