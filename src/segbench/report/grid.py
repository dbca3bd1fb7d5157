"""``grid.png``: example images, their ground truth and each model's label map side by side, with a legend.

One row per example; columns image | ground truth (when any example has one) | one per model. Tiles are
shrunk to fit :data:`MAX_TILE_W` x :data:`MAX_TILE_H` px, or enlarged by an integer factor (crisp
nearest-neighbour pixels) when small. Label maps are coloured by :func:`segbench.classes.colorize`;
"ignore" (255, negative values and, when class names are given, values ``>= len(class_names)``) is black.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from segbench.classes import IGNORE_INDEX, colorize, palette_array

MAX_TILE_W = 320  # px: widest an example tile gets in grid.png
MAX_TILE_H = 400  # px: tallest an example tile gets (tall images)
MARGIN, GAP = 10, 8  # px: around the canvas, between columns and rows
HEAD_H, CAP_H = 26, 18  # px: column headings, caption above each tile
SWATCH, LEGEND_ROW_H = 14, 20  # px: legend colour square, legend line


def _font(size: int, bold: bool = False) -> ImageFont.ImageFont:
    """DejaVu Sans shipped with matplotlib (same look everywhere), else Pillow's default font."""
    try:
        from matplotlib import font_manager

        props = font_manager.FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal")
        path = font_manager.findfont(props, fallback_to_default=False)
        return ImageFont.truetype(path, size)
    except Exception:  # noqa: BLE001  # pragma: no cover - font lookup fails in many ways, by installation
        try:
            return ImageFont.load_default(size)
        except TypeError:
            return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font, max_w: int) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``max_w`` px."""
    if draw.textlength(text, font=font) <= max_w:
        return text
    while text and draw.textlength(text + "…", font=font) > max_w:
        text = text[:-1]
    return text + "…"


def _as_rgb(image: Any) -> np.ndarray:
    """Example image as ``(H, W, 3)`` uint8 (grey and RGBA accepted; floats in [0, 1] scaled)."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3:
        raise ValueError(f"grid image must be (H, W, 3), got shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    a = a[..., :3]
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        if a.size and np.nanmax(a) <= 1.0:
            a = a * 255.0
        a = np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)
    return a


def _tile_size(h: int, w: int) -> tuple[int, int]:
    """Tile (width, height) for an (h, w) example: shrunk to fit MAX_TILE_W x MAX_TILE_H, or
    enlarged by an integer factor (crisp pixels) when it is small."""
    s = min(MAX_TILE_W / w, MAX_TILE_H / h)
    s = s if s < 1 else max(1, math.floor(s))
    return max(1, round(w * s)), max(1, round(h * s))


def _label_maps(ex: dict) -> list[np.ndarray]:
    """The ground truth (if any) and the predictions of one example."""
    return [np.asarray(lab) for lab in [ex.get("target")] + list((ex.get("preds") or {}).values()) if lab is not None]


def _num_colours(grid: list[dict], classes: list[str], class_names_given: bool) -> int:
    """Classes to draw: the given names decide what is "ignore"; without names, any value < 255."""
    if class_names_given:
        return len(classes)
    max_label = -1
    for ex in grid:
        for a in _label_maps(ex):
            a = a[(a >= 0) & (a != IGNORE_INDEX)]
            if a.size:
                max_label = max(max_label, int(a.max()))
    return max(len(classes), max_label + 1)


@dataclass
class _Row:
    """One example, ready to draw: tile size, one tile per column (None = nothing to show), captions."""

    w: int
    h: int
    tiles: list[Image.Image | None]
    captions: list[str]


def _pixel_accuracy_caption(pred: np.ndarray, target: np.ndarray | None, n_cls: int) -> str:
    if target is None or pred.shape != target.shape:
        return ""
    valid = (target >= 0) & (target < n_cls) & (target != IGNORE_INDEX)
    if not valid.any():
        return ""
    return f"pixel acc {100.0 * float((pred[valid] == target[valid]).mean()):.1f}%"


def _prepare_row(ex: dict, models: list[str], has_gt: bool, pal: np.ndarray, n_cls: int) -> _Row:
    img = _as_rgb(ex["image"])
    h, w = img.shape[:2]
    tw, th = _tile_size(h, w)

    def tile(label: np.ndarray) -> Image.Image:
        return Image.fromarray(colorize(label, pal, n_cls)).resize((tw, th), Image.NEAREST)

    tiles = [Image.fromarray(img).resize((tw, th), Image.LANCZOS if tw < w else Image.NEAREST)]
    captions = [str(ex.get("name", ""))]
    target = ex.get("target")
    target = None if target is None else np.asarray(target)
    if has_gt:
        tiles.append(None if target is None else tile(target))
        captions.append("")
    preds = ex.get("preds") or {}
    for m in models:
        p = preds.get(m)
        p = None if p is None else np.asarray(p)
        tiles.append(None if p is None else tile(p))
        captions.append("" if p is None else _pixel_accuracy_caption(p, target, n_cls))
    return _Row(tw, th, tiles, captions)


def _legend_entries(grid: list[dict], classes: list[str], pal: np.ndarray, n_cls: int) -> list[tuple[tuple, str]]:
    """(colour, name) of the classes that appear in any drawn map, plus "ignore" when a ground truth has it."""
    present: set[int] = set()
    has_ignore = False
    for ex in grid:
        for a in _label_maps(ex):
            a = a.astype(np.int64)
            present.update(int(v) for v in np.unique(a[(a >= 0) & (a < n_cls) & (a != IGNORE_INDEX)]))
        t = ex.get("target")
        if t is not None:
            a = np.asarray(t).astype(np.int64)
            has_ignore |= bool(((a < 0) | (a >= n_cls) | (a == IGNORE_INDEX)).any())
    entries = [
        (tuple(int(c) for c in pal[i]), classes[i] if i < len(classes) else f"class {i}") for i in sorted(present)
    ]
    if has_ignore:
        entries.append(((0, 0, 0), "ignore"))
    return entries


def _legend_lines(entries: list[tuple[tuple, str]], width: int, f_head, f_leg) -> list[list[tuple[tuple, str, int]]]:
    """Wrap the legend entries into lines that fit ``width``; each entry gets its x position."""
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[list[tuple[tuple, str, int]]] = [[]]
    x0 = x = MARGIN + measure.textlength("Classes:", font=f_head) + 12
    for colour, name in entries:
        w_entry = SWATCH + 5 + int(measure.textlength(name, font=f_leg)) + 16
        if x + w_entry > width - MARGIN and lines[-1]:
            lines.append([])
            x = x0
        lines[-1].append((colour, name, int(x)))
        x += w_entry
    return lines


def _draw_tile(draw, canvas, row: _Row, c: int, x_col: int, col_w: int, y: int, gt_column: bool, f_cap) -> None:
    """Caption and tile (or a grey "no label" / "no prediction" box) of column ``c`` of one row."""
    tw, th, tile, cap = row.w, row.h, row.tiles[c], row.captions[c]
    x = x_col + (col_w - tw) // 2
    if cap:
        text = _fit_text(draw, cap, f_cap, col_w)
        draw.text((x if c == 0 else x_col + (col_w - draw.textlength(text, font=f_cap)) / 2, y + 2),
                  text, fill=(70, 70, 70), font=f_cap)
    if tile is None:
        draw.rectangle([x, y + CAP_H, x + tw - 1, y + CAP_H + th - 1], fill=(236, 236, 236), outline=(200, 200, 200))
        text = _fit_text(draw, "no label" if gt_column else "no prediction", f_cap, tw - 4)
        draw.text((x + (tw - draw.textlength(text, font=f_cap)) / 2, y + CAP_H + th / 2 - 7), text,
                  fill=(140, 140, 140), font=f_cap)
    else:
        canvas.paste(tile, (x, y + CAP_H))
        draw.rectangle([x - 1, y + CAP_H - 1, x + tw, y + CAP_H + th], outline=(190, 190, 190))


def _grid_image(grid: list[dict], model_order: list[str], classes: list[str], class_names_given: bool,
                palette: Sequence[Sequence[int]] | None) -> Image.Image:
    """Compose the grid: one row per example, columns image | ground truth | models, legend below."""
    models = [m for m in model_order if any(m in (ex.get("preds") or {}) for ex in grid)]
    for ex in grid:
        models += [m for m in (ex.get("preds") or {}) if m not in models]
    has_gt = any(ex.get("target") is not None for ex in grid)
    columns = ["image"] + (["ground truth"] if has_gt else []) + models
    n_cls = _num_colours(grid, classes, class_names_given)
    pal = palette_array(palette, n_cls)
    rows = [_prepare_row(ex, models, has_gt, pal, n_cls) for ex in grid]

    col_w = max(160, max(r.w for r in rows))
    f_head, f_cap, f_leg = _font(15, bold=True), _font(12), _font(12)
    width = 2 * MARGIN + len(columns) * col_w + (len(columns) - 1) * GAP
    entries = _legend_entries(grid, classes, pal, n_cls)
    legend = _legend_lines(entries, width, f_head, f_leg)
    legend_h = (12 + LEGEND_ROW_H * len(legend)) if entries else 0
    height = MARGIN + HEAD_H + sum(CAP_H + r.h + GAP for r in rows) + legend_h + MARGIN

    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    col_x = [MARGIN + c * (col_w + GAP) for c in range(len(columns))]
    for c, name in enumerate(columns):
        text = _fit_text(draw, name, f_head, col_w)
        draw.text((col_x[c] + (col_w - draw.textlength(text, font=f_head)) / 2, MARGIN + 3), text,
                  fill=(20, 20, 20), font=f_head)
    y = MARGIN + HEAD_H
    for row in rows:
        for c in range(len(columns)):
            _draw_tile(draw, canvas, row, c, col_x[c], col_w, y, c == 1 and has_gt, f_cap)
        y += CAP_H + row.h + GAP
    if entries:
        y += 6
        draw.text((MARGIN, y + 1), "Classes:", fill=(20, 20, 20), font=f_head)
        for line in legend:
            for colour, name, lx in line:
                draw.rectangle([lx, y + 3, lx + SWATCH, y + 3 + SWATCH], fill=colour, outline=(120, 120, 120))
                draw.text((lx + SWATCH + 5, y + 3), name, fill=(30, 30, 30), font=f_leg)
            y += LEGEND_ROW_H
    return canvas


def grid_png(grid: list[dict], model_order: list[str], classes: list[str], class_names_given: bool,
             palette: Sequence[Sequence[int]] | None) -> tuple[bytes, str]:
    """Draw ``grid.png``.

    Args:
        grid: Examples, each ``{"name": str, "image": (H, W, 3) uint8 (grey, RGBA and floats in [0, 1]
            accepted), "target": (H, W) int or None, "preds": {model label: (H, W) int}}``.
        model_order: Model labels in the order of their columns; labels found only in ``preds`` follow.
        classes: Class names, index i = class i (legend text; ``class i`` beyond the list).
        class_names_given: Whether ``classes`` came from the caller; then values ``>= len(classes)`` are
            "ignore", else every value below 255 is a class.
        palette: RGB colours, index i = class i; None or too short -> generated colours.

    Returns:
        PNG bytes and the note for the report.

    Raises:
        ValueError: If an example's image or label map has an impossible shape.
    """
    img = _grid_image(grid, model_order, classes, class_names_given, palette)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    gt = ", ground truth" if any(ex.get("target") is not None for ex in grid) else ""
    note = (f"Columns: input image{gt}, then each model's prediction. Colours follow the class legend; "
            "black = ignore / void. Small images are enlarged with nearest-neighbour, large ones shrunk.")
    return buf.getvalue(), note
