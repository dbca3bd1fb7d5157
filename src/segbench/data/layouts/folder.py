"""segbench's generic layout: ``images/`` and ``masks/`` matched by file stem, classes in ``classes.yaml``;
and a folder of unlabelled images."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from segbench.classes import IGNORE_INDEX, ClassSet, check_unique_names, default_palette
from segbench.data.base import SegmentationDataset
from segbench.data.io import list_images
from segbench.data.layouts.layout import Layout
from segbench.errors import UserError
from segbench.files import read_text

CLASS_FILES = ("classes.yaml", "classes.yml", "classes.json")


def read_class_file(path: Path) -> tuple[ClassSet, tuple[int, ...]]:
    """Read ``classes.yaml``/``classes.json``: ``{"names": [...], "palette": [[r,g,b], ...]?, "void": [ids]?}``.

    Raises:
        UserError: unreadable file, wrong keys/types, or a class name given twice.
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
    check_unique_names(names, str(path))
    palette = data.get("palette") or default_palette(len(names))
    if len(palette) != len(names) or any(len(c) != 3 for c in palette):
        raise UserError(f"{path}: 'palette' must hold one [r, g, b] per class ({len(names)})")
    void = tuple(int(v) for v in data.get("void", [IGNORE_INDEX]))
    return ClassSet(path.parent.name, names, tuple(tuple(int(x) for x in c) for c in palette)), void


def _class_file(*folders: Path) -> Path | None:
    return next((f / n for f in folders for n in CLASS_FILES if (f / n).is_file()), None)


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
    class_file = _class_file(base, root)
    if class_file is None:
        raise UserError(f"{root}: missing classes.yaml (names, optional palette and void ids)")
    class_set, void = read_class_file(class_file)
    masks = {p.stem: p for p in list_images([base / "masks"])} if (base / "masks").is_dir() else {}
    pairs = []
    for img in list_images([base / "images"]):
        pairs.append((img, masks.get(img.stem, base / "masks" / f"{img.stem}.png")))
    return SegmentationDataset(pairs, class_set, void_ids=void, layout="folder",
                               label_note=f"masks/ by file stem, classes from {class_file.name}")  # fmt: skip


def images(paths: list[str | Path]) -> SegmentationDataset:
    """Unlabelled images: files and/or folders of images."""
    return SegmentationDataset([(p, None) for p in list_images(paths)], None, layout="images")


def _find_root(path: Path, split: str) -> Path | None:
    return path if (path / "images").is_dir() or (path / split / "images").is_dir() else None


def _splits(root: Path) -> list[str]:
    subs = sorted(d.name for d in root.iterdir() if (d / "images").is_dir()) if root.is_dir() else []
    return subs or ["(all)"]


LAYOUT = Layout(
    "folder", "segbench's generic folder", "images/*, masks/* (same stem), classes.yaml; or SPLIT/images/, SPLIT/masks/",
    "images/ + classes.yaml",
    _find_root, _splits, folder,
)
