"""Reading images and label maps robustly, and writing outputs atomically.

Images come back as ``np.uint8`` arrays ``(H, W, 3)`` RGB with EXIF orientation applied, whatever the
file's mode (grayscale, RGBA, palette, 16-bit, CMYK). Label maps come back as ``np.int64`` ``(H, W)`` with
void pixels set to :data:`IGNORE_INDEX` (255).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from segbench.classes import IGNORE_INDEX, colorize
from segbench.errors import UserError
from segbench.files import write_bytes_atomic

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}  # GIF: first frame


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # Pillow warns from 89 megapixels; above twice that it refuses (below)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
            img.load()
    except PermissionError:
        raise UserError(f"{path}: cannot read the file (permission denied)") from None
    except Image.DecompressionBombError as exc:
        raise UserError(f"{path}: image too large to decode safely ({exc})") from None
    except MemoryError:
        raise UserError(f"{path}: not enough memory to decode this image") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many types (OSError, SyntaxError, struct.error, ...) on bad files
        raise UserError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from None
    return img


def _exif_transpose(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; an unreadable EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a corrupt EXIF block must not lose the picture
        return img


def to_rgb(img: Image.Image) -> np.ndarray:
    """Convert a PIL image of any mode to ``np.uint8 (H, W, 3)`` RGB, applying EXIF orientation.

    - 16-bit grayscale (``I;16``, ``I;16B``, ``I;16L``) is scaled by 255/65535.
    - 32-bit integer grayscale (``I``, e.g. 16-bit PNGs in older Pillow, 32-bit TIFFs) is read as 8-bit
      when every value fits 0..255, as 16-bit when they fit 0..65535, else scaled by its maximum.
    - Float grayscale (``F``) is read as 0..1 when every value fits 0..1, else as 0..255 (clipped);
      NaN becomes 0.
    - Palette, bilevel, grayscale(+alpha), RGBA, CMYK, YCbCr, LAB and HSV go through Pillow's ``convert``;
      alpha channels are dropped.

    Raises:
        ValueError: a mode Pillow cannot convert to RGB (the message names it).
    """
    img = _exif_transpose(img)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img).astype(np.float64)
        top = float(arr.max()) if arr.size else 0.0
        if mode.startswith("I;16"):
            hi = 65535.0
        else:
            hi = 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    if mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if arr.size and arr.min() >= 0 and arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(arr[..., None], 3, axis=2)
    try:
        return np.array(img.convert("RGB"), dtype=np.uint8)
    except (ValueError, OSError) as exc:
        raise ValueError(f"image mode {mode} cannot be converted to RGB ({exc})") from None


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as ``np.uint8 (H, W, 3)`` RGB (see :func:`to_rgb` for the modes).

    Raises:
        UserError: the file is missing, cannot be decoded (truncated, not an image), or has a mode that
            cannot be converted to RGB; the message names the file.
    """
    path = Path(path)
    img = _open(path)
    try:
        return to_rgb(img)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path}: {exc}") from None


def read_mask(
    path: str | Path, num_classes: int, void_ids: tuple[int, ...] = (IGNORE_INDEX,),
    label_table: np.ndarray | None = None,
) -> np.ndarray:
    """Read a single-channel label map as ``np.int64 (H, W)``; ``void_ids`` become 255 (ignored).

    Args:
        label_table: ``(K,)`` lookup applied first: stored value ``v`` becomes ``label_table[v]`` (a class
            index or 255); None: the stored values are the class indices.

    Raises:
        UserError: missing or undecodable file, a label map with more than one channel, stored values
            outside ``label_table``, or values outside ``0..num_classes-1`` and ``void_ids`` (the message
            lists the values).
    """
    path = Path(path)
    img = _open(path)
    if img.mode not in ("L", "P", "I", "I;16", "I;16L", "I;16B"):
        raise UserError(f"{path}: label map must be single-channel (mode L or P), got mode {img.mode}")
    mask = np.asarray(img).astype(np.int64)
    if label_table is not None:
        unknown = np.unique(mask[(mask < 0) | (mask >= len(label_table))])
        if unknown.size:
            listed = ", ".join(str(v) for v in unknown[:10]) + (" ..." if unknown.size > 10 else "")
            raise UserError(f"{path}: label values {listed} are not in the dataset's label table "
                            f"(0..{len(label_table) - 1})")  # fmt: skip
        mask = np.asarray(label_table, dtype=np.int64)[mask]
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
        UserError: a path does not exist, or a folder cannot be listed (permissions).
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            try:
                entries = list(p.iterdir())
            except PermissionError:
                raise UserError(f"{p}: cannot list the folder (permission denied)") from None
            out.extend(sorted(f for f in entries if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"{p}: no such file or folder")
    return out


def save_png(path: str | Path, img: Image.Image) -> None:
    """Save a PIL image as PNG atomically (:func:`segbench.files.write_bytes_atomic`).

    Raises:
        WriteError: the disk or the folder refuses the file; one line naming it.
    """
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())


def label_image(mask: np.ndarray, palette) -> Image.Image:
    """A palette-mode ("P") image of a label map, to save as an indexed PNG: the pixel values are the
    class indices, and the attached colour table is :func:`segbench.classes.colorize`'s (``palette[i]``
    for class i, black for void 255 and for indices without a colour).

    Args:
        mask: ``(H, W)`` integer class indices in 0..255.
        palette: RGB colours, index i = class i.
    """
    img = Image.fromarray(np.asarray(mask).astype(np.uint8))
    img.putpalette(colorize(np.arange(256)[None, :], palette)[0].ravel().tolist())
    return img
