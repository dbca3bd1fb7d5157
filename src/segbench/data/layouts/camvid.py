"""CamVid in the SegNet layout: ``{split}/``, ``{split}annot/`` and ``{split}.txt`` (``image label`` per line).

Reference: Brostow, Fauqueur, Cipolla, "Semantic object classes in video: A high-definition ground truth
database", Pattern Recognition Letters 2009; the 11-class SegNet version from Badrinarayanan, Kendall,
Cipolla, "SegNet", arXiv 1511.00561 (https://arxiv.org/abs/1511.00561).
"""

from __future__ import annotations

from pathlib import Path

from segbench.classes import CAMVID, IGNORE_INDEX
from segbench.data.base import SegmentationDataset, select_groups
from segbench.data.io import list_images
from segbench.data.layouts.layout import Layout
from segbench.errors import UserError
from segbench.files import read_text

# Named CamVid splits beyond SegNet's files. CamVid's frames come from four drives (the file-name prefix):
# train holds 0001TP (62), 0006R0 (101) and 0016E5 (204); val the other 101 frames of 0016E5; test (233)
# 0001TP and Seq05VD. "val" therefore shares its drive with 204 training frames: it predicts new footage
# badly. "seq_train"/"seq_val" hold out the whole drive 0006R0 instead (sequence-disjoint validation).
CAMVID_NAMED_SPLITS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None, bool]] = {
    # name: (SegNet splits it draws from, groups (drives), keep those groups (True) or drop them (False))
    "trainval": (("train", "val"), None, True),
    "seq_train": (("train", "val"), ("0006R0",), False),
    "seq_val": (("train", "val"), ("0006R0",), True),
}
CAMVID_GROUP_PATTERN = r"^([^_]+)_"  # the drive: 0001TP_006690.png -> 0001TP
SEGNET_SPLITS = ("train", "val", "test")


def _camvid_listed(root: Path, split: str) -> list[tuple[Path, Path | None]]:
    listing = root / f"{split}.txt"
    pairs: list[tuple[Path, Path | None]] = []
    if listing.is_file():
        for n, line in enumerate(read_text(listing, "split listing").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise UserError(f"{listing}:{n}: expected 'image label', got {line!r}")
            # SegNet's own lists hold absolute paths such as /SegNet/CamVid/train/x.png: keep the last two parts.
            img, lab = (root / Path(*Path(p).parts[-2:]) for p in parts)
            pairs.append((img, lab))
    elif (root / split).is_dir() and (root / f"{split}annot").is_dir():
        for img in list_images([root / split]):
            pairs.append((img, root / f"{split}annot" / img.name))
    else:
        raise UserError(f"{root}: no CamVid split {split!r} (expected {split}.txt or {split}/ and {split}annot/)")
    return pairs


def is_camvid_split(root: Path, split: str) -> bool:
    """True when ``root`` holds CamVid's ``split``: SegNet's files, a named split or a ``a+b`` union of them."""
    for part in split.split("+"):
        sources = CAMVID_NAMED_SPLITS[part][0] if part in CAMVID_NAMED_SPLITS else (part,)
        if not all((root / f"{s}.txt").is_file() or (root / f"{s}annot").is_dir() for s in sources):
            return False
    return True


def camvid(root: str | Path, split: str = "train") -> SegmentationDataset:
    """CamVid in the SegNet layout: ``{split}/``, ``{split}annot/`` and ``{split}.txt`` (``image label`` per line).

    ``split`` is one of SegNet's (``train``, ``val``, ``test``), a named split of
    :data:`CAMVID_NAMED_SPLITS` (``trainval``; ``seq_train`` and ``seq_val``, which hold out the drive
    0006R0 so validation frames share no drive with training frames), or a union such as ``train+val``.

    Classes: SegNet's 11 (:data:`CAMVID`); label 11 is void and ignored.

    Raises:
        UserError: the split is missing.
    """
    root = Path(root)
    pairs: list[tuple[Path, Path | None]] = []
    for part in split.split("+"):
        if part in CAMVID_NAMED_SPLITS:
            sources, groups, keep = CAMVID_NAMED_SPLITS[part]
            ds = SegmentationDataset([p for s in sources for p in _camvid_listed(root, s)], CAMVID)
            if groups is not None:
                ds = select_groups(ds, CAMVID_GROUP_PATTERN, groups, keep)
            pairs += ds.pairs
        else:
            pairs += _camvid_listed(root, part)
    return SegmentationDataset(pairs, CAMVID, void_ids=(11, IGNORE_INDEX), layout="camvid",
                               label_note="SegNet's SPLITannot/ label maps, 11 void")  # fmt: skip


def _find_root(path: Path, split: str) -> Path | None:
    return path if is_camvid_split(path, split) else None


def _splits(root: Path) -> list[str]:
    return [s for s in SEGNET_SPLITS if is_camvid_split(root, s)]


LAYOUT = Layout(
    "camvid", "CamVid (SegNet's 11 classes)", "{train,val,test}/*.png, {split}annot/*.png, optional {split}.txt",
    "SPLIT.txt or SPLITannot/",
    _find_root, _splits, camvid,
)
