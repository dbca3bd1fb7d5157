"""PASCAL VOC 2012 segmentation, as published, and its SBD-augmented variant.

- ``voc``: ``JPEGImages/ID.jpg``, ``SegmentationClass/ID.png`` (palette PNGs whose indices are the 21
  classes, 255 on the object borders and other void pixels), splits ``ImageSets/Segmentation/{train,val,
  trainval}.txt`` (one image id per line).
- ``voc_aug``: the same images with ``SegmentationClassAug/ID.png`` (masks of the Semantic Boundaries
  Dataset added to VOC's, the ``train_aug`` set of DeepLab, arXiv 1606.00915; single-channel class indices,
  255 void), splits from
  ``ImageSets/SegmentationAug/SPLIT.txt`` or ``ImageSets/Segmentation/SPLIT.txt``; a listing line may be an
  id or DeepLab's ``/JPEGImages/ID.jpg /SegmentationClassAug/ID.png``.

The root may be given as the folder holding ``JPEGImages/`` or as ``VOCdevkit/`` (or its parent). A folder
with both mask folders is read as ``voc`` unless the split's name contains ``aug``.

References: Everingham et al., "The PASCAL Visual Object Classes Challenge: A Retrospective", IJCV 2015;
Hariharan et al., "Semantic Contours from Inverse Detectors", ICCV 2011 (SBD).
"""

from __future__ import annotations

from pathlib import Path

from segbench.classes import VOC
from segbench.data.base import SegmentationDataset
from segbench.data.layouts.layout import Layout, first_dir, no_split, read_id_list
from segbench.errors import UserError

MASKS, MASKS_AUG = "SegmentationClass", "SegmentationClassAug"
LISTINGS = {MASKS: ("ImageSets/Segmentation",), MASKS_AUG: ("ImageSets/SegmentationAug", "ImageSets/Segmentation")}


def _candidates(path: Path) -> list[Path]:
    return [path, path / "VOC2012", path / "VOCdevkit" / "VOC2012"]


def _listing(root: Path, masks: str, split: str) -> Path | None:
    return next((root / d / f"{split}.txt" for d in LISTINGS[masks] if (root / d / f"{split}.txt").is_file()), None)


def _split_names(root: Path, masks: str) -> list[str]:
    names: dict[str, None] = {}
    for d in LISTINGS[masks]:
        if (root / d).is_dir():
            names.update(dict.fromkeys(sorted(p.stem for p in (root / d).glob("*.txt"))))
    return list(names)


def _open(root: Path, split: str, masks: str, layout: str) -> SegmentationDataset:
    listing = _listing(root, masks, split)
    if listing is None:
        raise no_split(root, split, _split_names(root, masks), " or ".join(f"{d}/{split}.txt" for d in LISTINGS[masks]))
    ids = read_id_list(listing)
    pairs = [(root / "JPEGImages" / f"{i}.jpg", root / masks / f"{i}.png") for i in ids]
    missing = [img.stem for img, _ in pairs if not img.is_file()]
    if missing:  # before any work: an image the list names but the folder lacks is no image
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise UserError(f"{listing}: names {len(missing)} of its {len(ids)} images that JPEGImages/ lacks "
                        f"({', '.join(missing[:5])}{more}); complete the folder or remove them from the list")
    note = f"{masks}/ID.png (class indices, 255 void)"
    if pairs and not any(m.is_file() for _, m in pairs):  # the test split: images without labels
        pairs, note = [(img, None) for img, _ in pairs], f"no {masks}/ masks for this split"
    return SegmentationDataset(pairs, VOC, layout=layout, label_note=note)


def voc(root: str | Path, split: str = "val") -> SegmentationDataset:
    """PASCAL VOC 2012 ``split`` with ``SegmentationClass/`` masks: 21 classes (background first), void 255.

    Raises:
        UserError: no listing ``ImageSets/Segmentation/SPLIT.txt``.
    """
    root = Path(root)
    return _open(first_dir(_candidates(root), "JPEGImages") or root, split, MASKS, "voc")


def voc_aug(root: str | Path, split: str = "train_aug") -> SegmentationDataset:
    """PASCAL VOC 2012 with the SBD-augmented ``SegmentationClassAug/`` masks: 21 classes, void 255.

    Raises:
        UserError: no listing of ``split`` in ``ImageSets/SegmentationAug/`` or ``ImageSets/Segmentation/``.
    """
    root = Path(root)
    return _open(first_dir(_candidates(root), "JPEGImages") or root, split, MASKS_AUG, "voc_aug")


def _find_voc(path: Path, split: str) -> Path | None:
    root = first_dir(_candidates(path), "JPEGImages", MASKS)
    if root is None or ("aug" in split.lower() and (root / MASKS_AUG).is_dir()):
        return None
    return root


def _find_voc_aug(path: Path, split: str) -> Path | None:
    return first_dir(_candidates(path), "JPEGImages", MASKS_AUG)


LAYOUT = Layout(
    "voc", "PASCAL VOC 2012",
    "JPEGImages/ID.jpg, SegmentationClass/ID.png (palette, 255 border), ImageSets/Segmentation/{train,val,trainval}.txt",
    "JPEGImages/ + SegmentationClass/",
    _find_voc, lambda root: _split_names(root, MASKS), voc,
)
AUG_LAYOUT = Layout(
    "voc_aug", "PASCAL VOC 2012 + SBD (SegmentationClassAug)",
    "JPEGImages/ID.jpg, SegmentationClassAug/ID.png, ImageSets/SegmentationAug/SPLIT.txt (e.g. train_aug)",
    "JPEGImages/ + SegmentationClassAug/",
    _find_voc_aug, lambda root: _split_names(root, MASKS_AUG), voc_aug,
)
