"""Datasets: CamVid (SegNet layout), a generic images/ + masks/ folder, and a folder of unlabelled images.

Every dataset yields dicts ``{"name", "path", "image": np.uint8 (H, W, 3), "mask": np.int64 (H, W) | None}``.
A bad file does not raise from ``__getitem__``: the item comes back as ``{"name", "path", "error"}`` so a
batch job can skip it, list it and go on. ``load(i)`` raises :class:`UserError` instead.
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from pathlib import Path

import yaml

from segbench.classes import CAMVID, IGNORE_INDEX, ClassSet, default_palette
from segbench.data.io import list_images, read_image, read_mask
from segbench.errors import UserError
from segbench.files import read_text


class SegmentationDataset:
    """A list of (image path, mask path | None) pairs with a :class:`ClassSet` (None when unlabelled)."""

    def __init__(self, pairs: list[tuple[Path, Path | None]], class_set: ClassSet | None, void_ids=(IGNORE_INDEX,)):
        self.pairs = pairs
        self.class_set = class_set
        self.void_ids = tuple(void_ids)

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
            mask = read_mask(mask_path, self.class_set.num_classes, self.void_ids)
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
    pairs = [pair for pair in ds.pairs if (file_group(pair[0], pattern) in wanted) == keep]
    return SegmentationDataset(pairs, ds.class_set, ds.void_ids)


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
    return SegmentationDataset(pairs, CAMVID, void_ids=(11, IGNORE_INDEX))


def read_class_file(path: Path) -> tuple[ClassSet, tuple[int, ...]]:
    """Read ``classes.yaml``/``classes.json``: ``{"names": [...], "palette": [[r,g,b], ...]?, "void": [ids]?}``.

    Raises:
        UserError: unreadable file or wrong keys/types.
    """
    text = read_text(path, "class file")
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read class file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("names"), list) or not data["names"]:
        raise UserError(f"{path}: expected a mapping with 'names' (list of class names), optional 'palette' and 'void'")
    unknown = set(data) - {"names", "palette", "void"}
    if unknown:
        raise UserError(f"{path}: unknown keys {sorted(unknown)}; valid keys: names, palette, void")
    names = tuple(str(n) for n in data["names"])
    palette = data.get("palette") or default_palette(len(names))
    if len(palette) != len(names) or any(len(c) != 3 for c in palette):
        raise UserError(f"{path}: 'palette' must hold one [r, g, b] per class ({len(names)})")
    void = tuple(int(v) for v in data.get("void", [IGNORE_INDEX]))
    return ClassSet(path.parent.name, names, tuple(tuple(int(x) for x in c) for c in palette)), void


def folder(root: str | Path, split: str | None = None) -> SegmentationDataset:
    """A generic dataset: ``images/`` and ``masks/`` matched by file stem, classes in ``classes.yaml|json``.

    With ``split``, reads ``root/split/images`` and ``root/split/masks`` when that folder exists.

    An image without a mask stays in the list: loading it fails with a message naming it, so a batch job
    skips and lists it and goes on.

    Raises:
        UserError: missing folders or class file.
    """
    root = Path(root)
    base = root / split if split and (root / split / "images").is_dir() else root
    class_file = next((base / n for n in ("classes.yaml", "classes.yml", "classes.json") if (base / n).is_file()), None)
    if class_file is None:
        class_file = next((root / n for n in ("classes.yaml", "classes.yml", "classes.json") if (root / n).is_file()), None)
    if class_file is None:
        raise UserError(f"{root}: missing classes.yaml (names, optional palette and void ids)")
    class_set, void = read_class_file(class_file)
    masks = {p.stem: p for p in list_images([base / "masks"])} if (base / "masks").is_dir() else {}
    pairs = []
    for img in list_images([base / "images"]):
        pairs.append((img, masks.get(img.stem, base / "masks" / f"{img.stem}.png")))
    return SegmentationDataset(pairs, class_set, void_ids=void)


def images(paths: list[str | Path]) -> SegmentationDataset:
    """Unlabelled images: files and/or folders of images."""
    return SegmentationDataset([(p, None) for p in list_images(paths)], None)


def sample_dir() -> Path:
    """The CamVid val sample shipped with segbench (CamVid layout, split ``val``, 8 frames of 0016E5)."""
    return Path(str(resources.files("segbench") / "sample" / "camvid"))


def open_dataset(path: str | Path, split: str = "val") -> SegmentationDataset:
    """Open ``path`` as CamVid (``{split}.txt`` or ``{split}annot/``), a generic folder (``images/`` +
    ``masks/``), or a plain folder of unlabelled images, in that order.

    Raises:
        UserError: the path does not exist or holds nothing usable.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        raise UserError(f"{path}: cannot read the folder (permission denied)")
    if path.is_dir() and is_camvid_split(path, split):
        return camvid(path, split)
    if path.is_dir() and ((path / "images").is_dir() or (path / split / "images").is_dir()):
        return folder(path, split)
    ds = images([path])
    if not len(ds):
        raise UserError(f"{path}: no images found (expected CamVid's {split}.txt, images/ + masks/, or image files)")
    return ds
