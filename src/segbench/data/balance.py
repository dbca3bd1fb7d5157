"""What a split holds, class by class: the share of its labelled pixels and the number of its images that
contain each class.

A validation figure predicts new data only as far as the validation split resembles it; a class that is rare
in one split and common in another moves mIoU more than most recipe changes. This puts the splits side by
side (``segbench datasets PATH --class-balance SPLIT [SPLIT ...]``), so a model card can say what each split
held.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segbench.data.base import SegmentationDataset
from segbench.data.io import read_mask
from segbench.errors import UserError

__all__ = ["ClassBalance", "balance_table", "class_balance"]


@dataclass
class ClassBalance:
    """Per-class label statistics of one split.

    Attributes:
        split: the split's name.
        class_names: the C class names.
        pixels: ``(C,)`` int64, labelled pixels of each class (void pixels are not counted).
        images_with: ``(C,)`` int64, images holding at least one pixel of the class.
        num_images: label maps read.
        skipped: ``{"file", "reason"}`` for each label map that could not be read.
    """

    split: str
    class_names: list[str]
    pixels: np.ndarray
    images_with: np.ndarray
    num_images: int
    skipped: list[dict] = field(default_factory=list)

    @property
    def share_pct(self) -> np.ndarray:
        """``(C,)`` float64: each class's share of the labelled (non-void) pixels, in percent (0 when none)."""
        total = int(self.pixels.sum())
        return self.pixels * (100.0 / total) if total else np.zeros(len(self.pixels))


def class_balance(ds: SegmentationDataset, split: str) -> ClassBalance:
    """Count the label maps of ``ds`` (only the masks are read; a missing or undecodable one is skipped and
    listed).

    Raises:
        UserError: ``ds`` has no labels (a folder of images, or a split without label maps).
    """
    if ds.class_set is None or all(m is None for _, m in ds.pairs):
        raise UserError(f"--class-balance {split}: this split has no label maps to count")
    num_classes = ds.class_set.num_classes
    pixels = np.zeros(num_classes, np.int64)
    images_with = np.zeros(num_classes, np.int64)
    num_images = 0
    skipped: list[dict] = []
    for image_path, mask_path in ds.pairs:
        if mask_path is None:
            skipped.append({"file": str(image_path), "reason": "no label map for this image"})
            continue
        try:  # a missing or undecodable file raises, naming it
            mask = read_mask(mask_path, num_classes, ds.void_ids, ds.label_table)
        except UserError as exc:
            skipped.append({"file": str(mask_path), "reason": str(exc)})
            continue
        counts = np.bincount(mask.ravel(), minlength=num_classes)[:num_classes]  # void (255) left out
        pixels += counts
        images_with += counts > 0
        num_images += 1
    return ClassBalance(split, list(ds.class_set.names), pixels, images_with, num_images, skipped)


def balance_table(balances: list[ClassBalance]) -> str:
    """The splits side by side as a Markdown table: per class, each split's pixel share (%) and the images
    that contain the class; a last row with the labelled pixels and images read."""
    names = balances[0].class_names
    head = ["class"] + [f"{b.split} {col}" for b in balances for col in ("pixels %", "images")]
    rows = [head, ["---"] + ["---:"] * (len(head) - 1)]
    for c, name in enumerate(names):
        row = [name]
        for b in balances:
            row += [f"{b.share_pct[c]:.2f}", f"{b.images_with[c]} of {b.num_images}"]
        rows.append(row)
    total = ["labelled pixels, images"]
    for b in balances:
        total += [f"{int(b.pixels.sum()):,}", f"{b.num_images}"]
    rows.append(total)
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)
