"""Every evaluated image for the report's image browser, saved while ``compare`` runs.

:class:`MaskStore` writes, into ``OUT/browser/``, as each image is evaluated:

``images/NAME.jpg``
    The input image (JPEG, full size) and ``thumbs/NAME.jpg``, a thumbnail at most :data:`THUMB_W` px wide.
``truth/NAME.png``
    The ground truth as a palette PNG (class i = palette entry i, ignore / void = entry 255, black).
``m<ROW>/NAME.png``
    Row ``ROW``'s predicted label map as a palette PNG (rows are numbered as the report's result rows).
``c<ROW>/NAME.png``
    When given, its confidence (each pixel's largest class probability) as a greyscale PNG in steps of
    :data:`CONFIDENCE_STEP` (grey level = probability x 255, rounded to the step; coarse steps keep it small).

and keeps, per image, each row's per-image mIoU (:func:`segbench.metrics.per_image_miou`: the image's own
IoUs averaged over the classes in its labels or its prediction). Memory stays bounded: nothing but a few
numbers per image is kept; :func:`pixel_disagreement` reads the masks back one image at a time.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from segbench.classes import IGNORE_INDEX, palette_array
from segbench.data.io import write_bytes_atomic
from segbench.metrics import per_image_miou

THUMB_W = 120  # px: widest a thumbnail gets
JPEG_QUALITY = 88
CONFIDENCE_STEP = 0.05  # confidence PNGs hold probabilities rounded to this step
MAX_PALETTE_CLASSES = 255  # palette entries 0..254 are classes, 255 is ignore / void (black)


def file_palette(palette, num_classes: int) -> list[tuple[int, int, int]]:
    """The 256 colours of every mask PNG: classes first, entry 255 black. Colours are made unique (a repeat
    is nudged by one step of blue) so that a browser can read a pixel's class back from its colour."""
    n = max(1, min(num_classes, MAX_PALETTE_CLASSES))
    colours = [tuple(int(c) for c in rgb) for rgb in palette_array(palette, n)]
    colours += [(0, 0, 0)] * (256 - len(colours))
    seen = {(0, 0, 0)}
    for i in range(n):
        rgb = colours[i]
        while rgb in seen:
            rgb = (rgb[0], rgb[1], (rgb[2] + 1) % 256)
        seen.add(rgb)
        colours[i] = rgb
    return colours


PNG_LEVEL = 1
"""zlib level of the per-image PNGs: level 1 wrote a 360 x 480 confidence map in 8.7 ms against 50.7 ms with
``optimize=True``, 2.5% more bytes (Zen 3 EPYC, 2026-12-07); a comparison writes two per image and model."""


def _png(label: np.ndarray, flat_palette: list[int], num_classes: int) -> bytes:
    """A label map ``(H, W)`` as palette PNG bytes; values outside ``[0, num_classes)`` become 255 (ignore)."""
    a = np.asarray(label).astype(np.int64)
    a = np.where((a >= 0) & (a < min(num_classes, MAX_PALETTE_CLASSES)), a, IGNORE_INDEX).astype(np.uint8)
    img = Image.fromarray(a, mode="P")
    img.putpalette(flat_palette)
    buf = BytesIO()
    img.save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def _confidence_png(confidence: np.ndarray) -> bytes:
    """Probabilities ``(H, W)`` in [0, 1] as a greyscale PNG, rounded to :data:`CONFIDENCE_STEP`."""
    c = np.clip(np.nan_to_num(np.asarray(confidence, dtype=np.float64)), 0.0, 1.0)
    c = np.round(c / CONFIDENCE_STEP) * CONFIDENCE_STEP
    buf = BytesIO()
    Image.fromarray(np.round(c * 255).astype(np.uint8), mode="L").save(buf, format="PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def _jpeg(image: np.ndarray, max_w: int | None = None) -> bytes:
    img = Image.fromarray(np.asarray(image)[..., :3].astype(np.uint8))
    if max_w is not None and img.width > max_w:
        img = img.resize((max_w, max(1, round(img.height * max_w / img.width))), Image.LANCZOS)
    buf = BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def image_miou(pred: np.ndarray, target: np.ndarray, num_classes: int) -> float | None:
    """Per-image mIoU of one label map against its ground truth (ignored pixels left out); None when the
    image has no counted pixel or the shapes differ."""
    pred, target = np.asarray(pred).astype(np.int64), np.asarray(target).astype(np.int64)
    if pred.shape != target.shape:
        return None
    valid = (target >= 0) & (target < num_classes)
    p = np.clip(pred[valid], 0, num_classes - 1)
    conf = np.bincount(target[valid] * num_classes + p, minlength=num_classes**2).reshape(1, num_classes, num_classes)
    v = float(per_image_miou(conf)[0])
    return None if np.isnan(v) else v


@dataclass
class StoredImage:
    """One evaluated image: its name, file stem in the browser folder, size, and per-image mIoU by row."""

    name: str
    stem: str
    width: int
    height: int
    has_truth: bool
    miou: dict[int, float | None] = field(default_factory=dict)
    rows: list[int] = field(default_factory=list)  # rows whose mask was saved


class MaskStore:
    """Saves images, ground truths and each row's predicted masks into one folder, as they are produced.

    Args:
        folder: The browser folder (``OUT/browser``); removed first when an earlier run left one.
        palette: RGB colours, index i = class i (None: generated).
        num_classes: Classes of the data's labels (values at or above are ignore).
    """

    def __init__(self, folder: str | Path, palette, num_classes: int):
        self.folder = Path(folder)
        if self.folder.is_dir():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self.num_classes = int(num_classes)
        self.palette = file_palette(palette, self.num_classes)
        self._flat = [c for rgb in self.palette for c in rgb]
        self.images: dict[str, StoredImage] = {}
        self._stems: set[str] = set()

    def _stem(self, name: str) -> str:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120] or "image"
        base, k = stem, 1
        while stem in self._stems:
            stem, k = f"{base}_{k}", k + 1
        self._stems.add(stem)
        return stem

    def _write(self, sub: str, file_name: str, data: bytes) -> None:
        (self.folder / sub).mkdir(exist_ok=True)
        write_bytes_atomic(self.folder / sub / file_name, data)

    def add(self, row: int, item: dict, pred: np.ndarray, confidence: np.ndarray | None = None) -> None:
        """Save row ``row``'s label map ``pred`` ``(H, W)`` of dataset item ``item`` (``name``, ``image``
        ``(H, W, 3)`` uint8, ``mask`` ``(H, W)`` or None), and its ``confidence`` ``(H, W)`` in [0, 1] when
        given; the image and its truth the first time it is seen."""
        name = str(item["name"])
        stored = self.images.get(name)
        target = item.get("mask")
        if stored is None:
            h, w = np.asarray(item["image"]).shape[:2]
            stored = StoredImage(name, self._stem(name), int(w), int(h), target is not None)
            self._write("images", stored.stem + ".jpg", _jpeg(item["image"]))
            self._write("thumbs", stored.stem + ".jpg", _jpeg(item["image"], THUMB_W))
            if target is not None:
                self._write("truth", stored.stem + ".png", _png(target, self._flat, self.num_classes))
            self.images[name] = stored
        self._write(f"m{row}", stored.stem + ".png", _png(pred, self._flat, self.num_classes))
        if confidence is not None and np.asarray(confidence).shape == np.asarray(pred).shape:
            self._write(f"c{row}", stored.stem + ".png", _confidence_png(confidence))
        if row not in stored.rows:
            stored.rows.append(row)
        if target is not None:
            stored.miou[row] = image_miou(pred, target, self.num_classes)

    def state(self) -> list[dict]:
        """What :meth:`restore` needs besides the files: every stored image as a JSON-able dict."""
        return [{**asdict(img), "miou": [[r, v] for r, v in img.miou.items()]} for img in self.images.values()]

    @classmethod
    def restore(cls, folder: str | Path, palette, num_classes: int, state: list[dict], source: str | Path,
                rows: dict[int, int]) -> MaskStore:  # fmt: skip
        """A store in ``folder`` holding the images and masks of an earlier store's folder ``source`` (its
        :meth:`state`), each kept row ``old`` renumbered ``rows[old]``; the rows not in ``rows`` are left out."""
        store, source = cls(folder, palette, num_classes), Path(source)
        subs = {"images": "images", "thumbs": "thumbs", "truth": "truth"}
        subs.update({f"{kind}{old}": f"{kind}{new}" for old, new in rows.items() for kind in "mc"})
        for old, new in subs.items():
            if (source / old).is_dir():
                shutil.copytree(source / old, store.folder / new)
        for d in state:
            miou = {rows[r]: v for r, v in d["miou"] if r in rows}
            img = StoredImage(d["name"], d["stem"], int(d["width"]), int(d["height"]), bool(d["has_truth"]), miou,
                              [rows[r] for r in d["rows"] if r in rows])  # fmt: skip
            store.images[img.name] = img
            store._stems.add(img.stem)
        return store

    def mask_path(self, row: int | None, stem: str) -> Path:
        """The saved mask of ``row`` (None: the ground truth) for the image file ``stem``."""
        return self.folder / ("truth" if row is None else f"m{row}") / f"{stem}.png"

    def confidence_path(self, row: int, stem: str) -> Path | None:
        """The saved confidence of ``row`` for the image file ``stem``; None when none was saved."""
        path = self.folder / f"c{row}" / f"{stem}.png"
        return path if path.is_file() else None


def read_mask(path: Path) -> np.ndarray:
    """A saved palette PNG back as its indices ``(H, W)`` uint8."""
    with Image.open(path) as img:
        return np.asarray(img.convert("P") if img.mode != "P" else img)


def pixel_disagreement(store: MaskStore, image: StoredImage, rows: list[int]) -> float | None:
    """Fraction of the pixels (not ignored in the ground truth) on which the masks of ``rows`` do not all
    agree; None with fewer than two masks."""
    masks = [read_mask(store.mask_path(r, image.stem)) for r in rows if r in image.rows]
    if len(masks) < 2 or any(m.shape != masks[0].shape for m in masks):
        return None
    differ = np.zeros(masks[0].shape, bool)
    for m in masks[1:]:
        differ |= m != masks[0]
    if image.has_truth:
        valid = read_mask(store.mask_path(None, image.stem)) != IGNORE_INDEX
        return float(differ[valid].mean()) if valid.any() else None
    return float(differ.mean())
