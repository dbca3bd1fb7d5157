"""Class names and colour palettes of the standard datasets.

Label convention (everywhere in segbench): int64 class indices ``0..num_classes-1``; pixels equal to the
``ignore_index`` (255 by default) are void and are excluded from the loss and from every metric.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = 255


@dataclass(frozen=True)
class ClassSet:
    """Names, RGB colours and the void label id of a dataset's classes."""

    name: str
    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_INDEX

    @property
    def num_classes(self) -> int:
        return len(self.names)


# SegNet's 11-class CamVid; label 11 ("Unlabelled") is void.
CAMVID = ClassSet(
    "camvid",
    ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist"),
    (
        (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
        (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
    ),
    ignore_index=11,
)


def _voc_colour(i: int) -> tuple[int, int, int]:
    # PASCAL VOC's palette: the bits of the class index spread over the high bits of R, G and B.
    r = g = b = 0
    for shift in range(7, -1, -1):
        r |= ((i >> 0) & 1) << shift
        g |= ((i >> 1) & 1) << shift
        b |= ((i >> 2) & 1) << shift
        i >>= 3
    return r, g, b


VOC = ClassSet(
    "voc",
    (
        "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
        "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
    ),
    tuple(_voc_colour(i) for i in range(21)),
)

# Cityscapes' 19 training ids (labels.py of the cityscapesScripts); 255 is void.
CITYSCAPES = ClassSet(
    "cityscapes",
    (
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
        "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
    ),
    (
        (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
        (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
        (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
    ),
)

CLASS_SETS = {c.name: c for c in (CAMVID, VOC, CITYSCAPES)}


def default_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """A deterministic palette for ``num_classes`` classes (VOC's bit pattern)."""
    return [_voc_colour(i) for i in range(num_classes)]
