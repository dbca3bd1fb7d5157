"""Segmentation networks: a registry of typed builders, and loading with weights.

``build_model(name, **kw)`` builds a network with random weights; ``load_model(spec)`` builds it and
loads weights from a tag (``fast_scnn.camvid``, ``deeplabv3_resnet101.coco_voc``) or a file.
Every model maps ``(N, 3, H, W)`` to logits ``(N, num_classes, H, W)``.
"""

from __future__ import annotations

from segbench.models.base import SegmentationModel
from segbench.models.builders import MODELS, build_model, list_models
from segbench.models.weights import LoadedModel, ModelInfo, available_weights, load_model

__all__ = [
    "MODELS",
    "LoadedModel",
    "ModelInfo",
    "SegmentationModel",
    "available_weights",
    "build_model",
    "list_models",
    "load_model",
]
