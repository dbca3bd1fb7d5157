"""Reading images and label maps robustly, and writing outputs atomically.

Images come back as ``np.uint8`` arrays ``(H, W, 3)`` RGB with EXIF orientation applied, whatever the
file's mode (grayscale, RGBA, palette, 16-bit, CMYK). Label maps come back as ``np.int64`` ``(H, W)`` with
void pixels set to :data:`IGNORE_INDEX` (255).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from segbench.data.classes import IGNORE_INDEX
from segbench.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"{path}: cannot decode image ({exc})") from None
    return img


def to_rgb(img: Image.Image) -> np.ndarray:
    """Convert a PIL image of any mode to ``np.uint8 (H, W, 3)`` RGB, applying EXIF orientation.

    16-bit images are scaled to 8 bits; the alpha channel of RGBA/LA images is dropped.
    """
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(arr, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    return np.array(img.convert("RGB"), dtype=np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``np.uint8 (H, W, 3)`` RGB.

    Raises:
        UserError: the file is missing or cannot be decoded (the message names the file).
    """
    path = Path(path)
    return to_rgb(_open(path))


def read_mask(
    path: str | Path, num_classes: int, void_ids: tuple[int, ...] = (IGNORE_INDEX,)
) -> np.ndarray:
    """Read a single-channel label map as ``np.int64 (H, W)``; ``void_ids`` become 255 (ignored).

    Raises:
        UserError: missing or undecodable file, a label map with more than one channel, or values
            outside ``0..num_classes-1`` and ``void_ids`` (the message lists the values).
    """
    path = Path(path)
    img = _open(path)
    if img.mode not in ("L", "P", "I", "I;16", "I;16L", "I;16B"):
        raise UserError(f"{path}: label map must be single-channel (mode L or P), got mode {img.mode}")
    mask = np.asarray(img).astype(np.int64)
    for v in void_ids:
        mask[mask == v] = IGNORE_INDEX
    bad = np.unique(mask[(mask >= num_classes) & (mask != IGNORE_INDEX)])
    if bad.size:
        listed = ", ".join(str(v) for v in bad[:10]) + (" ..." if bad.size > 10 else "")
        raise UserError(
            f"{path}: label values {listed} are outside the {num_classes} classes (0..{num_classes - 1}, void {list(void_ids)})"
        )
    return mask


def list_images(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders (not recursive) into a sorted list of image paths.

    Raises:
        UserError: a path does not exist.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    return out


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``, so a
    reader never sees a half-written file; permissions follow the umask like a plain ``open``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_png(path: str | Path, img: Image.Image) -> None:
    """Save a PIL image as PNG atomically."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())


def colorize(mask: np.ndarray, palette) -> Image.Image:
    """A palette-mode PNG image of an integer label map; ignore pixels (255) are black."""
    img = Image.fromarray(np.where(mask == IGNORE_INDEX, 255, mask).astype(np.uint8))
    flat = [0] * 768
    for i, c in enumerate(palette):
        flat[3 * i : 3 * i + 3] = list(c)
    img.putpalette(flat)
    return img
