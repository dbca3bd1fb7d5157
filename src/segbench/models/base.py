"""The one composition every segbench network follows: encoder -> decoder -> classifier.

``forward(x)`` returns logits ``(N, num_classes, H, W)`` at the input's size, always a tensor; auxiliary
logits only when asked for with ``model(x, with_aux=True) -> (logits, aux_logits | None)``. The model
upsamples in one place, so any H x W works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def upsample_to(logits: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinearly resize ``(N, C, h, w)`` logits to ``size`` (H, W); a no-op when already that size."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def match_size(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Crop (or zero-pad) ``x`` at the bottom/right to the spatial size of ``ref``; top-left stays aligned."""
    h, w = ref.shape[-2:]
    x = x[..., :h, :w]
    dh, dw = h - x.shape[-2], w - x.shape[-1]
    if dh or dw:
        x = F.pad(x, (0, dw, 0, dh))
    return x


class SegmentationModel(nn.Module):
    """encoder -> decoder -> classifier, plus an optional auxiliary head for training.

    Args:
        encoder: maps ``(N, 3, H, W)`` to a list of feature maps, high to low resolution.
        decoder: maps that list to one feature map.
        classifier: maps the decoder's output to ``(N, num_classes, h, w)`` logits.
        aux_head: optional; maps ``features[aux_index]`` to auxiliary logits.
        aux_index: which encoder feature map feeds ``aux_head``.

    Shape:
        input ``(N, 3, H, W)`` float; output ``(N, num_classes, H, W)`` logits.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        classifier: nn.Module,
        aux_head: nn.Module | None = None,
        aux_index: int = -1,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.classifier = classifier
        self.aux_head = aux_head
        self.aux_index = aux_index

    def forward(self, x: torch.Tensor, with_aux: bool = False):
        size = x.shape[-2:]
        features = self.encoder(x)
        logits = upsample_to(self.classifier(self.decoder(features)), size)
        if not with_aux:
            return logits
        aux = None
        if self.aux_head is not None:
            aux = upsample_to(self.aux_head(features[self.aux_index]), size)
        return logits, aux
