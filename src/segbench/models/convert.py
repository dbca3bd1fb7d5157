"""Converters of other libraries' state_dicts to segbench's module names.

torchvision publishes FCN, DeepLabv3 and LR-ASPP checkpoints (``coco_voc``) in its own layout
(``backbone.*``, ``classifier.*``, ``aux_classifier.*``); segbench implements those networks layer for layer
with other module names (``encoder.*``, ``decoder.*``, ``classifier.*``, ``aux_head.*``), so one renaming
makes them load strictly and give the same outputs (tested by comparing outputs). torchvision's ImageNet
VGG-16 is converted to :class:`~segbench.models.encoders.vgg.VGG16Encoder` (fc6/fc7 as convolutions).

Each converter passes tensors on unchanged and keeps a key no rule covers under its own name, so that a
strict load reports it.
"""

from __future__ import annotations

import torch

__all__ = [
    "convert_torchvision_lraspp_state",
    "convert_torchvision_mobilenet_v3_state",
    "convert_torchvision_state",
    "is_torchvision_state",
    "rename_prefixes",
    "to_torchvision_state",
    "vgg16_imagenet_to_encoder",
]


def rename_prefixes(state: dict[str, torch.Tensor], rules: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Rename keys by prefix: the first ``(old, new)`` rule whose ``old`` starts the key replaces it.

    Args:
        state: a state_dict.
        rules: ``(old prefix, new prefix)`` pairs, tried in order (put longer prefixes first).

    Returns:
        A new dict with the same tensors; keys no rule covers are kept.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new in rules:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out


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
    return rename_prefixes(state, rules)


def convert_torchvision_mobilenet_v3_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision ``deeplabv3_mobilenet_v3_large`` state_dict to segbench's module names
    (``backbone.N.*`` -> ``encoder.features.N.*``, the heads as in :func:`convert_torchvision_state`)."""
    return convert_torchvision_state(state, encoder_prefix="encoder.features.")


# (torchvision prefix, segbench prefix)
_LRASPP_RULES = [
    ("backbone.", "encoder.features."),
    ("classifier.cbr.", "decoder.cbr."),
    ("classifier.scale.", "decoder.scale."),
]


def convert_torchvision_lraspp_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision ``lraspp_mobilenet_v3_large`` state_dict to segbench's module names.

    ``backbone.*`` -> ``encoder.features.*``; ``classifier.cbr.*`` / ``classifier.scale.*`` -> ``decoder.*``;
    ``classifier.{low,high}_classifier.*`` unchanged. Tensors are passed on unchanged (the same objects); a key
    no rule covers keeps its name, so that a strict load reports it.

    Args:
        state: the state_dict of ``torchvision.models.segmentation.lraspp_mobilenet_v3_large``.

    Returns:
        A new state_dict that loads strictly into :func:`~segbench.models.lraspp.lraspp_mobilenet_v3_large`.
    """
    return rename_prefixes(state, _LRASPP_RULES)


def to_torchvision_state(arch: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of the torchvision converters: a segbench FCN / DeepLabv3 / LR-ASPP state_dict renamed to
    torchvision's layout, so that ``torchvision.models.segmentation.ARCH(num_classes=...)`` loads it strictly.

    Args:
        arch: ``fcn_resnet{50,101}``, ``deeplabv3_resnet{50,101}``, ``deeplabv3_mobilenet_v3_large`` or
            ``lraspp_mobilenet_v3_large``.
        state: a state_dict of segbench's builder of that name.

    Returns:
        A new state_dict with the same tensors; keys no rule covers keep their names, so a strict load reports them.

    Raises:
        ValueError: ``arch`` is not one of the architectures above.
    """
    if arch == "lraspp_mobilenet_v3_large":
        rules = _LRASPP_RULES
    elif arch in ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
                  "deeplabv3_mobilenet_v3_large"):  # fmt: skip
        encoder = "encoder.features." if arch == "deeplabv3_mobilenet_v3_large" else "encoder."
        rules = [("backbone.", encoder), *_AUX_RULES, *(_DEEPLAB_RULES if arch.startswith("deeplabv3") else _FCN_RULES)]
    else:
        raise ValueError(f"{arch}: no torchvision layout (expected an FCN, DeepLabv3 or LR-ASPP of torchvision)")
    return rename_prefixes(state, sorted(((new, old) for old, new in rules), key=lambda r: -len(r[0])))


def vgg16_imagenet_to_encoder(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert torchvision's ``vgg16`` state_dict to :class:`~segbench.models.encoders.vgg.VGG16Encoder` keys.

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
