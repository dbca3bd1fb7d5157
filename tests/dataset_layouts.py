"""Tiny dataset folders in the published layouts, with the real file-naming rules, written in tmp_path.

Each builder returns the root and writes label maps whose stored values are known, so a test can check
the class indices segbench reads against the dataset's own definition.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 12, 16

# A few rows of the Cityscapes label table (Cordts et al. 2016, labels.py): label id -> train id (255 void).
CITYSCAPES_IDS = {0: 255, 1: 255, 4: 255, 7: 0, 8: 1, 11: 2, 21: 8, 23: 10, 24: 11, 26: 13, 33: 18}


def _rgb(rng) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))


def _labels(rng, values) -> np.ndarray:
    lab = rng.choice(np.asarray(sorted(values), dtype=np.uint8), size=(H, W))
    lab.flat[: len(values)] = sorted(values)  # every value appears at least once
    return lab


def make_cityscapes(root: Path, frames: dict[str, int] | None = None, train_ids: bool = False, seed: int = 0) -> Path:
    """``leftImg8bit/SPLIT/CITY/CITY_SEQ_FRAME_leftImg8bit.png`` and ``gtFine/SPLIT/CITY/..._gtFine_*``
    (labelIds, color, instanceIds, polygons; labelTrainIds with ``train_ids``). Test labels hold only void,
    as in the published archive."""
    rng = np.random.default_rng(seed)
    frames = frames or {"train": 2, "val": 3, "test": 1}
    cities = {"train": ["aachen", "bochum"], "val": ["frankfurt", "munster"], "test": ["berlin"]}
    for split, n in frames.items():
        for k in range(n):
            city = cities[split][k % len(cities[split])]
            stem = f"{city}_{k:06d}_{19 + k:06d}"
            img_dir, gt_dir = root / "leftImg8bit" / split / city, root / "gtFine" / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            _rgb(rng).save(img_dir / f"{stem}_leftImg8bit.png")
            ids = np.zeros((H, W), np.uint8) if split == "test" else _labels(rng, CITYSCAPES_IDS)
            Image.fromarray(ids).save(gt_dir / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(ids).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
            Image.fromarray(np.zeros((H, W, 4), np.uint8)).save(gt_dir / f"{stem}_gtFine_color.png")
            (gt_dir / f"{stem}_gtFine_polygons.json").write_text(json.dumps({"imgHeight": H, "imgWidth": W}))
            if train_ids:
                lut = np.full(256, 255, np.uint8)
                for i, t in CITYSCAPES_IDS.items():
                    lut[i] = t
                Image.fromarray(lut[ids]).save(gt_dir / f"{stem}_gtFine_labelTrainIds.png")
    return root


def voc_palette() -> list[int]:
    """PASCAL VOC's colour map, 256 entries (bit-interleaved class index), as its devkit writes it."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def _voc_mask(rng) -> np.ndarray:
    mask = _labels(rng, range(21))
    mask[0, :] = 255  # the void border VOC draws around objects
    return mask


def make_voc(root: Path, aug: bool = False, seed: int = 0) -> Path:
    """``VOCdevkit/VOC2012/``: JPEGImages, SegmentationClass (palette PNGs, 255 border), ImageSets/Segmentation
    (train, val, trainval, and a test listing without masks); with ``aug`` also SegmentationClassAug and
    ``ImageSets/SegmentationAug/train_aug.txt`` in DeepLab's two-column form. Returns the folder above
    ``VOCdevkit``."""
    rng = np.random.default_rng(seed)
    base = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation", "Annotations"):
        (base / d).mkdir(parents=True, exist_ok=True)
    splits = {"train": ["2007_000032", "2007_000039"], "val": ["2007_000033", "2007_000042", "2007_000061"]}
    for ids in splits.values():
        for i in ids:
            _rgb(rng).save(base / "JPEGImages" / f"{i}.jpg", quality=95)
            m = Image.fromarray(_voc_mask(rng), mode="P")
            m.putpalette(voc_palette())
            m.save(base / "SegmentationClass" / f"{i}.png")
    _rgb(rng).save(base / "JPEGImages" / "2008_000001.jpg")
    listings = {**splits, "trainval": splits["train"] + splits["val"], "test": ["2008_000001"]}
    for name, ids in listings.items():
        (base / "ImageSets" / "Segmentation" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    if aug:
        (base / "SegmentationClassAug").mkdir()
        (base / "ImageSets" / "SegmentationAug").mkdir()
        sbd = ["2008_000002", "2008_000003"]
        for i in sbd:
            _rgb(rng).save(base / "JPEGImages" / f"{i}.jpg")
        for i in sbd + splits["train"] + splits["val"]:
            Image.fromarray(_voc_mask(rng), mode="L").save(base / "SegmentationClassAug" / f"{i}.png")
        lines = "".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n" for i in sbd + splits["train"])
        (base / "ImageSets" / "SegmentationAug" / "train_aug.txt").write_text(lines)
    return root


def make_ade20k(root: Path, n: dict[str, int] | None = None, seed: int = 0) -> Path:
    """``ADEChallengeData2016/``: images/{training,validation}/ADE_{train,val}_%08d.jpg, annotations/... PNGs
    (0 = other, 1..150 = classes), objectInfo150.txt and sceneCategories.txt. Returns the folder above."""
    rng = np.random.default_rng(seed)
    base = root / "ADEChallengeData2016"
    n = n or {"training": 2, "validation": 2}
    short = {"training": "train", "validation": "val"}
    for split, count in n.items():
        (base / "images" / split).mkdir(parents=True)
        (base / "annotations" / split).mkdir(parents=True)
        for k in range(1, count + 1):
            stem = f"ADE_{short[split]}_{k:08d}"
            _rgb(rng).save(base / "images" / split / f"{stem}.jpg")
            Image.fromarray(_labels(rng, [0, 1, 2, 13, 150])).save(base / "annotations" / split / f"{stem}.png")
    (base / "objectInfo150.txt").write_text("Idx\tRatio\tTrain\tVal\tName\n1\t0.1576\t11664\t1172\twall\n")
    (base / "sceneCategories.txt").write_text("ADE_train_00000001 airport_terminal\n")
    return root


def save_checkpoint(path: Path, class_set, arch: str = "fast_scnn", seed: int = 0) -> Path:
    """A small ``arch`` safetensors file predicting ``class_set``'s classes (random weights, seeded, with
    non-trivial batch-norm statistics), as segbench's own exports carry their metadata."""
    import torch

    from segbench.engine.checkpoint import save_safetensors
    from segbench.models import build_model

    torch.manual_seed(seed)
    model = build_model(arch, num_classes=class_set.num_classes).train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, 64, 64))
    meta = {"arch": arch, "num_classes": class_set.num_classes, "class_names": list(class_set.names),
            "palette": [list(c) for c in class_set.palette], "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225]}  # fmt: skip
    save_safetensors(model.eval(), meta, path)
    return path
