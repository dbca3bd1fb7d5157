"""Cityscapes, fine annotations, as published: ``leftImg8bit/{train,val,test}/CITY/*_leftImg8bit.png`` and
``gtFine/{split}/CITY/*_gtFine_labelIds.png``.

The benchmark evaluates 19 classes (the train ids); every other label is void. ``*_gtFine_labelTrainIds.png``
(written by cityscapesScripts' ``createTrainIdLabelImgs``) already hold the train ids and are read as they
are when every image of the split has one; otherwise the ``labelIds`` files are mapped to train ids through
the label table of the ``cityscapesscripts`` package (``cityscapesscripts.helpers.labels``, optional extra
``cityscapes``). The test split's labels are withheld by the benchmark: it is read as unlabelled images.

Reference: Cordts et al., "The Cityscapes Dataset for Semantic Urban Scene Understanding", CVPR 2016,
arXiv 1604.01685 (https://arxiv.org/abs/1604.01685).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segbench.classes import CITYSCAPES, IGNORE_INDEX
from segbench.data.base import SegmentationDataset
from segbench.data.layouts.layout import Layout, no_split
from segbench.errors import UserError, require

SPLITS = ("train", "val", "test")
UNLABELLED_SPLITS = ("test",)  # labels withheld by the benchmark
IMAGE_SUFFIX = "_leftImg8bit"


def label_table() -> np.ndarray:
    """``(K,)`` int64: Cityscapes label id -> train id (0..18), 255 for every label the benchmark ignores,
    from the label table of the ``cityscapesscripts`` package.

    Raises:
        BackendUnavailable: ``cityscapesscripts`` is not installed.
        UserError: the package's train ids name other classes than :data:`segbench.classes.CITYSCAPES`.
    """
    labels = require("cityscapesscripts.helpers.labels", "cityscapes", "Reading Cityscapes *_gtFine_labelIds.png")
    ids = [lab for lab in labels.labels if lab.id >= 0]
    table = np.full(max(lab.id for lab in ids) + 1, IGNORE_INDEX, dtype=np.int64)
    for lab in ids:
        table[lab.id] = lab.trainId if 0 <= lab.trainId < IGNORE_INDEX else IGNORE_INDEX
    names = tuple(labels.trainId2label[i].name for i in range(CITYSCAPES.num_classes))
    if names != CITYSCAPES.names:
        raise UserError(f"cityscapesscripts: train ids name {names[:3]}..., segbench expects {CITYSCAPES.names[:3]}...")
    return table


def _find_root(path: Path, split: str) -> Path | None:
    return path if (path / "leftImg8bit").is_dir() else None


def _splits(root: Path) -> list[str]:
    return [s for s in SPLITS if (root / "leftImg8bit" / s).is_dir()]


def _images(root: Path, split: str) -> list[Path]:
    folder = root / "leftImg8bit" / split
    if not folder.is_dir():
        raise no_split(root, split, _splits(root), f"leftImg8bit/{split}/CITY/*{IMAGE_SUFFIX}.png")
    try:
        found = sorted(folder.glob(f"*/*{IMAGE_SUFFIX}.png"))
    except PermissionError:
        raise UserError(f"{folder}: cannot list the folder (permission denied)") from None
    if not found:
        raise UserError(f"{folder}: no CITY/*{IMAGE_SUFFIX}.png images")
    return found


def cityscapes(root: str | Path, split: str = "val") -> SegmentationDataset:
    """Cityscapes' ``split`` (``train``, ``val``, or ``test`` unlabelled), 19 classes, void 255.

    Raises:
        UserError: no such split, or ``labelIds`` files to map without ``cityscapesscripts`` installed.
    """
    root = Path(root)
    imgs = _images(root, split)
    if split in UNLABELLED_SPLITS or not (root / "gtFine" / split).is_dir():
        note = "test labels are withheld" if split in UNLABELLED_SPLITS else f"no gtFine/{split}/"
        return SegmentationDataset([(p, None) for p in imgs], CITYSCAPES, layout="cityscapes", label_note=note)

    def mask(img: Path, kind: str) -> Path:
        stem = img.name[: -len(f"{IMAGE_SUFFIX}.png")]
        return root / "gtFine" / split / img.parent.name / f"{stem}_gtFine_{kind}.png"

    train_ids = [mask(p, "labelTrainIds") for p in imgs]
    if all(m.is_file() for m in train_ids):
        return SegmentationDataset(list(zip(imgs, train_ids)), CITYSCAPES, layout="cityscapes",
                                   label_note="*_gtFine_labelTrainIds.png")  # fmt: skip
    return SegmentationDataset([(p, mask(p, "labelIds")) for p in imgs], CITYSCAPES, label_table=label_table(),
                               layout="cityscapes",
                               label_note="*_gtFine_labelIds.png through cityscapesscripts' label table")  # fmt: skip


LAYOUT = Layout(
    "cityscapes", "Cityscapes (fine annotations)",
    "leftImg8bit/{train,val,test}/CITY/*_leftImg8bit.png, gtFine/SPLIT/CITY/*_gtFine_labelIds.png (or _labelTrainIds)",
    "leftImg8bit/",
    _find_root, _splits, cityscapes,
)
