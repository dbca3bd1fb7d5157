"""Segmentation encoders and :func:`get_encoder`, the one way the architectures build them.

An encoder maps ``(N, 3, H, W)`` to a list of feature maps, high to low resolution, and declares
``out_channels`` and ``reductions`` (the stride of each map). Dilation to an output stride is the rule of
:func:`~segbench.models.encoders.dilation.stride_dilation`, written once; ImageNet weights are loaded by
:func:`~segbench.models.pretrained.load_imagenet` from each encoder's ``IMAGENET`` spec.

=====================  ==============================================  ================  ==========
name                   class                                           output strides    ImageNet
=====================  ==============================================  ================  ==========
``resnet18/34``        :class:`~.resnet.ResNetEncoder`                 32                torchvision
``resnet50/101``       :class:`~.resnet.ResNetEncoder`                 8, 16, 32         torchvision
``mobilenet_v2``       :class:`~.mobilenet_v2.MobileNetV2Encoder`      8, 16, 32         torchvision
``mobilenet_v3_large`` :class:`~.mobilenet_v3.MobileNetV3LargeEncoder` 8, 16, 32         torchvision
``xception65``         :class:`~.xception.XceptionEncoder`             8, 16, 32         none
``vgg16``              :class:`~.vgg.VGG16Encoder`                     32                torchvision
=====================  ==============================================  ================  ==========
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from segbench.errors import UserError
from segbench.models.encoders import mobilenet_v2, mobilenet_v3, resnet, vgg, xception
from segbench.models.encoders.dilation import check_output_stride, stride_dilation
from segbench.models.pretrained import ImagenetWeights, load_imagenet

__all__ = ["ENCODERS", "check_output_stride", "get_encoder", "stride_dilation"]


def _resnet(depth: int) -> tuple[Callable[..., nn.Module], ImagenetWeights]:
    def build(output_stride: int, **kwargs) -> nn.Module:
        return resnet.ResNetEncoder(depth, output_stride, **kwargs)

    return build, resnet.IMAGENET[depth]


def _vgg16(output_stride: int, **kwargs) -> nn.Module:
    check_output_stride(output_stride, (32,), "vgg16")
    return vgg.VGG16Encoder(**kwargs)


#: name -> (builder taking ``output_stride`` and the encoder's own keywords, ImageNet spec or None)
ENCODERS: dict[str, tuple[Callable[..., nn.Module], ImagenetWeights | None]] = {
    **{f"resnet{depth}": _resnet(depth) for depth in (18, 34, 50, 101)},
    "mobilenet_v2": (lambda output_stride: mobilenet_v2.MobileNetV2Encoder(output_stride), mobilenet_v2.IMAGENET),
    "mobilenet_v3_large": (
        lambda output_stride: mobilenet_v3.MobileNetV3LargeEncoder(output_stride),
        mobilenet_v3.IMAGENET,
    ),
    "xception65": (lambda output_stride, **kw: xception.XceptionEncoder(output_stride, **kw), None),
    "vgg16": (_vgg16, vgg.IMAGENET),
}


def get_encoder(name: str, *, output_stride: int = 32, weights_backbone: str | None = None, **kwargs) -> nn.Module:
    """Build encoder ``name``, dilated to ``output_stride``, optionally with its ImageNet weights.

    Args:
        name: one of :data:`ENCODERS` (``resnet50``, ``mobilenet_v3_large``, ...).
        output_stride: the stride of the last map: 8, 16 or 32 (see the table in the module docstring).
        weights_backbone: ``None`` for random initialisation, ``"imagenet"`` for torchvision's ImageNet
            weights (inputs ImageNet-normalised); the file is fetched before the encoder is built.
        **kwargs: the encoder's own keywords (``out_indices``, ``with_stem`` for the ResNets).

    Returns:
        The encoder: ``forward(x)`` gives a list of maps, high to low resolution; ``out_channels`` and
        ``reductions`` say their channels and strides.

    Raises:
        UserError: unknown ``name`` (the known ones listed); ``output_stride`` not accepted;
            ``weights_backbone`` not None/"imagenet", or "imagenet" for an encoder without such weights;
            the ImageNet file absent and not downloadable (the message says where to place it) or not
            fitting.
    """
    if name not in ENCODERS:
        raise UserError(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}")
    build, spec = ENCODERS[name]
    return load_imagenet(lambda: build(output_stride, **kwargs), spec, weights_backbone)
