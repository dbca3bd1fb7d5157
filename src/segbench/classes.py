"""Class names and colour palettes of the standard datasets, segbench's palette rule and its colouriser.

Label convention (everywhere in segbench): int64 class indices ``0..num_classes-1``; pixels equal to the
``ignore_index`` (255 by default) are void and are excluded from the loss and from every metric.

Colours: a class set's own palette where it has one; any class without a colour of its own gets colour i
of :func:`default_palette`, which is never black, because black is void in every coloured label map
(:func:`colorize`, used by the report's grid and by ``segbench predict``).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segbench.errors import UserError

IGNORE_INDEX = 255


def check_unique_names(names: Sequence[str], where: str) -> None:
    """Raise :class:`UserError` naming the duplicates when a class name occurs twice in ``names`` (two classes
    of one name could not be told apart: one would take the other's scores, mapping and colour).

    Args:
        names: class names in label order.
        where: what the message names (a file, ``--classes FILE``, a class set).
    """
    seen, twice = set(), []
    for n in names:
        if n in seen and n not in twice:
            twice.append(n)
        seen.add(n)
    if twice:
        shown = ", ".join(repr(n) for n in twice[:5]) + (f" and {len(twice) - 5} more" if len(twice) > 5 else "")
        raise UserError(f"{where}: class names must be unique; named more than once: {shown}")


@dataclass(frozen=True)
class ClassSet:
    """Names, RGB colours and the void label id of a dataset's classes."""

    name: str
    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_INDEX

    def __post_init__(self) -> None:
        check_unique_names(self.names, f"class set {self.name!r}")

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

def default_palette(num_classes: int) -> list[tuple[int, int, int]]:
    """Deterministic, well-spread RGB colours for ``num_classes`` classes, never pure black (void).

    Hues walk the golden angle from 0.03; saturation cycles through 0.75, 0.95, 0.55 and value, every
    three classes, through 0.95, 0.70, 0.85. Colour i does not depend on ``num_classes``.
    """
    colours = []
    for i in range(num_classes):
        hue = (0.03 + i * 0.618033988749895) % 1.0
        sat = (0.75, 0.95, 0.55)[i % 3]
        val = (0.95, 0.70, 0.85)[(i // 3) % 3]
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


# ADE20K SceneParsing's 150 classes (the first name of each row of the benchmark's objectInfo150), in the
# order of their label values 1..150; value 0 ("other objects") is void. The release defines no colours:
# segbench's default palette.
ADE20K = ClassSet(
    "ade20k",
    (
        "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
        "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
        "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
        "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
        "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
        "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
        "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
        "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
        "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
        "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
        "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
        "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
        "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
        "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
        "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
        "glass", "clock", "flag",
    ),
    tuple(default_palette(150)),
)

CLASS_SETS = {c.name: c for c in (CAMVID, VOC, CITYSCAPES, ADE20K)}


def palette_array(palette: Sequence[Sequence[int]] | None, num_classes: int) -> np.ndarray:
    """The colour table of ``num_classes`` classes: ``palette`` first, :func:`default_palette` for the rest.

    Args:
        palette: RGB colours, index i = class i (extra channels ignored, values clipped to 0..255); None
            or too short -> the missing classes get their :func:`default_palette` colour.
        num_classes: How many classes need a colour.

    Returns:
        ``(max(num_classes, len(palette)), 3)`` uint8.
    """
    given = [tuple(int(c) for c in rgb[:3]) for rgb in (palette or [])]
    if len(given) < num_classes:
        given += default_palette(num_classes)[len(given) :]
    if not given:
        return np.zeros((0, 3), np.uint8)
    return np.clip(np.asarray(given, dtype=np.int64), 0, 255).astype(np.uint8)


def colorize(
    label: np.ndarray, palette: np.ndarray | Sequence[Sequence[int]], num_classes: int | None = None
) -> np.ndarray:
    """Colour a label map: class i gets ``palette[i]``, void is black.

    Args:
        label: ``(H, W)`` integer class indices.
        palette: ``(K, 3)`` RGB colours, index i -> colour of class i (see :func:`palette_array`).
        num_classes: Values ``>= num_classes`` (default ``K``), negative values and 255
            (:data:`IGNORE_INDEX`) are void and drawn black (0, 0, 0).

    Returns:
        ``(H, W, 3)`` uint8 RGB image.

    Raises:
        ValueError: If ``label`` is not 2-D.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label map must be (H, W), got shape {label.shape}")
    pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    n = len(pal) if num_classes is None else min(int(num_classes), len(pal))
    lab = label.astype(np.int64, copy=False)
    valid = (lab >= 0) & (lab < n) & (lab != IGNORE_INDEX)
    out = np.zeros(label.shape + (3,), np.uint8)
    out[valid] = pal[lab[valid]]
    return out
