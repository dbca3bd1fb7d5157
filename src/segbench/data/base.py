"""The dataset every layout produces: image and label-map paths with their classes, and group selection.

Every dataset yields dicts ``{"name", "path", "image": np.uint8 (H, W, 3), "mask": np.int64 (H, W) | None}``.
A bad file does not raise from ``__getitem__``: the item comes back as ``{"name", "path", "error"}`` so a
batch job can skip it, list it and go on. ``load(i)`` raises :class:`UserError` instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from segbench.classes import IGNORE_INDEX, ClassSet
from segbench.data.io import read_image, read_mask
from segbench.errors import UserError


class SegmentationDataset:
    """A list of (image path, mask path | None) pairs with a :class:`ClassSet` (None when unlabelled).

    Args:
        pairs: ``(image path, mask path or None)`` per item, in order.
        class_set: the classes of the label maps; None for unlabelled images.
        void_ids: stored label values that are void (become 255, ignored), after ``label_table``.
        label_table: ``(K,)`` int64 lookup from a stored label value to a class index or 255 (void), for
            datasets whose files store other ids than the evaluated classes (Cityscapes' ``labelIds``,
            ADE20K's 0 = other); None: the stored values are the class indices.
        layout: the name of the layout it was read as (``cityscapes``, ``voc``, ...), for messages.
        label_note: where the labels come from, one phrase (shown by ``segbench datasets PATH``).
    """

    def __init__(self, pairs: list[tuple[Path, Path | None]], class_set: ClassSet | None, void_ids=(IGNORE_INDEX,),
                 label_table: np.ndarray | None = None, layout: str = "", label_note: str = ""):  # fmt: skip
        self.pairs = pairs
        self.class_set = class_set
        self.void_ids = tuple(void_ids)
        self.label_table = label_table
        self.layout = layout
        self.label_note = label_note

    def subset(self, pairs: list[tuple[Path, Path | None]]) -> SegmentationDataset:
        """The same dataset (classes, void ids, label table) over other ``pairs``, e.g. a slice of its own."""
        return SegmentationDataset(pairs, self.class_set, self.void_ids, self.label_table, self.layout,
                                   self.label_note)  # fmt: skip

    @property
    def labelled(self) -> bool:
        return self.class_set is not None and all(m is not None for _, m in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, i: int) -> dict:
        """Load item ``i``.

        Raises:
            UserError: undecodable image or mask, mask values outside the classes, or image and mask of
                different sizes (both sizes named).
        """
        img_path, mask_path = self.pairs[i]
        image = read_image(img_path)
        mask = None
        if mask_path is not None and self.class_set is not None:
            if not mask_path.exists():
                raise UserError(f"{img_path}: no mask with stem {img_path.stem!r} in {mask_path.parent}")
            mask = read_mask(mask_path, self.class_set.num_classes, self.void_ids, self.label_table)
            if mask.shape != image.shape[:2]:
                raise UserError(
                    f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} (W x H) but image {img_path.name} "
                    f"is {image.shape[1]}x{image.shape[0]}"
                )
        return {"name": img_path.stem, "path": str(img_path), "image": image, "mask": mask}

    def __getitem__(self, i: int) -> dict:
        try:
            return self.load(i)
        except UserError as exc:
            return {"name": self.pairs[i][0].stem, "path": str(self.pairs[i][0]), "error": str(exc)}


def file_group(path: Path, pattern: str) -> str:
    """The group of a file: the first capture group of ``pattern`` searched in the file stem, or the whole
    match when the pattern has no group.

    Raises:
        UserError: the pattern does not match the file name.
    """
    found = re.search(pattern, path.stem)
    if found is None:
        raise UserError(f"{path.name}: split_by pattern {pattern!r} does not match this file name")
    return found.group(1) if found.re.groups else found.group(0)


def select_groups(ds: SegmentationDataset, pattern: str, groups, keep: bool) -> SegmentationDataset:
    """The items of ``ds`` whose :func:`file_group` is in ``groups`` (``keep=True``) or is not (``keep=False``).

    This is how a validation split that predicts new footage is cut from any dataset: group the files by
    sequence, site or patient, and validate on groups no training file comes from.

    Raises:
        UserError: ``pattern`` is not a valid regular expression, or does not match a file name.
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        raise UserError(f"split_by pattern {pattern!r}: not a regular expression ({exc})") from None
    wanted = set(groups)
    return ds.subset([pair for pair in ds.pairs if (file_group(pair[0], pattern) in wanted) == keep])
