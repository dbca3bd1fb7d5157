"""FCN-32s, FCN-16s and FCN-8s on VGG-16: the first fully convolutional segmentation networks.

Reference: Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation",
arXiv 1411.4038 (https://arxiv.org/abs/1411.4038).

Layout (module names in brackets):

- ``encoder``: VGG-16's 13 convolutions in torchvision's ``vgg16().features`` layout (``encoder.features.*``,
  so ImageNet weights load by name), then VGG's fully connected layers made convolutional: fc6 as a 7x7
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
    input ``(N, 3, H, W)`` (ImageNet-normalised when the backbone is pretrained), any H and W; encoder
    features ``(N, 256, H/8, W/8)``, ``(N, 512, H/16, W/16)``, ``(N, 4096, H/32, W/32)`` (sizes rounded up);
    logits ``(N, num_classes, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from segbench.errors import UserError
from segbench.models.base import SegmentationModel
from segbench.models.unet import check_weights_backbone, imagenet_state_dict, load_backbone_state, match_size

__all__ = ["FCNDecoder", "VGG16Encoder", "bilinear_kernel", "fcn8s_vgg16", "fcn16s_vgg16", "fcn32s_vgg16"]

# VGG-16 configuration "D": channels of the 3x3 convolutions, "M" for 2x2 max pooling.
_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


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


class VGG16Encoder(nn.Module):
    """VGG-16 convolutions (torchvision layout, ceil-mode pooling) + fc6 (7x7 conv) + fc7 (1x1 conv).

    Returns ``[input, pool3 (256, stride 8), pool4 (512, stride 16), fc7 (4096, stride 32)]``.

    Args:
        dropout: dropout after fc6 and after fc7.
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


class FCNDecoder(nn.Module):
    """Score layers, 2x learnable upsampling with skip fusion, final bilinear upsampling and crop.

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


def vgg16_imagenet_to_encoder(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert torchvision's ``vgg16`` state_dict to :class:`VGG16Encoder` keys.

    ``features.*`` is kept; ``classifier.0`` (fc6, ``4096 x 25088``) is reshaped to ``4096 x 512 x 7 x 7``
    (torchvision flattens ``512 x 7 x 7`` channel-major), ``classifier.3`` (fc7) to ``4096 x 4096 x 1 x 1``;
    ``classifier.6`` (the 1000 ImageNet classes) is dropped. Other keys are passed on, so that a strict load
    reports them.
    """
    shapes = {"classifier.0": ("fc6", (4096, 512, 7, 7)), "classifier.3": ("fc7", (4096, 4096, 1, 1))}
    out = {}
    for key, value in state.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix in shapes:
            name, shape = shapes[prefix]
            if leaf == "weight" and value.numel() == torch.Size(shape).numel():
                value = value.reshape(shape)
            out[f"{name}.{leaf}"] = value
        elif prefix != "classifier.6":
            out[key] = value
    return out


def _fcn_vgg16(output_stride: int, num_classes: int, aux_loss: bool, weights_backbone: str | None) -> SegmentationModel:
    if aux_loss:
        raise UserError(f"fcn{output_stride}s_vgg16 has no auxiliary head; use aux_loss=False")
    check_weights_backbone(weights_backbone)
    state = None
    if weights_backbone == "imagenet":  # fetched before building, so an offline failure is quick
        state = imagenet_state_dict(torchvision.models.VGG16_Weights.IMAGENET1K_V1)
    encoder = VGG16Encoder()
    if state is not None:
        load_backbone_state(encoder, vgg16_imagenet_to_encoder(state), "vgg16 ImageNet weights")
    decoder = FCNDecoder(num_classes, output_stride, encoder.out_channels)
    return SegmentationModel(encoder, decoder, nn.Identity())


def fcn32s_vgg16(*, num_classes: int = 21, aux_loss: bool = False, weights_backbone: str | None = None) -> SegmentationModel:
    """FCN-32s: FCN on VGG-16 with no skip: stride-32 scores upsampled x32.

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
        A :class:`SegmentationModel`: ``encoder`` VGG-16 + fc6/fc7, ``decoder`` scoring fc7 only, ``classifier``
        the identity.

    Shape:
        input ``(N, 3, H, W)``, any H and W; class scores at stride 32 upsampled x32 and cropped to
        logits ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``aux_loss=True`` (there is no auxiliary head).
        UserError: ``weights_backbone`` neither None nor "imagenet"; ImageNet weights absent and not
            downloadable (the message says where to place ``vgg16-397923af.pth``), or not fitting.
    """
    return _fcn_vgg16(32, num_classes, aux_loss, weights_backbone)


def fcn16s_vgg16(*, num_classes: int = 21, aux_loss: bool = False, weights_backbone: str | None = None) -> SegmentationModel:
    """FCN-16s: FCN on VGG-16 with a pool4 skip: fused stride-16 scores upsampled x16.

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
        A :class:`SegmentationModel`: ``encoder`` VGG-16 + fc6/fc7, ``decoder`` fusing fc7 and pool4 scores, ``classifier``
        the identity.

    Shape:
        input ``(N, 3, H, W)``, any H and W; class scores at stride 16 upsampled x16 and cropped to
        logits ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``aux_loss=True`` (there is no auxiliary head).
        UserError: ``weights_backbone`` neither None nor "imagenet"; ImageNet weights absent and not
            downloadable (the message says where to place ``vgg16-397923af.pth``), or not fitting.
    """
    return _fcn_vgg16(16, num_classes, aux_loss, weights_backbone)


def fcn8s_vgg16(*, num_classes: int = 21, aux_loss: bool = False, weights_backbone: str | None = None) -> SegmentationModel:
    """FCN-8s: FCN on VGG-16 with pool4 and pool3 skips: fused stride-8 scores upsampled x8.

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
        A :class:`SegmentationModel`: ``encoder`` VGG-16 + fc6/fc7, ``decoder`` fusing fc7, pool4 and pool3 scores, ``classifier``
        the identity.

    Shape:
        input ``(N, 3, H, W)``, any H and W; class scores at stride 8 upsampled x8 and cropped to
        logits ``(N, num_classes, H, W)``.

    Raises:
        UserError: ``aux_loss=True`` (there is no auxiliary head).
        UserError: ``weights_backbone`` neither None nor "imagenet"; ImageNet weights absent and not
            downloadable (the message says where to place ``vgg16-397923af.pth``), or not fitting.
    """
    return _fcn_vgg16(8, num_classes, aux_loss, weights_backbone)
