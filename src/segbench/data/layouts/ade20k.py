"""ADE20K SceneParsing (the MIT Scene Parsing Benchmark release ``ADEChallengeData2016``), as published:
``images/{training,validation}/ADE_*.jpg`` and ``annotations/{training,validation}/ADE_*.png``.

Label value ``k`` in 1..150 is class ``k - 1`` of :data:`segbench.classes.ADE20K`; 0 ("other objects") is
void and ignored, as the benchmark scores it. Split names ``train`` and ``val`` stand for ``training`` and
``validation``. The root may be given as ``ADEChallengeData2016/`` or its parent.

Reference: Zhou et al., "Scene Parsing through ADE20K Dataset", CVPR 2017; "Semantic Understanding of
Scenes through the ADE20K Dataset", arXiv 1608.05442 (https://arxiv.org/abs/1608.05442).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segbench.classes import ADE20K, IGNORE_INDEX
from segbench.data.base import SegmentationDataset
from segbench.data.io import list_images
from segbench.data.layouts.layout import Layout, first_dir, no_split

SPLITS = ("training", "validation")
ALIASES = {"train": "training", "val": "validation"}

# stored value -> class index: 0 (other) -> void, k -> k - 1
LABEL_TABLE = np.concatenate([[IGNORE_INDEX], np.arange(ADE20K.num_classes)]).astype(np.int64)


def _candidates(path: Path) -> list[Path]:
    return [path, path / "ADEChallengeData2016"]


def _find_root(path: Path, split: str) -> Path | None:
    for root in _candidates(path):
        if (root / "annotations").is_dir() and any((root / "images" / s).is_dir() for s in SPLITS):
            if not any((root / n).is_file() for n in ("classes.yaml", "classes.yml", "classes.json")):
                return root
    return None


def _splits(root: Path) -> list[str]:
    return [s for s in SPLITS if (root / "images" / s).is_dir()]


def ade20k(root: str | Path, split: str = "validation") -> SegmentationDataset:
    """ADE20K SceneParsing ``split`` (``training``/``train``, ``validation``/``val``): 150 classes, 0 void.

    Raises:
        UserError: no ``images/SPLIT/`` folder.
    """
    path = Path(root)
    root = first_dir(_candidates(path), "images") or path
    name = ALIASES.get(split, split)
    if not (root / "images" / name).is_dir():
        raise no_split(root, split, _splits(root), "images/{training,validation}/ (train and val stand for them)")
    masks = root / "annotations" / name
    imgs = list_images([root / "images" / name])
    if not masks.is_dir():
        return SegmentationDataset([(p, None) for p in imgs], ADE20K, layout="ade20k",
                                   label_note=f"no annotations/{name}/")  # fmt: skip
    return SegmentationDataset([(p, masks / f"{p.stem}.png") for p in imgs], ADE20K, label_table=LABEL_TABLE,
                               layout="ade20k", label_note=f"annotations/{name}/*.png, 0 (other) void")  # fmt: skip


LAYOUT = Layout(
    "ade20k", "ADE20K SceneParsing (ADEChallengeData2016, 150 classes)",
    "images/{training,validation}/ADE_*.jpg, annotations/{training,validation}/ADE_*.png (0 = other, void)",
    "images/{training,validation}/ + annotations/",
    _find_root, _splits, ade20k,
)
