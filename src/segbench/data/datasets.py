"""Datasets: open a folder as the layout it is published in (Cityscapes, PASCAL VOC 2012 and its SBD
variant, ADE20K SceneParsing, CamVid, segbench's images/ + masks/), or as unlabelled images; describe what
a folder holds.

Every dataset yields dicts ``{"name", "path", "image": np.uint8 (H, W, 3), "mask": np.int64 (H, W) | None}``.
A bad file does not raise from ``__getitem__``: the item comes back as ``{"name", "path", "error"}`` so a
batch job can skip it, list it and go on. ``load(i)`` raises :class:`UserError` instead. The layouts live in
:mod:`segbench.data.layouts`, one module each.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from segbench.data.base import SegmentationDataset, file_group, select_groups
from segbench.data.layouts import IMAGES, LAYOUTS, detect, get_layout, open_layout
from segbench.data.layouts.ade20k import ade20k
from segbench.data.layouts.camvid import CAMVID_GROUP_PATTERN, CAMVID_NAMED_SPLITS, camvid, is_camvid_split
from segbench.data.layouts.cityscapes import cityscapes
from segbench.data.layouts.folder import folder, images, read_class_file
from segbench.data.layouts.voc import voc, voc_aug
from segbench.errors import UserError

__all__ = [
    "CAMVID_GROUP_PATTERN", "CAMVID_NAMED_SPLITS", "SegmentationDataset", "ade20k", "camvid", "cityscapes",
    "dataset_names", "describe_dataset", "file_group", "folder", "images", "is_camvid_split", "open_dataset",
    "read_class_file", "sample_dir", "select_groups", "supported_datasets", "voc", "voc_aug",
]  # fmt: skip


def sample_dir() -> Path:
    """The CamVid val sample shipped with segbench (CamVid layout, split ``val``, 8 frames of 0016E5)."""
    return Path(str(resources.files("segbench") / "sample" / "camvid"))


def dataset_names() -> list[str]:
    """What ``--dataset`` accepts: every layout of :data:`segbench.data.layouts.LAYOUTS`, then ``images``."""
    return [*LAYOUTS, IMAGES]


def supported_datasets() -> list[dict]:
    """``{"name", "title", "layout"}`` of every supported layout, in detection order, then ``images``."""
    rows = [{"name": lay.name, "title": lay.title, "layout": lay.sketch} for lay in LAYOUTS.values()]
    return rows + [{"name": IMAGES, "title": "unlabelled images", "layout": "image files (predict, compare without accuracy)"}]


def _check_path(path: Path) -> None:
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        raise UserError(f"{path}: cannot read the folder (permission denied)")


def open_dataset(path: str | Path, split: str = "val", dataset: str | None = None) -> SegmentationDataset:
    """Open ``path`` as the layout it is in, detected in the order of :mod:`segbench.data.layouts`
    (Cityscapes, ADE20K, VOC, VOC + SBD, CamVid, images/ + masks/), else as a folder of unlabelled images.

    Args:
        path: the dataset's folder (for VOC and ADE20K also the archive's top folder), or image files.
        split: the split to read (each layout's own names; ``val`` by default).
        dataset: a name of :func:`dataset_names` to skip detection (``images``: unlabelled images).

    Raises:
        UserError: the path does not exist or holds nothing usable, an unknown ``dataset``, or a folder
            without what that layout needs.
    """
    path = Path(path)
    _check_path(path)
    if path.is_dir() and dataset != IMAGES:
        found = open_layout(path, split, dataset)
        if found is not None:
            return found
        other = _find(path, dataset) if dataset is None else None  # a dataset, but not this split of it
        if other is not None:
            lay, root = other
            raise UserError(f"{root}: no split {split!r} in this {lay.name} dataset; splits found: "
                            f"{', '.join(lay.splits(root)) or 'none'}")
    ds = images([path])
    if not len(ds):
        raise UserError(f"{path}: no images found (expected image files, or a dataset: {_markers()})")
    return ds


def _markers() -> str:
    return ", ".join(f"{lay.marker} ({lay.name})" for lay in LAYOUTS.values())


def _split_summary(lay, root: Path, split: str) -> tuple[str, SegmentationDataset | None]:
    try:
        ds = lay.open(root, split)
    except UserError as exc:
        return f"{split} ({exc})", None
    count = f"{len(ds)} image" + ("" if len(ds) == 1 else "s")
    return f"{split} {count}" + ("" if ds.labelled or not len(ds) else " (unlabelled)"), ds


def _find(path: Path, dataset: str | None):
    """``(layout, root)`` of ``path``, or None for unlabelled images."""
    if dataset == IMAGES:
        return None
    if dataset is not None:
        lay = get_layout(dataset)
        return lay, lay.find_root(path, "val") or path
    for split in ("val", "train", "test"):  # CamVid is recognised by the split's files
        found = detect(path, split)
        if found is not None:
            return found
    return None


def describe_dataset(path: str | Path, dataset: str | None = None) -> str:
    """One line on what ``path`` holds: layout, root, splits with image counts, classes, void and where the
    labels come from.

    Raises:
        UserError: the path does not exist, an unknown ``dataset``, or a path that is no dataset of any
            supported layout (or of ``dataset``) and holds no images; the message says what was looked for.
    """
    path = Path(path)
    _check_path(path)
    found = _find(path, dataset)
    if found is None:
        ds = images([path])
        if not len(ds):
            raise UserError(f"{path}: not a dataset and no image files (looked for {_markers()})")
        return f"{path}: {IMAGES}: {len(ds)} unlabelled image" + ("" if len(ds) == 1 else "s")
    lay, root = found
    splits = lay.splits(root)
    if not splits:
        raise UserError(f"{root}: not a {lay.name} dataset: no split found (expected {lay.sketch})")
    summaries = [_split_summary(lay, root, s) for s in splits]
    opened = [ds for _, ds in summaries if ds is not None]
    sample = next((ds for ds in opened if ds.labelled), opened[0] if opened else None)
    where = "" if root == path else f" at {root}"
    line = f"{path}: {lay.name} ({lay.title}){where}; splits: {', '.join(text for text, _ in summaries)}"
    if sample is not None and sample.class_set is not None:
        cs = sample.class_set
        shown = ", ".join(cs.names[:4]) + (", ..." if cs.num_classes > 4 else "")
        line += f"; {cs.num_classes} classes ({shown}); void {list(sample.void_ids)}"
        if sample.label_note:
            line += f"; labels: {sample.label_note}"
    return line
