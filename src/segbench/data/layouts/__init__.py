"""The dataset layouts segbench reads, as each dataset is published, one module each, and the rules that
tell them apart.

Detection order (the first that recognises the folder wins): Cityscapes (``leftImg8bit/``), ADE20K
(``images/{training,validation}`` + ``annotations/``), PASCAL VOC (``JPEGImages/`` + ``SegmentationClass/``),
VOC + SBD (``SegmentationClassAug/``), CamVid (the split's ``{split}.txt`` or ``{split}annot/``), the generic
folder (``images/``); a folder of image files is read as unlabelled images.
"""

from __future__ import annotations

from pathlib import Path

from segbench.data.base import SegmentationDataset
from segbench.data.layouts import ade20k, camvid, cityscapes, folder, voc
from segbench.data.layouts.layout import Layout
from segbench.errors import UserError

LAYOUTS: dict[str, Layout] = {
    lay.name: lay
    for lay in (cityscapes.LAYOUT, ade20k.LAYOUT, voc.LAYOUT, voc.AUG_LAYOUT, camvid.LAYOUT, folder.LAYOUT)
}
IMAGES = "images"  # --dataset images: every image file of the folder, unlabelled

__all__ = ["IMAGES", "LAYOUTS", "Layout", "detect", "get_layout"]


def get_layout(name: str) -> Layout | None:
    """The layout ``name`` (None for ``images``).

    Raises:
        UserError: an unknown name (the valid ones listed).
    """
    if name == IMAGES:
        return None
    if name not in LAYOUTS:
        raise UserError(f"--dataset {name!r}: expected one of {', '.join([*LAYOUTS, IMAGES])}")
    return LAYOUTS[name]


def detect(path: Path, split: str) -> tuple[Layout, Path] | None:
    """``(layout, root)`` of the first layout that recognises ``path`` for ``split``, or None."""
    for lay in LAYOUTS.values():
        root = lay.find_root(path, split)
        if root is not None:
            return lay, root
    return None


def open_layout(path: Path, split: str, name: str | None = None) -> SegmentationDataset | None:
    """``path`` opened as the layout ``name``, or as the detected one (None when no layout matches).

    Raises:
        UserError: an unknown ``name``, or a folder that lacks what the layout needs (named).
    """
    if name is not None:
        lay = get_layout(name)
        if lay is None:
            return None
        return lay.open(lay.find_root(path, split) or path, split)
    found = detect(path, split)
    return None if found is None else found[0].open(found[1], split)
